"""Limits on everything a client controls (server/limits.py): each is refused
with a clear status or warning naming the limit, and the server keeps serving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server import protocol as proto
from server.app import ServerSettings, create_app
from server.bounded import load_json_bounded, load_yaml_bounded
from server.limits import DEFAULT_LIMITS, LimitExceeded, Limits, limits_from
from tests.support.hostile import billion_laughs

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL_TEXT = (ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text()
TUTORIAL = yaml.safe_load(TUTORIAL_TEXT)
AUTH = {"Authorization": "Bearer limits"}


def nested_json(depth: int) -> str:
    return '{"project": "x", "config": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as c:
        yield c


def small_client(tmp_path, **limits):
    return TestClient(create_app(ServerSettings(data_dir=tmp_path, limits=Limits(**limits))))


def create(client, name="demo", config=TUTORIAL):
    return client.post("/distiller/create", headers=AUTH, json={"project": name, "config": config})


# -- parsers ------------------------------------------------------------------


def test_yaml_bomb_is_refused_before_expansion_naming_the_limit():
    with pytest.raises(LimitExceeded) as err:
        load_yaml_bounded(billion_laughs())
    assert err.value.limit == "max_yaml_nodes"


def test_yaml_alias_count_recursion_and_size_are_bounded():
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 300) + "]\n"
    with pytest.raises(LimitExceeded) as err:
        load_yaml_bounded(many)
    assert err.value.limit == "max_yaml_aliases"
    with pytest.raises(LimitExceeded):
        load_yaml_bounded("a: &a [*a]\n")
    with pytest.raises(LimitExceeded) as err:
        load_yaml_bounded("a: '" + "x" * (DEFAULT_LIMITS.max_config_bytes + 1) + "'\n")
    assert err.value.limit == "max_config_bytes"
    # Ordinary aliases still work.
    assert load_yaml_bounded("a: &x {b: 1}\nc: *x\n") == {"a": {"b": 1}, "c": {"b": 1}}
    assert load_yaml_bounded(TUTORIAL_TEXT) == TUTORIAL


def test_json_depth_is_bounded_without_recursion_error():
    for depth in (65, 1000, 100_000):
        with pytest.raises(LimitExceeded) as err:
            load_json_bounded("[" * depth + "]" * depth)
        assert err.value.limit == "max_json_depth"
    assert load_json_bounded("[" * 64 + "]" * 64) is not None


def test_limits_come_from_env_and_overrides_and_refuse_nonsense():
    limits = limits_from(["max_sessions=3", "engine-timeout-s=2.5"], env={"REFINERY_LIMIT_MAX_SESSIONS": "9",
                                                                          "REFINERY_LIMIT_MAX_BODY_BYTES": "10"})
    assert (limits.max_sessions, limits.engine_timeout_s, limits.max_body_bytes) == (3, 2.5, 10)
    for bad in (["nope=1"], ["max_sessions"], ["max_sessions=-1"], ["max_sessions=1.5"]):
        with pytest.raises(ValueError):
            limits_from(bad, env={})


# -- HTTP -----------------------------------------------------------------------


def test_yaml_bomb_over_http_is_422_and_nothing_is_stored(client):
    for route in ("/distiller/create", "/distiller/config/validate"):
        resp = client.post(route, headers=AUTH, json={"project": "bomb", "config": billion_laughs()})
        assert resp.status_code == 422 and resp.json()["limit"] == "max_yaml_nodes", resp.text
    # A smaller bomb (5 levels: 59,000 nodes) is refused too instead of being stored.
    resp = client.post("/distiller/create", headers=AUTH, json={"project": "bomb", "config": billion_laughs(5)})
    assert resp.status_code == 422
    assert client.post("/distiller/download", headers=AUTH, json={"project": "bomb"}).status_code == 404
    assert create(client).status_code == 201  # still serving


def test_big_and_deep_bodies_are_413_and_422_not_500(tmp_path, client):
    resp = client.post("/distiller/create", headers=AUTH, content=nested_json(1000))
    assert resp.status_code == 422 and resp.json()["limit"] == "max_json_depth"
    with small_client(tmp_path, max_body_bytes=4096) as small:
        resp = small.post("/distiller/create", headers=AUTH, json={"project": "big", "config": {"x": "y" * 5000}})
        assert resp.status_code == 413 and resp.json()["limit"] == "max_body_bytes"
        # Streamed with no Content-Length: the cap holds while reading.
        resp = small.post("/distiller/create", headers=AUTH, content=iter([b"{" + b" " * 3000] * 3))
        assert resp.status_code == 413


def test_project_names_are_fullmatched_and_length_capped(client):
    for name in ("a\n", "a" * 256, "../x", "", "a b"):
        resp = create(client, name)
        assert resp.status_code == 422, (name, resp.status_code)
        assert len(resp.json()["detail"]) < 200
    assert create(client, "a" * 64).status_code == 201


def test_store_caps_projects_and_versions(tmp_path):
    with small_client(tmp_path, max_projects=2, max_versions_per_project=2) as small:
        assert [create(small, "p1").status_code for _ in range(3)] == [201, 201, 507]
        assert create(small, "p2").status_code == 201
        resp = create(small, "p3")
        assert resp.status_code == 507 and resp.json()["limit"] == "max_projects"


# -- WebSocket ------------------------------------------------------------------


def test_long_uuid_is_refused_at_the_handshake(client):
    create(client)
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/distiller/realtime/acc/demo/" + "u" * 300, headers=AUTH):
            pass


def test_sessions_per_project_are_capped(tmp_path):
    with small_client(tmp_path, max_sessions_per_project=1) as small:
        create(small)
        create(small, "other")
        with small.websocket_connect("/distiller/realtime/acc/demo/u1", headers=AUTH) as ws:
            assert ws.receive_json()["type"] == "session.created"
            with pytest.raises(WebSocketDisconnect):
                with small.websocket_connect("/distiller/realtime/acc/demo/u2", headers=AUTH):
                    pass
            with small.websocket_connect("/distiller/realtime/acc/other/u3", headers=AUTH) as ws2:
                assert ws2.receive_json()["type"] == "session.created"


def test_hostile_frames_get_short_precise_warnings(client):
    create(client)
    with client.websocket_connect("/distiller/realtime/acc/demo/u1", headers=AUTH) as ws:
        assert ws.receive_json()["type"] == "session.created"
        cases = [
            (json.dumps({"type": "input_text", "text": "x" * (DEFAULT_LIMITS.max_input_text_chars + 1)}), "text_too_long"),
            ('{"type": "input_text", "text": "hello \\ud800 there"}', "bad_text"),
            (json.dumps({"type": "t" * 1_000_000}), "unknown_type"),
            ('{"type": ' + "[" * 500 + "]" * 500 + "}", "too_deep"),
        ]
        for frame, code in cases:
            ws.send_text(frame)
            event = ws.receive_json()
            assert (event["type"], event["code"]) == ("warning", code), event
            assert len(event["message"]) < 300
        # Still serving this session.
        ws.send_text(json.dumps({"type": "input_text", "text": "How do I hedge currency risk?"}))
        while (event := ws.receive_json())["type"] != "response.done":
            assert event["type"] != "warning", event
        assert event["status"] == "completed"


def test_parse_client_message_applies_given_limits():
    small = Limits(max_input_text_chars=5, max_frame_bytes=100)
    assert isinstance(proto.parse_client_message('{"type":"input_text","text":"hello"}', small), proto.TextInput)
    assert proto.parse_client_message('{"type":"input_text","text":"hello!"}', small).code == "text_too_long"
    assert proto.parse_client_message(" " * 101, small).code == "frame_too_large"
    assert proto.parse_client_message("null").code == "malformed_message"
