"""Faults on demand: a session's engines made slow or failing, its outgoing
events dropped, duplicated or stalled, its socket closed mid-response.

What to inject is a :class:`server.config.FaultsConfig`: a project's
``faults`` block, or one set at run time (:class:`FaultStore`, reachable over
the admin API and from the pytest fixture). A :class:`FaultPlan` applies it to
one session: the drivers ask it before running a job and before sending an
event, and it notes every fault it applies in the session's journal
(``fault.latency``, ``fault.fail``, ``fault.drop``, ``fault.duplicate``,
``fault.stall``, ``fault.close``). It holds no clock and does no I/O; the
driver does the waiting (a sleep on the wall clock, a later completion time on
the virtual clock).

Every random draw comes from a generator seeded with ``seed`` and the name of
what it decides (one stream per engine, one for events), so a session fed the
same inputs gets the same faults however its jobs interleave.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable

from server.config import EngineFaults, EventFault, FaultsConfig

#: Job kinds (server.work) by the engine names used in the ``faults`` block.
ENGINE_OF_JOB = {"transcribe": "asr", "agent": "agent", "speech": "tts"}
#: Never dropped or duplicated: without it the client has no session at all.
_SPARED = {"session.created"}

Note = Callable[..., None]


@dataclass(frozen=True)
class JobFault:
    """What happens to one engine call: ``delay_s`` added, ``fail`` the reason it fails (None: it runs)."""

    delay_s: float = 0.0
    fail: str | None = None


class FaultPlan:
    """The faults of one session. ``note(t, type, **data)`` receives each fault applied."""

    def __init__(self, spec: FaultsConfig, note: Note | None = None, *, output_rate: int = 16000) -> None:
        self.spec = spec
        self.note = note
        self.output_rate = output_rate
        self._rngs: dict[str, random.Random] = {}
        self._calls = {"asr": 0, "agent": 0, "tts": 0}
        self._affected = {"drop": 0, "duplicate": 0}
        self._response_audio_ms: dict[str, float] = {}
        self._stalled: set[str] = set()
        self._audio_ms_total = 0.0
        self.closed = False

    def _rng(self, stream: str) -> random.Random:
        if stream not in self._rngs:
            # A str seed is hashed with SHA-512: stable across runs and processes.
            self._rngs[stream] = random.Random(f"{self.spec.seed}/{stream}")
        return self._rngs[stream]

    def _note(self, t: float, type: str, **data: Any) -> None:
        if self.note is not None:
            self.note(t, type, **data)

    # -- engines ------------------------------------------------------------

    def for_job(self, t: float, kind: str) -> JobFault:
        """The fault of the next call of the engine running jobs of ``kind``
        (``transcribe``, ``agent``, ``speech``), started at ``t``."""
        engine = ENGINE_OF_JOB.get(kind, kind)
        spec: EngineFaults | None = getattr(self.spec, engine, None)
        if spec is None:
            return JobFault()
        self._calls[engine] += 1
        call = self._calls[engine]
        rng = self._rng(engine)
        delay_ms = spec.latency_ms + (rng.uniform(0, spec.jitter_ms) if spec.jitter_ms else 0.0)
        fail = None
        if call in spec.fail_on_call:
            fail = f"injected fault: {engine} call {call} fails (faults.{engine}.fail_on_call)"
        elif spec.fail_probability and rng.random() < spec.fail_probability:
            fail = f"injected fault: {engine} call {call} fails (faults.{engine}.fail_probability {spec.fail_probability})"
        if delay_ms:
            self._note(t, "fault.latency", engine=engine, call=call, added_ms=round(delay_ms, 3))
        if fail:
            self._note(t, "fault.fail", engine=engine, call=call, reason=fail)
        return JobFault(delay_ms / 1000, fail)

    # -- outgoing events ----------------------------------------------------

    def on_send(self, t: float, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The copies of ``event`` to send now: none (dropped), one, or two (duplicated)."""
        kind = str(event.get("type"))
        if kind in _SPARED:
            return [event]
        if self._hits("drop", self.spec.drop_events, kind):
            self._note(t, "fault.drop", event=kind, response_id=event.get("response_id"))
            return []
        if self._hits("duplicate", self.spec.duplicate_events, kind):
            self._note(t, "fault.duplicate", event=kind, response_id=event.get("response_id"))
            return [event, event]
        return [event]

    def _hits(self, what: str, spec: EventFault | None, kind: str) -> bool:
        if spec is None or (spec.count is not None and self._affected[what] >= spec.count):
            return False
        if spec.types and not any(fnmatch.fnmatchcase(kind, pattern) for pattern in spec.types):
            return False
        if spec.probability < 1 and self._rng(f"events/{what}").random() >= spec.probability:
            return False
        self._affected[what] += 1
        return True

    def stall_before(self, t: float, event: dict[str, Any]) -> float:
        """Seconds to hold ``event`` (and all after it) before sending it: the
        ``audio_stall`` of its response, once that response sent ``after_ms``."""
        stall = self.spec.audio_stall
        rid = event.get("response_id")
        if stall is None or event.get("type") != "response.audio.delta" or rid is None or rid in self._stalled:
            return 0.0
        if self._response_audio_ms.get(rid, 0.0) + 1e-6 < stall.after_ms:
            return 0.0
        self._stalled.add(rid)
        self._note(t, "fault.stall", response_id=rid, after_ms=stall.after_ms, stall_ms=stall.stall_ms)
        return stall.stall_ms / 1000

    def sent(self, event: dict[str, Any]) -> None:
        """``event`` went out (response audio counts towards stalls and closes)."""
        b64 = event.get("delta")
        if event.get("type") != "response.audio.delta" or not isinstance(b64, str):
            return
        ms = (len(b64) * 3 // 4 - b64[-2:].count("=")) / 2 / self.output_rate * 1000
        rid = event.get("response_id")
        if rid is not None:
            self._response_audio_ms[rid] = self._response_audio_ms.get(rid, 0.0) + ms
        self._audio_ms_total += ms

    def close_before(self, t: float, event: dict[str, Any]) -> tuple[int, str] | None:
        """``(code, reason)`` when the socket is to be closed instead of sending
        ``event`` (a response audio delta once ``close.after_audio_ms`` went out)."""
        close = self.spec.close
        if close is None or self.closed or event.get("type") != "response.audio.delta":
            return None
        if self._audio_ms_total + 1e-6 < close.after_audio_ms:
            return None
        self.closed = True
        self._note(t, "fault.close", code=close.code, reason=close.reason, after_audio_ms=round(self._audio_ms_total, 3),
                   response_id=event.get("response_id"))
        return close.code, close.reason


class FaultStore:
    """Faults set at run time, per project (``"*"``: every project); they win
    over a project's ``faults`` block for sessions opened after they are set."""

    ALL = "*"

    def __init__(self) -> None:
        self._by_project: dict[str, FaultsConfig] = {}
        self._lock = threading.Lock()

    def set(self, project: str, spec: FaultsConfig | None) -> None:
        """Set (or with None clear) the run-time faults of ``project``."""
        with self._lock:
            if spec is None:
                self._by_project.pop(project, None)
            else:
                self._by_project[project] = spec

    def get(self, project: str) -> FaultsConfig | None:
        with self._lock:
            return self._by_project.get(project, self._by_project.get(self.ALL))

    def all(self) -> dict[str, FaultsConfig]:
        with self._lock:
            return dict(self._by_project)

    def clear(self) -> None:
        with self._lock:
            self._by_project.clear()

    def plan_for(self, project: str, config_faults: FaultsConfig | None, note: Note | None = None,
                 *, output_rate: int = 16000) -> FaultPlan | None:
        """The plan of a session of ``project`` opening now, or None without faults."""
        spec = self.get(project) or config_faults
        return None if spec is None else FaultPlan(spec, note, output_rate=output_rate)
