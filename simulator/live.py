"""``--server URL``: the same client in real time over the service protocol.

Does what the SDK does (protocol.md): validate the key, create the project
from the config YAML, open the realtime WebSocket, then streams the microphone
every chunk on the wall clock while a receiver task feeds server events to the
client as they arrive. The session's detector state is not visible over the
wire, so the report's VAD panel is a client-side estimate.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from server.metrics import InputLag
from server.protocol import encode_client_message
from simulator.client import SimClient
from simulator.run import RunResult, client_for, vad_params, warning_texts
from simulator.scenario import Scenario

#: The SDK version we announce; the server treats us like the SDK we mimic.
SDK_VERSION = "1.33.2"
SESSION_CREATED_TIMEOUT_S = 30.0  # the SDK's own wait


class LiveError(RuntimeError):
    """The server refused a step; the message names the step, status and body."""


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "sdk_version": SDK_VERSION}


def _project_name(name: str) -> str:
    return "sim_" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


async def setup_project(base: str, api_key: str, project: str, raw_config: object) -> str:
    """Validate the key and create ``project`` from ``raw_config``; returns the account id (protocol.md 1)."""
    import httpx

    async with httpx.AsyncClient(base_url=base, headers=_headers(api_key), timeout=60.0) as http:
        r = await http.post("/authentication/validate")
        if r.status_code // 100 != 2 or not (r.json() or {}).get("organization_id"):
            raise LiveError(f"POST {base}/authentication/validate: {r.status_code} {r.text[:300]}")
        account = str(r.json()["organization_id"])
        r = await http.post("/distiller/create", json={"project": project, "config": raw_config, "sdk_version": SDK_VERSION})
        if r.status_code != 201:
            raise LiveError(f"POST {base}/distiller/create (project {project}): {r.status_code} {r.text[:500]}")
    return account


@dataclass
class StreamResult:
    """How a live stream went: where it ended and how late the client itself sent.

    ``send_lag_s``: for every chunk, how much later it went out than the
    stream's least-delayed chunk (:class:`server.metrics.InputLag` on the
    sending side; a slow ``session.created`` is not lag); a load generator
    that falls behind real time shows it here, not as server lag.
    """

    end_s: float
    send_lag_s: list[float] = field(default_factory=list)


EventHook = Callable[[float, dict[str, Any]], None]


def _deliver(client: SimClient, t: float, event: dict[str, Any], on_event: EventHook | None) -> None:
    """Hand a server event to the client (and the hook); a server ``error`` event ends the run."""
    client.on_event(t, event)
    if on_event is not None:
        on_event(t, event)
    if event.get("type") == "error":
        raise LiveError(f"server error: {event.get('error_detail')}")


def _first(client: SimClient, t: float, event: dict[str, Any], on_event: EventHook | None) -> None:
    if event.get("type") != "session.created":
        raise LiveError(f"expected session.created first, got {str(event)[:300]}")
    _deliver(client, t, event, on_event)


def _frames(client: SimClient, t: float) -> list[str]:
    """What the client sends at tick ``t``: control messages, then one microphone chunk."""
    return [encode_client_message(msg) for msg in [*client.control(t), client.mic_chunk(t)]]


async def stream_client(
    ws_url: str,
    api_key: str,
    client: SimClient,
    max_duration_s: float,
    *,
    compression: str | None = "deflate",
    on_event: EventHook | None = None,
) -> StreamResult:
    """Play ``client`` against the realtime WebSocket at ``ws_url`` in real time until it finishes.

    Sends one microphone chunk per ``client.chunk`` samples on the event loop's
    clock while a receiver task feeds server events to the client. Raises
    :class:`LiveError` on a server ``error`` event or a missing ``session.created``.
    ``compression``: what the client offers, like ``websockets`` (the SDK's
    default offers permessage-deflate; None offers nothing). ``on_event(t, event)``
    sees every server event after the client did (``t``: seconds since the socket opened).
    """
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    lags: list[float] = []
    async with connect(
        ws_url, additional_headers=_headers(api_key), max_size=None, ping_interval=None, compression=compression
    ) as ws:
        t0 = loop.time()

        def now() -> float:
            return loop.time() - t0

        _first(client, now(), json.loads(await asyncio.wait_for(ws.recv(), SESSION_CREATED_TIMEOUT_S)), on_event)

        async def receive() -> None:
            async for frame in ws:
                _deliver(client, now(), json.loads(frame), on_event)

        receiver = asyncio.create_task(receive())
        sr, chunk = client.sr, client.chunk
        send_clock = InputLag(sr)
        t = 0.0
        k = 0
        try:
            while t < max_duration_s:
                k += 1
                t = k * chunk / sr
                await asyncio.sleep(max(0.0, t - now()))
                lags.append(send_clock.push(now(), chunk))
                if receiver.done():
                    receiver.result()  # re-raise what stopped it
                    break
                for frame in _frames(client, t):
                    await ws.send(frame)
                if client.finished(t):
                    break
        finally:
            receiver.cancel()
            try:
                await receiver
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing; the run is over
                pass
    return StreamResult(end_s=t, send_lag_s=lags)


def stream_client_blocking(
    ws_url: str,
    api_key: str,
    client: SimClient,
    max_duration_s: float,
    *,
    compression: str | None = "deflate",
    on_event: EventHook | None = None,
) -> StreamResult:
    """:func:`stream_client` with blocking sockets and a receiver thread.

    For green-thread load tools (Locust under gevent monkey-patching), where an
    asyncio loop would block every other user. Client calls are serialised
    with a lock, so it is also correct with real threads.
    """
    import threading
    import time

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    lags: list[float] = []
    lock = threading.Lock()
    failure: list[BaseException] = []
    with connect(
        ws_url, additional_headers=_headers(api_key), max_size=None, ping_interval=None, compression=compression,
        open_timeout=SESSION_CREATED_TIMEOUT_S,
    ) as ws:
        t0 = time.monotonic()

        def now() -> float:
            return time.monotonic() - t0

        _first(client, now(), json.loads(ws.recv(timeout=SESSION_CREATED_TIMEOUT_S)), on_event)

        def receive() -> None:
            try:
                for frame in ws:
                    with lock:
                        _deliver(client, now(), json.loads(frame), on_event)
            except ConnectionClosed:
                pass
            except Exception as exc:  # noqa: BLE001 - handed to the sending loop, which raises it
                failure.append(exc)

        receiver = threading.Thread(target=receive, name="sim-receiver", daemon=True)
        receiver.start()
        sr, chunk = client.sr, client.chunk
        send_clock = InputLag(sr)
        t = 0.0
        k = 0
        while t < max_duration_s:
            k += 1
            t = k * chunk / sr
            time.sleep(max(0.0, t - now()))
            lags.append(send_clock.push(now(), chunk))
            if failure:
                raise failure[0]
            if not receiver.is_alive():
                break
            with lock:
                frames = _frames(client, t)
                done = client.finished(t)
            for frame in frames:
                ws.send(frame)
            if done:
                break
    receiver.join(timeout=5.0)
    return StreamResult(end_s=t, send_lag_s=lags)


def realtime_url(base: str, account: str, project: str) -> str:
    """The realtime WebSocket URL of a new session of ``project`` (a fresh session uuid)."""
    return "ws" + base.removeprefix("http") + f"/distiller/realtime/{account}/{project}/{uuidlib.uuid4().hex[:12]}"


async def _run(sc: Scenario, base: str, api_key: str) -> RunResult:
    from server.config import load_project_config_file

    cfg_path = Path(sc.config_path)
    loaded = load_project_config_file(cfg_path)  # fail early, with the same message as the server
    raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    project = _project_name(sc.name)
    account = await setup_project(base, api_key, project, raw)
    client = client_for(sc, loaded.config)
    streamed = await stream_client(realtime_url(base, account, project), api_key, client, sc.max_duration_s)
    return RunResult(
        scenario=sc,
        mode="live",
        config_path=cfg_path,
        client=client,
        vad=vad_params(loaded.config),
        end_s=streamed.end_s,
        trace=[],
        trace_source="client",
        config_warnings=warning_texts(loaded),
    )


def run_live(sc: Scenario, server_url: str, *, api_key: str = "simulator") -> RunResult:
    """Run ``sc`` in real time against the server at ``server_url`` (http://host:port)."""
    base = server_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise LiveError(f"--server needs an http(s) URL such as http://127.0.0.1:8080, got {server_url!r}")
    return asyncio.run(_run(sc, base, api_key))
