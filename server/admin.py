"""The admin API, for tests: journals, run-time faults, reset.

Every route lives under :data:`ADMIN_PREFIX`; ``python -m server --no-admin``
leaves them out. They answer loopback clients only (127.0.0.1, ::1) unless the
server runs with ``--admin-remote``: they reveal every session's traffic and
can reset the server. No API key is needed (the pytest fixture and curl use
them as they are).

``GET  /_admin/sessions``                     journals kept: one header per session
``GET  /_admin/sessions/{id}/journal``        one session's journal (404 if not kept)
``GET  /_admin/projects/{name}/journal``      every kept session of a project
``GET  /_admin/faults``                       run-time faults by project
``PUT  /_admin/faults``                       set faults for every project (body: a ``faults`` block)
``PUT  /_admin/projects/{name}/faults``       set faults for one project
``DELETE`` on the two ``faults`` routes        clear them
``POST /_admin/reset``                        close live sessions (1001), forget journals, run-time faults,
                                               projects and saved histories (``{"keep_projects": true}`` keeps the last two)

Journal routes take the filters ``type`` (exact or glob, e.g. ``detector.*``),
``since`` and ``until`` (session seconds) and ``dir`` (``in`` / ``out``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Awaitable, Callable

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.config import FaultsConfig
from server.faults import FaultStore
from server.journal import JournalStore

ADMIN_PREFIX = "/_admin"
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def _problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "error": {"code": code, "message": message}}, status_code=status)


def journal_filters(query: Any) -> dict[str, Any] | str:
    """The journal filters of a query string, or the error message."""
    filters: dict[str, Any] = {}
    for name in ("type", "dir"):
        if query.get(name):
            filters[name] = query[name]
    for name in ("since", "until"):
        if query.get(name) not in (None, ""):
            try:
                filters[name] = float(query[name])
            except ValueError:
                return f"'{name}' must be a number of seconds on the session clock, got {query[name]!r}"
    return filters


def parse_faults(body: Any) -> FaultsConfig | str:
    """A ``faults`` block (a JSON object) as the model, or the error message."""
    try:
        return FaultsConfig.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors(include_url=False))
        return f"invalid faults block: {problems}"


def wipe_dir(root: Path) -> None:
    """Remove everything under ``root`` (kept itself)."""
    if root.is_dir():
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def reset_state(journals: JournalStore, faults: FaultStore, data_dir: Path, *, keep_projects: bool = False) -> None:
    """Forget journals and run-time faults; unless ``keep_projects``, also the
    projects and saved histories under ``data_dir``. Live sessions go on."""
    journals.reset()
    faults.clear()
    if not keep_projects:
        wipe_dir(Path(data_dir) / "projects")
        wipe_dir(Path(data_dir) / "history")


def admin_routes(journals: JournalStore, faults: FaultStore, data_dir: Path, *, remote: bool = False,
                 close_sessions: Callable[[], Awaitable[int]] | None = None) -> list[Route]:
    """The admin routes over a server's journals and faults; ``data_dir`` holds
    the projects and histories a reset removes; ``close_sessions`` closes the
    live sessions on a reset (returning how many)."""

    def local_only(handler):
        async def guarded(request: Request) -> JSONResponse:
            host = request.client.host if request.client else ""
            if not remote and host not in LOOPBACK:
                return _problem(403, "admin_loopback_only",
                                f"admin routes answer 127.0.0.1 only (request from {host}); start the server with --admin-remote to allow it")
            return await handler(request)
        return guarded

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            return _problem(400, "malformed_json", f"request body is not valid JSON: {exc}")

    async def sessions(request: Request) -> JSONResponse:
        return JSONResponse({"sessions": [j.header() for j in journals.sessions(request.query_params.get("project"))]})

    async def session_journal(request: Request) -> JSONResponse:
        filters = journal_filters(request.query_params)
        if isinstance(filters, str):
            return _problem(400, "bad_filter", filters)
        journal = journals.get(request.path_params["session_id"])
        if journal is None:
            return _problem(404, "unknown_session",
                            f"no journal kept for session {request.path_params['session_id']!r}; GET {ADMIN_PREFIX}/sessions lists them")
        return JSONResponse(journal.as_json(**filters))

    async def project_journal(request: Request) -> JSONResponse:
        filters = journal_filters(request.query_params)
        if isinstance(filters, str):
            return _problem(400, "bad_filter", filters)
        name = request.path_params["name"]
        return JSONResponse({"project": name, "sessions": [j.as_json(**filters) for j in journals.sessions(name)]})

    async def list_faults(request: Request) -> JSONResponse:
        return JSONResponse({"faults": {p: f.model_dump(exclude_none=True) for p, f in faults.all().items()}})

    async def set_faults(request: Request) -> JSONResponse:
        project = request.path_params.get("name", FaultStore.ALL)
        if request.method == "DELETE":
            faults.set(project, None)
            return JSONResponse({"project": project, "faults": None})
        body = await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        spec = parse_faults(body)
        if isinstance(spec, str):
            return _problem(422, "invalid_faults", spec)
        faults.set(project, spec)
        return JSONResponse({"project": project, "faults": spec.model_dump(exclude_none=True)})

    async def reset(request: Request) -> JSONResponse:
        body = await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        keep = bool(isinstance(body, dict) and body.get("keep_projects"))
        # Sessions first: their journals end before the journals are forgotten.
        closed = await close_sessions() if close_sessions is not None else 0
        reset_state(journals, faults, data_dir, keep_projects=keep)
        return JSONResponse({"reset": True, "kept_projects": keep, "closed_sessions": closed})

    p = ADMIN_PREFIX
    return [
        Route(f"{p}/sessions", local_only(sessions), methods=["GET"]),
        Route(f"{p}/sessions/{{session_id}}/journal", local_only(session_journal), methods=["GET"]),
        Route(f"{p}/projects/{{name}}/journal", local_only(project_journal), methods=["GET"]),
        Route(f"{p}/faults", local_only(list_faults), methods=["GET"]),
        Route(f"{p}/faults", local_only(set_faults), methods=["PUT", "DELETE"]),
        Route(f"{p}/projects/{{name}}/faults", local_only(set_faults), methods=["PUT", "DELETE"]),
        Route(f"{p}/reset", local_only(reset), methods=["POST"]),
    ]
