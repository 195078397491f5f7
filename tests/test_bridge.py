"""The browser bridge: pure translation, origin policy, and the bridge app
between a scripted "browser" and (a) a small fake service, (b) our real server.

The fake service lives only in this file: it stands in for the upstream so
the bridge's byte moving can be checked in isolation (what it forwards, what
it relays, how it closes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.__main__ import build_parser, settings_from_args
from bridge.app import BridgeSettings, BridgeStats, create_app
from bridge.stack import BRIDGE_READY, SERVER_READY, browser_url, parse_ready_line
from bridge.translate import (
    BROWSER_TYPES,
    DEFAULT_ALLOWED_ORIGINS,
    Forward,
    Reply,
    SetRecording,
    browser_to_actions,
    check_origin_pattern,
    check_session_id,
    origin_allowed,
    service_to_browser,
)
from bridge.upstream import ServiceTarget, decode_downloaded_config, realtime_url, service_headers, session_summary
from tests.support.asgi_thread import serve

PCM = (b"\x01\x00\xff\x7f" * 240)[:960]  # 30 ms of 16 kHz PCM16
PCM_B64 = base64.b64encode(PCM).decode()


def _fwd(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(a.frame) for a in actions if isinstance(a, Forward)]


def _replies(actions: list[Any]) -> list[dict[str, Any]]:
    return [a.message for a in actions if isinstance(a, Reply)]


# -- browser -> service -------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "input_audio_buffer.append", "data": {"chunk": PCM_B64}},  # the tutorial page
        {"type": "input_audio_buffer.append", "audio": PCM_B64},
        {"command": "input_audio_buffer.append", "data": {"chunk": PCM_B64}},
    ],
)
def test_audio_frames_become_service_appends(frame: dict[str, Any]) -> None:
    actions = browser_to_actions(json.dumps(frame))
    assert _fwd(actions) == [{"type": "input_audio_buffer.append", "audio": PCM_B64}]
    assert _replies(actions) == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "input_audio_buffer.append", "data": {"chunk": "@@not base64@@"}}, "bad_base64"),
        ({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}, "bad_audio_length"),
        ({"type": "input_audio_buffer.append"}, "missing_audio"),
        ({"type": "input_audio_buffer.append", "audio": 5}, "bad_audio"),
        ({"type": "dance"}, "unknown_type"),
        ({"nothing": 1}, "missing_type"),
        ({"type": "input_text", "text": "  "}, "bad_text"),
    ],
)
def test_bad_browser_frames_get_a_non_fatal_error(frame: dict[str, Any], code: str) -> None:
    actions = browser_to_actions(json.dumps(frame))
    assert _fwd(actions) == []
    [reply] = _replies(actions)
    assert reply["type"] == "error" and reply["code"] == code and reply["fatal"] is False
    assert reply["message"]


def test_unparseable_frames_get_errors() -> None:
    assert _replies(browser_to_actions("{nope"))[0]["code"] == "malformed_json"
    assert _replies(browser_to_actions(b"\x00\x01"))[0]["code"] == "binary_frame"
    assert _replies(browser_to_actions("[1, 2]"))[0]["code"] == "malformed_message"
    assert "known:" in _replies(browser_to_actions('{"type": "dance"}'))[0]["message"]


def test_recording_commands_match_the_sdk_bridge() -> None:
    start = browser_to_actions('{"command": "start_recording"}')
    assert _fwd(start) == [{"type": "session.update"}]
    assert SetRecording(True) in start
    assert _replies(start) == [{"type": "recording_started"}]
    stop = browser_to_actions('{"type": "stop_recording"}')
    assert SetRecording(False) in stop
    assert _fwd(stop) == [{"type": "input_audio_buffer.commit"}]
    assert _replies(stop) == [{"type": "recording_stopped"}]


@pytest.mark.parametrize(
    "kind", ["playback.started", "playback.stopped", "response.cancel", "input_audio_buffer.commit", "input_audio_buffer.clear"]
)
def test_control_frames_pass_through(kind: str) -> None:
    assert _fwd(browser_to_actions(json.dumps({"type": kind}))) == [{"type": kind}]


@pytest.mark.parametrize("kind", sorted(BROWSER_TYPES))
def test_every_advertised_browser_type_is_handled(kind: str) -> None:
    # The "known:" list in unknown_type errors must match what is handled.
    frame = {"type": kind, "text": "hi", "audio": PCM_B64}
    actions = browser_to_actions(json.dumps(frame))
    assert actions and all(r.get("code") != "unknown_type" for r in _replies(actions))


def test_stats_keep_the_latest_errors() -> None:
    stats = BridgeStats()
    for i in range(25):
        stats.errors.append(f"e{i}")
    assert stats.as_json()["errors"] == [f"e{i}" for i in range(5, 25)]


def test_typed_text_passes_through() -> None:
    assert _fwd(browser_to_actions('{"type": "input_text", "text": "hi"}')) == [{"type": "input_text", "text": "hi"}]


# -- service -> browser ---------------------------------------------------------


def test_every_server_field_is_kept() -> None:
    msg = {"type": "response.text.delta", "response_id": "r1", "role": "Stock Planner", "content": "Hi", "delta": "Hi", "text": "Hi", "x": [1]}
    relay = service_to_browser(json.dumps(msg))
    assert relay.to_browser == msg and not relay.fatal and relay.to_service is None


def test_aliases_are_added_for_the_tutorial_page() -> None:
    assert service_to_browser('{"type": "response.text.delta", "content": "abc"}').to_browser["text"] == "abc"
    assert service_to_browser('{"type": "response.audio_transcript.delta", "delta": "wh"}').to_browser["text"] == "wh"
    audio = service_to_browser(json.dumps({"type": "response.audio.delta", "audio": PCM_B64})).to_browser
    assert audio["delta"] == PCM_B64 and audio["audio"] == PCM_B64


def test_ping_is_answered_upstream() -> None:
    relay = service_to_browser('{"type": "PING"}')
    assert json.loads(relay.to_service or "") == {"type": "PONG"}


def test_service_error_is_relayed_with_a_message_and_is_fatal() -> None:
    relay = service_to_browser(json.dumps({"type": "error", "error_detail": {"code": "x", "message": "project gone"}}))
    assert relay.fatal
    assert relay.to_browser["message"] == "project gone"
    assert relay.to_browser["error_detail"] == {"code": "x", "message": "project gone"}


def test_bad_service_frames_do_not_kill_the_bridge() -> None:
    for frame in ("not json", "[]", '{"no": "type"}', b"\xff\xfe"):
        relay = service_to_browser(frame)
        assert relay.to_browser["type"] == "error" and relay.to_browser["fatal"] is False and not relay.fatal


# -- origin policy and names --------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://localhost:8000", "http://127.0.0.1:5173", "https://localhost", "http://[::1]:8000", None]
)
def test_default_origins_allow_this_machine(origin: str | None) -> None:
    assert origin_allowed(origin, DEFAULT_ALLOWED_ORIGINS)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost.evil.example:8000", "file://"])
def test_default_origins_refuse_others(origin: str) -> None:
    assert not origin_allowed(origin, DEFAULT_ALLOWED_ORIGINS)


def test_explicit_origin_patterns() -> None:
    allowed = (check_origin_pattern("https://app.example:8443"), check_origin_pattern("http://lab.local:*"))
    assert origin_allowed("https://app.example:8443", allowed)
    assert not origin_allowed("https://app.example:9443", allowed)
    assert origin_allowed("http://lab.local:1234", allowed)
    assert not origin_allowed("https://lab.local:1234", allowed)
    assert origin_allowed("http://anything", ("*",))
    with pytest.raises(ValueError, match="not valid"):
        check_origin_pattern("localhost:8000")


def test_session_ids_follow_the_service_rule() -> None:
    assert check_session_id("demo_user-1") == "demo_user-1"
    with pytest.raises(ValueError, match="letters, digits"):
        check_session_id("a/b")


# -- upstream helpers, CLI and stack helpers ------------------------------------------


def test_realtime_url_and_headers() -> None:
    t = ServiceTarget("https://svc.example/", "proj", "k", project_version="2")
    assert realtime_url(t, "acct", "u1") == "wss://svc.example/distiller/realtime/acct/proj:2/u1"
    t2 = ServiceTarget("http://127.0.0.1:9", "proj", "k")
    assert realtime_url(t2, "acct", "u1") == "ws://127.0.0.1:9/distiller/realtime/acct/proj/u1"
    h = service_headers("k", "acct")
    assert h["Authorization"] == "Bearer k" and h["airefinery_account"] == "acct" and h["sdk_version"]
    with pytest.raises(ValueError, match="http"):
        ServiceTarget("127.0.0.1:8080", "p", "k")


def test_downloaded_config_is_decoded_twice_and_summarised() -> None:
    cfg = {"audio_config": {"asr": {"silence_duration_ms": 700}, "vad": {"enable_barge_in": True, "threshold": 8}},
           "utility_agents": [{"agent_name": "A"}], "super_agents": [{"agent_name": "S"}]}
    body = {"config": json.dumps(json.dumps(cfg))}
    assert decode_downloaded_config(body) == cfg
    s = session_summary(cfg)
    assert s == {"barge_in": True, "vad": cfg["audio_config"]["vad"], "silence_duration_ms": 700, "agents": ["S", "A"]}
    assert session_summary({})["barge_in"] is False


def test_cli_validates_options() -> None:
    ok = settings_from_args(build_parser().parse_args(["--project", "demo", "--allow-origin", "http://a.example:*"]))
    assert ok.target.project == "demo" and ok.allowed_origins == ("http://a.example:*",)
    with pytest.raises(ValueError, match="--project"):
        settings_from_args(build_parser().parse_args(["--project", "bad name"]))
    with pytest.raises(ValueError, match="origin pattern"):
        settings_from_args(build_parser().parse_args(["--allow-origin", "nope"]))


def test_stack_reads_ready_lines() -> None:
    assert parse_ready_line("refinery-mock listening on http://127.0.0.1:8080\n", SERVER_READY) == "http://127.0.0.1:8080"
    assert parse_ready_line("refinery-mock bridge listening on http://127.0.0.1:8000", BRIDGE_READY) == "http://127.0.0.1:8000"
    assert parse_ready_line("INFO: started", SERVER_READY) is None
    assert browser_url("http://127.0.0.1:8000") == "http://localhost:8000/"


# -- the bridge app against a fake service ------------------------------------------------


class FakeService:
    """Records what the bridge sends; answers ``input_text`` with a scripted turn."""

    def __init__(self) -> None:
        self.sessions: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        async def validate(request: Request) -> JSONResponse:
            return JSONResponse({"organization_id": "acct1"})

        async def download(request: Request) -> JSONResponse:
            cfg = {"audio_config": {"vad": {"enable_barge_in": True, "threshold": 8}}, "utility_agents": [{"agent_name": "A"}]}
            return JSONResponse({"config": json.dumps(json.dumps(cfg))})

        async def realtime(ws: WebSocket) -> None:
            rec: dict[str, Any] = {"path": ws.url.path, "headers": dict(ws.headers), "frames": [], "closed": False}
            self.sessions.append(rec)
            await ws.accept()
            await ws.send_json({"type": "session.created", "session": {"id": "s1"}, "capabilities": {"vad_enabled": True}})
            try:
                while True:
                    msg = json.loads(await ws.receive_text())
                    rec["frames"].append(msg)
                    if msg.get("type") != "input_text":
                        continue
                    if msg["text"] == "die":
                        await ws.send_json({"type": "error", "error_detail": {"code": "boom", "message": "fatal thing"}})
                        await ws.close(1011)
                        return
                    if msg["text"] == "bye":
                        await ws.close(1000)
                        return
                    for ev in (
                        {"type": "PING"},
                        {"type": "response.created", "response_id": "r1"},
                        {"type": "response.text.delta", "response_id": "r1", "role": "A", "content": "Hi", "delta": "Hi", "text": "Hi", "extra": {"k": 1}},
                        {"type": "response.audio.delta", "response_id": "r1", "role": "A", "audio": PCM_B64, "delta": PCM_B64},
                        {"type": "response.done", "response_id": "r1", "status": "completed"},
                    ):
                        await ws.send_json(ev)
            except WebSocketDisconnect:
                rec["closed"] = True

        return Starlette(
            routes=[
                Route("/authentication/validate", validate, methods=["POST"]),
                Route("/distiller/download", download, methods=["POST"]),
                WebSocketRoute("/distiller/realtime/{account}/{project}/{uuid}", realtime),
            ]
        )


@pytest.fixture()
def fake_stack() -> Iterator[tuple[FakeService, str]]:
    fake = FakeService()
    with serve(fake.app()) as upstream_url:
        settings = BridgeSettings(target=ServiceTarget(upstream_url, "demo", "test-key"))
        with serve(create_app(settings)) as bridge_url:
            yield fake, bridge_url


async def _recv_until(ws: websockets.ClientConnection, kind: str, timeout: float = 10) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            got.append(msg)
            if msg["type"] == kind:
                return got


def _ws(url: str, path: str = "/ws", origin: str | None = "http://localhost:8000") -> Any:
    return websockets.connect("ws" + url.removeprefix("http") + path, origin=origin)  # type: ignore[arg-type]


def test_bridge_relays_a_turn_and_survives_bad_frames(fake_stack: tuple[FakeService, str]) -> None:
    fake, url = fake_stack

    async def run() -> list[dict[str, Any]]:
        async with _ws(url, "/?uuid=user_7") as ws:
            first = await _recv_until(ws, "session.created")
            await ws.send("not json")
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "data": {"chunk": PCM_B64}}))
            await ws.send(json.dumps({"type": "playback.started"}))
            await ws.send(json.dumps({"type": "input_text", "text": "hello"}))
            return first + await _recv_until(ws, "response.done")

    msgs = asyncio.run(run())
    info = next(m for m in msgs if m["type"] == "bridge.session")
    assert info["uuid"] == "user_7" and info["project"] == "demo" and info["project_config"]["barge_in"] is True
    err = next(m for m in msgs if m["type"] == "error")
    assert err["code"] == "malformed_json" and err["fatal"] is False
    delta = next(m for m in msgs if m["type"] == "response.text.delta")
    assert delta == {"type": "response.text.delta", "response_id": "r1", "role": "A", "content": "Hi", "delta": "Hi", "text": "Hi", "extra": {"k": 1}}
    assert any(m["type"] == "PING" for m in msgs)

    [session] = fake.sessions
    # The bridge answers the PING upstream while the turn goes on: the PONG may
    # reach the fake service after response.done reached the browser.
    deadline = time.monotonic() + 10
    while "PONG" not in [f["type"] for f in session["frames"]] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session["path"] == "/distiller/realtime/acct1/demo/user_7"
    assert session["headers"]["authorization"] == "Bearer test-key"
    assert session["headers"]["airefinery_account"] == "acct1"
    kinds = [f["type"] for f in session["frames"]]
    assert kinds[:3] == ["input_audio_buffer.append", "playback.started", "input_text"]
    assert session["frames"][0]["audio"] == PCM_B64
    assert "PONG" in kinds


def test_each_browser_gets_its_own_session_closed_when_it_leaves(fake_stack: tuple[FakeService, str]) -> None:
    fake, url = fake_stack

    async def run() -> None:
        async with _ws(url) as a, _ws(url) as b:
            await _recv_until(a, "session.created")
            await _recv_until(b, "session.created")
        # Both browsers left: the bridge must close both upstream sessions.
        async with asyncio.timeout(10):
            while not all(s["closed"] for s in fake.sessions):
                await asyncio.sleep(0.05)

    asyncio.run(run())
    assert len(fake.sessions) == 2
    uuids = {s["path"].rsplit("/", 1)[1] for s in fake.sessions}
    assert len(uuids) == 2


def test_upstream_error_is_relayed_then_closed(fake_stack: tuple[FakeService, str]) -> None:
    _, url = fake_stack

    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with _ws(url) as ws:
            await _recv_until(ws, "session.created")
            await ws.send(json.dumps({"type": "input_text", "text": "die"}))
            msgs = await _recv_until(ws, "error")
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(10):
                    await ws.recv()
            return msgs, ws.close_code

    msgs, code = asyncio.run(run())
    assert msgs[-1]["message"] == "fatal thing" and msgs[-1]["fatal"] is True
    assert code == 1011


def test_upstream_close_without_error_tells_the_browser(fake_stack: tuple[FakeService, str]) -> None:
    _, url = fake_stack

    async def run() -> dict[str, Any]:
        async with _ws(url) as ws:
            await _recv_until(ws, "session.created")
            await ws.send(json.dumps({"type": "input_text", "text": "bye"}))
            return (await _recv_until(ws, "error"))[-1]

    err = asyncio.run(run())
    assert err["code"] == "upstream_closed" and "1000" in err["message"]


def test_foreign_origin_is_refused(fake_stack: tuple[FakeService, str]) -> None:
    fake, url = fake_stack

    async def run() -> tuple[dict[str, Any], int | None]:
        async with _ws(url, origin="http://evil.example") as ws:
            msg = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return msg, ws.close_code

    msg, code = asyncio.run(run())
    assert msg["code"] == "origin_refused" and "--allow-origin" in msg["message"]
    assert code == 1008 and fake.sessions == []


def test_unreachable_service_gives_an_error_and_a_close() -> None:
    settings = BridgeSettings(target=ServiceTarget("http://127.0.0.1:9", "demo", "k"))
    with serve(create_app(settings)) as url:

        async def run() -> dict[str, Any]:
            async with _ws(url) as ws:
                msg = json.loads(await ws.recv())
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                return msg

        msg = asyncio.run(run())
    assert msg["type"] == "error" and msg["code"] == "upstream_unavailable" and "is `python -m server` running" in msg["message"]


def test_page_and_static_files_are_served(fake_stack: tuple[FakeService, str]) -> None:
    import httpx

    _, url = fake_stack
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "capture-worklet.js", "style.css"):
        assert httpx.get(f"{url}/static/{name}").status_code == 200
    assert httpx.get(url + "/api/info").json()["project"] == "demo"


# -- the bridge against our real server -------------------------------------------------


def test_bridge_passes_every_field_of_a_real_turn(server: Any, tutorial_config: Any) -> None:
    """A typed turn through the bridge arrives with exactly the fields the
    server sent directly (same session uuid scheme, same project)."""
    import httpx

    from bridge.upstream import load_config_file

    # Register the tutorial config as project "bridge_test" the way the bridge CLI does.
    from bridge.__main__ import register

    target = ServiceTarget(server.url, "bridge_test", "test-key")
    asyncio.run(register(target, tutorial_config))
    assert load_config_file(tutorial_config)  # the file the bridge registered is readable YAML

    question = "How should I hedge against currency risk?"

    async def via(url: str, path: str, headers: dict[str, str] | None = None, origin: str | None = None) -> list[dict[str, Any]]:
        async with websockets.connect(url + path, additional_headers=headers, origin=origin) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"type": "input_text", "text": question}))
            msgs: list[dict[str, Any]] = []
            async with asyncio.timeout(120):
                while True:
                    m = json.loads(await ws.recv())
                    if m["type"] == "PING":
                        await ws.send('{"type":"PONG"}')
                        continue
                    msgs.append(m)
                    if m["type"] == "response.done":
                        return msgs

    with serve(create_app(BridgeSettings(target=target))) as bridge_url:
        bridged = asyncio.run(via("ws" + bridge_url.removeprefix("http"), "/ws?uuid=via_bridge", origin="http://localhost:8000"))
        stats = httpx.get(bridge_url + "/api/stats").json()
    direct = asyncio.run(
        via(server.ws_url, "/distiller/realtime/acct/bridge_test/direct", headers=service_headers("test-key", "acct"))
    )

    bridged = [m for m in bridged if m["type"] not in ("bridge.session", "PING")]
    # Audio chunking and engine warnings may differ between two runs of a turn;
    # the text events must match exactly, and every type keeps its field set.
    def textual(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in msgs if m["type"] not in ("response.audio.delta", "warning", "session.created")]

    assert textual(bridged) == textual(direct)
    for kind in {m["type"] for m in direct} - {"warning"}:
        b = next(m for m in bridged if m["type"] == kind)
        d = next(m for m in direct if m["type"] == kind)
        assert set(b) == set(d), kind
    session = next(m for m in bridged if m["type"] == "session.created")
    assert session["session"]["uuid"] == "via_bridge" and "capabilities" in session
    roles = {m["role"] for m in bridged if m["type"] == "response.text.delta"}
    assert roles, "no agent text came through the bridge"
    assert stats["to_service"].get("input_text") == 1


# -- the SDK's own RealtimeVoiceBridge against our server ------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _speech_chunks(name: str, tail_silence_s: float) -> list[bytes]:
    """A fixture utterance plus trailing silence, as the page's 30 ms PCM16 chunks."""
    import numpy as np
    import soundfile as sf

    from tests.support.sdk_venv import REPO_ROOT

    audio, rate = sf.read(REPO_ROOT / "fixtures" / "speech" / name, dtype="int16")
    assert rate == 16000, f"{name} must be 16 kHz"
    pcm = np.concatenate([audio, np.zeros(int(tail_silence_s * rate), dtype=np.int16)]).tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm) - 959, 960)]


@pytest.mark.sdk
def test_sdk_realtime_voice_bridge_works_against_our_server(server: Any, sdk_python: Any) -> None:
    """The SDK's RealtimeVoiceBridge (shared session, few fields) serves a
    scripted browser that speaks the tutorial page's protocol."""
    import subprocess

    from tests.support.sdk_venv import REPO_ROOT

    port = _free_port()
    config = REPO_ROOT / "fixtures" / "configs" / "two_agents_bargein.yaml"
    script = REPO_ROOT / "tests" / "browser" / "sdk_bridge_serve.py"
    proc = subprocess.Popen(
        [str(sdk_python), str(script), "--base-url", server.url, "--port", str(port), "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
    )
    chunks = _speech_chunks("question_currency_heart.wav", tail_silence_s=2.0)

    async def browser() -> list[dict[str, Any]]:
        async with asyncio.timeout(60):  # failure bound: the SDK venv imports slowly
            while True:
                try:
                    ws = await websockets.connect(f"ws://127.0.0.1:{port}/")
                    break
                except OSError:
                    assert proc.poll() is None, f"SDK bridge exited: {proc.stdout.read() if proc.stdout else ''}"
                    await asyncio.sleep(0.2)
        got: list[dict[str, Any]] = []

        async def reader() -> None:
            async for frame in ws:
                got.append(json.loads(frame))

        read_task = asyncio.create_task(reader())
        async with ws:
            await ws.send(json.dumps({"command": "start_recording"}))
            for chunk in chunks:  # real-time pacing, as a microphone would
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "data": {"chunk": base64.b64encode(chunk).decode()}}))
                await asyncio.sleep(0.03)
            async with asyncio.timeout(120):
                while not any(m["type"] == "response.done" for m in got):
                    await asyncio.sleep(0.1)
            for kind in ("playback.started", "playback.stopped"):
                await ws.send(json.dumps({"type": kind}))
            await ws.send(json.dumps({"command": "stop_recording"}))
            async with asyncio.timeout(10):
                while not any(m["type"] == "recording_stopped" for m in got):
                    await asyncio.sleep(0.05)
        read_task.cancel()
        return got

    try:
        msgs = asyncio.run(browser())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    kinds = [m["type"] for m in msgs]
    created = [m for m in msgs if m["type"] == "session.created"]
    assert created and isinstance(created[0].get("session"), dict), kinds
    assert "recording_started" in kinds and "recording_stopped" in kinds
    final = [m["text"] for m in msgs if m["type"] == "response.audio_transcript.done"]
    assert final and "currency" in final[0].lower(), final
    assert any(m["type"] == "response.text.delta" and m["text"] for m in msgs)
    audio = [m for m in msgs if m["type"] == "response.audio.delta"]
    assert audio and all(len(base64.b64decode(m["delta"])) > 0 for m in audio)
    assert kinds.index("response.created") < kinds.index("response.audio.delta") < kinds.index("response.done")


def test_unknown_browser_type_is_quoted_clipped() -> None:
    reply = _replies(browser_to_actions(json.dumps({"type": "t" * 100_000})))[0]
    assert reply["code"] == "unknown_type" and len(reply["message"]) < 400
