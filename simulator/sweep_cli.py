"""``python -m simulator sweep``: the command line of sweeps (see :mod:`simulator.sweep`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

EPILOG = """\
examples:
  python -m simulator sweep --suite fixtures/scenarios --grid threshold=10:30:5 window_size=24,48 --repeat 5
  python -m simulator sweep --plan fixtures/sweeps/tutorial.yaml --out out/sweep
  python -m simulator sweep --plan fixtures/sweeps/tutorial.yaml --scheduler tcp://10.0.0.5:8786

Knobs: threshold, window_size, lockout_seconds, grace_period_seconds, silence_duration_ms.
Values: start:stop:step (stop included), a,b,c, or one value. A plan YAML holds the same:
  suite: ../scenarios            # or scenarios: [a.yaml, b.yaml] (relative to the plan)
  grid: {threshold: "10:30:5", window_size: [24, 48]}
  repeat: 5
  seed: 0
  target: {max_false_interrupt_rate: 0.01}
Command-line options override the plan. Writes OUT/sweep.jsonl (every take; rerunning the
same command resumes from it), sweep.json, sweep_runs.csv, tradeoff.png, heatmap_*.png and
report.html. Exit status: 0 a setting meets the target, 1 none does, 2 bad input.
"""


def build_parser() -> argparse.ArgumentParser:
    from simulator.cli import add_take_options

    p = argparse.ArgumentParser(prog="python -m simulator sweep", description="Sweep barge-in settings over scenarios.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", type=Path, help="a sweep plan YAML (suite, grid, repeat, seed, target)")
    p.add_argument("--suite", type=Path, help="a directory of scenario YAML files")
    p.add_argument("--scenario", type=Path, action="append", help="a scenario file (repeatable)")
    p.add_argument("--grid", nargs="+", metavar="KNOB=VALUES", help="e.g. threshold=10:30:5 window_size=24,48")
    p.add_argument("--target-false-rate", type=float, help="recommend for at most this false-interrupt rate (default 0.01)")
    p.add_argument("--out", type=Path, default=Path("out/sweep"), help="output directory (default out/sweep)")
    p.add_argument("--no-png", action="store_true", help="skip the plots")
    add_take_options(p)
    return p


def _plan(path: Path | None) -> dict[str, Any]:
    from simulator.scenario import ScenarioError

    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read sweep plan {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    allowed = {"suite", "scenarios", "grid", "repeat", "seed", "target"}
    if not isinstance(data, dict) or not set(data) <= allowed:
        extra = sorted(set(data) - allowed) if isinstance(data, dict) else []
        raise ScenarioError(f"{path}: a sweep plan is a mapping of {', '.join(sorted(allowed))}" +
                            (f"; unknown: {', '.join(extra)}" if extra else ""))
    base = path.parent
    if "suite" in data:
        data["suite"] = (base / data["suite"]).resolve()
    if "scenarios" in data:
        data["scenarios"] = [(base / s).resolve() for s in data["scenarios"]]
    return data


def sweep_main(argv: list[str]) -> int:
    from server.config import ConfigError
    from simulator.audio import ClipError
    from simulator.campaign import execute, format_pooled, make_tasks, sweep_report
    from simulator.cli import check_take_options, variation_of
    from simulator.scenario import ScenarioError, load_scenario, load_suite
    from simulator.settings import SettingError
    from simulator.sweep import parse_grid, settings_of

    args = build_parser().parse_args(argv)
    try:
        problem = check_take_options(args)
        if problem:
            raise SettingError(problem)
        plan = _plan(args.plan)
        grid = parse_grid(args.grid) if args.grid else parse_grid(plan.get("grid") or {})
        if args.scenario:
            scenarios = [load_scenario(f) for f in args.scenario]
        elif args.suite or plan.get("suite"):
            scenarios = [sc for _, sc in load_suite(args.suite or plan["suite"])]
        elif plan.get("scenarios"):
            scenarios = [load_scenario(f) for f in plan["scenarios"]]
        else:
            raise ScenarioError("give --suite DIR, --scenario FILE or a --plan with `suite:` or `scenarios:`")
        repeat = args.repeat or int(plan.get("repeat", 1))
        seed = args.seed if args.seed is not None else int(plan.get("seed", 0))
        target = args.target_false_rate
        if target is None:
            target = float((plan.get("target") or {}).get("max_false_interrupt_rate", 0.01))
        if not 0 <= target <= 1:
            raise SettingError(f"the target false-interrupt rate is a fraction in [0, 1], got {target}")
    except (ScenarioError, SettingError, ClipError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings, skipped = settings_of(grid)
    variation = variation_of(args)
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = make_tasks(scenarios, settings, repeat, seed=seed, variation=variation, varied=not args.no_vary)
    print(f"sweep: {len(settings)} settings x {len(scenarios)} scenarios x {repeat} takes = {len(tasks)} runs"
          + (f" ({len(skipped)} settings left out: threshold above window_size)" if skipped else ""), file=sys.stderr)
    summaries, resumed = execute(tasks, args.out / "sweep.jsonl", jobs=args.jobs, scheduler=args.scheduler,
                                 progress=not args.no_progress)
    data = sweep_report(summaries, settings, args.out, target=target, command="python -m simulator sweep " + " ".join(argv),
                        skipped=skipped, png=not args.no_png)
    front = data["pareto_front"]
    print(format_pooled({k: data["settings"][k] for k in front}))
    print(f"(Pareto front: {len(front)} of {len(data['settings'])} settings; all in {args.out}/sweep.json)")
    if resumed:
        print(f"({resumed} run(s) read back from {args.out / 'sweep.jsonl'}, not run again)")
    errors = [s for s in summaries if s["error"]]
    for s in errors[:5]:
        print(f"error in {s['scenario']} with {s['setting']}: {s['error']}")
    rec = data["recommendation"]
    print(f"\nrecommended for {rec['target']}: {rec['setting'] or 'none'}\n  {rec['reason']}")
    print(f"reports in {args.out}/ (report.html, sweep.json, sweep_runs.csv" + ("" if args.no_png else ", tradeoff.png") + ")")
    return 0 if rec["setting"] else 1
