"""Simulator speed as a user waits for it: wall time of the whole command
(interpreter start-up, engine loading, the runs, the PNG timelines) against
the simulated seconds it reports, for the README's headline command and the suite.

Each command runs ``repeats`` times in a fresh process; the figures are those of
the run with the median wall time (so its phases add up), with every run's wall
time beside them. The phases come from the command's own last line
(:mod:`simulator.timings`: ``wall time as waited T s = start-up a + engines b +
runs c + json d + png e + html f + other g s``, spans on its main thread, from
the process's creation); ``cpu_s`` is the CPU the process used (user + system,
all threads), which a shared machine inflates less than the wall time.
"""

from __future__ import annotations

import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.caller import REPO

_ONE = re.compile(r"\(fast, ([0-9.]+) s simulated, ([0-9.]+) s wall")
_SUITE = re.compile(r"speed: ([0-9.]+) s simulated in ([0-9.]+) s wall")
_WAITED = re.compile(r"^wall time as waited ([0-9.]+) s = (.*) s$", re.M)
_PHASE = re.compile(r"([a-z-]+) ([0-9.]+)")


def waited_phases(text: str) -> dict[str, float]:
    """``{phase: seconds}`` (and ``total``) of the command's ``wall time as waited`` line; {} if absent."""
    m = _WAITED.search(text)
    if m is None:
        return {}
    phases = {name: float(v) for name, v in _PHASE.findall(m.group(2))}
    phases["total"] = float(m.group(1))
    return phases


def timed_command(args: list[str], pattern: re.Pattern[str]) -> dict[str, Any]:
    """Run ``python -m simulator ARGS`` once from the repo root: wall and CPU time, the simulated and
    run-only seconds it printed, and its phases."""
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as out:
        cmd = [sys.executable, "-m", "simulator", *args, "--out", out]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = proc.stdout + proc.stderr
    sims = [(float(a), float(b)) for a, b in pattern.findall(text)]
    simulated = sum(a for a, _ in sims)
    runs_wall = sum(b for _, b in sims)
    phases = waited_phases(proc.stdout)
    return {
        "command": "python -m simulator " + " ".join(args),
        "exit_code": proc.returncode,
        "simulated_s": round(simulated, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "x_real_time_as_waited": round(simulated / wall, 1) if wall else None,
        "x_real_time_runs_only": round(simulated / runs_wall, 1) if runs_wall else None,
        # The command's own spans; its total stops before the interpreter's exit, so a little less than wall_s.
        "phases_s": phases,
        "outside_runs_s": round(wall - runs_wall, 2),
    }


def median_run(args: list[str], pattern: re.Pattern[str], repeats: int = 3) -> dict[str, Any]:
    """:func:`timed_command` ``repeats`` times; the run with the median wall time, plus every run's wall time."""
    runs = sorted((timed_command(args, pattern) for _ in range(repeats)), key=lambda d: d["wall_s"])
    mid = dict(runs[len(runs) // 2])
    mid["repeats"] = repeats
    mid["wall_s_each"] = [d["wall_s"] for d in runs]
    mid["cpu_s_median"] = statistics.median(d["cpu_s"] for d in runs)
    return mid


def simulator_speed(suite: bool = True, repeats: int = 3) -> dict[str, Any]:
    """The headline command with and without its PNG, and (``suite``) the whole scenario suite."""
    out = {
        "headline": median_run(["--wav", "fixtures/interrupt.wav"], _ONE, repeats),
        "headline_no_png": median_run(["--wav", "fixtures/interrupt.wav", "--no-png"], _ONE, repeats),
    }
    if suite:
        out["suite"] = median_run(["--suite", "fixtures/scenarios"], _SUITE, repeats)
    return out
