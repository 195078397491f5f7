"""Who may talk to a local server and bridge (server/security.py): Origin and
Host allow-lists, loopback binding, keys from the environment or a file and
never in a log, static files that stay in their folder."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import httpx
import pytest
import websockets
import yaml
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import server.__main__ as server_cli
from bridge.__main__ import build_parser as bridge_parser
from bridge.__main__ import settings_from_args as bridge_settings
from bridge.app import BridgeSettings
from bridge.app import create_app as create_bridge
from bridge.upstream import ServiceTarget
from server.app import ServerSettings, create_app
from server.security import DEFAULT_ALLOWED_HOSTS, RedactKeys
from tests.support.asgi_thread import serve
from tests.support.server_proc import running_server

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = yaml.safe_load((ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text())
AUTH = {"Authorization": "Bearer sec"}


def _app(tmp_path, **kw):
    return create_app(ServerSettings(data_dir=tmp_path, **kw))


def test_server_websocket_refuses_foreign_origins(tmp_path):
    with TestClient(_app(tmp_path)) as client:
        assert client.post("/distiller/create", headers=AUTH, json={"project": "p", "config": TUTORIAL}).status_code == 201
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/distiller/realtime/a/p/u", headers={**AUTH, "Origin": "https://evil.example"}):
                pass
        for origin in (None, "http://localhost:8000", "http://127.0.0.1:5173"):
            headers = AUTH if origin is None else {**AUTH, "Origin": origin}
            with client.websocket_connect("/distiller/realtime/a/p/u", headers=headers) as ws:
                assert ws.receive_json()["type"] == "session.created"
    with TestClient(_app(tmp_path, allowed_origins=("https://app.example",))) as client:
        with client.websocket_connect("/distiller/realtime/a/p/u", headers={**AUTH, "Origin": "https://app.example"}) as ws:
            assert ws.receive_json()["type"] == "session.created"


def test_host_allow_list_refuses_a_rebound_name(tmp_path):
    with TestClient(_app(tmp_path, allowed_hosts=DEFAULT_ALLOWED_HOSTS), base_url="http://localhost:8080") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"Host": "127.0.0.1:8080"}).status_code == 200
        assert client.get("/health", headers={"Host": "[::1]:8080"}).status_code == 200
        assert client.get("/health", headers={"Host": "attacker.example:8080"}).status_code == 400
        resp = client.post("/distiller/create", headers={**AUTH, "Host": "attacker.example"}, json={"project": "p"})
        assert resp.status_code == 400


def test_bridge_host_allow_list(tmp_path):
    settings = BridgeSettings(target=ServiceTarget("http://127.0.0.1:9", "demo", "k"), allowed_hosts=DEFAULT_ALLOWED_HOSTS)
    with TestClient(create_bridge(settings), base_url="http://localhost:8000") as client:
        assert client.get("/api/info").status_code == 200
        assert client.get("/api/info", headers={"Host": "attacker.example"}).status_code == 400


def test_non_loopback_binding_needs_a_flag_and_keys_come_from_env_or_file(tmp_path, monkeypatch):
    def settings(*argv):
        return server_cli.settings_from_args(server_cli.parse_args(["--data-dir", str(tmp_path), *argv]))

    with pytest.raises(ValueError, match="--allow-remote"):
        settings("--host", "0.0.0.0")
    remote = settings("--host", "0.0.0.0", "--allow-remote")
    assert remote.allowed_hosts is None  # other machines use names we cannot know
    local = settings()
    assert local.allowed_hosts == DEFAULT_ALLOWED_HOSTS and local.api_keys is None
    keyfile = tmp_path / "keys"
    keyfile.write_text("# our keys\nalpha\n\nbeta\n")
    monkeypatch.setenv(server_cli.KEYS_ENV, "gamma, delta")
    assert settings("--api-key-file", str(keyfile)).api_keys == {"alpha", "beta", "gamma", "delta"}
    with pytest.raises(ValueError, match="no key"):
        (tmp_path / "empty").write_text("\n# nothing\n")
        settings("--api-key-file", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="--allow-remote"):
        bridge_settings(bridge_parser().parse_args(["--host", "0.0.0.0"]))
    assert bridge_settings(bridge_parser().parse_args(["--api-key-file", str(keyfile)])).target.api_key == "alpha"
    assert server_cli.main(["--host", "10.1.2.3", "--port", "0", "--data-dir", str(tmp_path)]) == 2


def test_redaction_hides_authorization_values_and_known_keys():
    redact = RedactKeys(["s3cret-key"]).redact
    assert "tok123" not in redact("< authorization: Bearer tok123")
    assert "tok123" not in redact("{'Authorization': 'Bearer tok123'}")
    assert "s3cret-key" not in redact("using key s3cret-key for upstream")
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "> %s", ("Authorization: Bearer tok123",), None)
    RedactKeys().filter(record)
    assert "tok123" not in record.getMessage()


def test_keys_never_reach_the_server_log_at_debug(tmp_path):
    keyfile = tmp_path / "keys"
    keyfile.write_text("GOODKEY-0123456789\n")
    with running_server(tmp_path, "--log-level", "debug", "--api-key-file", str(keyfile)) as handle:
        good = {"Authorization": "Bearer GOODKEY-0123456789"}
        bad = {"Authorization": "Bearer REFUSEDKEY-987654"}
        assert httpx.post(f"{handle.url}/authentication/validate", headers=bad).status_code == 401
        assert httpx.post(f"{handle.url}/distiller/create", headers=good,
                          json={"project": "p", "config": TUTORIAL}).status_code == 201

        async def sessions() -> None:
            for headers in (good, bad):
                try:
                    async with websockets.connect(f"{handle.ws_url}/distiller/realtime/a/p/u", additional_headers=headers) as ws:
                        json.loads(await ws.recv())
                except websockets.InvalidStatus:
                    pass

        asyncio.run(sessions())
        log = handle.log_tail(100_000)
    assert "authorization" in log.lower()  # the debug handshake lines are there...
    assert "GOODKEY" not in log and "REFUSEDKEY" not in log  # ...without the keys


def _raw_get(url: str, path: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize("path", [
    "/static/../app.py",
    "/static/..%2fapp.py",
    "/static/%2e%2e/%2e%2e/server/__main__.py",
    "/static/%2e%2e%2fapp.py",
    "/static/%252e%252e%252fapp.py",
    "/static/..%252fapp.py",
    "/static/..%5capp.py",
    "/static/%c0%ae%c0%ae/app.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
])
def test_static_files_cannot_escape_their_folder(path):
    settings = BridgeSettings(target=ServiceTarget("http://127.0.0.1:9", "demo", "k"))
    with serve(create_bridge(settings)) as url:
        status, body = _raw_get(url, path)
        assert _raw_get(url, "/static/app.js")[0] == 200
    assert status in (400, 404), (path, status)
    assert b"def create_app" not in body and b"root:" not in body
