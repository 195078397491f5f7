"""Simulator speed as a user waits for it: wall time of the whole command
(interpreter start-up, engine loading, the runs, the PNG timelines) against
the simulated seconds it reports, for the README's headline command and the suite."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.caller import REPO

_ONE = re.compile(r"\(fast, ([0-9.]+) s simulated, ([0-9.]+) s wall")
_SUITE = re.compile(r"speed: ([0-9.]+) s simulated in ([0-9.]+) s wall")


def timed_command(args: list[str], pattern: re.Pattern[str]) -> dict[str, Any]:
    """Run ``python -m simulator ARGS`` from the repo root; wall time, and the simulated and run-only seconds it printed."""
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as out:
        cmd = [sys.executable, "-m", "simulator", *args, "--out", out]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - t
    text = proc.stdout + proc.stderr
    sims = [(float(a), float(b)) for a, b in pattern.findall(text)]
    simulated = sum(a for a, _ in sims)
    runs_wall = sum(b for _, b in sims)
    return {
        "command": "python -m simulator " + " ".join(args),
        "exit_code": proc.returncode,
        "simulated_s": round(simulated, 1),
        "wall_s": round(wall, 2),
        "x_real_time_as_waited": round(simulated / wall, 1) if wall else None,
        "x_real_time_runs_only": round(simulated / runs_wall, 1) if runs_wall else None,
        "startup_and_rendering_s": round(wall - runs_wall, 2),
    }


def simulator_speed(suite: bool = True) -> dict[str, Any]:
    """The headline command with and without its PNG, and (``suite``) the whole scenario suite."""
    out = {
        "headline": timed_command(["--wav", "fixtures/interrupt.wav"], _ONE),
        "headline_no_png": timed_command(["--wav", "fixtures/interrupt.wav", "--no-png"], _ONE),
    }
    if suite:
        out["suite"] = timed_command(["--suite", "fixtures/scenarios"], _SUITE)
    return out
