"""Prometheus metrics of the server (``GET /metrics``), with ``prometheus_client``.

The sans-I/O session keeps its own counts (``Session.counters``, the
detector's ``BargeInStats``); the realtime driver reports them here, together
with what only the driver sees: wall-clock input lag and engine queueing.
All durations are in seconds (Prometheus convention). One process-wide
registry of our own (not the library's default one) so that tests can build
several apps in one process and read exactly these metrics.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 - re-exported for the route

REGISTRY = CollectorRegistry(auto_describe=True)

#: Input lag and decision buckets: a frame is 30 ms; real time is lost well before 1 s.
_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
_DECISION_BUCKETS = (0.3, 0.4, 0.45, 0.48, 0.51, 0.54, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)
_JOB_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

SESSIONS_ACTIVE = Gauge("refinery_sessions_active", "Realtime sessions open now", registry=REGISTRY)
SESSIONS = Counter("refinery_sessions", "Realtime sessions opened", registry=REGISTRY)
TURNS = Counter("refinery_turns", "Responses started (one per user turn)", registry=REGISTRY)
INTERRUPTS = Counter("refinery_interrupts", "response.interrupted events sent (confirmed barge-ins)", registry=REGISTRY)
CANDIDATES_REJECTED = Counter(
    "refinery_bargein_candidates_rejected",
    "Barge-in candidates (the window rule fired) that the neural confirmation turned down",
    registry=REGISTRY,
)
ECHO_GATED = Counter(
    "refinery_echo_gated_frames",
    "Input frames the frame VAD called speech and the echo gate ruled echo (never counted in the barge-in window)",
    registry=REGISTRY,
)
SPECULATIVE_FINALS = Counter(
    "refinery_speculative_finals",
    "Speculative final decodes (run during the end-of-turn silence) by outcome: used as the final "
    "transcript, or wasted (speech resumed, the turn was cut or dropped, the decode failed)",
    ["outcome"],
    registry=REGISTRY,
)
DECISION_LATENCY = Histogram(
    "refinery_interrupt_decision_seconds",
    "Speech onset -> interrupt decision, on the session's clock",
    buckets=_DECISION_BUCKETS,
    registry=REGISTRY,
)
DECISION_OVERHEAD = Histogram(
    "refinery_interrupt_overhead_seconds",
    "Interrupt decision minus its floor (the window rule on unbroken speech from the onset)",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
INPUT_LAG = Histogram(
    "refinery_input_lag_seconds",
    "How late an input audio chunk is processed, relative to the earliest chunk of its stream",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
JOB_WAIT = Histogram(
    "refinery_engine_queue_wait_seconds", "Engine job: submitted -> started", ["kind"], buckets=_JOB_BUCKETS, registry=REGISTRY
)
JOB_RUN = Histogram(
    "refinery_engine_job_seconds", "Engine job run time (ASR decode, agent text, TTS)", ["kind"], buckets=_JOB_BUCKETS, registry=REGISTRY
)
JOBS_QUEUED = Gauge("refinery_engine_jobs_queued", "Engine jobs submitted and not started yet", registry=REGISTRY)
JOBS_RUNNING = Gauge("refinery_engine_jobs_running", "Engine jobs running now", registry=REGISTRY)
SEND_QUEUE = Gauge("refinery_send_queue_events", "Events waiting in sessions' send queues", registry=REGISTRY)
_SEND_QUEUES: "weakref.WeakSet[Any]" = weakref.WeakSet()
SEND_QUEUE.set_function(lambda: float(sum(q.qsize() for q in list(_SEND_QUEUES))))


def watch_send_queue(queue: Any) -> None:
    """Count ``queue`` (anything with ``qsize()``) in ``SEND_QUEUE`` while it lives."""
    _SEND_QUEUES.add(queue)


def render() -> bytes:
    """The registry in Prometheus text format (``CONTENT_TYPE``)."""
    return generate_latest(REGISTRY)


class InputLag:
    """Wall-clock lateness of one input audio stream.

    A client streaming in real time sends sample ``n`` at ``t_start + n / rate``.
    Chunk ``k``, processed at ``t_k`` with ``S_k`` samples received through
    it, is ``lag_k = (t_k - S_k / rate) - min_{j<=k}(t_j - S_j / rate)`` late:
    how much later than the stream's least-delayed chunk it got processed.
    This measures queueing in front of the session (the event loop, the
    socket) without knowing the client's clock; a client that falls behind
    real time shows up too, so load generators report their own send lag.
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.samples = 0
        self._best: float | None = None

    def push(self, t: float, n_samples: int) -> float:
        """Chunk of ``n_samples`` processed at ``t`` (s); returns its lag in seconds (>= 0)."""
        self.samples += n_samples
        offset = t - self.samples / self.sample_rate
        if self._best is None or offset < self._best:
            self._best = offset
        return offset - self._best


@dataclass
class SessionReporter:
    """Reports one session's own counts as they grow (the driver calls :meth:`update`)."""

    seen: dict[str, float] = field(default_factory=dict)

    def _delta(self, key: str, value: float) -> float:
        before = self.seen.get(key, 0.0)
        self.seen[key] = value
        return max(0.0, value - before)

    def update(self, session: Any) -> None:
        """Add what ``session`` (a :class:`server.session.Session`) counted since the last call."""
        detector = getattr(session, "detector", None)
        if detector is not None:
            if d := self._delta("dropped", detector.stats.dropped):
                CANDIDATES_REJECTED.inc(d)
        if d := self._delta("echo_gated", session.counters.get("echo_gated_frames", 0)):
            ECHO_GATED.inc(d)
        if d := self._delta("responses", session.counters.get("responses", 0)):
            TURNS.inc(d)
        for outcome in ("used", "wasted"):
            if d := self._delta(f"speculative_{outcome}", session.counters.get(f"speculative_{outcome}", 0)):
                SPECULATIVE_FINALS.labels(outcome).inc(d)

    @staticmethod
    def on_event(event: dict[str, Any]) -> None:
        """Count an event the session sends (interrupts with their decision fields)."""
        if event.get("type") != "response.interrupted":
            return
        INTERRUPTS.inc()
        decision = event.get("decision_latency_ms")
        floor = event.get("decision_floor_ms")
        if isinstance(decision, (int, float)):
            DECISION_LATENCY.observe(decision / 1000)
            if isinstance(floor, (int, float)):
                DECISION_OVERHEAD.observe(max(0.0, decision - floor) / 1000)


_in_flight: dict[str, int] = {}
_in_flight_lock = threading.Lock()


def in_flight(kind: str) -> int:
    """Engine jobs of ``kind`` submitted and not finished, process-wide (waiting or running)."""
    return _in_flight.get(kind, 0)


def _count(kind: str, step: int) -> None:
    with _in_flight_lock:
        _in_flight[kind] = _in_flight.get(kind, 0) + step


class TimedJob:
    """An engine job to run in a pool, timed for ``JOB_WAIT`` / ``JOB_RUN`` and the queue gauges.

    Call the object in the worker; if it never runs (the session closed and
    the pool dropped it), call :meth:`abandon` so the queue gauge stays right.
    """

    def __init__(self, fn: Any, job: Any, clock: Any) -> None:
        self.fn, self.job, self.clock = fn, job, clock
        self.kind = str(getattr(job, "kind", "job"))
        self.submitted = clock()
        self.started = False
        self._lock = threading.Lock()  # the worker and the event loop may race on `started`
        self._finished = False
        JOBS_QUEUED.inc()
        _count(self.kind, +1)

    def _take(self) -> bool:
        with self._lock:
            first, self.started = not self.started, True
        if first:
            JOBS_QUEUED.dec()
        return first

    def __call__(self) -> Any:
        with self.running():
            return self.fn(self.job)

    @contextmanager
    def running(self) -> Iterator[None]:
        """The job runs inside."""
        start = self.begin()
        try:
            yield
        finally:
            self.end(start)

    def begin(self) -> float:
        """The job starts now (somewhere else: a worker process); returns the start for :meth:`end`."""
        start = self.clock()
        self._take()
        JOBS_RUNNING.inc()
        JOB_WAIT.labels(self.kind).observe(start - self.submitted)
        return start

    def end(self, start: float) -> None:
        """The job that :meth:`begin` started is over (any thread)."""
        JOBS_RUNNING.dec()
        JOB_RUN.labels(self.kind).observe(self.clock() - start)

    def abandon(self) -> None:
        """The job is over (ran, or will never run): take it off the gauges (idempotent)."""
        self._take()
        with self._lock:
            first, self._finished = not self._finished, True
        if first:
            _count(self.kind, -1)
