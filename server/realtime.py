"""The realtime WebSocket: moves bytes between a client and a :class:`Session`
and drives the session on the wall clock.

Everything that decides anything lives in the session; this module parses
frames, stamps them with the monotonic clock, runs the session's jobs in worker
threads (ASR decodes in worker processes when the server has them,
:mod:`server.asr_processes`) and sends what the session returns, in order,
from one sender task.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import itertools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server import logcontext, metrics, priority
from server import protocol as proto
from server.config import load_project_config
from server.asr_processes import AsrProcesses
from server.engine_pool import EnginePool
from server.engines import build_engines
from server.faults import FaultPlan, FaultStore, JobFault
from server.history import ConversationHistory, HistoryStore
from server.journal import Journal, JournalStore
from server.limits import DEFAULT_LIMITS, Limits
from server.projects import ProjectStore, UnknownProject, name_problem
from server.recording import SessionRecorder
from server.security import origin_allowed
from server.session import SPECULATIVE_LEAD_S, PersistHistory, Send, Session, StartJob
from server.work import Job, JobFailed, JobResult, TranscribeJob, run_job

log = logging.getLogger("refinery.realtime")

PING_INTERVAL_S = 10.0
#: Optional decodes (partial transcripts, speculative finals) only while fewer
#: decodes than this are in flight in the whole process: under load they would
#: queue in front of final transcripts (voice-to-voice) for text nobody waits
#: for yet. The final is never skipped.
OPTIONAL_DECODES_MAX_IN_FLIGHT = 1
#: A speculative final decode starts this many times the longest recent final
#: decode (queueing included) before the turn would end, and never later than
#: ``server.session.SPECULATIVE_LEAD_S`` before it: on a loaded machine a
#: decode took 2 s, twice that lead (docs/asr.md).
SPECULATIVE_LEAD_FACTOR = 1.5
#: Final decodes that count as recent, process-wide.
RECENT_FINAL_DECODES = 8
#: How long a closing session waits for its cancelled tasks before it lets go
#: of them (its registry slot is already free by then).
CLEANUP_WAIT_S = 1.0
#: Engine work shares one pool: 2 cores gain nothing from more threads, and
#: the session's audio path never waits on it. Its threads run at the engine
#: nice (server.priority), below the event loop's audio path.
_POOL = EnginePool(workers=4, initializer=priority.lower_engine_thread)
#: Sessions open here: building a session's engines may load a model, and the
#: threads a model creates inherit this thread's nice (server.priority).
_OPENER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="refinery-open", initializer=priority.lower_engine_thread)


class SessionRegistry:
    """Live sessions, for limits and the inspection API."""

    def __init__(self, limit: int, per_project: int | None = None) -> None:
        self.limit = limit
        self.per_project = limit if per_project is None else per_project
        self._live: dict[str, Session] = {}

    def refusal(self, project: str) -> str | None:
        """Why one more session on ``project`` would go over a limit, or None."""
        if len(self._live) >= self.limit:
            return f"server is at its limit of {self.limit} sessions (limit max_sessions); retry later"
        if sum(s.project == project for s in self._live.values()) >= self.per_project:
            return (f"project {project!r} is at its limit of {self.per_project} sessions "
                    "(limit max_sessions_per_project); retry later")
        return None

    def add(self, session: Session) -> bool:
        if self.refusal(session.project) is not None:
            return False
        self._live[session.session_id] = session
        return True

    def remove(self, session_id: str) -> None:
        """Forget a session; idempotent."""
        self._live.pop(session_id, None)

    def count(self) -> int:
        return len(self._live)

    def inspect(self, session_id: str) -> dict[str, Any] | None:
        session = self._live.get(session_id)
        return None if session is None else session.inspect()

    def inspect_all(self) -> list[dict[str, Any]]:
        return [s.inspect() for s in list(self._live.values())]


_session_ids = itertools.count(1)
_final_decodes: collections.deque[float] = collections.deque(maxlen=RECENT_FINAL_DECODES)
#: ``speculative_lead_s(_final_decodes)``, kept up to date when a final decode ends
#: (not recomputed for every audio message).
_lead_s = SPECULATIVE_LEAD_S


def speculative_lead_s(recent_decodes_s: Iterable[float]) -> float:
    """How long before the turn would end its speculative final decode should start
    (seconds), from the durations of recent final decodes (seconds, queueing included):
    ``SPECULATIVE_LEAD_FACTOR`` times the longest, at least ``SPECULATIVE_LEAD_S``."""
    return max([SPECULATIVE_LEAD_S, *(SPECULATIVE_LEAD_FACTOR * s for s in recent_decodes_s)])


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
                 journals: JournalStore | None = None, faults: FaultStore | None = None,
                 asr_processes: AsrProcesses | None = None) -> None:
        self.settings = settings
        self.asr_processes = asr_processes
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
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, self.settings.allowed_origins):
            shown = origin if len(origin) <= 80 else origin[:80] + "..."
            await _deny(websocket, 403, "origin_refused",
                        f"origin {shown!r} may not open sessions (cross-site WebSocket); start the server "
                        "with --allow-origin ORIGIN to allow that page")
            return
        reason = self.check_key(self.settings, websocket.headers)
        if reason:
            await _deny(websocket, 401, "unauthorized", reason)
            return
        name, _, version = params["project"].partition(":")
        uuid = params["uuid"]
        limits = self.settings.limits
        if problem := name_problem(uuid, "session uuid", limits.max_uuid_chars, "max_uuid_chars"):
            await _deny(websocket, 400, "bad_uuid", problem)
            return
        try:
            stored = self.projects.get(name, int(version) if version else None)
        except (UnknownProject, ValueError) as exc:
            await _deny(websocket, 404, "unknown_project", str(exc))
            return
        if refusal := self.registry.refusal(stored.name):
            await _deny(websocket, 503, "too_many_sessions", refusal)
            return
        await websocket.accept()
        try:
            call = functools.partial(contextvars.copy_context().run, self._open_session, stored, uuid)
            session = await asyncio.get_running_loop().run_in_executor(_OPENER, call)
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
        connection = SessionConnection(
            websocket, session, self.histories, self.settings.ping_interval_s, limits=limits,
            on_close=lambda: self.registry.remove(session.session_id), journal=journal, faults=plan, recorder=recorder,
            asr_processes=self.asr_processes,
        )
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
        session = Session(
            config, engines, session_id=f"sess_{next(_session_ids)}", project=stored.name, uuid=uuid, history=history
        )
        session.speculative_finals = getattr(self.settings, "speculative_finals", True)
        return session


#: Close code for a client dropped by a limit (RFC 6455 1008, policy violation).
CLOSE_LIMIT = 1008


class AudioBudget:
    """Token bucket bounding input audio to real time plus ``ahead_s`` seconds.

    Credit (seconds of audio) accrues at 1 s per wall-clock second, capped at
    ``ahead_s``, and starts full: a client may burst ``ahead_s`` of audio at
    once, then no faster than real time on average.
    """

    def __init__(self, ahead_s: float, t: float) -> None:
        self.ahead_s = ahead_s
        self.credit = ahead_s
        self.t = t

    def take(self, t: float, duration_s: float) -> bool:
        """Whether ``duration_s`` of audio arriving at ``t`` fits (and spend it)."""
        self.credit = min(self.ahead_s, self.credit + (t - self.t))
        self.t = t
        if duration_s > self.credit:
            return False
        self.credit -= duration_s
        return True


class SessionConnection:
    """Runs one session over one accepted WebSocket until either side leaves.

    Slow clients: events wait in an outbox as serialized text. When more than
    ``limits.max_send_queue_bytes`` wait, or one send blocks longer than
    ``limits.max_send_stall_s``, the session is closed with code 1008 and a
    reason naming the limit; other sessions never wait on it.
    """

    def __init__(
        self,
        websocket: WebSocket,
        session: Session,
        histories: HistoryStore,
        ping_interval_s: float = PING_INTERVAL_S,
        *,
        limits: Limits = DEFAULT_LIMITS,
        on_close: Callable[[], None] = lambda: None,
        journal: Journal | None = None,
        faults: FaultPlan | None = None,
        recorder: SessionRecorder | None = None,
        asr_processes: AsrProcesses | None = None,
    ) -> None:
        self.ws = websocket
        self.asr_processes = asr_processes
        self.limits = limits
        self.on_close = on_close
        self.journal = journal
        self.faults = faults
        self.recorder = recorder
        self.ping_interval_s = ping_interval_s
        self.session = session
        self.histories = histories
        self.t0 = time.monotonic()
        self.outbox: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
        self.queued_bytes = 0
        self.failure: tuple[int, str] | None = None
        self.failed = asyncio.Event()
        self.audio_budget = AudioBudget(limits.max_audio_ahead_s, self.now())
        self.dropping_audio = False
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
                self._enqueue(out.event)
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
    def _enqueue(self, event: dict[str, Any]) -> None:
        # Serialized once, here: the outbox limit counts the bytes that will go out.
        text = json.dumps(event, separators=(",", ":"))
        self.queued_bytes += len(text)
        self.outbox.put_nowait((event, text))
        metrics.SessionReporter.on_event(event)
        if self.queued_bytes > self.limits.max_send_queue_bytes:
            self._fail(CLOSE_LIMIT, f"client not reading: {self.queued_bytes} bytes queued (limit max_send_queue_bytes)")

    def _fail(self, code: int, reason: str) -> None:
        """End the session from inside (a limit): close with ``code`` and ``reason``."""
        if self.failure is None:
            log.warning("session %s closed by the server (%d): %s", self.session.session_id, code, reason)
            self.failure = (code, reason)
            self.failed.set()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _run_if_open(self, call: Callable[[], JobResult]) -> JobResult | None:
        # Runs in a pool thread: the jobs of a session whose client has gone
        # are dropped when their turn comes, not run for nobody.
        return None if self.closed else call()

    async def _run_in_pool(self, job: Job, fail: str | None = None) -> JobResult | None:
        # Timed for the metrics; run in a copy of this task's context so the
        # engine's log lines carry the session id.
        timed = metrics.TimedJob(functools.partial(run_job, fail=fail), job, time.monotonic)
        try:
            processes = self.asr_processes
            if (fail is None and isinstance(job, TranscribeJob) and processes is not None and processes.available()
                    and (spec := processes.spec_for(job.engine)) is not None):
                return await processes.transcribe(job, spec, timed=timed, timeout_s=self.limits.engine_timeout_s,
                                                  is_open=lambda: not self.closed, session_id=self.session.session_id)
            call = functools.partial(contextvars.copy_context().run, timed)
            return await _POOL.run(self._run_if_open, call, timeout_s=self.limits.engine_timeout_s)
        except TimeoutError:
            return JobFailed(job.job_id, f"{job.kind} engine timed out after {self.limits.engine_timeout_s:g} s "
                                         "(limit engine_timeout_s)")
        finally:
            timed.abandon()

    async def _run_job(self, job: Job) -> None:
        global _lead_s  # the process-wide speculative lead, updated when a final decode ends
        started = self.now()
        fault = self.faults.for_job(started, job.kind) if self.faults is not None else JobFault()
        if job.kind == "transcribe":
            async with self.asr_lock:
                result = await self._run_in_pool(job, fault.fail)
                await asyncio.sleep(fault.delay_s)
        else:
            result = await self._run_in_pool(job, fault.fail)
            await asyncio.sleep(fault.delay_s)
        if isinstance(job, TranscribeJob) and job.final:
            _final_decodes.append(self.now() - started)
            _lead_s = speculative_lead_s(_final_decodes)
        if self.journal is not None:
            # Real engine time (queueing included): what a replay uses as this job's latency.
            self.journal.record(self.now(), "job", kind=job.kind, job_id=job.job_id, started_t=round(started, 6),
                                ms=round((self.now() - started) * 1000, 3))
        if result is not None and not self.closed:
            self.dispatch(self.session.job_done(self.now(), result))

    async def _sender(self) -> None:
        while True:
            event, text = await self.outbox.get()
            if self.faults is not None:
                if await self._fault_before_send(event):
                    return
                copies = self.faults.on_send(self.now(), event)
            else:
                copies = [event]
            for copy in copies:
                if self.journal is not None:
                    self.journal.sent(self.now(), copy)
                try:
                    async with asyncio.timeout(self.limits.max_send_stall_s):
                        await self.ws.send_text(text if copy is event else json.dumps(copy, separators=(",", ":")))
                except TimeoutError:
                    self._fail(CLOSE_LIMIT, f"client not reading for {self.limits.max_send_stall_s:g} s (limit max_send_stall_s)")
                    return
                if self.faults is not None:
                    self.faults.sent(copy)
            self.queued_bytes -= len(text)

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
        # A loop timer sets ``wake`` instead of ``asyncio.wait_for``: on Python
        # 3.11 wait_for can swallow a cancel that lands in the same loop step
        # as its wake-up (fixed in 3.12), and this task must end when cancelled.
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.session.next_deadline()
            self.wake.clear()
            if deadline is not None and deadline <= self.now():
                self.dispatch(self.session.tick(self.now()))
                await asyncio.sleep(0)  # a tick that leaves the deadline due must not spin the loop
                continue
            timer = None if deadline is None else loop.call_later(deadline - self.now(), self.wake.set)
            try:
                await self.wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            self._enqueue(proto.ping())

    async def _receiver(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            msg = self._within_audio_budget(proto.parse_client_message(data, self.limits))
            if msg is None:
                continue
            t = self.now()
            if isinstance(msg, proto.AudioAppend):
                metrics.INPUT_LAG.observe(self.input_lag.push(t, len(msg.pcm) // 2))
                self.session.asr_busy = metrics.in_flight("transcribe") >= OPTIONAL_DECODES_MAX_IN_FLIGHT
                self.session.speculative_lead_s = _lead_s
            if self.journal is not None:
                self.journal.received_message(t, msg)
            if self.recorder is not None:
                self.recorder.received(t, msg)
            self.dispatch(self.session.receive(t, msg))

    def _within_audio_budget(self, msg: proto.ClientMessage | proto.BadFrame) -> proto.ClientMessage | proto.BadFrame | None:
        """Audio beyond real time + ``max_audio_ahead_s`` is dropped: one warning per run of drops."""
        if not isinstance(msg, proto.AudioAppend):
            return msg
        if self.audio_budget.take(self.now(), len(msg.pcm) / 2 / self.session.sample_rate):
            self.dropping_audio = False
            return msg
        if self.dropping_audio:
            return None
        self.dropping_audio = True
        return proto.BadFrame(
            "audio_too_fast",
            f"audio arrives faster than real time beyond {self.limits.max_audio_ahead_s:g} s ahead "
            "(limit max_audio_ahead_s); dropped until it slows to real time",
        )

    async def run(self) -> None:
        with logcontext.session_context(self.session.session_id):
            await self._run()

    async def _run(self) -> None:
        metrics.SESSIONS.inc()
        metrics.SESSIONS_ACTIVE.inc()
        self.dispatch(self.session.start(self.now()))
        receiver = asyncio.create_task(self._receiver())
        failed = asyncio.create_task(self.failed.wait())
        workers = [receiver, failed, *(asyncio.create_task(c) for c in (self._sender(), self._timers(), self._pinger()))]
        try:
            await asyncio.wait({receiver, failed}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():
                receiver.result()  # raises what the receiver raised
            else:
                receiver.cancel()
                code, reason = self.failure or (1011, "server error")
                # Bounded: the client may not be reading, so even the close frame may not go out.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLEANUP_WAIT_S):
                        await self.ws.close(code=code, reason=reason[:120])
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("session %s failed; closing it with 1011", self.session.session_id)
            if self.ws.client_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLEANUP_WAIT_S):
                        await self.ws.send_text(
                            json.dumps(proto.error("internal_error", "the server failed on this session; see its log"))
                        )
                        await self.ws.close(code=1011)
        finally:
            # Release the session's slot before awaiting anything, so nothing
            # below (a task slow to honour its cancel) can leak it.
            self.closed = True
            metrics.SESSIONS_ACTIVE.dec()
            self.on_close()
            self.session.close()
            pending = [*workers, *self.tasks]
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=CLEANUP_WAIT_S)
                if stuck:
                    log.warning("session %s: %d task(s) still ending after cancel", self.session.session_id, len(stuck))
            for result in await asyncio.gather(*self.saves, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("session %s: saving history failed: %s", self.session.session_id, result)
            log.info("session %s closed (%s)", self.session.session_id, self.session.counters)
