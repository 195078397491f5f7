"""The realtime WebSocket: moves bytes between a client and a :class:`Session`
and drives the session on the wall clock.

Everything that decides anything lives in the session; this module parses
frames, stamps them with the monotonic clock, runs the session's jobs in worker
threads and sends what the session returns, in order, from one sender task.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server import logcontext, metrics
from server import protocol as proto
from server.config import load_project_config
from server.engines import build_engines
from server.faults import FaultPlan, FaultStore, JobFault
from server.history import ConversationHistory, HistoryStore
from server.journal import Journal, JournalStore
from server.recording import SessionRecorder
from server.projects import NAME_RE, ProjectStore, UnknownProject
from server.session import PersistHistory, Send, Session, StartJob
from server.work import Job, run_job

log = logging.getLogger("refinery.realtime")

PING_INTERVAL_S = 10.0
#: Partial transcripts only while fewer decodes than this are in flight in the
#: whole process: under load they would queue in front of final transcripts
#: (voice-to-voice) for text nobody waits for. The final is never skipped.
PARTIALS_MAX_DECODES_IN_FLIGHT = 1
#: Engine work shares one pool: 2 cores gain nothing from more threads, and
#: the session's audio path never waits on it.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="refinery-engine")


class SessionRegistry:
    """Live sessions, for limits and the inspection API."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._live: dict[str, Session] = {}

    def add(self, session: Session) -> bool:
        if len(self._live) >= self.limit:
            return False
        self._live[session.session_id] = session
        return True

    def remove(self, session_id: str) -> None:
        self._live.pop(session_id, None)

    def count(self) -> int:
        return len(self._live)

    def inspect(self, session_id: str) -> dict[str, Any] | None:
        session = self._live.get(session_id)
        return None if session is None else session.inspect()

    def inspect_all(self) -> list[dict[str, Any]]:
        return [s.inspect() for s in list(self._live.values())]


_session_ids = itertools.count(1)


async def _deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse a WebSocket handshake with an HTTP status (the SDK raises on it)."""
    log.warning("realtime connection refused (%d %s): %s", status, code, message)
    try:
        await websocket.send_denial_response(
            JSONResponse({"detail": message, "error": {"code": code, "message": message}}, status_code=status)
        )
    except RuntimeError:
        # The ASGI server cannot send a denial body: a plain close maps to HTTP 403.
        await websocket.close(code=1008, reason=message[:120])


class RealtimeEndpoint:
    """ASGI endpoint of ``/distiller/realtime/{account}/{project}/{uuid}``."""

    def __init__(self, settings, projects: ProjectStore, histories: HistoryStore, registry: SessionRegistry, check_key: Callable,
                 journals: JournalStore | None = None, faults: FaultStore | None = None) -> None:
        self.settings = settings
        self.journals = journals
        self.faults = faults
        self.projects = projects
        self.histories = histories
        self.registry = registry
        self.check_key = check_key
        self.connections: set[SessionConnection] = set()  # live ones, for close_all

    async def __call__(self, scope, receive, send) -> None:
        websocket = WebSocket(scope, receive, send)
        params = websocket.path_params
        reason = self.check_key(self.settings, websocket.headers)
        if reason:
            await _deny(websocket, 401, "unauthorized", reason)
            return
        name, _, version = params["project"].partition(":")
        uuid = params["uuid"]
        if not NAME_RE.match(uuid):
            await _deny(websocket, 400, "bad_uuid", f"session uuid {uuid!r} must match ^[A-Za-z0-9_-]+$")
            return
        try:
            stored = self.projects.get(name, int(version) if version else None)
        except (UnknownProject, ValueError) as exc:
            await _deny(websocket, 404, "unknown_project", str(exc))
            return
        if self.registry.count() >= self.registry.limit:
            await _deny(websocket, 503, "too_many_sessions", f"server is at its limit of {self.registry.limit} sessions; retry later")
            return
        await websocket.accept()
        try:
            session = await asyncio.to_thread(self._open_session, stored, uuid)
        except Exception as exc:  # any engine that cannot start (a Vosk model missing, ...) ends here
            message = f"cannot start a session for project {name!r}: {exc}"
            log.error(message)
            await websocket.send_text(json.dumps(proto.error("session_setup_failed", message)))
            await websocket.close(code=1011)
            return
        if not self.registry.add(session):
            await websocket.send_text(json.dumps(proto.error("too_many_sessions", "server is at its session limit")))
            await websocket.close(code=1008)
            return
        journal = plan = None
        if self.journals is not None:
            journal = self.journals.open(session.session_id, session.project, session.uuid,
                                         input_rate=session.sample_rate, output_rate=session.output_rate)
            session.attach_journal(journal)
        if self.faults is not None:
            plan = self.faults.plan_for(session.project, session.config.faults, journal, output_rate=session.output_rate)
        record_dir = getattr(self.settings, "record_dir", None)
        recorder = None if record_dir is None else SessionRecorder(
            record_dir, session_id=session.session_id, project=stored.name, project_version=stored.version,
            uuid=uuid, config=stored.config, sample_rate=session.sample_rate)
        connection = SessionConnection(websocket, session, self.histories, self.settings.ping_interval_s,
                                       journal=journal, faults=plan, recorder=recorder)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            self.registry.remove(session.session_id)
            if journal is not None:
                self.journals.end(journal)
            if recorder is not None:
                recorder.close(journal)

    async def close_all(self, code: int = 1001, reason: str = "refinery-mock reset") -> int:
        """Close every live session's socket (the admin reset); returns how many."""
        live = list(self.connections)
        for connection in live:
            if connection.ws.client_state == WebSocketState.CONNECTED:
                try:
                    await connection.ws.close(code=code, reason=reason)
                except RuntimeError:  # the client left at the same moment
                    pass
        return len(live)

    def _open_session(self, stored, uuid: str) -> Session:
        config = load_project_config(stored.config).config
        history = None
        if config.memory_config.save_config.auto_load:
            history = self.histories.load(stored.name, uuid)
        engines = build_engines(config, brain=self.settings.brain, **getattr(self.settings, "engine_overrides", {}))
        return Session(
            config, engines, session_id=f"sess_{next(_session_ids)}", project=stored.name, uuid=uuid, history=history
        )


class SessionConnection:
    """Runs one session over one accepted WebSocket until either side leaves."""

    def __init__(
        self, websocket: WebSocket, session: Session, histories: HistoryStore, ping_interval_s: float = PING_INTERVAL_S,
        *, journal: Journal | None = None, faults: FaultPlan | None = None, recorder: SessionRecorder | None = None,
    ) -> None:
        self.ws = websocket
        self.journal = journal
        self.faults = faults
        self.recorder = recorder
        self.ping_interval_s = ping_interval_s
        self.session = session
        self.histories = histories
        self.t0 = time.monotonic()
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.wake = asyncio.Event()
        self.asr_lock = asyncio.Lock()  # ASR calls of one session run in order
        self.tasks: set[asyncio.Task] = set()
        self.saves: list[asyncio.Task] = []
        self.closed = False
        metrics.watch_send_queue(self.outbox)
        self.input_lag = metrics.InputLag()
        self.reporter = metrics.SessionReporter()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def dispatch(self, outputs: list) -> None:
        """Act on what the session returned. Never awaits: order is kept."""
        for out in outputs:
            if isinstance(out, Send):
                self.outbox.put_nowait(out.event)
                metrics.SessionReporter.on_event(out.event)
            elif isinstance(out, StartJob):
                self._spawn(self._run_job(out.job))
            elif isinstance(out, PersistHistory):
                # Saves are awaited, never cancelled, on close: history must not be lost.
                previous = self.saves[-1] if self.saves else None
                self.saves.append(asyncio.get_running_loop().create_task(self._save(out.history, previous)))
        self.reporter.update(self.session)
        self.wake.set()

    async def _save(self, history: ConversationHistory, previous: asyncio.Task | None) -> None:
        # One save after the other: a late change (a cut after response.done)
        # must not be overwritten by an older history finishing its write last.
        if previous is not None:
            await asyncio.wait({previous})  # its failure is logged on close
        await asyncio.to_thread(self.histories.save, self.session.project, self.session.uuid, history)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_job(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        started = self.now()
        fault = self.faults.for_job(started, job.kind) if self.faults is not None else JobFault()
        timed = metrics.TimedJob(functools.partial(run_job, fail=fault.fail), job, time.monotonic)
        try:
            if job.kind == "transcribe":
                async with self.asr_lock:
                    result = await loop.run_in_executor(_POOL, contextvars.copy_context().run, timed)
                    await asyncio.sleep(fault.delay_s)
            else:
                result = await loop.run_in_executor(_POOL, contextvars.copy_context().run, timed)
                await asyncio.sleep(fault.delay_s)
        finally:
            timed.abandon()
        if self.journal is not None:
            # Real engine time (queueing included): what a replay uses as this job's latency.
            self.journal.record(self.now(), "job", kind=job.kind, job_id=job.job_id, started_t=round(started, 6),
                                ms=round((self.now() - started) * 1000, 3))
        if not self.closed:
            self.dispatch(self.session.job_done(self.now(), result))

    async def _sender(self) -> None:
        while True:
            event = await self.outbox.get()
            if event is None:
                return
            if self.faults is not None:
                if await self._fault_before_send(event):
                    return
                copies = self.faults.on_send(self.now(), event)
            else:
                copies = [event]
            for copy in copies:
                if self.journal is not None:
                    self.journal.sent(self.now(), copy)
                await self.ws.send_text(json.dumps(copy, separators=(",", ":")))
                if self.faults is not None:
                    self.faults.sent(copy)

    async def _fault_before_send(self, event: dict[str, Any]) -> bool:
        """Apply a stall or a close due before ``event``; True when the socket was closed."""
        assert self.faults is not None
        close = self.faults.close_before(self.now(), event)
        if close is not None:
            try:
                await self.ws.close(code=close[0], reason=close[1][:120])
            except RuntimeError:  # the client already left
                pass
            return True
        await asyncio.sleep(self.faults.stall_before(self.now(), event))
        return False

    async def _timers(self) -> None:
        while True:
            deadline = self.session.next_deadline()
            self.wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - self.now())
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                self.dispatch(self.session.tick(self.now()))

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            self.outbox.put_nowait(proto.ping())

    async def _receiver(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            msg = proto.parse_client_message(data)
            t = self.now()
            if isinstance(msg, proto.AudioAppend):
                metrics.INPUT_LAG.observe(self.input_lag.push(t, len(msg.pcm) // 2))
                self.session.partial_transcripts = metrics.in_flight("transcribe") < PARTIALS_MAX_DECODES_IN_FLIGHT
            if self.journal is not None:
                self.journal.received_message(t, msg)
            if self.recorder is not None:
                self.recorder.received(t, msg)
            self.dispatch(self.session.receive(t, msg))

    async def run(self) -> None:
        with logcontext.session_context(self.session.session_id):
            await self._run()

    async def _run(self) -> None:
        metrics.SESSIONS.inc()
        metrics.SESSIONS_ACTIVE.inc()
        self.dispatch(self.session.start(self.now()))
        workers = [asyncio.create_task(c) for c in (self._sender(), self._timers(), self._pinger())]
        try:
            await self._receiver()
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("session %s failed; closing it with 1011", self.session.session_id)
            if self.ws.client_state == WebSocketState.CONNECTED:
                try:
                    await self.ws.send_text(json.dumps(proto.error("internal_error", "the server failed on this session; see its log")))
                    await self.ws.close(code=1011)
                except Exception:
                    pass
        finally:
            self.closed = True
            metrics.SESSIONS_ACTIVE.dec()
            self.session.close()
            for task in [*workers, *self.tasks]:
                task.cancel()
            await asyncio.gather(*workers, *self.tasks, return_exceptions=True)
            for result in await asyncio.gather(*self.saves, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("session %s: saving history failed: %s", self.session.session_id, result)
            log.info("session %s closed (%s)", self.session.session_id, self.session.counters)
