"""The bridge's side of the service protocol: HTTP calls and the realtime socket.

Mirrors what the SDK does (protocol.md sections 1-2): ``POST
/authentication/validate`` gives the account, ``POST /distiller/create``
registers a project, and each browser gets its own WebSocket at
``/distiller/realtime/{account}/{project}/{uuid}`` with the SDK's headers.
URL and header building are pure functions; the rest are thin async calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml

#: The SDK release whose wire behaviour we mirror; sent as ``sdk_version``.
SDK_VERSION = "1.33.2"

#: The SDK accepts frames this large from the service; so do we.
MAX_SERVICE_FRAME_BYTES = 167_772_160


class UpstreamError(RuntimeError):
    """The service could not be reached or refused a request. The message says
    what happened and what to do; it is shown to the user as is."""


@dataclass(frozen=True)
class ServiceTarget:
    """Where and as whom the bridge talks to the service."""

    base_url: str
    project: str
    api_key: str
    project_version: str | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"server URL {self.base_url!r} must start with http:// or https://")
        if not self.api_key:
            raise ValueError("the API key is empty; pass --api-key or set AIR_API_KEY")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))


def service_headers(api_key: str, account: str | None = None) -> dict[str, str]:
    """The headers the SDK sends on every request (and the WebSocket handshake)."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "sdk_version": SDK_VERSION,
        "Content-Type": "application/json",
    }
    if account is not None:
        headers["airefinery_account"] = account
    return headers


def realtime_url(target: ServiceTarget, account: str, uuid: str) -> str:
    """The realtime WebSocket URL for one session (``{project}:{version}`` when
    a version is pinned)."""
    project = f"{target.project}:{target.project_version}" if target.project_version else target.project
    ws_base = "ws" + target.base_url.removeprefix("http")  # http -> ws, https -> wss
    return f"{ws_base}/distiller/realtime/{account}/{project}/{uuid}"


def _describe_http_failure(what: str, url: str, exc: Exception) -> UpstreamError:
    return UpstreamError(
        f"cannot reach the service at {url} for {what} ({exc.__class__.__name__}: {exc}); "
        "is `python -m server` running, and does --server point at it?"
    )


def _refusal(what: str, resp: httpx.Response) -> UpstreamError:
    body = resp.text.strip()[:500]
    hint = " check --api-key" if resp.status_code in (401, 403) else ""
    return UpstreamError(f"the service refused {what}: HTTP {resp.status_code} {body}.{hint}".rstrip("."))


async def _post(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], payload: dict[str, Any] | None,
    *, doing: str, refused: str, ok: Callable[[int], bool],
) -> httpx.Response:
    """POST to the service; an unreachable service or a status ``ok`` rejects
    becomes an :class:`UpstreamError` saying what was being done."""
    try:
        resp = await client.post(url, headers=headers, json=payload)
    except httpx.HTTPError as exc:
        raise _describe_http_failure(doing, url, exc) from exc
    if not ok(resp.status_code):
        raise _refusal(refused, resp)
    return resp


async def validate_key(client: httpx.AsyncClient, target: ServiceTarget) -> str:
    """``POST /authentication/validate``; returns the account (``organization_id``)."""
    url = f"{target.base_url}/authentication/validate"
    resp = await _post(
        client, url, service_headers(target.api_key), None,
        doing="key validation", refused="the API key", ok=lambda status: status // 100 == 2,
    )
    try:
        account = resp.json().get("organization_id")
    except (ValueError, AttributeError):
        account = None
    if not account:
        raise UpstreamError(f"the service at {url} answered without an organization_id; is it a refinery-mock server?")
    return str(account)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a project YAML as the SDK does, with a clear error when unusable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UpstreamError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise UpstreamError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"config file {path} must hold a YAML mapping (memory_config, orchestrator, ...)")
    return data


async def create_project(client: httpx.AsyncClient, target: ServiceTarget, account: str, config: dict[str, Any]) -> Any:
    """``POST /distiller/create``; returns the new ``project_version``."""
    url = f"{target.base_url}/distiller/create"
    payload = {"project": target.project, "config": config, "sdk_version": SDK_VERSION}
    resp = await _post(
        client, url, service_headers(target.api_key, account), payload,
        doing="project registration", refused=f"project {target.project!r}", ok=lambda status: status == 201,
    )
    try:
        return resp.json().get("project_version")
    except (ValueError, AttributeError):
        return None


def decode_downloaded_config(body: Any) -> dict[str, Any]:
    """The project config out of a ``/distiller/download`` body, whose ``config``
    is JSON-encoded twice (protocol.md)."""
    value = body.get("config") if isinstance(body, dict) else None
    for _ in range(3):
        if isinstance(value, str):
            value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError("download response has no config object")
    return value


async def download_config(client: httpx.AsyncClient, target: ServiceTarget, account: str) -> dict[str, Any]:
    """``POST /distiller/download``: the registered project config."""
    url = f"{target.base_url}/distiller/download"
    payload = {"project": target.project, "project_version": target.project_version, "sdk_version": SDK_VERSION}
    resp = await _post(
        client, url, service_headers(target.api_key, account), payload,
        doing="config download", refused=f"the download of project {target.project!r}", ok=lambda status: status == 200,
    )
    try:
        return decode_downloaded_config(resp.json())
    except ValueError as exc:
        raise UpstreamError(f"the service's config download could not be read: {exc}") from exc


def session_summary(config: dict[str, Any]) -> dict[str, Any]:
    """What the page shows about a project before the session says more: the
    barge-in mode, the ``vad`` block and the agent names."""
    audio = config.get("audio_config") if isinstance(config.get("audio_config"), dict) else {}
    vad = audio.get("vad") if isinstance(audio.get("vad"), dict) else None
    agents = [
        a.get("agent_name")
        for key in ("super_agents", "utility_agents")
        for a in (config.get(key) or [])
        if isinstance(a, dict) and isinstance(a.get("agent_name"), str)
    ]
    asr = audio.get("asr") if isinstance(audio.get("asr"), dict) else {}
    return {
        "barge_in": bool(vad and vad.get("enable_barge_in")),
        "vad": vad,
        "silence_duration_ms": asr.get("silence_duration_ms"),
        "agents": agents,
    }


async def open_realtime(target: ServiceTarget, account: str, uuid: str) -> websockets.ClientConnection:
    """Open one realtime session socket, as the SDK does (no pings, big frames)."""
    url = realtime_url(target, account, uuid)
    try:
        return await websockets.connect(
            url,
            additional_headers=service_headers(target.api_key, account),
            max_size=MAX_SERVICE_FRAME_BYTES,
            ping_interval=None,
            ping_timeout=None,
            open_timeout=30,
        )
    except websockets.InvalidStatus as exc:
        status = exc.response.status_code
        body = exc.response.body.decode(errors="replace").strip()[:300] if exc.response.body else ""
        hint = {
            401: "check --api-key",
            404: f"register project {target.project!r} first (start the bridge with --config FILE.yaml)",
        }.get(status, "see the server's log")
        raise UpstreamError(f"the service refused the session at {url}: HTTP {status} {body}; {hint}") from exc
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        raise UpstreamError(
            f"cannot open the realtime session at {url} ({exc.__class__.__name__}: {exc}); is the server running?"
        ) from exc
