"""Faults in the realtime driver (server/realtime.py): hung and failing
engines, audio faster than real time. The session reports, recovers and the
server keeps serving."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from pathlib import Path

import yaml
from starlette.testclient import TestClient

from server.app import ServerSettings, create_app
from server.engine_pool import EnginePool
from server.limits import Limits
from server.realtime import AudioBudget

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = yaml.safe_load((ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text())
AUTH = {"Authorization": "Bearer faults"}


def _events_until_done(ws) -> list[dict]:
    events = []
    while True:
        event = ws.receive_json()
        events.append(event)
        if event["type"] == "response.done":
            return events


def test_a_hung_engine_call_times_out_and_the_response_goes_on(tmp_path, monkeypatch):
    # A real hung dependency: an LLM endpoint that accepts connections and never answers.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    monkeypatch.setenv("REFINERY_LLM_URL", f"http://127.0.0.1:{hung.getsockname()[1]}/v1")
    settings = ServerSettings(data_dir=tmp_path, brain="openai", limits=Limits(engine_timeout_s=0.5))
    try:
        with TestClient(create_app(settings)) as client:
            assert client.post("/distiller/create", headers=AUTH, json={"project": "p", "config": TUTORIAL}).status_code == 201
            with client.websocket_connect("/distiller/realtime/acc/p/u1", headers=AUTH) as ws:
                assert ws.receive_json()["type"] == "session.created"
                for _ in range(2):  # the session recovers: a second turn works the same way
                    ws.send_text(json.dumps({"type": "input_text", "text": "How do I hedge currency risk?"}))
                    events = _events_until_done(ws)
                    warnings = [e for e in events if e["type"] == "warning"]
                    assert warnings and all(w["code"] == "engine_failed" for w in warnings)
                    assert "engine_timeout_s" in warnings[0]["message"] and "agent" in warnings[0]["message"]
                    assert events[-1]["status"] == "completed"
                    assert not any(e["type"] == "error" for e in events)
    finally:
        hung.close()  # the abandoned threads' reads now fail at once


def test_a_failing_engine_is_a_warning_and_the_session_goes_on(tmp_path, monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: every call raises ConnectError
    monkeypatch.setenv("REFINERY_LLM_URL", f"http://127.0.0.1:{port}/v1")
    with TestClient(create_app(ServerSettings(data_dir=tmp_path, brain="openai"))) as client:
        assert client.post("/distiller/create", headers=AUTH, json={"project": "p", "config": TUTORIAL}).status_code == 201
        with client.websocket_connect("/distiller/realtime/acc/p/u1", headers=AUTH) as ws:
            assert ws.receive_json()["type"] == "session.created"
            ws.send_text(json.dumps({"type": "input_text", "text": "How do I hedge currency risk?"}))
            events = _events_until_done(ws)
            warnings = [e for e in events if e["type"] == "warning"]
            assert warnings and "ConnectError" in warnings[0]["message"]
            assert events[-1]["status"] == "completed"


def test_audio_budget_is_a_token_bucket_of_real_time_plus_the_allowance():
    budget = AudioBudget(ahead_s=2.0, t=0.0)
    assert budget.take(0.0, 1.5) and not budget.take(0.0, 1.0)  # burst up to 2 s
    assert budget.take(0.5, 1.0)  # 0.5 s credit left + 0.5 s elapsed
    assert not budget.take(0.5, 0.1)
    assert budget.take(100.0, 2.0) and not budget.take(100.0, 0.01)  # credit caps at the allowance


def test_audio_far_faster_than_real_time_is_dropped_with_one_warning(tmp_path):
    settings = ServerSettings(data_dir=tmp_path, limits=Limits(max_audio_ahead_s=1.0))
    with TestClient(create_app(settings)) as client:
        assert client.post("/distiller/create", headers=AUTH, json={"project": "p", "config": TUTORIAL}).status_code == 201
        with client.websocket_connect("/distiller/realtime/acc/p/u1", headers=AUTH) as ws:
            assert ws.receive_json()["type"] == "session.created"
            chunk = base64.b64encode(bytes(16000 * 2 // 10)).decode()  # 100 ms of silence
            for _ in range(50):  # 5 s of audio at once
                ws.send_text(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            ws.send_text(json.dumps({"type": "unknown.marker"}))
            warnings = []
            while (event := ws.receive_json()).get("code") != "unknown_type":
                if event["type"] == "warning":
                    warnings.append(event["code"])
            assert warnings == ["audio_too_fast"]
            info = client.get("/sessions").json()["sessions"][0]
            assert info["counters"]["bad_frames"] == 2  # the audio warning and the marker


def test_hung_engine_threads_are_written_off_so_other_calls_still_run():
    release = threading.Event()

    async def scenario() -> tuple[list[str], object, int]:
        pool = EnginePool(workers=2)
        outcomes = []
        for _ in range(2):  # both workers held by hung calls
            try:
                await pool.run(release.wait, 60, timeout_s=0.2)
                outcomes.append("returned")
            except TimeoutError:
                outcomes.append("timeout")
        # Without the write-off this call would queue behind the hung ones and time out.
        quick = await pool.run(lambda x: x * 2, 21, timeout_s=10)
        return outcomes, quick, pool.replaced

    try:
        outcomes, quick, replaced = asyncio.run(scenario())
    finally:
        release.set()
    assert outcomes == ["timeout", "timeout"] and quick == 42 and replaced >= 1
