"""Pooled figures over many takes: percentiles and rates with confidence intervals.

Definitions (per group of take summaries, :mod:`simulator.takes`):

- **latency / overhead**: of every interrupt caused by speech that should
  interrupt (not false), onset -> ``response.interrupted`` and latency - floor;
  **voice-to-voice** of every utterance that has one. p50/p90/p99 are numpy's
  linear-interpolation percentiles; ``max`` the largest value.
- **false-interrupt rate**: takes with at least one false interrupt / takes.
  (Per take, not per interrupt: "how often does a session get cut by echo or
  noise".)
- **missed rate**: utterances that should have interrupted and did not /
  utterances that should have interrupted; **interrupt rate** = 1 - missed rate.
- **pass rate**: takes that met all of their scenario's expectations / takes.

Each rate comes with the 95 % Wilson score interval (E. B. Wilson, JASA 22,
1927; recommended over the normal approximation for small n and rates near
0 or 1 by Brown, Cai & DasGupta, Stat. Sci. 16, 2001). It is a closed formula:
SciPy has it (``binomtest().proportion_ci``) but would be a 40 MB dependency for
five lines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n``, its estimate and 95 % Wilson interval (all None when n = 0)."""

    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(k: int, n: int, z: float = Z95) -> Rate:
    """Wilson score interval of ``k`` successes in ``n`` trials (rate and bounds in [0, 1])."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Rate(0, 0, None, None, None)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Rate(k, n, round(p, 6), round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6))


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """``n``, ``p50``, ``p90``, ``p99``, ``max`` of ``values`` (ms; None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = (round(float(x), 1) for x in np.percentile(a, [50, 90, 99]))
    return {"n": len(values), "p50": p50, "p90": p90, "p99": p99, "max": round(float(a.max()), 1)}


def pool(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures of take summaries (errored takes are counted apart, in ``errors``)."""
    runs = [s for s in summaries]
    ok = [s for s in runs if s.get("error") is None]
    real = [i for s in ok for i in s["interrupts"] if not i["false"]]
    utts = [u for s in ok for u in s["utterances"]]
    should = [u for u in utts if u["expected_interrupt"]]
    trunc = [abs(i["truncation_error_ms"]) for s in ok for i in s["interrupts"] if i["truncation_error_ms"] is not None]
    return {
        "takes": len(runs),
        "errors": len(runs) - len(ok),
        "latency_ms": percentiles([i["latency_ms"] for i in real if i["latency_ms"] is not None]),
        "overhead_ms": percentiles([i["overhead_ms"] for i in real if i["overhead_ms"] is not None]),
        "voice_to_voice_ms": percentiles([u["voice_to_voice_ms"] for u in utts if u["voice_to_voice_ms"] is not None]),
        "false_interrupt_rate": wilson(sum(1 for s in ok if s["false_interrupts"] > 0), len(ok)).as_dict(),
        "missed_rate": wilson(sum(1 for u in should if not u["interrupted"]), len(should)).as_dict(),
        "interrupt_rate": wilson(sum(1 for u in should if u["interrupted"]), len(should)).as_dict(),
        "pass_rate": wilson(sum(1 for s in ok if s["passed"]), len(ok)).as_dict(),
        "max_truncation_error_ms": max(trunc, default=None),
    }


def pool_by(summaries: Sequence[dict[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    """:func:`pool` per value of ``field`` (e.g. ``scenario`` or ``setting_key``), keys sorted."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in summaries:
        groups.setdefault(str(s[field]), []).append(s)
    return {k: pool(groups[k]) for k in sorted(groups)}
