"""Our page in headless Chromium with a fake microphone, through the bridge, to
the real server: a spoken question (scenario A) and a barge-in (scenario B).

Waits below are failure bounds (how long to give a slow, shared machine), not
measurements; the one timing the issue fixes (stop all audio within 100 ms of
``response.interrupted``) is measured by the page itself.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Page, sync_playwright

from tests.browser.harness import REPO_ROOT, chromium_args, compose_mic, speech

pytestmark = pytest.mark.browser

CONFIGS = REPO_ROOT / "fixtures" / "configs"
DOCS_SCREENSHOT_ENV = "REFINERY_UPDATE_DOCS_SCREENSHOT"

# What the tests read from the page (window.refineryPage holds DOM nodes and
# Sets, so pick plain values).
PAGE_STATE_JS = """() => {
  const p = window.refineryPage;
  return {
    state: p.state, help: p.help, sent: p.sent, received: p.received,
    ctxState: p.ctx ? p.ctx.state : null, activeSources: p.sources.size,
    sourcesStarted: p.sourcesStarted, sourcesEnded: p.sourcesEnded,
    droppedAudioDeltas: p.droppedAudioDeltas, errors: p.errors,
    lastInterrupt: p.lastInterrupt,
    events: p.events.filter(e => e.type !== "input_audio_buffer.append").map(e => [e.dir, e.type, e.response_id || null]),
    turns: p.turns.map(t => ({n: t.n, responseId: t.responseId, status: t.status, userText: t.userText,
      speechToAudioMs: t.speechToAudioMs, interruptToSilenceMs: t.interruptToSilenceMs, audioChunks: t.audioChunks})),
    userFinals: [...document.querySelectorAll(".turn.user[data-final=true] .text")].map(e => e.textContent),
    agents: [...document.querySelectorAll(".turn.agent")].map(e => ({role: e.dataset.role,
      responseId: e.dataset.responseId, text: e.querySelector(".text").textContent})),
  };
}"""


def state(page: Page) -> dict[str, Any]:
    return page.evaluate(PAGE_STATE_JS)


def agent_names(config: Path) -> set[str]:
    """Agents of the config's flow that produce text (utility agents)."""
    cfg = yaml.safe_load(config.read_text())
    return {a["agent_name"] for a in cfg["utility_agents"]}


def open_page(p: Any, chromium: Path, mic: Path, artifacts: Path, url: str) -> tuple[Any, Page]:
    profile = artifacts / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    browser = p.chromium.launch_persistent_context(
        str(profile), executable_path=str(chromium), headless=True, args=chromium_args(mic),
        viewport={"width": 1280, "height": 900},
    )
    page = browser.pages[0] if browser.pages else browser.new_page()
    console = artifacts / "console.log"
    page.on("console", lambda m: console.open("a").write(f"{m.type}: {m.text}\n"))
    page.on("pageerror", lambda e: console.open("a").write(f"pageerror: {e}\n"))
    page.goto(url + "/")
    page.click("#connect")
    page.wait_for_function("window.refineryPage.state === 'ready'", timeout=60_000)
    page.click("#record")  # starts the fake mic's file from its beginning
    page.wait_for_function("window.refineryPage.state === 'recording'", timeout=10_000)
    return browser, page


def wait_for(page: Page, js: str, timeout_s: float, what: str, artifacts: Path) -> None:
    try:
        page.wait_for_function(js, timeout=timeout_s * 1000, polling=50)
    except Exception as exc:  # playwright's TimeoutError: add the page state and a screenshot
        page.screenshot(path=str(artifacts / "failure.png"), full_page=True)
        raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s; page state:\n"
                             f"{json.dumps(state(page), indent=1)[:4000]}") from exc


def test_scenario_a_spoken_question_is_answered_in_the_page(chromium: Path, server: Any, start_bridge: Any, artifacts: Path) -> None:
    config = CONFIGS / "bargein_flow_superagent_realtime.yaml"
    bridge = start_bridge(server.url, "browser_a", config)
    question = speech("question_currency_heart.wav")
    mic = compose_mic(artifacts / "mic.wav", [(1.0, question)], total_s=1.0 + len(question) / 16000 + 30)

    with sync_playwright() as p:
        browser, page = open_page(p, chromium, mic, artifacts, bridge.url)
        try:
            wait_for(page, "document.querySelectorAll('.turn.user[data-final=true]').length >= 1", 90, "the user's transcript", artifacts)
            wait_for(page, "window.refineryPage.sourcesStarted > 0 && window.refineryPage.state === 'speaking'", 90, "response audio", artifacts)
            page.screenshot(path=str(artifacts / "speaking.png"), full_page=True)
            if os.environ.get(DOCS_SCREENSHOT_ENV) == "1":  # refresh the README's picture
                page.set_viewport_size({"width": 1280, "height": 1080})
                page.wait_for_timeout(1500)  # let every agent's text arrive for the picture
                page.screenshot(path=str(REPO_ROOT / "docs" / "page.png"))
            wait_for(page, "(() => { const p = window.refineryPage; return p.turns.length && p.turns[0].status === 'completed'"
                           " && p.sourcesStarted > 0 && p.sources.size === 0 && (p.sent['playback.stopped'] || 0) > 0; })()",
                     180, "the whole response to play out", artifacts)
            s = state(page)
            page.screenshot(path=str(artifacts / "done.png"), full_page=True)
        finally:
            browser.close()

    stats = httpx.get(bridge.url + "/api/stats").json()
    assert "currency" in s["userFinals"][0].lower(), s["userFinals"]
    roles = {a["role"] for a in s["agents"] if a["text"].strip()}
    speaking_agents = agent_names(config)
    assert speaking_agents <= roles, f"agents without text in the page: {speaking_agents - roles}"
    assert s["ctxState"] == "running"
    assert s["sourcesEnded"] == s["sourcesStarted"] > 0
    assert s["received"]["response.audio.delta"] == s["sourcesStarted"]
    assert s["turns"][0]["speechToAudioMs"] is not None and s["turns"][0]["speechToAudioMs"] > 0
    # The page's playback events went through the bridge to the server.
    assert stats["to_service"].get("playback.started", 0) >= 1
    assert stats["to_service"].get("playback.stopped", 0) >= 1
    assert stats["to_service"].get("playback.started") == s["sent"]["playback.started"]
    assert not s["errors"], s["errors"]


def test_scenario_b_barge_in_stops_audio_and_starts_the_next_turn(chromium: Path, server: Any, start_bridge: Any, artifacts: Path) -> None:
    config = CONFIGS / "two_agents_bargein.yaml"
    bridge = start_bridge(server.url, "browser_b", config)
    question = speech("question_currency_heart.wav")
    interrupt = speech("interrupt_bonds_joe.wav")
    # The answer plays for ~50 s; speaking 16 s after the question ends lands
    # well inside it even when ASR and TTS are slow on a busy machine.
    q_end = 1.0 + len(question) / 16000
    t_interrupt = q_end + 16.0
    mic = compose_mic(artifacts / "mic.wav", [(1.0, question), (t_interrupt, interrupt)], total_s=t_interrupt + 30)

    with sync_playwright() as p:
        browser, page = open_page(p, chromium, mic, artifacts, bridge.url)
        try:
            wait_for(page, "window.refineryPage.sourcesStarted > 0", 90, "response audio", artifacts)
            assert state(page)["turns"][0]["status"] != "interrupted", "interrupted before the barge-in was spoken"
            wait_for(page, "window.refineryPage.lastInterrupt !== null", 60, "response.interrupted", artifacts)
            wait_for(page, "(() => { const t = window.refineryPage.turns[0]; return t.interruptToSilenceMs !== null; })()",
                     5, "silence after the interrupt", artifacts)
            page.screenshot(path=str(artifacts / "interrupted.png"), full_page=True)
            wait_for(page, "document.querySelectorAll('.turn.user[data-final=true]').length >= 2", 90,
                     "the next turn's transcript", artifacts)
            s = state(page)
            page.screenshot(path=str(artifacts / "next-turn.png"), full_page=True)
        finally:
            browser.close()

    stats = httpx.get(bridge.url + "/api/stats").json()
    first = s["turns"][0]
    assert first["status"] == "interrupted"
    assert s["lastInterrupt"]["activeSources"] > 0, "the interrupt came when nothing was playing"
    assert 0 <= first["interruptToSilenceMs"] < 100, first
    # After the interrupt nothing of that response is played.
    events = s["events"]
    i_int = next(i for i, e in enumerate(events) if e[:2] == ["in", "response.interrupted"])
    assert ["out", "response.cancel", None] in events[i_int:], "no response.cancel after response.interrupted"
    assert first["audioChunks"] == s["lastInterrupt"]["chunksAtInterrupt"], "audio of the interrupted response played on"
    assert stats["to_service"].get("response.cancel", 0) >= 1
    assert "bond" in s["userFinals"][1].lower(), s["userFinals"]
    assert "currency" in s["userFinals"][0].lower(), s["userFinals"]
