"""ASR decodes in worker processes: both cores serve, and the event loop keeps the GIL.

Why: in one process, every Whisper decode (CTranslate2 via faster-whisper)
and every session's audio path (the asyncio event loop) share one GIL, and
each slows the other: a final decode measured 0.47 s alone, 0.63-0.91 s with
a Python thread spinning in the same process, 0.38 s with the spinner in
another process. With decodes in worker processes the loop is the server
process's only busy thread, and the decodes of several sessions run side by
side on different cores (docs/bench.md has the load figures).

How: ``processes`` workers, each a one-process
:class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start
method (``fork`` would copy a process that has threads, whose locks may be
held mid-fork; ``spawn`` starts a clean interpreter the same way on every
OS). Each worker lowers its own OS priority (``os.nice``, so the server's
audio path wins the cores), loads the default engine and decodes a second of
noise once before it takes any job. The server keeps the queue of waiting
jobs itself and hands a job to an *idle* worker only, so it knows which
process runs what: it times the queue wait (``metrics.TimedJob``), drops the
job of a session that closed while it waited, and can kill and replace the
one worker whose decode hangs without touching the others (a Python process
pool cannot cancel a running call; killing the process is the only way to
get the core back). The next job goes to a worker from the pool's own
result thread, as soon as the worker is free: a busy event loop (the state
in which decodes pile up) never leaves a worker idle while jobs wait.

What crosses the boundary: the job with its PCM and an :class:`AsrSpec`
(engine name and options) instead of the engine object; each worker builds
the engine from the spec on first use and keeps it. A :class:`Transcript` or
:class:`JobFailed` comes back. Engines that cannot be rebuilt from a spec
(:func:`server.asr.engine_spec` says which) run in threads as before: the
processes are an optimisation, never a requirement.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

from server import logcontext, metrics
from server.asr import DEFAULT_ASR_ENGINE, AsrEngine, AsrSpec, engine_spec
from server.engines import warm_up_noise
from server.work import JobFailed, JobResult, TranscribeJob, run_job

log = logging.getLogger("refinery.asr_processes")

#: Workers run this many nice steps below the server (``python -m server --asr-process-nice``).
DEFAULT_NICE = 10
#: How often a worker checks that the server that started it is still there.
PARENT_POLL_S = 1.0
_SPAWN = multiprocessing.get_context("spawn")


# --- in the worker process --------------------------------------------------


def _init_worker(nice: int, log_level: int, parent_pid: int) -> None:
    if nice:
        os.nice(nice)
    logcontext.install(logging.getLevelName(log_level))
    # A server killed with SIGKILL cannot stop its workers; they notice and leave.
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="refinery-parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _warm(spec: AsrSpec | None) -> int:
    """Load and run the engine once; returns this worker's pid."""
    if spec is not None:
        engine = spec.build()
        engine.transcribe("warm-up", warm_up_noise(), 16000, final=True)
        engine.forget("warm-up")
    return os.getpid()


def _transcribe(spec: AsrSpec, session_id: str, job: TranscribeJob) -> JobResult:
    with logcontext.session_context(session_id):
        return run_job(replace(job, engine=spec.build()))


# --- in the server process --------------------------------------------------


@dataclass(eq=False)
class _Worker:
    executor: ProcessPoolExecutor
    pid: int | None = None
    started: float = field(default_factory=time.monotonic)
    ready: bool = False


@dataclass(eq=False)
class _Job:
    """A transcribe job on its way through the pool (guarded by the pool's lock)."""

    spec: AsrSpec
    session_id: str
    job: TranscribeJob  # engine None: rebuilt in the worker from ``spec``
    is_open: Callable[[], bool]
    timed: metrics.TimedJob
    loop: asyncio.AbstractEventLoop
    waiter: asyncio.Future
    attempts: int = 0
    dropped: bool = False  # the caller gave up: never start it, nobody reads its result
    worker: _Worker | None = None
    started: float | None = None  # time.monotonic() when a worker took it
    future: Future | None = None


def _worker_pid(executor: ProcessPoolExecutor) -> int | None:
    # Private, but the only handle on the process before it answers (Python <= 3.13
    # has no public way to kill a pool's workers; 3.14 adds kill_workers()).
    processes = getattr(executor, "_processes", None) or {}
    return next(iter(processes), None)


def _settle(waiter: asyncio.Future, value: JobResult | None) -> None:
    if not waiter.done():
        waiter.set_result(value)


class AsrProcesses:
    """``await processes.transcribe(job, spec, ...)``: the decode in a worker process.

    ``processes``: how many workers (>= 1). ``nice``: nice steps below the
    server for each worker (0-19). ``cpu_threads``: the threads each worker's
    engine decodes with, for engines that take a ``cpu_threads`` option
    (default: the machine's cores shared out among the workers). ``warm``:
    the engine each worker loads and runs at start (None: load nothing).
    Call :meth:`start` on the event loop that will await the jobs and
    :meth:`close` when the server stops.
    """

    def __init__(self, processes: int, *, nice: int = DEFAULT_NICE, cpu_threads: int | None = None,
                 warm: AsrSpec | None = AsrSpec(DEFAULT_ASR_ENGINE)) -> None:
        if processes < 1:
            raise ValueError(f"ASR processes must be >= 1, got {processes} (0 means decode in threads: make no pool)")
        if not 0 <= nice <= 19:
            raise ValueError(f"ASR process nice {nice} is out of range: use 0 (same priority as the server) to 19")
        self.processes = processes
        self.nice = nice
        self.cpu_threads = cpu_threads or max(1, (os.cpu_count() or 1) // processes)
        self.warm = None if warm is None else warm.with_options(cpu_threads=self.cpu_threads)
        self.replaced = 0  # workers killed or lost and started again (for /health and tests)
        self.decodes = 0  # jobs that came back from a worker
        # Reentrant: a job's done callback may run at once, inside submit, under the lock.
        self._lock = threading.RLock()
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._queue: deque[_Job] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._threads_option: dict[type, bool] = {}
        self._closed = False
        self._retired: list[_Worker] = []  # killed; reaped by close()

    # -- life cycle (on the event loop)

    def start(self) -> None:
        """Start the workers; they warm up in the background. Call on the server's event loop."""
        self._loop = asyncio.get_running_loop()
        for _ in range(self.processes):
            self._spawn()

    def close(self) -> None:
        """Kill every worker (they hold nothing worth saving) and reap it; idempotent."""
        self._closed = True
        for worker in list(self._workers):
            self._retire(worker, respawn=False)
        with self._lock:
            waiting, self._queue = list(self._queue), deque()
        for job in waiting:
            _settle(job.waiter, JobFailed(job.job.job_id, "transcribe engine failed: the server is stopping"))
        for worker in self._retired:
            # Killed: this is quick. The server reaps its own children (no zombie
            # outlives it) and the executors free their queues before exit.
            worker.executor.shutdown(wait=True)
        self._retired.clear()

    def pids(self) -> list[int]:
        """Process ids of the workers alive now (started, warming or serving)."""
        return sorted(w.pid for w in list(self._workers) if w.pid is not None)

    def ready(self) -> int:
        """How many workers have warmed up and serve."""
        return sum(w.ready for w in list(self._workers))

    def health(self) -> dict[str, object]:
        """What ``/health`` shows of the workers."""
        return {"pids": self.pids(), "ready": self.ready(), "nice": self.nice, "cpu_threads": self.cpu_threads,
                "decodes": self.decodes, "replaced": self.replaced, "queued": len(self._queue)}

    def available(self) -> bool:
        """False when closed or every worker failed: callers decode in threads instead."""
        return not self._closed and bool(self._workers)

    def _spawn(self) -> None:
        assert self._loop is not None
        executor = ProcessPoolExecutor(
            max_workers=1, mp_context=_SPAWN, initializer=_init_worker,
            initargs=(self.nice, logging.getLogger().getEffectiveLevel(), os.getpid()),
        )
        worker = _Worker(executor)
        warming = executor.submit(_warm, self.warm)  # starts the process
        worker.pid = _worker_pid(executor)
        with self._lock:
            self._workers.add(worker)
        task = self._loop.create_task(self._warm_up(worker, warming))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm_up(self, worker: _Worker, warming: Future) -> None:
        try:
            worker.pid = await asyncio.wrap_future(warming)
        except Exception as exc:  # no respawn: a worker that cannot load its engine would only fail again
            log.warning("ASR worker process %s failed to start (%s: %s)%s", worker.pid, type(exc).__name__, exc,
                        "" if len(self._workers) > 1 else "; ASR decodes run in threads")
            self._retire(worker, respawn=False)
            return
        if worker in self._workers:
            worker.ready = True
            log.info("ASR worker process %d ready in %.1f s (nice +%d, %d decode threads)", worker.pid,
                     time.monotonic() - worker.started, self.nice, self.cpu_threads)
            self._offer(worker)

    def _retire(self, worker: _Worker, *, respawn: bool) -> None:
        with self._lock:
            if worker not in self._workers:
                return
            self._workers.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            self._retired.append(worker)
        pid = _worker_pid(worker.executor) or worker.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.executor.shutdown(wait=False, cancel_futures=True)
        if respawn and not self._closed:
            self.replaced += 1
            self._spawn()

    # -- dispatch (any thread, under the lock)

    def _offer(self, worker: _Worker) -> None:
        """``worker`` is free: give it the next waiting job, or keep it idle."""
        with self._lock:
            if worker not in self._workers:
                return
            while self._queue:
                job = self._queue.popleft()
                if job.dropped:
                    continue
                if not job.is_open():  # the session closed while its job waited
                    job.loop.call_soon_threadsafe(_settle, job.waiter, None)
                    continue
                self._start(worker, job)
                return
            self._idle.append(worker)

    def _start(self, worker: _Worker, job: _Job) -> None:
        job.worker, job.started = worker, time.monotonic()
        begun = job.timed.begin()
        try:
            future = worker.executor.submit(_transcribe, job.spec, job.session_id, job.job)
        except (BrokenProcessPool, RuntimeError):  # the worker died while idle
            job.timed.end(begun)
            job.loop.call_soon_threadsafe(self._on_broken, worker, job)
            return
        job.future = future
        future.add_done_callback(lambda done: self._finished(worker, job, done, begun))

    def _finished(self, worker: _Worker, job: _Job, done: Future, begun: float) -> None:
        # In the executor's result thread: hand the worker its next job at once.
        job.timed.end(begun)
        error = None if done.cancelled() else done.exception()
        if done.cancelled() or isinstance(error, BrokenProcessPool):  # cancelled: its executor was retired
            job.loop.call_soon_threadsafe(self._on_broken, worker, job)
            return
        result = done.result() if error is None else JobFailed(
            job.job.job_id, f"transcribe engine failed in its worker process: {type(error).__name__}: {error}")
        with self._lock:
            self.decodes += 1
        job.loop.call_soon_threadsafe(_settle, job.waiter, result)
        self._offer(worker)

    def _on_broken(self, worker: _Worker, job: _Job) -> None:
        """On the loop: the worker died under ``job``; replace it and try the job once more."""
        if worker in self._workers:
            log.warning("ASR worker process %s died; replacing it", worker.pid)
        self._retire(worker, respawn=True)
        job.attempts += 1
        if job.dropped or job.waiter.done():
            return
        if job.attempts >= 2 or self._closed:
            _settle(job.waiter, JobFailed(job.job.job_id, "transcribe engine failed: its worker process died"))
            return
        with self._lock:
            job.worker = job.started = job.future = None
            self._queue.appendleft(job)
            idle = self._idle.pop() if self._idle else None
        if idle is not None:
            self._offer(idle)

    # -- jobs (on the event loop)

    def spec_for(self, engine: AsrEngine) -> AsrSpec | None:
        """The spec a worker rebuilds ``engine`` from (None: run it in a thread).

        Engines that take ``cpu_threads`` get this pool's per-worker count.
        """
        spec = engine_spec(engine)
        if spec is None:
            return None
        takes_threads = self._threads_option.get(type(engine))
        if takes_threads is None:
            takes_threads = "cpu_threads" in inspect.signature(type(engine)).parameters
            self._threads_option[type(engine)] = takes_threads
        return spec.with_options(cpu_threads=self.cpu_threads) if takes_threads else spec

    async def transcribe(self, job: TranscribeJob, spec: AsrSpec, *, timed: metrics.TimedJob, timeout_s: float,
                         is_open: Callable[[], bool], session_id: str) -> JobResult | None:
        """Run ``job`` (its engine rebuilt from ``spec``) in a worker; None when the session closed first.

        Raises TimeoutError after ``timeout_s`` (waiting for a worker included);
        the result is dropped then, and a worker still decoding ``timeout_s``
        after it started is killed and replaced. A worker that dies (killed,
        crashed) is replaced and the job tried once more.
        """
        assert self._loop is not None, "start() first"
        entry = _Job(spec, session_id, replace(job, engine=None), is_open, timed, self._loop, self._loop.create_future())
        with self._lock:
            self._queue.append(entry)
            idle = self._idle.pop() if self._idle else None
        if idle is not None:
            self._offer(idle)
        try:
            async with asyncio.timeout(timeout_s):
                # Shielded: the pool settles the waiter whatever happens to this task.
                return await asyncio.shield(entry.waiter)
        except BaseException:  # timed out, or the session's task was cancelled
            with self._lock:
                entry.dropped = True
                worker, started, future = entry.worker, entry.started, entry.future
            if future is not None and not future.done() and worker is not None and started is not None:
                self._loop.call_later(max(0.0, started + timeout_s - time.monotonic()),
                                      self._kill_if_running, worker, future)
            raise

    def _kill_if_running(self, worker: _Worker, future: Future) -> None:
        if not future.done() and worker in self._workers:
            log.warning("ASR worker process %s still decoding after the engine timeout; killed and replaced", worker.pid)
            self._retire(worker, respawn=True)
