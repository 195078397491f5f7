"""Faults on demand (issue #13): per project (the ``faults`` block) and at run
time; exact on the virtual clock, and over a real socket in the server."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
import yaml

from refinery_mock import DEFAULT_CONFIG, RefineryMock
from server import protocol as proto
from server.config import ConfigError, load_project_config
from server.virtual import JobLatency, open_virtual_session

BASE = yaml.safe_load(DEFAULT_CONFIG.read_text())
LATENCY = JobLatency()
QUERY = "How should I hedge my portfolio?"


def typed_turn(faults: dict | None = None):
    """One typed turn on the virtual clock; returns (events, journal)."""
    config = load_project_config({**BASE, "faults": faults} if faults is not None else BASE).config
    vs = open_virtual_session(config)
    events = vs.start() + vs.deliver(0.0, proto.TextInput(QUERY))
    events += vs.advance(30.0)
    return events, vs.journal


def first(events, kind):
    return next(e for e in events if e.event["type"] == kind)


def test_engine_latency_delays_exactly_on_the_virtual_clock():
    plain, _ = typed_turn()
    slow, journal = typed_turn({"tts": {"latency_ms": 500}, "agent": {"latency_ms": 250}})
    assert first(plain, "response.audio.delta").t == pytest.approx(LATENCY.agent_s + LATENCY.speech_s)
    assert first(slow, "response.audio.delta").t == pytest.approx(first(plain, "response.audio.delta").t + 0.75)
    added = journal.events("fault.latency")
    assert {(e["engine"], e["added_ms"]) for e in added} == {("agent", 250.0), ("tts", 500.0)}
    assert [e["call"] for e in added if e["engine"] == "tts"] == list(range(1, len(added)))


def test_jitter_and_failures_are_seeded():
    faults = {"seed": 3, "tts": {"latency_ms": 100, "jitter_ms": 400, "fail_probability": 0.5}}
    a, journal_a = typed_turn(faults)
    b, journal_b = typed_turn(faults)
    c, _ = typed_turn({**faults, "seed": 4})
    assert [(e.t, e.event["type"]) for e in a] == [(e.t, e.event["type"]) for e in b]
    assert [(e.t, e.event["type"]) for e in a] != [(e.t, e.event["type"]) for e in c]
    added = [e["added_ms"] for e in journal_a.events("fault.latency")]
    assert all(100 <= ms <= 500 for ms in added) and len(set(added)) > 1
    failed = [e["call"] for e in journal_a.events("fault.fail")]
    assert failed == [e["call"] for e in journal_b.events("fault.fail")] and 0 < len(failed) < len(added)


def test_an_engine_failing_on_the_nth_call_reaches_the_client_as_an_engine_failure():
    events, journal = typed_turn({"tts": {"fail_on_call": 2}})
    [fail] = journal.events("fault.fail")
    assert fail["engine"] == "tts" and fail["call"] == 2
    warnings = [e.event for e in events if e.event["type"] == "warning"]
    assert [w["code"] for w in warnings] == ["engine_failed"] and "tts call 2 fails" in warnings[0]["message"]
    # The answer goes on without the rest of that agent's audio, and ends normally.
    assert first(events, "response.done").event["status"] == "completed"
    audio_before = [e for e in events if e.event["type"] == "response.audio.delta" and e.t <= fail["t"]]
    assert audio_before and not [e for e in events if e.event["type"] == "response.audio.delta" and e.t > fail["t"]]


def test_dropped_and_duplicated_events():
    events, journal = typed_turn({"drop_events": {"types": ["response.text.*"], "count": 1},
                                  "duplicate_events": {"types": ["response.audio.done"]}})
    kinds = [e.event["type"] for e in events]
    assert "response.text.delta" not in kinds and "response.text.done" in kinds
    assert kinds.count("response.audio.done") == 2 and kinds[0] == "session.created"
    assert [e["event"] for e in journal.events("fault.drop")] == ["response.text.delta"]
    assert [e["event"] for e in journal.events("fault.duplicate")] == ["response.audio.done"]
    # What the journal says went out is what went out.
    assert [e["type"] for e in journal.events(dir="out")] == kinds


def test_the_faults_block_is_validated_like_the_rest_of_the_config():
    loaded = load_project_config({**BASE, "faults": {"tts": {"latency_ms": 10, "latncy": 5}}})
    assert [w.path for w in loaded.warnings] == ["faults.tts.latncy"]
    with pytest.raises(ConfigError) as err:
        load_project_config({**BASE, "faults": {"agent": {"fail_probability": 2}, "close": {"code": 99}}})
    assert {i.path for i in err.value.issues} == {"faults.agent.fail_probability", "faults.close.code"}


# -- over a real socket ---------------------------------------------------------


@pytest.fixture(scope="module")
def mock():
    with RefineryMock() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(mock):
    yield
    mock.reset()


async def _turn(mock: RefineryMock, project: str) -> tuple[list[dict], int | None]:
    """A typed turn; returns what the client got and the close code (None if still open)."""
    got: list[dict] = []
    url = f"{mock.ws_url}/distiller/realtime/acct/{project}/u1"
    async with websockets.connect(url, additional_headers={"Authorization": "Bearer k"}) as ws:
        await ws.send(json.dumps({"type": "input_text", "text": QUERY}))
        try:
            while not got or got[-1]["type"] != "response.done":
                got.append(json.loads(await ws.recv()))
        except websockets.ConnectionClosed as closed:
            return got, closed.rcvd.code if closed.rcvd else None
    return got, None


def test_a_stall_holds_response_audio_mid_answer(mock):
    mock.create_project("stall")
    mock.set_faults("stall", audio_stall={"after_ms": 400, "stall_ms": 300})
    got, code = asyncio.run(_turn(mock, "stall"))
    assert code is None and got[-1]["status"] == "completed"
    journal = mock.sessions[-1]
    [stall] = journal.events("fault.stall")
    deltas = journal.events("response.audio.delta", dir="out")
    before = [d for d in deltas if d["seq"] < stall["seq"]]
    after = [d for d in deltas if d["seq"] > stall["seq"]]
    assert sum(d["audio"]["ms"] for d in before) == pytest.approx(400.0) and after
    # A lower bound only: the sender slept at least stall_ms (timer resolution aside).
    assert after[0]["t"] - stall["t"] >= 0.3 - 0.02


def test_the_server_closes_the_socket_mid_response_with_the_chosen_code(mock):
    mock.create_project("closing")
    mock.set_faults(close={"after_audio_ms": 600, "code": 4001})  # every project
    got, code = asyncio.run(_turn(mock, "closing"))
    assert code == 4001
    kinds = [e["type"] for e in got]
    assert kinds.count("response.audio.delta") == 3 and "response.done" not in kinds
    journal = mock.sessions[-1]
    assert [(e["code"], e["after_audio_ms"]) for e in journal.events("fault.close")] == [(4001, 600.0)]


def test_run_time_faults_over_http_win_over_the_project_block_and_clear(mock):
    mock.create_project("rt", {**BASE, "faults": {"agent": {"latency_ms": 5}}})
    admin = f"{mock.url}/_admin"
    bad = httpx.put(f"{admin}/projects/rt/faults", json={"agent": {"fail_on_call": "first"}})
    assert bad.status_code == 422 and "agent.fail_on_call" in bad.json()["detail"]
    ok = httpx.put(f"{admin}/projects/rt/faults", json={"seed": 1, "agent": {"fail_on_call": [1]}})
    assert ok.status_code == 200 and httpx.get(f"{admin}/faults").json()["faults"]["rt"]["agent"]["fail_on_call"] == [1]
    got, _ = asyncio.run(_turn(mock, "rt"))
    assert [e.get("code") for e in got if e["type"] == "warning"] == ["engine_failed"]
    assert mock.sessions[-1].events("fault.fail") and not mock.sessions[-1].events("fault.latency")
    assert httpx.delete(f"{admin}/projects/rt/faults").status_code == 200
    asyncio.run(_turn(mock, "rt"))
    assert [e["added_ms"] for e in mock.sessions[-1].events("fault.latency")] == [5.0]
