"""Read figures off a ``/metrics`` page: counters and histogram quantiles between two scrapes."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

#: A scrape: (sample name, sorted label pairs) -> value.
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Scrape:
    """Every sample of a Prometheus text page."""
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    """``after - before`` of one sample (0 when absent)."""
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def buckets(before: Scrape, after: Scrape, histogram: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative ``(upper bound s, count)`` of a histogram's observations made between the scrapes."""
    rows = []
    for (name, lbls), value in after.items():
        d = dict(lbls)
        if name != histogram + "_bucket" or any(d.get(k) != v for k, v in labels.items()):
            continue
        le = d["le"]
        rows.append((math.inf if le == "+Inf" else float(le), value - before.get((name, lbls), 0.0)))
    return sorted(rows)


def quantile(rows: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding rank ``q``.

    ``rows`` as from :func:`buckets`; ``q`` in [0, 1]. None when nothing was observed.
    Above the last finite bound the answer is that bound (the estimate cannot say more).
    """
    if not rows or rows[-1][1] <= 0:
        return None
    total = rows[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in rows:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            return le if width <= 0 else prev_le + (le - prev_le) * (rank - prev_count) / width
        prev_le, prev_count = le, count
    return prev_le
