"""The session core driven on a virtual clock, no network: typed turns."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from server import protocol as proto
from server.agents.flow import plan_turn, route
from server.config import load_project_config, load_project_config_file
from server.session import Session, StartJob
from server.engines import build_engines
from server.virtual import open_virtual_session
from server.work import SpeechJob

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml"
PTT = ROOT / "fixtures/configs/pushtotalk_flow_superagent.yaml"
QUESTION = "How should I hedge my portfolio against currency risk?"
FLOW = ["Stock Planner", "Currency Planner", "Risk Assessment Planner", "Investment Strategy Advisor"]


@pytest.fixture(scope="module")
def tutorial():
    return load_project_config_file(TUTORIAL).config


def run_text_turn(config, text=QUESTION, until=120.0):
    vs = open_virtual_session(config)
    created = vs.start()
    events = vs.deliver(0.0, proto.TextInput(text)) + vs.advance(until)
    return vs, created, [e.event for e in events]


def collapse(events):
    """Event types with runs of audio deltas folded into one entry."""
    out = []
    for ev in events:
        key = (ev["type"], ev.get("role"))
        if key[0] == "response.audio.delta" and out and out[-1] == key:
            continue
        out.append(key)
    return out


def test_typed_turn_follows_protocol_order(tutorial):
    vs, created, events = run_text_turn(tutorial)
    assert created[0].event["type"] == "session.created"
    assert created[0].event["capabilities"] == {"vad_enabled": True}
    expected = [("response.created", None)]
    for name in FLOW:
        expected.append(("response.text.delta", name))
        if name != "Risk Assessment Planner":  # enable_speech: false
            expected.append(("response.audio.delta", name))
        expected.append(("response.text.done", name))
    expected += [("response.audio.done", None), ("response.done", None)]
    assert collapse(events) == expected
    assert events[-1]["status"] == "completed"
    assert len({ev["response_id"] for ev in events}) == 1
    assert vs.idle()


def test_text_events_carry_role_and_same_text_in_every_field(tutorial):
    _, _, events = run_text_turn(tutorial)
    deltas = [ev for ev in events if ev["type"] == "response.text.delta"]
    assert [ev["role"] for ev in deltas] == FLOW
    for ev in deltas:
        assert ev["content"] == ev["delta"] == ev["text"] and ev["content"].strip()
    for ev in events:  # the SDK dies on null role/content/status
        for key in ("role", "content", "status", "kwargs"):
            assert ev.get(key, "") is not None


def test_later_agents_see_earlier_ones_and_the_goal(tutorial):
    _, _, events = run_text_turn(tutorial)
    texts = {ev["role"]: ev["content"] for ev in events if ev["type"] == "response.text.delta"}
    assert "Stock Planner" in texts["Currency Planner"]
    assert "Currency Planner" in texts["Risk Assessment Planner"]
    assert "generate investment recommendations" in texts["Stock Planner"]
    assert "Stock Planner, Currency Planner and Risk Assessment Planner" in texts["Investment Strategy Advisor"]


def pcm_seconds(events, role, rate=16000):
    data = b"".join(base64.b64decode(ev["audio"]) for ev in events if ev["type"] == "response.audio.delta" and ev["role"] == role)
    assert len(data) % 2 == 0
    return len(data) / 2 / rate


def test_audio_per_speaking_agent_is_plausible_and_summaries_are_shorter(tutorial):
    _, _, events = run_text_turn(tutorial)
    texts = {ev["role"]: ev["content"] for ev in events if ev["type"] == "response.text.delta"}
    stock = pcm_seconds(events, "Stock Planner")
    words = len(texts["Stock Planner"].split())
    assert 0.15 * words < stock < 1.2 * words
    assert pcm_seconds(events, "Risk Assessment Planner") == 0
    # Currency Planner has enable_summarize: it speaks a one-sentence summary of a
    # text as long as the Stock Planner's.
    assert 0 < pcm_seconds(events, "Currency Planner") < stock / 2


def test_cancel_after_first_audio_stops_audio_and_closes_cancelled(tutorial):
    vs = open_virtual_session(tutorial)
    vs.start()
    events = vs.deliver(0.0, proto.TextInput(QUESTION))
    t = 0.0
    while not any(e.event["type"] == "response.audio.delta" for e in events):
        t += 0.01
        events += vs.advance(t)
    after = vs.deliver(t, proto.ResponseCancel()) + vs.advance(t + 30)
    types = [e.event["type"] for e in after]
    assert "response.audio.delta" not in types
    assert types == ["response.audio.done", "response.done"]
    assert after[-1].event["status"] == "cancelled"
    assert vs.idle()


def test_second_turn_sees_the_first(tutorial):
    vs = open_virtual_session(tutorial)
    vs.start()
    vs.deliver(0.0, proto.TextInput(QUESTION))
    vs.advance(60)
    events = vs.deliver(61, proto.TextInput("And what about my bonds?")) + vs.advance(120)
    first = next(e.event for e in events if e.event["type"] == "response.text.delta")
    assert "earlier question about hedge portfolio currency risk" in first["content"]
    assert [t.role for t in vs.session.history.turns][:2] == ["user", "assistant"]


def test_typed_input_during_a_response_cancels_it(tutorial):
    vs = open_virtual_session(tutorial)
    vs.start()
    vs.deliver(0.0, proto.TextInput(QUESTION))
    events = vs.deliver(0.2, proto.TextInput("Tell me about gold.")) + vs.advance(60)
    done = [e.event for e in events if e.event["type"] == "response.done"]
    assert [d["status"] for d in done] == ["cancelled", "completed"]
    assert done[0]["response_id"] != done[1]["response_id"]


def test_bad_frames_get_warnings_and_the_session_goes_on(tutorial):
    vs = open_virtual_session(tutorial)
    vs.start()
    bad = [
        proto.parse_client_message("{not json"),
        proto.parse_client_message('{"type": "nope"}'),
        proto.parse_client_message('{"type": "input_audio_buffer.append", "audio": "***"}'),
        proto.parse_client_message('{"type": "input_audio_buffer.append", "audio": "AAAA"}'),
        proto.parse_client_message("x" * (proto.MAX_CLIENT_FRAME_BYTES + 1)),
    ]
    codes = []
    for msg in bad:
        codes += [e.event["code"] for e in vs.deliver(0.0, msg) if e.event["type"] == "warning"]
    assert codes == ["malformed_json", "unknown_type", "bad_base64", "bad_audio_length", "frame_too_large"]
    events = vs.deliver(0.1, proto.TextInput(QUESTION)) + vs.advance(60)
    assert events[-1].event["status"] == "completed"


def test_push_to_talk_session_reports_vad_disabled():
    vs = open_virtual_session(load_project_config_file(PTT).config)
    created = vs.start()[0].event
    assert created["capabilities"]["vad_enabled"] is False
    assert created["session"]["mode"] == "push-to-talk"


def test_session_created_names_local_voices(tutorial):
    created = open_virtual_session(tutorial).start()[0].event["session"]
    voices = created["voices"]
    assert voices["Currency Planner"]["requested"] == "en-CA-LiamNeural"
    assert voices["Stock Planner"]["requested"] == "en-US-JennyNeural"
    assert voices["Currency Planner"]["local"] != voices["Stock Planner"]["local"]
    assert "Risk Assessment Planner" not in voices  # enable_speech: false


def _speech_texts(config, text=QUESTION):
    """Texts the session sends to TTS for a typed turn (engines run inline)."""
    from server.work import run_job

    session = Session(config, build_engines(config), session_id="s")
    pending = session.receive(0.0, proto.TextInput(text))
    spoken: dict[str, list[str]] = {}
    while pending:
        out = pending.pop(0)
        if isinstance(out, StartJob):
            if isinstance(out.job, SpeechJob):
                role = session._response.steps[session._response.step].name
                spoken.setdefault(role, []).append(out.job.text)
            pending += session.job_done(0.0, run_job(out.job))
    return spoken


def test_normalize_text_is_applied_only_where_configured(tutorial):
    spoken = _speech_texts(tutorial)
    assert not any(ch.isdigit() for s in spoken["Stock Planner"] for ch in s)
    raw = TUTORIAL.read_text().replace(
        "      voice: 'en-US-JennyNeural'\n", "      voice: 'en-US-JennyNeural'\n      normalize_text: false\n"
    )
    config = load_project_config(raw).config
    assert any(ch.isdigit() for s in _speech_texts(config)["Stock Planner"] for ch in s)


def test_routing_picks_the_best_matching_agent():
    raw = TUTORIAL.read_text().replace(
        'orchestrator:\n  agent_list:\n    - agent_name: "Investment Strategy Advisor"',
        'orchestrator:\n  agent_list:\n    - agent_name: "Investment Strategy Advisor"\n    - agent_name: "Risk Assessment Planner"',
    )
    config = load_project_config(raw).config
    assert route(config, "Analyze the volatility and correlation of my portfolio") == "Risk Assessment Planner"
    assert route(config, "Give me investment insights from stock research") == "Investment Strategy Advisor"
    assert [s.name for s in plan_turn(config, "stress testing my risk")] == ["Risk Assessment Planner"]
