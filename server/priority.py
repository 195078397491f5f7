"""Engine threads at a lower OS scheduling priority than the event loop.

The server's event-loop thread runs every session's audio path (VAD, echo
gate, barge-in detector); Whisper, the agent brain and TTS run in worker
threads. At equal priority the loop only gets its fair share of 2 cores while
decodes run, so input is processed late and interrupts fire late. Linux keeps
the nice value per thread (``setpriority(PRIO_PROCESS, tid, ...)``, see
sched(7) and setpriority(2)), and a new thread starts with the nice of the
thread that creates it: CTranslate2's replica worker, its OpenMP team and
onnxruntime's pools are created by whichever thread loads or first runs the
model. So every thread that loads or runs an engine lowers itself first
(:func:`lower_engine_thread`): the engine pool's workers, the warm-up thread,
the threads that open sessions (and may load models on the way).

The nice is process-wide policy, chosen by whoever owns the process (the
server's ``--engine-nice``); nothing is lowered until :func:`set_engine_nice`
is called, so tests, the simulator and library users keep their threads as
they are. An unprivileged process can raise a thread's nice but never lower
it back, which is why the threads are chosen up front instead of lowered
around a call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("refinery.priority")

#: What ``python -m server`` uses (``--engine-nice``): measured in docs/bench.md
#: (5 and 10 kept the loop equally on time; 10 starved decodes more on a busy box).
DEFAULT_ENGINE_NICE = 5
#: The highest nice (lowest priority) Linux has.
MAX_NICE = 19

_engine_nice = 0
_base_nice = 0


def passive_openmp() -> bool:
    """Ask OpenMP (CTranslate2's libgomp) to sleep, not spin, between parallel regions.

    libgomp reads ``OMP_WAIT_POLICY`` once, when it is loaded: call this before
    ctranslate2 is imported. A value the user set is kept. False when
    ctranslate2 is already loaded (too late). Spinning workers burn CPU the
    event loop could have; on 2 cores the cost to decode time was not
    measurable (docs/bench.md).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return "ctranslate2" not in sys.modules


def supported() -> bool:
    """True where a single thread's nice value can be set (Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "setpriority")


def thread_nice(native_id: int) -> int:
    """The nice value of one thread of this process (``threading.get_native_id()``), Linux only."""
    return os.getpriority(os.PRIO_PROCESS, native_id)


def check_engine_nice(nice: int) -> int:
    """``nice`` if it is a usable engine nice (0-19), else ``ValueError`` saying what to use."""
    if not 0 <= nice <= MAX_NICE:
        raise ValueError(f"engine nice {nice} is out of range: use 0 (off) to {MAX_NICE}")
    return nice


def set_engine_nice(nice: int) -> int:
    """Make engine threads run ``nice`` steps below the calling thread; returns the nice in effect.

    ``nice`` is relative (0-19; 0 turns lowering off) to the calling thread,
    the event loop's to be. 0 where a thread's nice cannot be set (logged
    once). Raises ``ValueError`` for a value outside 0-19.
    """
    global _engine_nice, _base_nice
    check_engine_nice(nice)
    if nice and not supported():
        log.info("engine threads keep the server's priority: per-thread nice is Linux only (--engine-nice ignored)")
        nice = 0
    _base_nice = thread_nice(threading.get_native_id()) if nice else 0
    _engine_nice = nice
    if nice:
        log.info("engine threads run at nice %d (the event loop at %d)", min(MAX_NICE, _base_nice + nice), _base_nice)
    return nice


def engine_nice() -> int:
    """The nice set with :func:`set_engine_nice` (0: engine threads are not lowered)."""
    return _engine_nice


def lower_engine_thread() -> None:
    """Lower the calling thread to the engine nice; no-op when it is off or already that low.

    Call it first thing in any thread that loads or runs an engine (a thread
    pool's ``initializer``): threads the engine creates later inherit it.
    A failure is logged, never raised: an engine that runs at the loop's
    priority is slower to yield, not wrong.
    """
    if not _engine_nice:
        return
    tid = threading.get_native_id()
    target = min(MAX_NICE, _base_nice + _engine_nice)
    try:
        if thread_nice(tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError as exc:
        log.warning("could not lower engine thread %d to nice %d: %s", tid, target, exc)
