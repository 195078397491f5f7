"""The bridge's Starlette app: the page over HTTP, the browser WebSocket, and
one upstream service session per browser connection.

This module only moves frames; what to send is decided by the pure functions
of :mod:`bridge.translate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid as uuidlib
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bridge.translate import (
    COMMIT_INTERVAL_S,
    DEFAULT_ALLOWED_ORIGINS,
    Forward,
    Reply,
    SetRecording,
    bridge_error,
    browser_to_actions,
    check_session_id,
    origin_allowed,
    service_to_browser,
    upstream_closed_error,
)
from bridge.upstream import (
    ServiceTarget,
    UpstreamError,
    download_config,
    open_realtime,
    session_summary,
    validate_key,
)
from server.protocol import AudioCommit, encode_client_message

log = logging.getLogger("bridge")

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class BridgeSettings:
    """How one bridge instance is wired."""

    target: ServiceTarget
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    #: One session uuid for every browser (like the SDK's bridge); ``None``
    #: gives each connection its own uuid unless the page passes ``?uuid=``.
    fixed_uuid: str | None = None
    static_dir: Path = STATIC_DIR
    #: ``Host`` names served (DNS-rebinding guard); None serves any (in-process use).
    allowed_hosts: tuple[str, ...] | None = None


@dataclass
class BridgeStats:
    """Counters exposed at ``/api/stats`` (tests and the curious read them)."""

    connections_total: int = 0
    connections_open: int = 0
    to_service: Counter[str] = field(default_factory=Counter)
    to_browser: Counter[str] = field(default_factory=Counter)
    #: Only the latest errors are shown, so only those are kept.
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    def as_json(self) -> dict[str, Any]:
        """The counters as plain JSON values."""
        return {
            "connections_total": self.connections_total,
            "connections_open": self.connections_open,
            "to_service": dict(self.to_service),
            "to_browser": dict(self.to_browser),
            "errors": list(self.errors),
        }


class _Bridge:
    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.stats = BridgeStats()
        self._account: str | None = None
        self._account_lock = asyncio.Lock()

    async def account(self, client: httpx.AsyncClient) -> str:
        # Validated once and cached; a failure is retried on the next browser.
        async with self._account_lock:
            if self._account is None:
                self._account = await validate_key(client, self.settings.target)
            return self._account


def create_app(settings: BridgeSettings) -> Starlette:
    """The bridge as an ASGI app: ``/`` serves the page on HTTP and the browser
    WebSocket on upgrade (so ``ws://localhost:8000`` works), ``/ws`` is the
    same socket, ``/static`` the page's files, ``/api/info`` and
    ``/api/stats`` small JSON views."""
    bridge = _Bridge(settings)

    async def index(request: Request) -> Response:
        return FileResponse(settings.static_dir / "index.html", headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        t = settings.target
        return JSONResponse({"project": t.project, "server": t.base_url, "project_version": t.project_version})

    async def stats(request: Request) -> Response:
        return JSONResponse(bridge.stats.as_json())

    async def socket(ws: WebSocket) -> None:
        await _serve_browser(bridge, ws)

    routes = [
        Route("/", index),
        WebSocketRoute("/", socket),
        WebSocketRoute("/ws", socket),
        Route("/api/info", info),
        Route("/api/stats", stats),
        Mount("/static", StaticFiles(directory=settings.static_dir), name="static"),
    ]
    middleware = []
    if settings.allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts), www_redirect=False))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.bridge = bridge
    return app


async def _send_browser(ws: WebSocket, lock: asyncio.Lock, stats: BridgeStats, msg: dict[str, Any]) -> bool:
    """Send to the browser; False once it has gone."""
    if ws.client_state != WebSocketState.CONNECTED:
        return False
    async with lock:
        try:
            await ws.send_text(json.dumps(msg, separators=(",", ":")))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False
    stats.to_browser[str(msg.get("type"))] += 1
    return True


async def _close_browser(ws: WebSocket, code: int) -> None:
    if ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close(code)


async def _serve_browser(bridge: _Bridge, ws: WebSocket) -> None:
    settings, stats = bridge.settings, bridge.stats
    lock = asyncio.Lock()
    await ws.accept()
    stats.connections_total += 1
    stats.connections_open += 1
    try:
        origin = ws.headers.get("origin")
        if not origin_allowed(origin, settings.allowed_origins):
            await _send_browser(
                ws,
                lock,
                stats,
                bridge_error(
                    f"origin {origin!r} is not allowed; open the page from the bridge itself "
                    f"or start the bridge with --allow-origin {origin}",
                    code="origin_refused",
                    fatal=True,
                ),
            )
            await _close_browser(ws, 1008)
            return
        try:
            session_id = check_session_id(ws.query_params.get("uuid") or settings.fixed_uuid or uuidlib.uuid4().hex)
        except ValueError as exc:
            await _send_browser(ws, lock, stats, bridge_error(str(exc), code="bad_uuid", fatal=True))
            await _close_browser(ws, 1008)
            return

        summary: dict[str, Any] | None = None
        try:
            async with httpx.AsyncClient(timeout=15) as client:
                account = await bridge.account(client)
                upstream = await open_realtime(settings.target, account, session_id)
                with contextlib.suppress(UpstreamError):
                    summary = session_summary(await download_config(client, settings.target, account))
        except UpstreamError as exc:
            stats.errors.append(str(exc))
            log.warning("upstream unavailable: %s", exc)
            await _send_browser(ws, lock, stats, bridge_error(str(exc), code="upstream_unavailable", fatal=True))
            await _close_browser(ws, 1011)
            return

        # Our own, additive event: which project and session this page is on.
        await _send_browser(
            ws,
            lock,
            stats,
            {
                "type": "bridge.session",
                "project": settings.target.project,
                "uuid": session_id,
                "server": settings.target.base_url,
                "project_config": summary,
            },
        )
        await _pump(ws, upstream, lock, stats)
    finally:
        stats.connections_open -= 1


async def _pump(ws: WebSocket, upstream: websockets.ClientConnection, lock: asyncio.Lock, stats: BridgeStats) -> None:
    commit_task: asyncio.Task[None] | None = None

    async def to_service(frame: str) -> None:
        await upstream.send(frame)
        stats.to_service[json.loads(frame)["type"]] += 1

    async def commit_hints() -> None:
        commit = encode_client_message(AudioCommit())
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            await to_service(commit)

    async def browser_side() -> str:
        nonlocal commit_task
        while True:
            try:
                msg = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return "browser_left"
            if msg["type"] == "websocket.disconnect":
                return "browser_left"
            frame = msg.get("text") if msg.get("text") is not None else msg.get("bytes", b"")
            for action in browser_to_actions(frame):
                if isinstance(action, Forward):
                    await to_service(action.frame)
                elif isinstance(action, Reply):
                    await _send_browser(ws, lock, stats, action.message)
                elif isinstance(action, SetRecording):
                    if commit_task:
                        commit_task.cancel()
                        commit_task = None
                    if action.on:
                        commit_task = asyncio.create_task(commit_hints())

    async def service_side() -> str:
        async for frame in upstream:
            relay = service_to_browser(frame)
            if relay.to_service:
                await to_service(relay.to_service)
            if relay.to_browser is not None:
                await _send_browser(ws, lock, stats, relay.to_browser)
            if relay.fatal:
                return "service_error"
        return "service_closed"

    tasks = {asyncio.create_task(browser_side()), asyncio.create_task(service_side())}
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        if commit_task:
            commit_task.cancel()
    outcome = "service_closed"
    for t in done:
        try:
            outcome = t.result()
        except websockets.ConnectionClosed:
            outcome = "service_closed"
        except Exception as exc:  # a bug or a dead socket: tell the page, don't hang it
            log.exception("bridge pump failed")
            stats.errors.append(f"{exc.__class__.__name__}: {exc}")
            await _send_browser(
                ws, lock, stats, bridge_error(f"the bridge failed: {exc}; reload the page", code="bridge_failed", fatal=True)
            )
            outcome = "bridge_failed"
    # Also reap a commit task that died on a closed upstream, so its exception
    # is not reported as "never retrieved".
    await asyncio.gather(*pending, *([commit_task] if commit_task else []), return_exceptions=True)

    if outcome == "browser_left":
        await upstream.close(1000, "browser left")
        return
    if outcome == "service_closed":
        await _send_browser(ws, lock, stats, upstream_closed_error(upstream.close_code, upstream.close_reason or ""))
    await upstream.close(1000)
    await _close_browser(ws, 1011 if outcome != "service_closed" or upstream.close_code not in (1000, None) else 1000)
