"""One take: a scenario, varied by a seed, run with a setting; its figures as plain data.

A take's summary (:func:`run_take`) is what repeats and sweeps pool, store in
JSONL and ship between processes or Dask workers: JSON-ready, rounded, with no
wall-clock value in it, so the same task gives the same summary anywhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.scenario import Scenario
from simulator.settings import setting_key
from simulator.variation import Variation, pin_intent, vary

#: Engines are shared per process and keyed by session names: one take at a time
#: per process, whatever the number of threads a Dask worker runs.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class Task:
    """What to run: ``scenario`` (as loaded) take ``repeat`` (seed ``seed``) with ``setting``.

    ``varied=False`` runs the scenario as written (no variation, no jitter).
    ``png``: write this take's timeline PNG there (a path on the worker's file system).
    """

    scenario: Scenario
    setting: dict[str, float | int] = field(default_factory=dict)
    repeat: int = 0
    seed: int = 0
    variation: Variation = Variation()
    varied: bool = True
    png: str | None = None

    @property
    def key(self) -> str:
        """The resumption key: setting, scenario and take seed."""
        return task_key(self.setting, self.scenario.name, self.seed)


def task_key(setting: dict[str, float | int], scenario: str, seed: int) -> str:
    """``<setting>|<scenario>|<seed>``: one take of one setting, stable across runs."""
    return f"{setting_key(setting)}|{scenario}|{seed}"


def _summary(task: Task, result: Any) -> dict[str, Any]:
    from simulator.report import _rounded

    m = result.metrics()
    checks = result.checks()
    return _rounded(
        {
            "duration_s": result.end_s,
            "passed": all(c.ok for c in checks),
            "failed_checks": [f"{c.name}: {c.detail}" for c in checks if not c.ok],
            "interrupts": [
                {
                    "t": i.t,
                    "false": i.false,
                    "latency_ms": i.latency_ms,
                    "floor_ms": i.floor_ms,
                    "overhead_ms": i.overhead_ms,
                    "truncation_error_ms": i.truncation_error_ms,
                    "talk_over_ms": i.talk_over_ms,
                }
                for i in m.interrupts
            ],
            "utterances": [
                {
                    "onset_s": u.onset_s,
                    "expected_interrupt": u.expected_interrupt,
                    "expectation_source": u.expectation_source,
                    "interrupted": u.interrupted,
                    "floor_ms": u.floor_ms,
                    "voice_to_voice_ms": u.voice_to_voice_ms,
                }
                for u in m.utterances
            ],
            "false_interrupts": m.false_interrupts,
            "missed_interrupts": m.missed_interrupts,
            "warnings": list(result.client.warnings),
            "png": task.png,
        }
    )


def run_take(task: Task) -> dict[str, Any]:
    """Run one take in this process; returns its summary (errors are data: ``error`` names them).

    The summary has ``key``, ``setting``, ``scenario``, ``repeat``, ``seed``,
    ``error`` (None or the message of a bad setting / input) and, when it ran,
    ``passed``, ``interrupts``, ``utterances`` (ms figures as in
    :mod:`simulator.metrics`), ``false_interrupts``, ``missed_interrupts``.
    """
    from server.config import ConfigError
    from simulator.audio import ClipError
    from simulator.fast import run_fast
    from simulator.settings import SettingError, apply_setting

    head = {"key": task.key, "setting": dict(task.setting), "scenario": task.scenario.name,
            "repeat": task.repeat, "seed": task.seed, "error": None}
    sc = pin_intent(task.scenario)
    if task.varied:
        sc = vary(sc, task.seed, task.variation)
    with _ONE_AT_A_TIME:
        try:
            loaded = apply_setting(sc.config_path, task.setting)
            result = run_fast(sc, sc.config_path, loaded=loaded)
            if task.png:
                from simulator.timeline import write_png

                write_png(result, Path(task.png))
        except (SettingError, ConfigError, ClipError, FileNotFoundError, ValueError) as exc:
            return {**head, "error": str(exc).splitlines()[0]}
    return {**head, **_summary(task, result)}
