"""Record in the browser, replay in the simulator (issue #13): a barge-in in our
page in headless Chromium, through the bridge, recorded by ``python -m server
--record``; ``python -m simulator --replay`` reruns it on the virtual clock and
fires the same interrupt within one frame."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from simulator.replay import format_report, load_recording, replay
from tests.browser.harness import REPO_ROOT, compose_mic, speech
from tests.browser.test_browser_page import open_page, state, wait_for
from tests.support.server_proc import running_server

pytestmark = pytest.mark.browser

#: Failure bound for the server to write the journal once the page has left.
RECORDING_CLOSED_S = 30.0


def test_a_barge_in_recorded_in_the_browser_replays_with_the_same_interrupt(
    chromium: Path, start_bridge: Any, artifacts: Path, tmp_path: Path
) -> None:
    config = REPO_ROOT / "fixtures" / "configs" / "two_agents_bargein.yaml"
    question = speech("question_currency_heart.wav")
    interrupt = speech("interrupt_bonds_joe.wav")
    t_interrupt = 1.0 + len(question) / 16000 + 16.0  # inside the ~50 s answer (see test_browser_page)
    mic = compose_mic(artifacts / "mic.wav", [(1.0, question), (t_interrupt, interrupt)], total_s=t_interrupt + 30)
    recordings = tmp_path / "recordings"
    with running_server(tmp_path / "data", "--record", str(recordings), log_path=artifacts / "server.log") as server:
        bridge = start_bridge(server.url, "browser_rec", config)
        with sync_playwright() as p:
            browser, page = open_page(p, chromium, mic, artifacts, bridge.url)
            try:
                wait_for(page, "window.refineryPage.lastInterrupt !== null", 150, "response.interrupted", artifacts)
                wait_for(page, "document.querySelectorAll('.turn.user[data-final=true]').length >= 2", 90,
                         "the next turn's transcript", artifacts)
                page_state = state(page)
            finally:
                browser.close()
        deadline = time.monotonic() + RECORDING_CLOSED_S
        while not list(recordings.glob("*/journal.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
    [session] = [p.parent for p in recordings.glob("*/journal.json")]
    assert page_state["turns"][0]["status"] == "interrupted"

    result = replay(load_recording(session))
    report = format_report(result, session.name)
    [recorded] = [e for e in result.recorded if e["type"] == "interrupt"]
    replayed = [e for e in result.replayed if e["type"] == "interrupt"]
    assert replayed, report
    assert abs(replayed[0]["t"] - recorded["t"]) <= result.frame_ms / 1000 + 1e-6, report
    assert abs(replayed[0]["audio_end_ms"] - recorded["audio_end_ms"]) <= result.frame_ms, report
    assert not [d for d in result.differences if d.what.startswith(("interrupt", "turn"))], report
