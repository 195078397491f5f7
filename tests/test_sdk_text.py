"""Typed turns through the unmodified airefinery-sdk against our server (issue 2).

Each scenario runs tests/sdk/sdk_text.py in the SDK's Python 3.12 venv and
asserts on the event trace it prints. Only the base URL differs from a real
user's code.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.sdk_trace import (
    BYTES_PER_SECOND,
    ParsedResponse,
    agents_of,
    flow_agents,
    format_trace,
    parse_response,
    server_events,
    split_responses,
)
from tests.support.text_metrics import normalize_words

pytestmark = pytest.mark.sdk

QUERY = "How should I hedge my portfolio against stock and currency risk?"
# Plausible speaking rate bounds (seconds of audio per word of the spoken text).
MIN_S_PER_WORD, MAX_S_PER_WORD = 0.15, 1.2
# Slack for leading/trailing silence the TTS engine adds around each sentence.
SILENCE_SLACK_S = 1.5


def _name(prefix: str) -> str:
    # Project names and uuids must match ^[A-Za-z0-9_-]+$ (the SDK checks).
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _run_text(run_sdk_script: Any, server: Any, config: Path | None, mode: str, **extra: str) -> dict[str, Any]:
    args = ["--base-url", server.url, "--mode", mode, "--project", extra.pop("project", _name("text")), "--uuid", _name("u")]
    if config is not None:
        args += ["--config", str(config)]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return run_sdk_script("sdk_text.py", *args, server=server)


def _fail_msg(result: dict[str, Any], what: str) -> str:
    return f"{what}\nevent trace:\n{format_trace(result['events'])}"


@pytest.fixture(scope="module")
def typed_turn(run_sdk_script: Any, server: Any, tutorial_config: Path) -> dict[str, Any]:
    """One typed turn on the tutorial project, shared by the checks below."""
    return _run_text(run_sdk_script, server, tutorial_config, "turn", query=QUERY)


@pytest.fixture(scope="module")
def typed_response(typed_turn: dict[str, Any]) -> ParsedResponse:
    responses = split_responses(server_events(typed_turn))
    assert len(responses) == 1, _fail_msg(typed_turn, f"expected one response, got {len(responses)}")
    return parse_response(responses[0])


def test_session_created_reports_barge_in(typed_turn: dict[str, Any]) -> None:
    events = server_events(typed_turn)
    assert events and events[0]["type"] == "session.created", _fail_msg(typed_turn, "first message must be session.created")
    assert events[0].get("capabilities", {}).get("vad_enabled") is True, _fail_msg(
        typed_turn, "the tutorial config has a vad block with enable_barge_in: true, so vad_enabled must be true"
    )


def test_typed_turn_event_order(typed_turn: dict[str, Any], typed_response: ParsedResponse) -> None:
    assert typed_response.problems == [], _fail_msg(typed_turn, "order violations: " + "; ".join(typed_response.problems))
    assert typed_response.status == "completed", _fail_msg(typed_turn, "response.done status")
    kinds = [e["type"] for e in server_events(typed_turn)]
    assert kinds[-2:] == ["response.audio.done", "response.done"], _fail_msg(typed_turn, "a response ends audio.done, done")
    assert not any(k.startswith("response.audio_transcript") for k in kinds), _fail_msg(
        typed_turn, "a typed query must not produce transcript events"
    )
    assert len(typed_response.response_ids) == 1, _fail_msg(typed_turn, "every response event carries one response_id")


def test_one_text_delta_per_flow_agent_in_order(
    typed_turn: dict[str, Any], typed_response: ParsedResponse, tutorial_config: Path
) -> None:
    roles = [s.role for s in typed_response.segments]
    assert all(s.text_deltas == 1 for s in typed_response.segments), _fail_msg(typed_turn, "one text.delta per agent")
    assert len(roles) == len(set(roles)), _fail_msg(typed_turn, f"an agent ran twice: {roles}")
    flow = flow_agents(tutorial_config)
    known = set(agents_of(tutorial_config))
    assert set(flow) <= set(roles), _fail_msg(typed_turn, f"every flow agent {flow} must run; ran {roles}")
    assert set(roles) <= known, _fail_msg(typed_turn, f"roles must be agent names from the config {sorted(known)}")
    # Stock Planner's next_step lists the other two: topological order puts it first.
    assert roles[0] == flow[0], _fail_msg(typed_turn, f"{flow[0]!r} must run first")
    for seg in typed_response.segments:
        assert seg.content.strip(), _fail_msg(typed_turn, f"{seg.role}: empty text.delta content")
        assert seg.done_text is not None and seg.done_text.strip(), _fail_msg(typed_turn, f"{seg.role}: empty text.done")
        assert normalize_words(seg.done_text) == normalize_words(seg.content), _fail_msg(
            typed_turn, f"{seg.role}: text.done text differs from the delta's content"
        )


def test_speech_matches_speech_config(
    typed_turn: dict[str, Any], typed_response: ParsedResponse, tutorial_config: Path
) -> None:
    agents = agents_of(tutorial_config)
    for seg in typed_response.segments:
        agent = agents[seg.role]
        seconds = seg.audio_bytes / BYTES_PER_SECOND
        words = len(normalize_words(seg.content))
        if not agent.speaks:
            assert seg.audio_chunks == 0, _fail_msg(typed_turn, f"{seg.role} has enable_speech: false but got audio")
            continue
        assert seg.audio_chunks > 0, _fail_msg(typed_turn, f"{seg.role} speaks but sent no audio")
        assert seg.odd_chunks == 0, _fail_msg(typed_turn, f"{seg.role}: audio chunk with an odd byte count is not PCM16")
        assert seg.audio_peak > 500, _fail_msg(typed_turn, f"{seg.role}: audio is (near) silence, peak {seg.audio_peak}")
        # Numbers expand to several words when normalized, hence the slack on top.
        assert seconds <= MAX_S_PER_WORD * words + SILENCE_SLACK_S, _fail_msg(
            typed_turn, f"{seg.role}: {seconds:.2f} s of audio is too long for {words} words"
        )
        if agent.summarizes:
            # It speaks a summary, shorter than its text: only demand real speech.
            assert seconds >= 0.3, _fail_msg(typed_turn, f"{seg.role}: only {seconds:.2f} s of audio")
        else:
            assert seconds >= MIN_S_PER_WORD * words, _fail_msg(
                typed_turn, f"{seg.role}: {seconds:.2f} s of audio is too short for {words} words"
            )


def test_broken_config_error_names_field_path(
    run_sdk_script: Any, server: Any, tutorial_config: Path, tmp_path: Path
) -> None:
    text = tutorial_config.read_text()
    # agent_list[1] of the flow names an agent that does not exist.
    broken_text = text.replace('        - agent_name: "Currency Planner"\n', '        - agent_name: "Nonexistent Planner"\n', 1)
    assert broken_text != text, "the tutorial config no longer has the line this test breaks"
    broken = tmp_path / "broken.yaml"
    broken.write_text(broken_text)
    result = _run_text(run_sdk_script, server, broken, "bad-config")
    exc = result.get("exception")
    assert exc is not None, f"create_project accepted a flow naming an unknown agent: {result}"
    assert exc["type"] == "ProjectCreationError", exc
    # The SDK's exception text is only "Failed to create project '...'"; the
    # server's body travels in exc.extra["error_message"].
    seen = exc["text"] + " " + str(exc.get("extra", {}).get("error_message", ""))
    assert exc.get("extra", {}).get("status_code") == 422, exc
    assert "super_agents[0].config.agent_list[1].agent_name" in seen, exc
    assert "Nonexistent Planner" in seen, exc


def test_unknown_project_raises(run_sdk_script: Any, server: Any) -> None:
    project = _name("never_created")
    result = _run_text(run_sdk_script, server, None, "unknown-project", project=project)
    exc = result.get("exception")
    assert exc is not None, _fail_msg(result, "connecting to a project that was never created must raise")
    # Either the WebSocket handshake is refused (404) or /distiller/download fails.
    assert "404" in exc["text"] or project in exc["text"], exc


def test_cancel_stops_the_response(
    run_sdk_script: Any, server: Any, tutorial_config: Path, typed_response: ParsedResponse
) -> None:
    result = _run_text(run_sdk_script, server, tutorial_config, "cancel", query=QUERY)
    events = result["events"]
    marks = [i for i, e in enumerate(events) if e["type"] == "client:cancel_response"]
    assert len(marks) == 1, _fail_msg(result, "the script cancels exactly once, at the first audio delta")
    responses = split_responses(server_events(result))
    assert len(responses) == 2, _fail_msg(result, "expected the cancelled response and the follow-up")
    cancelled, follow_up = (parse_response(r) for r in responses)
    assert cancelled.problems == [], _fail_msg(result, "cancelled response: " + "; ".join(cancelled.problems))
    assert cancelled.status == "cancelled", _fail_msg(result, "response.done after response.cancel must say cancelled")
    # Audio already on the wire when the cancel left may still arrive, but the
    # server must stop producing: the same query, uncancelled, gives more.
    full_audio = sum(s.audio_bytes for s in typed_response.segments)
    cut_audio = sum(s.audio_bytes for s in cancelled.segments)
    assert cut_audio < full_audio, _fail_msg(result, f"cancelled response sent {cut_audio} B, the full one {full_audio} B")
    full_roles = [s.role for s in typed_response.segments]
    cut_roles = [s.role for s in cancelled.segments]
    assert cut_roles == full_roles[: len(cut_roles)], _fail_msg(result, "a cancelled flow runs a prefix of the agents")
    # Nothing of the cancelled response after its response.done; the session goes on.
    assert follow_up.problems == [] and follow_up.status == "completed", _fail_msg(
        result, "follow-up response: " + "; ".join(follow_up.problems)
    )
    assert not (cancelled.response_ids & follow_up.response_ids), _fail_msg(result, "follow-up reuses the response_id")
