"""The Starlette application: HTTP routes of protocol.md section 1 and the
realtime WebSocket route (handled in :mod:`server.realtime`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from server import __version__, metrics
from server.admin import admin_routes
from server.asr_processes import DEFAULT_NICE, AsrProcesses
from server.bounded import load_json_bounded
from server.config import ConfigError, ConfigIssue, load_project_config
from server.engines import engine_name_issues
from server.faults import FaultStore
from server.history import HistoryStore
from server.journal import JournalStore
from server.limits import DEFAULT_LIMITS, LimitExceeded, Limits
from server.projects import ProjectStore, UnknownProject
from server.security import DEFAULT_ALLOWED_ORIGINS
from server.realtime import RealtimeEndpoint, SessionRegistry

log = logging.getLogger("refinery.app")

ORGANIZATION_ID = "refinery-mock-local"


@dataclass
class ServerSettings:
    """How the server runs. ``api_keys`` None accepts any non-empty key."""

    data_dir: Path
    api_keys: frozenset[str] | None = None
    limits: Limits = DEFAULT_LIMITS
    #: Page origins allowed to open the realtime WebSocket (no Origin: a non-browser client, allowed).
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    #: ``Host`` names served; None serves any (in-process use). ``python -m server``
    #: passes the loopback names unless told otherwise.
    allowed_hosts: tuple[str, ...] | None = None
    brain: str | None = None
    ping_interval_s: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: The admin API (server/admin.py): journals, faults, reset; loopback only unless admin_remote.
    admin: bool = True
    admin_remote: bool = False
    #: ``asr_engine`` / ``tts_engine`` for configs that name none (server.engines.build_engines).
    engine_overrides: dict[str, str] = field(default_factory=dict)
    #: Record every session here for replay (server/recording.py); None: no recording.
    record_dir: Path | None = None
    #: Decode final transcripts speculatively during the end-of-turn silence
    #: (``Session.speculative_finals``, docs/asr.md).
    speculative_finals: bool = True
    #: Worker processes for ASR decodes (server/asr_processes.py); 0 decodes in threads.
    asr_processes: int = 0
    #: Nice steps below the server for those workers.
    asr_process_nice: int = DEFAULT_NICE


def _problem(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    # "detail" is what most HTTP clients print; "error" mirrors the WS error shape.
    return JSONResponse({"detail": message, "error": {"code": code, "message": message}, **extra}, status_code=status)


def bearer_key(headers) -> str | None:
    """The API key of an ``Authorization: Bearer`` header, if any."""
    value = headers.get("authorization", "")
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def check_key(settings: ServerSettings, headers) -> str | None:
    """None when the key is accepted, else the reason."""
    key = bearer_key(headers)
    if key is None:
        return "missing API key: send 'Authorization: Bearer <key>' (any non-empty key works unless the server has an allow-list)"
    if settings.api_keys is not None and key not in settings.api_keys:
        return "API key refused: it is not in this server's --api-key allow-list"
    return None


def _limit_problem(exc: LimitExceeded) -> JSONResponse:
    """413 for sizes, 507 for a full store, 422 for shapes (depth, aliases); the body names the limit."""
    status = 413 if exc.limit.endswith("_bytes") else 507 if exc.limit in ("max_projects", "max_versions_per_project") else 422
    return _problem(status, "limit_exceeded", f"{exc}; the server's --limit {exc.limit}=... raises it", limit=exc.limit)


async def _read_body(request: Request, cap: int) -> bytes:
    """The request body, read no further than ``cap`` bytes (LimitExceeded beyond)."""
    declared = request.headers.get("content-length", "")
    too_big = LimitExceeded("max_body_bytes", f"request body exceeds {cap} bytes (limit max_body_bytes)")
    if declared.isdigit() and int(declared) > cap:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request, limits: Limits) -> dict[str, Any] | JSONResponse:
    try:
        raw = await _read_body(request, limits.max_body_bytes)
        if not raw:
            return {}
        body = load_json_bounded(raw, limits)
    except LimitExceeded as exc:
        return _limit_problem(exc)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _problem(400, "malformed_json", f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return _problem(400, "malformed_body", "request body must be a JSON object")
    return body


def _issues_json(issues: list[ConfigIssue]) -> list[dict[str, str]]:
    return [{"path": i.path, "found": i.found, "expected": i.expected, "message": i.message} for i in issues]


def create_app(settings: ServerSettings) -> Starlette:
    """Build the application for ``settings``."""
    limits = settings.limits
    projects = ProjectStore(settings.data_dir, limits)
    histories = HistoryStore(settings.data_dir)
    registry = SessionRegistry(limits.max_sessions, limits.max_sessions_per_project)
    asr_processes = AsrProcesses(settings.asr_processes, nice=settings.asr_process_nice) if settings.asr_processes else None

    def guard(request: Request) -> JSONResponse | None:
        reason = check_key(settings, request.headers)
        return _problem(401, "unauthorized", reason) if reason else None

    async def authed_body(request: Request) -> dict[str, Any] | JSONResponse:
        """The JSON body of an authorised request, or the error response."""
        denied = guard(request)
        return denied if denied is not None else await _json_body(request, limits)

    async def validate_key(request: Request) -> JSONResponse:
        if (denied := guard(request)) is not None:
            return denied
        return JSONResponse({"organization_id": ORGANIZATION_ID, "valid": True, "server": f"refinery-mock {__version__}"})

    def _config_of(body: dict[str, Any]) -> tuple[Any, JSONResponse | None]:
        if "config" not in body:
            return None, _problem(422, "invalid_config", "request has no 'config' field; send the project YAML as a JSON object")
        try:
            loaded = load_project_config(body["config"], limits)
            if issues := engine_name_issues(loaded.config):
                raise ConfigError(issues)
        except LimitExceeded as exc:
            return None, _limit_problem(exc)
        except ConfigError as err:
            message = "invalid project config:\n" + "\n".join(i.message for i in err.issues)
            return None, _problem(422, "invalid_config", message, issues=_issues_json(err.issues))
        return loaded, None

    async def create_project(request: Request) -> JSONResponse:
        body = await authed_body(request)
        if isinstance(body, JSONResponse):
            return body
        name = body.get("project")
        if reason := projects.check_name(name):
            return _problem(422, "invalid_project_name", reason)
        loaded, problem = _config_of(body)
        if problem is not None:
            return problem
        # A YAML string is stored as the object the SDK would have sent.
        try:
            stored = projects.create(name, dict(loaded.document))
        except LimitExceeded as exc:
            return _limit_problem(exc)
        for w in loaded.warnings:
            log.warning("project %s v%d: %s", name, stored.version, w.message)
        return JSONResponse(
            {"project": name, "project_version": str(stored.version), "warnings": _issues_json(loaded.warnings)},
            status_code=201,
        )

    async def download_project(request: Request) -> JSONResponse:
        body = await authed_body(request)
        if isinstance(body, JSONResponse):
            return body
        name = body.get("project")
        version = body.get("project_version")
        try:
            stored = projects.get(str(name), None if version in (None, "") else int(version))
        except (UnknownProject, ValueError) as exc:
            return _problem(404, "unknown_project", str(exc))
        # The SDK decodes this field twice: json.loads(json.loads(config)).
        return JSONResponse({"project": stored.name, "project_version": str(stored.version), "config": json.dumps(json.dumps(stored.config))})

    async def validate_config(request: Request) -> JSONResponse:
        body = await authed_body(request)
        if isinstance(body, JSONResponse):
            return body
        loaded, problem = _config_of(body)
        if problem is not None:
            return problem
        return JSONResponse({"valid": True, "warnings": _issues_json(loaded.warnings)})

    async def health(request: Request) -> JSONResponse:
        # tasks and threads: what the stress suite checks returns to its baseline.
        return JSONResponse({
            "status": "ok", "version": __version__, "sessions": registry.count(),
            "tasks": len(asyncio.all_tasks()), "threads": threading.active_count(), "limits": limits.as_dict(),
            "asr_processes": None if asr_processes is None else asr_processes.health(),
        })

    async def list_sessions(request: Request) -> JSONResponse:
        return JSONResponse({"sessions": registry.inspect_all()})

    async def get_session(request: Request) -> JSONResponse:
        info = registry.inspect(request.path_params["session_id"])
        if info is None:
            return _problem(404, "unknown_session", f"no live session {request.path_params['session_id']!r}")
        return JSONResponse(info)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    journals = JournalStore()
    faults = FaultStore()
    realtime = RealtimeEndpoint(settings, projects, histories, registry, check_key, journals, faults, asr_processes)
    routes = [
        Route("/authentication/validate", validate_key, methods=["POST"]),
        Route("/distiller/create", create_project, methods=["POST"]),
        Route("/distiller/download", download_project, methods=["POST"]),
        Route("/distiller/config/validate", validate_config, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/sessions", list_sessions, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/sessions/{session_id}", get_session, methods=["GET"]),
        WebSocketRoute("/distiller/realtime/{account}/{project}/{uuid}", realtime),
    ]
    if settings.admin:
        routes += admin_routes(journals, faults, settings.data_dir, remote=settings.admin_remote, close_sessions=realtime.close_all)
    middleware = []
    if settings.allowed_hosts is not None:
        # Starlette's own Host check (HTTP and WebSocket): 400 for any other name.
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts), www_redirect=False))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        # Workers start (and warm) with the server, and are killed when it stops:
        # none outlives it, and a hung one cannot hold up the exit.
        if asr_processes is not None:
            asr_processes.start()
        try:
            yield
        finally:
            if asr_processes is not None:
                asr_processes.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = settings
    app.state.registry = registry
    app.state.journals = journals
    app.state.faults = faults
    app.state.asr_processes = asr_processes
    return app
