"""Drive a :class:`~server.session.Session` on a virtual clock.

Jobs run inline (real engines, real audio) but complete at a *modelled* time
(:class:`JobLatency`), so the same inputs always give the same events at the
same times, however loaded the machine is. Used by the simulator's ``--fast``
mode and by the session tests.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from server import protocol as proto
from server.config import ProjectConfig
from server.engines import build_engines
from server.faults import FaultPlan, JobFault
from server.history import ConversationHistory
from server.journal import Journal
from server.session import PersistHistory, Send, Session, StartJob
from server.work import Job, JobResult, run_job


@dataclass(frozen=True)
class JobLatency:
    """Modelled engine latency on the virtual clock (seconds).

    Defaults are round figures of the same order as the measured engines on
    this kind of machine (see docs): small enough to keep runs quick, non-zero
    so that ordering across jobs and audio is exercised.
    """

    agent_s: float = 0.05
    speech_s: float = 0.03
    transcribe_partial_s: float = 0.05
    transcribe_final_s: float = 0.15

    def of(self, job: Job) -> float:
        if job.kind == "agent":
            return self.agent_s
        if job.kind == "speech":
            return self.speech_s
        return self.transcribe_final_s if getattr(job, "final", False) else self.transcribe_partial_s


@dataclass(frozen=True)
class TimedEvent:
    t: float
    event: dict


class VirtualSession:
    """A session whose clock only moves when :meth:`deliver` / :meth:`advance` say so."""

    def __init__(self, session: Session, latency: JobLatency | None = None, *, journal: Journal | None = None) -> None:
        self.session = session
        self.latency = latency or JobLatency()
        #: What happened, on the virtual clock (server/journal.py).
        self.journal = journal or Journal(session.session_id, session.project, session.uuid,
                                          input_rate=session.sample_rate, output_rate=session.output_rate)
        session.attach_journal(self.journal)
        #: The config's ``faults`` block: engine latency and failures, dropped and
        #: duplicated events. Stalls and closes are about delivery over a socket:
        #: the virtual driver has none, so it ignores them.
        faults = session.config.faults
        self.faults = None if faults is None else FaultPlan(faults, self.journal, output_rate=session.output_rate)
        self.now = 0.0
        self.events: list[TimedEvent] = []
        self.saved_history: ConversationHistory | None = None
        #: Called with ``(t, job)`` for each job the session starts (tests look at what was decoded).
        self.on_job_started: Callable[[float, Job], None] | None = None
        self._queue: list[tuple[float, int, JobResult]] = []
        self._seq = itertools.count()

    def _absorb(self, t: float, outputs: list) -> list[TimedEvent]:
        emitted = []
        for out in outputs:
            if isinstance(out, Send):
                for event in self.faults.on_send(t, out.event) if self.faults is not None else [out.event]:
                    self.journal.sent(t, event)
                    emitted.append(TimedEvent(t, event))
            elif isinstance(out, StartJob):
                if self.on_job_started is not None:
                    self.on_job_started(t, out.job)
                fault = self.faults.for_job(t, out.job.kind) if self.faults is not None else JobFault()
                result = run_job(out.job, fault.fail)
                done = t + self.latency.of(out.job) + fault.delay_s
                heapq.heappush(self._queue, (done, next(self._seq), result))
            elif isinstance(out, PersistHistory):
                self.saved_history = ConversationHistory(list(out.history.turns))
        self.events.extend(emitted)
        return emitted

    def start(self) -> list[TimedEvent]:
        return self._absorb(0.0, self.session.start(0.0))

    def advance(self, t: float) -> list[TimedEvent]:
        """Run every job completion and timer due up to ``t`` (inclusive), in time order."""
        if t < self.now:
            raise ValueError(f"virtual time cannot go back: {t} < {self.now}")
        emitted: list[TimedEvent] = []
        while True:
            next_job = self._queue[0][0] if self._queue else None
            deadline = self.session.next_deadline()
            candidates = [x for x in (next_job, deadline) if x is not None and x <= t]
            if not candidates:
                break
            when = max(min(candidates), self.now)
            self.now = when
            if next_job is not None and next_job <= when:
                _, _, result = heapq.heappop(self._queue)
                emitted += self._absorb(when, self.session.job_done(when, result))
            else:
                emitted += self._absorb(when, self.session.tick(when))
        self.now = t
        return emitted

    def deliver(self, t: float, msg: proto.ClientMessage | proto.BadFrame) -> list[TimedEvent]:
        """Advance to ``t``, then hand ``msg`` to the session at ``t``."""
        emitted = self.advance(t)
        self.journal.received_message(t, msg)
        return emitted + self._absorb(t, self.session.receive(t, msg))

    def next_due(self) -> float | None:
        """When the next job completes or session timer fires (None: nothing pending).

        A client model that reacts to events at their own time (``playback.started``
        on the first audio delta) advances to this time, reacts, then goes on.
        """
        due = [x for x in (self._queue[0][0] if self._queue else None, self.session.next_deadline()) if x is not None]
        return min(due) if due else None

    def idle(self) -> bool:
        """True when no job is pending and no timer is set."""
        return not self._queue and self.session.next_deadline() is None


def open_virtual_session(
    config: ProjectConfig,
    *,
    uuid: str = "virtual",
    project: str = "virtual",
    latency: JobLatency | None = None,
    history: ConversationHistory | None = None,
    record_trace: bool = False,
    partial_transcripts: bool = True,
    speculative_finals: bool = True,
) -> VirtualSession:
    """A session built with the engines ``config`` selects, on a virtual clock.

    ``speculative_finals``: decode the final transcript during the end-of-turn
    silence once its audio is fixed (``Session.speculative_finals``, docs/asr.md).
    The virtual driver never reports the recogniser backed up
    (``Session.asr_busy``): its jobs complete at modelled times.
    """
    session = Session(config, build_engines(config), session_id=f"sess_{uuid}", project=project, uuid=uuid, history=history)
    session.record_trace = record_trace
    session.partial_transcripts = partial_transcripts
    session.speculative_finals = speculative_finals
    return VirtualSession(session, latency)

