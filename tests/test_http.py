"""HTTP routes and the realtime WebSocket through the ASGI app (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.app import ServerSettings, create_app

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = yaml.safe_load((ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text())
AUTH = {"Authorization": "Bearer test-key", "sdk_version": "1.33.2"}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as c:
        yield c


def create(client, name="demo", config=TUTORIAL):
    return client.post("/distiller/create", headers=AUTH, json={"project": name, "config": config, "sdk_version": "1.33.2"})


def test_validate_key_gives_organization_and_refuses_missing_key(client):
    ok = client.post("/authentication/validate", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["organization_id"]
    assert client.post("/authentication/validate").status_code == 401


def test_allow_list_refuses_other_keys(tmp_path):
    with TestClient(create_app(ServerSettings(data_dir=tmp_path, api_keys=frozenset({"good"})))) as c:
        assert c.post("/authentication/validate", headers={"Authorization": "Bearer good"}).status_code == 200
        refused = c.post("/authentication/validate", headers={"Authorization": "Bearer bad"})
        assert refused.status_code == 401 and "allow-list" in refused.json()["detail"]


def test_create_makes_versions_and_download_double_encodes(client):
    first, second = create(client), create(client)
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["project_version"], second.json()["project_version"]) == ("0", "1")
    latest = client.post("/distiller/download", headers=AUTH, json={"project": "demo", "project_version": None})
    assert latest.status_code == 200 and latest.json()["project_version"] == "1"
    assert json.loads(json.loads(latest.json()["config"])) == TUTORIAL
    v0 = client.post("/distiller/download", headers=AUTH, json={"project": "demo", "project_version": "0"})
    assert v0.json()["project_version"] == "0"


def test_create_with_yaml_text_stores_the_mapping(client):
    text = (ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text()
    assert create(client, config=text).status_code == 201
    stored = client.post("/distiller/download", headers=AUTH, json={"project": "demo"})
    assert json.loads(json.loads(stored.json()["config"])) == TUTORIAL


def test_projects_survive_a_restart(tmp_path):
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as c:
        assert create(c).status_code == 201
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as c:
        assert c.post("/distiller/download", headers=AUTH, json={"project": "demo"}).status_code == 200


def test_invalid_config_is_422_with_every_problem_by_path(client):
    broken = json.loads(json.dumps(TUTORIAL))
    broken["super_agents"][0]["config"]["agent_list"][1]["agent_name"] = "Nobody"
    broken["audio_config"]["vad"]["threshold"] = 99
    resp = create(client, config=broken)
    assert resp.status_code == 422
    paths = {issue["path"] for issue in resp.json()["issues"]}
    assert "super_agents[0].config.agent_list[1].agent_name" in paths
    assert any(p.startswith("audio_config.vad") for p in paths)
    assert "super_agents[0].config.agent_list[1].agent_name" in resp.json()["detail"]


def test_unknown_keys_are_warnings_not_errors(client):
    config = {**TUTORIAL, "base_config": {"pii_masking": {"enable": False}}, "mystery": 1}
    resp = create(client, config=config)
    assert resp.status_code == 201
    assert "mystery" in {w["path"] for w in resp.json()["warnings"]}


def test_validate_endpoint_accepts_yaml_text(client):
    text = (ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text()
    assert client.post("/distiller/config/validate", headers=AUTH, json={"config": text}).status_code == 200
    assert client.post("/distiller/config/validate", headers=AUTH, json={"config": "a: [1"}).status_code == 422


def test_malformed_bodies_get_clear_errors(client):
    resp = client.post("/distiller/create", headers=AUTH, content=b"{nope")
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["detail"]
    resp = client.post("/distiller/create", headers=AUTH, json={"project": "bad name!", "config": TUTORIAL})
    assert resp.status_code == 422


def test_unknown_project_is_404(client):
    resp = client.post("/distiller/download", headers=AUTH, json={"project": "ghost"})
    assert resp.status_code == 404 and "ghost" in resp.json()["detail"]


def test_realtime_refuses_unknown_project_and_missing_key(client):
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/distiller/realtime/acc/ghost/u1", headers=AUTH):
            pass
    create(client)
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/distiller/realtime/acc/demo/u1"):
            pass


def test_realtime_turn_and_bad_frames_over_the_socket(client):
    create(client)
    with client.websocket_connect("/distiller/realtime/acc/demo:0/u1", headers=AUTH) as ws:
        created = ws.receive_json()
        assert created["type"] == "session.created" and created["capabilities"]["vad_enabled"] is True
        ws.send_text("{broken")
        warning = ws.receive_json()
        assert warning["type"] == "warning" and warning["code"] == "malformed_json"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["code"] == "binary_frame"
        ws.send_text(json.dumps({"type": "input_text", "text": "How do I hedge currency risk?"}))
        seen = []
        while True:
            event = ws.receive_json()
            if event["type"] == "PING":
                continue
            seen.append(event["type"])
            if event["type"] == "response.done":
                assert event["status"] == "completed"
                break
        assert seen[0] == "response.created" and "response.audio.delta" in seen


def test_sessions_are_listed_for_inspection(client):
    create(client)
    with client.websocket_connect("/distiller/realtime/acc/demo/u1", headers=AUTH) as ws:
        ws.receive_json()
        sessions = client.get("/sessions").json()["sessions"]
        assert len(sessions) == 1 and sessions[0]["mode"] == "barge-in"
        assert client.get(f"/sessions/{sessions[0]['session']}").status_code == 200
    assert client.get("/sessions/nope").status_code == 404


def _typed_turn(ws, text):
    ws.send_text(json.dumps({"type": "input_text", "text": text}))
    texts = []
    while True:
        event = ws.receive_json()
        if event["type"] == "response.text.delta":
            texts.append(event["content"])
        if event["type"] == "response.done":
            return texts


def test_auto_load_restores_history_for_the_same_uuid(tmp_path):
    config = json.loads(json.dumps(TUTORIAL))
    config["memory_config"]["save_config"]["auto_load"] = True
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as c:
        assert create(c, config=config).status_code == 201
        with c.websocket_connect("/distiller/realtime/acc/demo/alice", headers=AUTH) as ws:
            assert ws.receive_json()["session"]["history_turns"] == 0
            _typed_turn(ws, "How do I hedge currency risk?")
    # A new server process on the same data dir: the history comes back for alice only.
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as c:
        with c.websocket_connect("/distiller/realtime/acc/demo/alice", headers=AUTH) as ws:
            assert ws.receive_json()["session"]["history_turns"] > 1
            texts = _typed_turn(ws, "And bonds?")
            assert "earlier question about hedge currency risk" in texts[0]
        with c.websocket_connect("/distiller/realtime/acc/demo/bob", headers=AUTH) as ws:
            assert ws.receive_json()["session"]["history_turns"] == 0


def test_keepalive_ping_is_sent_and_pong_accepted(tmp_path):
    with TestClient(create_app(ServerSettings(data_dir=tmp_path, ping_interval_s=0.05))) as c:
        create(c)
        with c.websocket_connect("/distiller/realtime/acc/demo/u1", headers=AUTH) as ws:
            assert ws.receive_json()["type"] == "session.created"
            assert ws.receive_json() == {"type": "PING"}
            ws.send_text('{"type":"PONG"}')
            assert ws.receive_json() == {"type": "PING"}  # no warning for the PONG in between


def test_a_session_whose_engine_cannot_start_gets_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("REFINERY_VOSK_MODEL", raising=False)
    config = json.loads(json.dumps(TUTORIAL))
    config["audio_config"]["asr"]["engine"] = "vosk"  # chosen, but no model anywhere
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as c:
        assert create(c, config=config).status_code == 201
        with c.websocket_connect("/distiller/realtime/acc/demo/u1", headers=AUTH) as ws:
            event = ws.receive_json()
            assert event["type"] == "error" and event["error_detail"]["code"] == "session_setup_failed"
            assert "REFINERY_VOSK_MODEL" in event["error_detail"]["message"]
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1011
        # The server goes on serving other projects.
        assert create(c, name="ok").status_code == 201
        with c.websocket_connect("/distiller/realtime/acc/ok/u1", headers=AUTH) as ws:
            assert ws.receive_json()["type"] == "session.created"


def test_unknown_engine_names_are_config_errors(client):
    config = json.loads(json.dumps(TUTORIAL))
    config["audio_config"]["asr"]["engine"] = "whisperx"
    config["audio_config"]["vad"]["neural_vad"] = "silerro"
    resp = create(client, config=config)
    assert resp.status_code == 422
    issues = {i["path"]: i for i in resp.json()["issues"]}
    assert set(issues) == {"audio_config.asr.engine", "audio_config.vad.neural_vad"}
    assert "whisper" in issues["audio_config.asr.engine"]["expected"]
