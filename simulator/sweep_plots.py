"""PNG plots of a sweep: the trade-off between false interrupts and latency, and knob heatmaps."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(key: str) -> str:
    abbrev = {"threshold": "th", "window_size": "win", "lockout_seconds": "lock", "grace_period_seconds": "grace",
              "silence_duration_ms": "sil"}
    return " ".join(f"{abbrev.get(k, k)}={v}" for k, _, v in (p.partition("=") for p in key.split(",")))


def tradeoff_png(
    by_setting: Mapping[str, dict[str, Any]], front: Sequence[str], path: Path, *, recommended: str | None = None,
    title: str = "",
) -> Path:
    """False-interrupt rate (y, with 95 % CI) against p90 barge-in latency (x), one numbered point per setting.

    Settings with the same figures share a point; the panel on the right says
    which settings each number stands for. Colour is the missed rate; the
    Pareto front is joined by a dashed line; the recommended setting is ringed.
    Settings that never interrupted (no latency) are listed in the title.
    """
    plt = _plt()
    fig, (ax, side) = plt.subplots(1, 2, figsize=(14, 7), gridspec_kw={"width_ratios": [2.3, 1]})
    points: dict[tuple[float, float, float], list[str]] = {}
    no_latency = []
    for k, v in by_setting.items():
        p90, fr = v["latency_ms"]["p90"], v["false_interrupt_rate"]
        if p90 is None or fr["rate"] is None:
            no_latency.append(k)
            continue
        points.setdefault((p90, 100 * fr["rate"], 100 * (v["missed_rate"]["rate"] or 0.0)), []).append(k)
    ordered = sorted(points.items())
    lines = []
    for n, ((x, y, missed), keys) in enumerate(ordered, 1):
        fr = by_setting[keys[0]]["false_interrupt_rate"]
        ax.errorbar(x, y, yerr=[[100 * (fr["rate"] - fr["low"])], [100 * (fr["high"] - fr["rate"])]],
                    fmt="none", ecolor="0.8", elinewidth=0.8, zorder=1)
        on_front = any(k in front for k in keys)
        ax.annotate(str(n), (x, y), fontsize=8, xytext=(5, 6 if n % 2 else -12), textcoords="offset points",
                    fontweight="bold" if on_front else "normal")
        mark = "*" if recommended in keys else ("F" if on_front else " ")
        lines.append(f"{n:>2}{mark} " + "\n    ".join(_short(k) for k in keys))
    xs = [x for (x, _, _), _ in ordered]
    ys = [y for (_, y, _), _ in ordered]
    cs = [c for (_, _, c), _ in ordered]
    sc = ax.scatter(xs, ys, c=cs, cmap="viridis_r", vmin=0, vmax=max(cs + [10.0]), s=60, edgecolors="black", zorder=3)
    fig.colorbar(sc, ax=ax, label="missed interrupts (% of speech that should interrupt)")
    pts = sorted({(x, y) for (x, y, _), keys in ordered if any(k in front for k in keys)})
    if pts:
        ax.plot(*zip(*pts), color="tab:red", lw=1, ls="--", zorder=2, label="Pareto front (false, p90, missed)")
    for (x, y, _), keys in ordered:
        if recommended in keys:
            ax.scatter([x], [y], s=300, facecolors="none", edgecolors="tab:red", lw=2, zorder=4, label="recommended")
    ax.set_xlabel("p90 barge-in latency (ms, onset -> response.interrupted)")
    ax.set_ylabel("false-interrupt rate (% of takes; bars: 95 % Wilson CI)")
    extra = f"\nnever interrupted: {', '.join(_short(k) for k in no_latency)}" if no_latency else ""
    ax.set_title((title or "barge-in trade-off per setting") + extra, fontsize=10)
    ax.grid(alpha=0.3)
    if pts or recommended:
        ax.legend(loc="upper right", fontsize=8)
    side.axis("off")
    side.text(0, 1, "point: setting(s)  (* recommended, F on the front)\n\n" + "\n".join(lines),
              va="top", ha="left", family="monospace", fontsize=7, transform=side.transAxes)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _metric(v: dict[str, Any], name: str) -> float:
    if name == "p90_latency_ms":
        x = v["latency_ms"]["p90"]
    else:
        x = v[name]["rate"]
        x = None if x is None else 100 * x
    return math.nan if x is None else float(x)


HEATMAP_METRICS = (("false_interrupt_rate", "false interrupts %"), ("missed_rate", "missed %"), ("p90_latency_ms", "p90 latency ms"))


def heatmap_pngs(
    settings: Sequence[dict[str, float | int]], by_setting: Mapping[str, dict[str, Any]], out_dir: Path,
) -> list[Path]:
    """One PNG per pair of knobs with more than one value: three heatmaps (false %, missed %, p90 ms).

    A cell is the mean over the settings of the other knobs (so read it as "on
    average over the rest of the grid").
    """
    from simulator.settings import setting_key

    plt = _plt()
    knobs = [k for k in (settings[0] if settings else {}) if len({s[k] for s in settings}) > 1]
    paths = []
    for a, b in itertools.combinations(knobs, 2):
        va, vb = sorted({s[a] for s in settings}), sorted({s[b] for s in settings})
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for ax, (metric, label) in zip(axes, HEATMAP_METRICS):
            grid = np.full((len(vb), len(va)), np.nan)
            for i, y in enumerate(vb):
                for j, x in enumerate(va):
                    vals = [_metric(by_setting[setting_key(s)], metric) for s in settings
                            if s[a] == x and s[b] == y and setting_key(s) in by_setting]
                    vals = [v for v in vals if not math.isnan(v)]
                    grid[i, j] = float(np.mean(vals)) if vals else np.nan
            im = ax.imshow(grid, origin="lower", aspect="auto", cmap="magma_r")
            lo, hi = np.nanmin(grid) if not np.isnan(grid).all() else 0.0, np.nanmax(grid) if not np.isnan(grid).all() else 1.0
            for i in range(len(vb)):
                for j in range(len(va)):
                    if not math.isnan(grid[i, j]):
                        dark = hi > lo and (grid[i, j] - lo) / (hi - lo) > 0.55  # magma_r is dark at the top
                        ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if dark else "black")
            ax.set_xticks(range(len(va)), [f"{x:g}" for x in va], fontsize=7)
            ax.set_yticks(range(len(vb)), [f"{y:g}" for y in vb], fontsize=7)
            ax.set_xlabel(a), ax.set_ylabel(b), ax.set_title(label, fontsize=9)
            fig.colorbar(im, ax=ax)
        fig.tight_layout()
        path = out_dir / f"heatmap_{a}_{b}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths
