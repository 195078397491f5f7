"""Percentiles of the callers' figures (nearest rank; a bench reports, it does not interpolate)."""

from __future__ import annotations

from collections.abc import Iterable


def pct(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0-100, nearest rank on the sorted values that exist); None for none."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return vals[min(len(vals) - 1, max(0, int(round(q / 100 * (len(vals) - 1)))))]


def spread(values: Iterable[float | None]) -> dict[str, float | None]:
    """p50 / p95 / p99 of the values that exist, and how many there were (``n``)."""
    vals = [v for v in values if v is not None]
    return {"p50": pct(vals, 50), "p95": pct(vals, 95), "p99": pct(vals, 99), "n": len(vals)}
