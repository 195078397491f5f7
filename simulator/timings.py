"""Where a simulator command's wall time goes, as its user waits for it.

The speed figures of the runs (``x48 real time``) leave out everything around
them: the interpreter and imports, loading the engines, the PNG timelines and
the HTML report. :class:`Timings` measures those phases on the main thread with
``time.perf_counter`` spans, from the moment the process was created, so the
phases add up to the wall time the command took (the rest is "other").
Engine loading that overlaps other work (it runs on threads while the main
thread imports and renders) only counts where the main thread waited for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Phases in the order they are printed (others, if any, follow).
PHASES = ("start-up", "engines", "runs", "json", "png", "html")


def process_age_s() -> float | None:
    """Seconds since this process was created (Linux ``/proc``), None where unknown.

    ``/proc/self/stat`` field 22 is the start time in clock ticks since boot,
    on the same clock as ``CLOCK_BOOTTIME`` (proc(5)); the resolution is one
    tick (10 ms at the usual 100 Hz).
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            stat = fh.read()
        # The command name (field 2) may hold spaces: count fields after its ")".
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class Timings:
    """Wall-clock phases of one command, in seconds, measured on the main thread.

    ``origin`` is the ``perf_counter`` value the command counts from: the
    process's creation when known (:func:`process_age_s`), else when this
    object was made. ``start-up`` is whatever was not spanned before the first
    span (interpreter, imports, reading the scenarios).
    """

    def __init__(self, origin: float | None = None) -> None:
        now = time.perf_counter()
        if origin is None:
            age = process_age_s()
            origin = now - age if age is not None else now
        self.origin = origin
        self.phases: dict[str, float] = {}

    @contextmanager
    def span(self, phase: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to ``phase``; unspanned time before the
        first span is ``start-up``."""
        t0 = time.perf_counter()
        if not self.phases:
            self.phases["start-up"] = t0 - self.origin
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + (time.perf_counter() - t0)

    def total_s(self) -> float:
        """Wall seconds from ``origin`` to now."""
        return time.perf_counter() - self.origin

    def as_dict(self) -> dict[str, float]:
        """``{phase: seconds}`` plus ``other`` (unspanned) and ``total``, rounded to ms."""
        total = self.total_s()
        out = {k: round(v, 3) for k, v in sorted(self.phases.items(), key=lambda kv: _order(kv[0]))}
        out["other"] = round(max(0.0, total - sum(self.phases.values())), 3)
        out["total"] = round(total, 3)
        return out

    def line(self) -> str:
        """One line for the terminal: ``wall time as waited 3.12 s = start-up 0.45 + engines ... + other 0.02``."""
        d = self.as_dict()
        total = d.pop("total")
        parts = " + ".join(f"{k} {v:.2f}" for k, v in d.items())
        return f"wall time as waited {total:.2f} s = {parts} s"


def _order(phase: str) -> int:
    return PHASES.index(phase) if phase in PHASES else len(PHASES)
