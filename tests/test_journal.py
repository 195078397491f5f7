"""The session journal (issue #13): what a session received, sent and decided,
on the session clock, bounded, and reachable over the admin API."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest
import websockets
from starlette.testclient import TestClient

from server.app import ServerSettings, create_app
from server.journal import Journal, JournalStore
from server.virtual import JobLatency
from server.asr.wer import wer
from tests.test_session_speech import BMETA, BONDS, NO_GATE, QMETA, QUESTION, new_run


@pytest.fixture(scope="module")
def barge_in_run():
    """A spoken question, then a barge-in while the (slow) flow still generates."""
    run = new_run(NO_GATE, latency=JobLatency(agent_s=2.0))
    run.say(QUESTION)
    run.stream_until(20, stop=lambda ev: ev["type"] == "response.audio.delta")
    run.stream_until(run.first("response.audio.delta").t + 0.6)
    run.say(BONDS)
    run.stream_until(run.t + 12, stop=lambda ev: ev["type"] == "response.created" and run.first("response.interrupted"))
    return run


def test_interrupt_is_journalled_with_latency_floor_and_audio_end(barge_in_run):
    run = barge_in_run
    journal: Journal = run.vs.journal
    interrupted = run.first("response.interrupted")
    [interrupt] = journal.interrupts()
    assert interrupt["t"] == pytest.approx(interrupted.t, abs=1e-6)
    assert interrupt["response_id"] == interrupted.event["response_id"]
    assert interrupt["audio_end_ms"] == interrupted.event["audio_end_ms"]
    assert interrupt["latency_ms"] == pytest.approx((interrupt["t"] - interrupt["onset_t"]) * 1000, abs=1e-3)
    # Threshold frames of continuous speech from the onset, or the lockout's end: never later than the firing.
    assert 15 * 30 <= interrupt["floor_ms"] <= interrupt["latency_ms"] + 1e-6
    confirmed = journal.events("detector.confirmed")
    assert [e["t"] for e in confirmed] == [interrupt["t"]]
    assert confirmed[0]["onset_t"] == interrupt["onset_t"] and confirmed[0]["confirmed_by"] == "silero+near"
    candidates = journal.events("detector.candidate")
    assert candidates and candidates[-1]["t"] == interrupt["t"]
    assert all(e["type"].startswith("detector.") for e in journal.events("detector.*"))
    journal.assert_no_audio_after_interrupt()


def test_turns_history_and_events_are_journalled(barge_in_run):
    run = barge_in_run
    journal: Journal = run.vs.journal
    question, bonds = journal.transcripts()[:2]
    assert wer(QMETA["text"], question) <= 0.1 and wer(BMETA["text"], bonds) <= 0.2
    # The interrupted answer went into the history as what was heard of it.
    cut = [e for e in journal.events("history") if e["action"] == "replace" and e["response_id"] == run.first("response.interrupted").event["response_id"]]
    assert cut and cut[0]["turns"] and all(turn["interrupted"] for turn in cut[0]["turns"][-1:])
    # Audio is summarised: the hash is the one of the PCM exactly as sent and as received.
    mic = journal.events("input_audio_buffer.append", dir="in")
    assert len(mic) == len(run.sent)
    assert mic[0]["audio"] == {"bytes": len(run.sent[0][1]), "ms": 30.0, "sha256": hashlib.sha256(run.sent[0][1]).hexdigest()}
    out = journal.events("response.audio.delta", dir="out")
    assert len(out) == len(run.all("response.audio.delta")) and all("delta" not in e for e in out)
    # Filters by time are on the session clock, inclusive.
    t = run.first("response.interrupted").t
    assert [e["t"] for e in journal.events(since=t, until=t)] and all(e["t"] == t for e in journal.events(since=t, until=t))
    responses = journal.responses()
    assert responses[0]["status"] == "interrupted" and responses[0]["audio_deltas"] > 0


def test_audio_after_an_interrupt_is_caught():
    journal = Journal("s", "p", "u")
    journal.sent(1.0, {"type": "response.interrupted", "response_id": "resp_1", "audio_end_ms": 500})
    journal.sent(1.2, {"type": "response.audio.delta", "response_id": "resp_2", "delta": "AAAA"})
    journal.assert_no_audio_after_interrupt()  # another response's audio is fine
    journal.sent(1.3, {"type": "response.audio.delta", "response_id": "resp_1", "delta": "AAAA"})
    with pytest.raises(AssertionError, match="resp_1 sent audio at t=1.300s"):
        journal.assert_no_audio_after_interrupt()


def test_journal_and_store_are_bounded():
    journal = Journal("s", "p", "u", max_entries=3)
    for i in range(5):
        journal.record(i, "tick", i=i)
    assert [e["i"] for e in journal.entries()] == [2, 3, 4] and journal.dropped == 2
    store = JournalStore(max_ended=2)
    journals = [store.open(f"s{i}", "p", "u") for i in range(4)]
    live = store.open("live", "q", "u")
    for j in journals:
        store.end(j)
    assert [j.session_id for j in store.sessions()] == ["s2", "s3", "live"]
    assert store.sessions("q") == [live]


async def _text_turn(ws_url: str, project: str) -> None:
    async with websockets.connect(f"{ws_url}/distiller/realtime/acct/{project}/u1", additional_headers={"Authorization": "Bearer k"}) as ws:
        await ws.send(json.dumps({"type": "input_text", "text": "How should I hedge?"}))
        while json.loads(await ws.recv())["type"] != "response.done":
            pass


async def _reset_with_a_live_session(mock) -> int | None:
    """Reset while a client is connected; returns the close code it gets."""
    async with websockets.connect(f"{mock.ws_url}/distiller/realtime/acct/demo/u2", additional_headers={"Authorization": "Bearer k"}) as ws:
        await ws.recv()  # session.created: the session is live
        answer = await asyncio.to_thread(httpx.post, f"{mock.url}/_admin/reset")
        assert answer.json() == {"reset": True, "kept_projects": False, "closed_sessions": 1}
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def test_admin_api_serves_journals_by_session_and_project_and_resets(tmp_path):
    from refinery_mock import RefineryMock

    with RefineryMock(tmp_path) as mock:
        mock.create_project("demo")
        asyncio.run(_text_turn(mock.ws_url, "demo"))
        sid = mock.sessions[-1].session_id
        admin = f"{mock.url}/_admin"
        listed = httpx.get(f"{admin}/sessions").json()["sessions"]
        assert [s["session_id"] for s in listed] == [sid]
        body = httpx.get(f"{admin}/sessions/{sid}/journal", params={"type": "response.*", "dir": "out"}).json()
        assert body["project"] == "demo" and body["entries"]
        assert {e["type"] for e in body["entries"]} >= {"response.created", "response.audio.delta", "response.done"}
        late = httpx.get(f"{admin}/sessions/{sid}/journal", params={"since": body["entries"][-1]["t"]}).json()["entries"]
        assert late and all(e["t"] >= body["entries"][-1]["t"] for e in late)
        per_project = httpx.get(f"{admin}/projects/demo/journal", params={"type": "turn"}).json()
        assert [s["entries"][0]["text"] for s in per_project["sessions"]] == ["How should I hedge?"]
        bad = httpx.get(f"{admin}/sessions/{sid}/journal", params={"since": "soon"})
        assert bad.status_code == 400 and "since" in bad.json()["detail"]
        assert httpx.get(f"{admin}/sessions/nope/journal").status_code == 404
        assert mock.wait_for("response.done")[0]["status"] == "completed"
        assert asyncio.run(_reset_with_a_live_session(mock)) == 1001
        assert httpx.get(f"{admin}/sessions").json()["sessions"] == []
        gone = httpx.post(f"{mock.url}/distiller/download", json={"project": "demo"}, headers={"Authorization": "Bearer k"})
        assert gone.status_code == 404


def test_admin_api_is_loopback_only_and_can_be_switched_off(tmp_path):
    app = create_app(ServerSettings(data_dir=tmp_path))
    remote = TestClient(app, client=("203.0.113.7", 5000))
    denied = remote.get("/_admin/sessions")
    assert denied.status_code == 403 and "--admin-remote" in denied.json()["detail"]
    assert TestClient(app, client=("127.0.0.1", 5000)).get("/_admin/sessions").status_code == 200
    allowed = create_app(ServerSettings(data_dir=tmp_path, admin_remote=True))
    assert TestClient(allowed, client=("203.0.113.7", 5000)).get("/_admin/sessions").status_code == 200
    off = create_app(ServerSettings(data_dir=tmp_path, admin=False))
    assert TestClient(off, client=("127.0.0.1", 5000)).get("/_admin/sessions").status_code == 404


def test_detector_decisions_held_in_lockout_then_rejected_then_confirmed():
    from server.bargein import BargeInDetector, BargeInSettings
    from server.vad import get_confirmer

    settings = BargeInSettings(frame_ms=30, threshold=15, window_size=24, lockout_seconds=0.5, grace_period_seconds=1.0,
                               silero_min_samples_seconds=1.0)
    journal = Journal("s", "p", "u")
    detector = BargeInDetector(settings, get_confirmer("silero"), 16000)
    detector.note = journal
    detector.new_response()
    detector.on_audio_sent(0.0, 20.0)
    silence = bytes(960)
    speech = BONDS[: 16000 * 3].tobytes()
    frames = [silence] * 60 + [speech[i : i + 960] for i in range(0, len(speech) - 959, 960)]
    # The frame VAD's say-so is given: "speech" from the first frame, so the window fills
    # inside the lockout (held), then on silence the confirmer says no, then on real speech yes.
    fired = None
    for k, frame in enumerate(frames, 1):
        fired = detector.feed(k * 0.03, frame, True)
        if fired:
            break
    kinds = [e["type"] for e in journal.entries()]
    assert kinds[0] == "detector.held" and journal.entries()[0]["lockout_end_t"] == pytest.approx(0.5)
    assert "detector.rejected" in kinds and kinds[-1] == "detector.confirmed"
    rejected = journal.events("detector.rejected")[0]
    assert rejected["reason"] == "silero heard no speech" and rejected["t"] < 60 * 0.03 + 1e-9
    assert fired is not None and journal.events("detector.confirmed")[0]["t"] == pytest.approx(fired.t)
    assert kinds.count("detector.candidate") == kinds.count("detector.rejected") + 1
