"""Sweeps: every setting of a grid x every scenario x N takes, and which setting to pick.

- :func:`parse_grid`: ``threshold=10:30:5`` (start:stop:step, stop included),
  ``window_size=24,48`` (a list) or ``lockout_seconds=0.5`` (one value).
- :func:`settings_of`: the product of the grid, without settings no config can
  take (a threshold above the window size).
- :func:`pareto_front`: settings no other setting beats on all of false-interrupt
  rate, p90 latency and missed rate (each lower is better; a setting that never
  interrupted has an unknown latency, counted as worst).
- :func:`recommend`: for a target "false-interrupt rate at most X", the setting
  that meets it (point estimate) with the lowest missed rate, then the lowest
  p90 latency, then the lowest p99; with its figures as the evidence.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.settings import SettingError, coerce, setting_key

Grid = dict[str, list[float | int]]


def parse_values(name: str, spec: str | Sequence[Any] | float | int) -> list[float | int]:
    """Values of one knob from ``a:b:step``, ``a,b,c``, one value or a YAML list."""
    if isinstance(spec, (list, tuple)):
        values = [coerce(name, v) for v in spec]
    elif isinstance(spec, str) and ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise SettingError(f"{name}={spec}: a range is start:stop:step, e.g. {name}=10:30:5")
        start, stop, step = (float(p) for p in parts)
        if step <= 0 or stop < start:
            raise SettingError(f"{name}={spec}: need step > 0 and stop >= start")
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = [coerce(name, round(start + i * step, 9)) for i in range(n)]
    elif isinstance(spec, str):
        values = [coerce(name, v) for v in spec.split(",") if v.strip()]
    else:
        values = [coerce(name, spec)]
    if not values:
        raise SettingError(f"{name}: no values")
    return list(dict.fromkeys(values))


def parse_grid(items: Sequence[str] | Mapping[str, Any]) -> Grid:
    """A grid from ``["knob=spec", ...]`` (command line) or ``{knob: spec}`` (YAML)."""
    grid: Grid = {}
    pairs = items.items() if isinstance(items, Mapping) else [_split(i) for i in items]
    for name, spec in pairs:
        if name in grid:
            raise SettingError(f"knob {name!r} given twice")
        grid[name] = parse_values(name, spec)
    if not grid:
        raise SettingError("an empty grid: give at least one knob=values")
    return grid


def _split(item: str) -> tuple[str, str]:
    name, sep, spec = item.partition("=")
    if not sep or not name.strip():
        raise SettingError(f"grid item {item!r}: expected knob=values, e.g. threshold=10:30:5")
    return name.strip(), spec.strip()


def settings_of(grid: Grid) -> tuple[list[dict[str, float | int]], list[str]]:
    """Every combination of ``grid`` (in grid order) and the ones left out, with why."""
    names = list(grid)
    keep, skipped = [], []
    for combo in itertools.product(*(grid[n] for n in names)):
        s = dict(zip(names, combo))
        if "threshold" in s and "window_size" in s and s["threshold"] > s["window_size"]:
            skipped.append(f"{setting_key(s)}: threshold above window_size")
            continue
        keep.append(s)
    return keep, skipped


def _figures(pooled: dict[str, Any]) -> tuple[float, float, float]:
    def num(x: float | None) -> float:
        return math.inf if x is None else float(x)

    return (num(pooled["false_interrupt_rate"]["rate"]), num(pooled["latency_ms"]["p90"]), num(pooled["missed_rate"]["rate"]))


def pareto_front(by_setting: Mapping[str, dict[str, Any]]) -> list[str]:
    """Keys of the settings on the front of (false rate, p90 latency, missed rate), all minimised."""
    figs = {k: _figures(v) for k, v in by_setting.items()}
    front = []
    for k, a in figs.items():
        dominated = any(
            all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)) for j, b in figs.items() if j != k
        )
        if not dominated:
            front.append(k)
    return sorted(front, key=lambda k: figs[k])


def recommend(by_setting: Mapping[str, dict[str, Any]], max_false_rate: float) -> dict[str, Any]:
    """The setting to pick for "false-interrupt rate at most ``max_false_rate``", with the evidence.

    Returns ``{"target", "setting" (key or None), "reason", "figures", "candidates"}``.
    """
    ok = {k: v for k, v in by_setting.items() if v["false_interrupt_rate"]["rate"] is not None
          and v["false_interrupt_rate"]["rate"] <= max_false_rate}
    target = f"false-interrupt rate <= {max_false_rate:g}"
    if not ok:
        return {"target": target, "setting": None, "figures": None, "candidates": 0,
                "reason": "no setting meets the target; loosen it or widen the grid (see the trade-off plot)"}

    def order(k: str) -> tuple[float, float, float]:
        v = ok[k]
        missed = v["missed_rate"]["rate"]
        p90, p99 = v["latency_ms"]["p90"], v["latency_ms"]["p99"]
        return (math.inf if missed is None else missed, math.inf if p90 is None else p90, math.inf if p99 is None else p99)

    best = min(sorted(ok), key=order)
    v = ok[best]
    fr, mr = v["false_interrupt_rate"], v["missed_rate"]
    reason = (
        f"{len(ok)} of {len(by_setting)} settings meet {target}; {best} has the lowest missed rate "
        f"({_pct(mr)}) and then the lowest p90 latency ({v['latency_ms']['p90']} ms) among them; "
        f"its false-interrupt rate is {_pct(fr)} over {fr['n']} takes"
    )
    return {"target": target, "setting": best, "figures": v, "candidates": len(ok), "reason": reason}


def _pct(rate: Mapping[str, Any]) -> str:
    if rate["rate"] is None:
        return "no data"
    return f"{100 * rate['rate']:.1f} % [95 % CI {100 * rate['low']:.1f}-{100 * rate['high']:.1f} %]"
