"""Repeat and sweep runs end to end: tasks, resumable execution, pooled figures, files.

``--repeat N`` (a scenario or a suite) and ``python -m simulator sweep`` both
run a list of takes (:class:`simulator.takes.Task`) through
:func:`simulator.executor.run_tasks`, append each summary to a JSONL file
(:mod:`simulator.store`: rerunning the same command skips what is done), then
pool the summaries (:mod:`simulator.pooled`) and write JSON, CSV, PNGs and one
HTML report.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.assertions import Assertion, Verdict, evaluate
from simulator.executor import run_tasks
from simulator.html_report import Section, Table, pooled_table, write_html
from simulator.pooled import pool, pool_by
from simulator.scenario import Scenario
from simulator.settings import setting_key
from simulator.store import Appender, load_done
from simulator.sweep import pareto_front, recommend
from simulator.takes import Task
from simulator.variation import Variation, take_seed


def make_tasks(
    scenarios: Sequence[Scenario],
    settings: Sequence[dict[str, float | int]],
    repeats: int,
    *,
    seed: int = 0,
    variation: Variation = Variation(),
    varied: bool = True,
    png_dir: Path | None = None,
) -> list[Task]:
    """Every setting x scenario x repeat (in that order); take 0 of each scenario gets a PNG when ``png_dir``."""
    tasks = []
    for setting in settings:
        for sc in scenarios:
            for r in range(repeats):
                png = str(png_dir / f"{sc.name}.take0.png") if png_dir is not None and r == 0 and len(settings) == 1 else None
                tasks.append(Task(sc, dict(setting), r, take_seed(seed, sc.name, r), variation, varied, png))
    return tasks


def execute(
    tasks: Sequence[Task], jsonl: Path, *, jobs: int | None = None, scheduler: str | None = None, progress: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """Run the tasks not yet in ``jsonl``; returns every task's summary (in task order) and how many were resumed."""
    done = load_done(jsonl)
    todo = [t for t in tasks if t.key not in done]
    with Appender(jsonl) as append:
        for s in run_tasks(todo, jobs=jobs, scheduler=scheduler, on_result=append, progress=progress):
            done[s["key"]] = s
    return [done[t.key] for t in tasks], len(tasks) - len(todo)


def write_runs_csv(summaries: Sequence[dict[str, Any]], path: Path) -> Path:
    """One row per take: setting, scenario, seed and its headline figures."""
    knobs = sorted({k for s in summaries for k in s["setting"]})
    cols = ["setting", *knobs, "scenario", "repeat", "seed", "error", "passed", "interrupts", "false_interrupts",
            "missed_interrupts", "first_latency_ms", "first_overhead_ms", "max_truncation_error_ms"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for s in summaries:
            real = [i for i in s.get("interrupts", []) if not i["false"]]
            trunc = [abs(i["truncation_error_ms"]) for i in s.get("interrupts", []) if i["truncation_error_ms"] is not None]
            w.writerow([setting_key(s["setting"]), *(s["setting"].get(k) for k in knobs), s["scenario"], s["repeat"],
                        s["seed"], s["error"] or "", s.get("passed"), len(s.get("interrupts", [])),
                        s.get("false_interrupts"), s.get("missed_interrupts"),
                        real[0]["latency_ms"] if real else None, real[0]["overhead_ms"] if real else None,
                        max(trunc, default=None)])
    return path


def verdict_section(verdicts: Sequence[Verdict]) -> Section:
    t = Table(["scope", "assertion", "bound", "value", "result"])
    for v in verdicts:
        t.add([v.assertion.scope, v.assertion.key, f"{v.assertion.bound:g}", v.value, ("PASS " if v.ok else "FAIL ") + v.detail],
              "pass" if v.ok else "fail")
    return Section("Assertions", table=t)


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    return [f"  [{'PASS' if v.ok else 'FAIL'}] {v.assertion.scope}: {v.assertion.key}: {v.detail}" for v in verdicts]


def repeat_report(
    summaries: Sequence[dict[str, Any]], assertions: Sequence[Assertion], out: Path, *, command: str, repeats: int,
    variation: Variation, varied: bool,
) -> tuple[dict[str, Any], list[Verdict]]:
    """Pool a repeat run per scenario and over the suite; write ``repeats.json`` and ``report.html``."""
    per = pool_by(summaries, "scenario")
    suite = pool(summaries)
    verdicts = evaluate(list(assertions), suite, per)
    data = {"repeats": repeats, "varied": varied, "variation": variation.as_dict(), "suite": suite, "scenarios": per,
            "assertions": [{"scope": v.assertion.scope, "key": v.assertion.key, "bound": v.assertion.bound,
                            "value": v.value, "ok": v.ok, "detail": v.detail} for v in verdicts]}
    (out / "repeats.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    sections = [Section("Pooled figures", [
        f"{repeats} take(s) per scenario" + (f", varied: {variation.as_dict()}" if varied else ", as written (no variation)")
        + ". Rates: k/n = estimate [95 % Wilson CI]. Latency over interrupts by speech that should interrupt."],
        pooled_table("scenario", {**per, "SUITE (all takes)": suite}))]
    if verdicts:
        sections.append(verdict_section(verdicts))
    failing = [s for s in summaries if s.get("error") is None and not s["passed"]]
    if failing:
        t = Table(["scenario", "repeat", "seed", "unmet expectations"])
        for s in failing:
            t.add([s["scenario"], s["repeat"], s["seed"], "; ".join(s["failed_checks"])], "fail")
        sections.append(Section("Takes that missed their scenario's expectations", table=t))
    sections.append(Section("Timelines (take 0 of each scenario)", images=[
        (f"{s['scenario']} take 0 (seed {s['seed']})", Path(s["png"])) for s in summaries if s.get("png")]))
    notes = sorted({w for s in summaries for w in s.get("warnings", []) if "has no sidecar" in w})
    if notes:
        sections.append(Section("Notes", notes))
    write_html(out / "report.html", "Repeat run", sections, subtitle=f"{len(summaries)} takes", command=command)
    return data, verdicts


def sweep_report(
    summaries: Sequence[dict[str, Any]], settings: Sequence[dict[str, float | int]], out: Path, *, target: float,
    command: str, skipped: Sequence[str], png: bool,
) -> dict[str, Any]:
    """Pool a sweep per setting; Pareto front, recommendation, JSON/CSV, plots and ``report.html``."""
    from simulator.sweep_plots import heatmap_pngs, tradeoff_png

    rows = [{**s, "setting_key": setting_key(s["setting"])} for s in summaries]
    by_setting = pool_by(rows, "setting_key")
    front = pareto_front(by_setting)
    rec = recommend(by_setting, target)
    data = {"settings": by_setting, "pareto_front": front, "recommendation": rec, "skipped_settings": list(skipped),
            "per_scenario": {k: pool_by([r for r in rows if r["setting_key"] == k], "scenario") for k in by_setting}}
    (out / "sweep.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    write_runs_csv(summaries, out / "sweep_runs.csv")
    images: list[tuple[str, Path]] = []
    if png:
        images.append(("trade-off: false-interrupt rate vs p90 latency, colour = missed rate",
                       tradeoff_png(by_setting, front, out / "tradeoff.png", recommended=rec["setting"])))
        images += [(p.stem.replace("_", " "), p) for p in heatmap_pngs(list(settings), by_setting, out)]
    sections = [
        Section("Recommendation", [rec["reason"]] + ([f"Setting: {rec['setting']}"] if rec["setting"] else [])),
        Section("Pareto front (false-interrupt rate, p90 latency, missed rate)",
                ["No other setting is at least as good on all three and better on one."],
                pooled_table("setting", {k: by_setting[k] for k in front})),
        Section("Plots", images=images),
        Section("Every setting", [f"Left out: {'; '.join(skipped)}"] if skipped else [],
                pooled_table("setting", by_setting)),
    ]
    write_html(out / "report.html", "Sweep", sections,
               subtitle=f"{len(by_setting)} settings, {len(summaries)} takes", command=command)
    return data


def format_pooled(groups: dict[str, dict[str, Any]]) -> str:
    """A text table of pooled figures for the terminal."""
    w = max([len(n) for n in groups] + [12])
    head = f"{'':<{w}} {'takes':>5} {'lat p50':>7} {'p90':>6} {'p99':>6} {'max':>6} {'ovh p90':>7} {'false %':>16} {'missed %':>16}"
    lines = [head, "-" * len(head)]

    def r(x: dict[str, Any]) -> str:
        return "-" if x["rate"] is None else f"{100 * x['rate']:.0f} [{100 * x['low']:.0f}-{100 * x['high']:.0f}]"

    def v(x: Any) -> str:
        return "-" if x is None else f"{x:.0f}"

    for name, p in groups.items():
        lat = p["latency_ms"]
        lines.append(f"{name:<{w}} {p['takes']:>5} {v(lat['p50']):>7} {v(lat['p90']):>6} {v(lat['p99']):>6} "
                     f"{v(lat['max']):>6} {v(p['overhead_ms']['p90']):>7} {r(p['false_interrupt_rate']):>16} "
                     f"{r(p['missed_rate']):>16}" + (f"  ({p['errors']} errors)" if p["errors"] else ""))
    return "\n".join(lines)
