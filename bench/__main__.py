"""``python -m bench`` (``make bench``): run the benchmark, write ``bench/results.json``, print the tables.

Order: in-process frame costs, engines, simulator speed, then the load levels
against one ``python -m server`` process on port 0 with whatever time is left
of ``--budget-s``. ``--levels`` and ``--budget-s`` make it shorter or longer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.caller import REPO

DEFAULT_LEVELS = "1,10,25,50,100"
PARTS = ("costs", "engines", "simulator", "scale")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--levels", default=os.environ.get("BENCH_LEVELS", DEFAULT_LEVELS),
                   help=f"caller counts to run, in order, then more (x--grow) until real time is lost (default {DEFAULT_LEVELS}; env BENCH_LEVELS)")
    p.add_argument("--grow", type=float, default=1.5, help="factor for the levels after the list (default 1.5)")
    p.add_argument("--max-n", type=int, default=400, help="never run more callers than this (default 400)")
    p.add_argument("--duration-s", type=float, default=0.0,
                   help="keep every caller calling (a new session each time) until a level has run this long (default 0: one call each)")
    p.add_argument("--ramp-s", type=float, default=2.0, help="callers of a level start at random within this many seconds (default 2)")
    p.add_argument("--budget-s", type=float, default=float(os.environ.get("BENCH_BUDGET_S", 720)),
                   help="wall-time budget of the whole bench; levels that would not fit are skipped (default 720 = 12 min, so that `make bench` with its set-up on a fresh clone stays under 15 min; env BENCH_BUDGET_S)")
    p.add_argument("--only", action="append", choices=PARTS, help="run only these parts (repeatable; default all)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG", help="extra argument for python -m server (repeatable)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results.json", help="results file (default bench/results.json)")
    return p.parse_args(argv)


def machine() -> str:
    """CPU model, cores, Python and the load average at start (other work on the box skews every figure)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, load average {load:.1f} at start"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the parts; ``args.out`` is rewritten after each one, so a part that fails keeps the others."""
    from bench import costs, simspeed

    parts = set(args.only or PARTS)
    start = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "command": "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }

    def part(key: str, label: str, fn) -> None:
        _log(f"bench: {label}...")
        try:
            results[key] = fn()
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others' figures
            results[key] = {"error": f"{type(exc).__name__}: {exc}"}
            _log(f"bench: {label} failed: {exc}")
        _save(args.out, results)

    if "costs" in parts:
        part("frame_costs", "per-frame costs", lambda: costs.frame_costs(costs.speech_frames()))
    if "engines" in parts:
        part("asr", "ASR", costs.asr_figures)
        part("tts", "TTS", costs.tts_figures)
    if "simulator" in parts:
        part("simulator", "simulator speed", simspeed.simulator_speed)
    if "scale" in parts:
        part("scale", "load", lambda: _scale(args, args.budget_s - (time.monotonic() - start) - 20.0))
    results["wall_s"] = round(time.monotonic() - start, 1)
    _save(args.out, results)
    return results


def _save(out: Path, results: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


def _scale(args: argparse.Namespace, budget_s: float) -> dict[str, Any]:
    """The load levels against a fresh server on port 0 (``budget_s``: what is left for them)."""
    from bench.scale import run_scale
    from tests.support.server_proc import running_server

    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as data:
        # Every caller uses one project: lift the per-project limit (50 by default) with the server's.
        most = str(max(1000, args.max_n * 2))
        with running_server(Path(data), "--max-sessions", most, "--limit", f"max_sessions_per_project={most}", *args.server_arg,
                            log_path=Path(data) / "server.log") as server:
            _log(f"bench: server at {server.url} (pid {server.process.pid}); levels {levels}, {budget_s:.0f} s left")
            scale = asyncio.run(run_scale(
                server.url, levels, ramp_s=args.ramp_s, budget_s=budget_s, server_pid=server.process.pid,
                grow=args.grow, max_n=args.max_n, duration_s=args.duration_s, log=_log,
            ))
    scale["server_args"] = args.server_arg
    return scale


def main(argv: list[str] | None = None) -> int:
    from bench.report import full_report

    args = parse_args(argv)
    results = run(args)
    print(full_report(results))
    print(f"\nwrote {args.out} ({results['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
