"""One self-contained HTML report per suite, repeat or sweep run.

Tables and PNGs (timelines, trade-off plots, heatmaps) go into one file, the
images inlined as base64 ``data:`` URIs, so a CI artifact opens anywhere with
nothing beside it. Rendered with Jinja2 (autoescaping on: scenario names,
transcripts and warnings are text, never markup). The JSON written beside it
stays the machine-readable form.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).parent / "templates"


@dataclass
class Table:
    """Columns and rows of cells; ``css`` of a row: "pass", "fail" or ""."""

    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, cells: list[Any], css: str = "") -> None:
        self.rows.append({"cells": ["-" if c is None else c for c in cells], "css": css})


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    table: Table | None = None
    images: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG path)


def _inline(images: list[tuple[str, Path]]) -> list[dict[str, str]]:
    out = []
    for caption, path in images:
        if Path(path).is_file():
            out.append({"caption": caption, "data": base64.b64encode(Path(path).read_bytes()).decode("ascii")})
    return out


def write_html(path: Path, title: str, sections: list[Section], *, subtitle: str = "", command: str = "") -> Path:
    """Render the report to ``path`` (folders created); missing PNGs are left out."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.get_template("report.html.j2").render(
        title=title,
        subtitle=subtitle,
        command=command,
        sections=[
            {"heading": s.heading, "paragraphs": s.paragraphs, "table": s.table, "images": _inline(s.images)}
            for s in sections
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def pct(rate: dict[str, Any] | None) -> str:
    """A pooled rate as ``k/n = x % [low-high]`` (``-`` without data)."""
    if not rate or rate.get("rate") is None:
        return "-"
    return f"{rate['k']}/{rate['n']} = {100 * rate['rate']:.1f} % [{100 * rate['low']:.1f}-{100 * rate['high']:.1f}]"


def ms(p: dict[str, Any], key: str) -> str:
    """One percentile of a pooled figure, ``-`` without data."""
    v = p.get(key)
    return "-" if v is None else f"{v:.0f}"


def pooled_table(first: str, groups: dict[str, dict[str, Any]]) -> Table:
    """A table of pooled figures, one row per group (scenario, setting or the suite)."""
    t = Table([first, "takes", "errors", "latency p50/p90/p99/max ms", "overhead p50/p90/max ms",
               "voice-to-voice p50/p90 ms", "false-interrupt rate [95 % CI]", "missed rate [95 % CI]",
               "pass rate", "max trunc. err ms"])
    for name, p in groups.items():
        lat, over, v2v = p["latency_ms"], p["overhead_ms"], p["voice_to_voice_ms"]
        t.add([name, p["takes"], p["errors"],
               "/".join(ms(lat, k) for k in ("p50", "p90", "p99", "max")),
               "/".join(ms(over, k) for k in ("p50", "p90", "max")),
               "/".join(ms(v2v, k) for k in ("p50", "p90")),
               pct(p["false_interrupt_rate"]), pct(p["missed_rate"]), pct(p["pass_rate"]),
               p["max_truncation_error_ms"]], "fail" if p["errors"] else "")
    return t


def suite_html(rows: list[tuple[str, Any, str]], out: Path, *, png: bool, command: str) -> Path:
    """``out/report.html`` of a suite run: one row per scenario, its checks, and the timeline PNGs."""
    t = Table(["scenario", "result", "interrupts", "first latency ms", "floor ms", "overhead ms", "false", "missed",
               "unmet expectations"])
    images: list[tuple[str, Path]] = []
    notes: list[str] = []
    for name, res, err in rows:
        if res is None:
            t.add([name, "ERROR", None, None, None, None, None, None, err], "fail")
            continue
        m = res.metrics()
        real = [i for i in m.interrupts if not i.false]
        first = real[0] if real else None
        failed = [f"{c.name}: {c.detail}" for c in res.checks() if not c.ok]
        t.add([name, "FAIL" if failed else "PASS", len(m.interrupts), first and first.latency_ms,
               first and first.floor_ms, first and first.overhead_ms, m.false_interrupts, m.missed_interrupts,
               "; ".join(failed)], "fail" if failed else "pass")
        notes += [f"{name}: {w}" for w in res.client.warnings if "has no sidecar" in w]
        if png:
            images.append((name, out / f"{name}.png"))
    sections = [Section("Scenarios", table=t)]
    if notes:
        sections.append(Section("Notes", notes))
    sections.append(Section("Timelines", images=images))
    passed = sum(1 for r in t.rows if r["css"] == "pass")
    return write_html(out / "report.html", "Scenario suite", sections, subtitle=f"{passed}/{len(rows)} scenarios passed",
                      command=command)
