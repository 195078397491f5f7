"""Reports of runs: JSON, a text table, and the suite summary (the PNG timeline: :mod:`simulator.timeline`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from simulator.metrics import Metrics
from simulator.run import RunResult


def result_dict(result: RunResult) -> dict[str, Any]:
    """Everything about a run as JSON-ready data (no wall-clock values: runs compare equal)."""
    m = result.metrics()
    checks = result.checks()
    sc = result.scenario
    return {
        "scenario": sc.name,
        "description": sc.description,
        "mode": result.mode,
        "partial_transcripts": result.partial_transcripts,
        "config": str(result.config_path),
        "config_warnings": result.config_warnings,
        "barge_in": None if result.vad is None else asdict(result.vad),
        "echo": sc.echo.model_dump(),
        "noise": {"db": sc.noise.db, "file": str(sc.noise.file) if sc.noise.file else None, "seed": sc.noise.seed},
        "network": sc.network.model_dump(),
        "client": sc.client.model_dump(),
        "duration_s": round(result.end_s, 3),
        "passed": all(c.ok for c in checks),
        "expectations": [asdict(c) for c in checks],
        "metrics": m.as_dict(),
        "utterances": [asdict(p) for p in result.client.placed],
        "responses": {rid: asdict(tr) for rid, tr in result.client.responses.items()},
        "events": [
            {"t": round(e.t, 4), "source": e.source, "type": e.type, "response_id": e.response_id, **_short(e.fields)}
            for e in result.client.log
            if e.type != "response.audio.delta"
        ],
        "audio_deltas": sum(1 for e in result.client.log if e.type == "response.audio.delta"),
        "audio_sha256": {"mic": result.client.mic_digest.hexdigest(), "received": result.client.received_digest.hexdigest()},
        "server_counters": result.server_counters,
        "trace_source": result.trace_source,
        "warnings": result.client.warnings,
    }


def _short(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in fields.items():
        if isinstance(v, str) and len(v) > 120:
            v = v[:117] + "..."
        out[k] = v
    return out


def _rounded(x: Any) -> Any:
    # Times are sums of float steps; 6 decimals (1 us) hide the binary noise.
    if isinstance(x, float):
        return round(x, 6)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_rounded(v) for v in x]
    return x


def write_json(result: RunResult, path: Path) -> Path:
    """Write the run as JSON to ``path`` (folders are created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_rounded(result_dict(result)), indent=2, default=str) + "\n")
    return path


def _fmt(x: float | None, unit: str = "ms") -> str:
    if x is None:
        return "-"
    return f"{round(x) or 0:.0f} {unit}"  # `or 0` turns -0 into 0


def format_table(result: RunResult) -> str:
    """A human-readable summary of one run."""
    m = result.metrics()
    checks = result.checks()
    vad = result.vad
    lines = [
        f"scenario {result.scenario.name}  ({result.mode}, {result.end_s:.1f} s simulated"
        + (f", {result.wall_s:.1f} s wall, x{result.speedup:.1f} real time, engine load excluded" if result.speedup else "")
        + ")",
        f"config   {result.config_path}  "
        + (
            "push-to-talk (no barge-in)"
            if vad is None
            else f"barge-in: threshold {vad.threshold}/{vad.window_size} frames of {vad.frame_ms} ms, "
            f"lockout {vad.lockout_s:g} s, grace {vad.grace_s:g} s"
        ),
        f"echo     delay {result.scenario.echo.delay_ms:g} ms, gain {result.scenario.echo.gain:g}, "
        + ("no AEC" if result.scenario.echo.aec_erle_db is None else f"AEC ERLE {result.scenario.echo.aec_erle_db:g} dB")
        + (f", room RT60 {result.scenario.echo.room_rt60_ms:g} ms" if result.scenario.echo.room_rt60_ms else "")
        + (f", noise {result.scenario.noise.db:g} dBFS" if result.scenario.noise.db is not None else ""),
        "",
        f"{'interrupt at':>12} {'cause':<26} {'latency':>9} {'floor':>8} {'overhead':>9} {'talk-over':>9} "
        f"{'after-int':>9} {'audio_end':>9} {'played':>8} {'trunc.err':>9}",
    ]
    for i in m.interrupts:
        cause = "FALSE (no user speech)" if i.utterance is None else f"speech #{i.utterance}" + (" FALSE" if i.false else "")
        lines.append(
            f"{i.t:>10.2f} s {cause:<26} {_fmt(i.latency_ms):>9} {_fmt(i.floor_ms):>8} {_fmt(i.overhead_ms):>9} "
            f"{_fmt(i.talk_over_ms):>9} {_fmt(i.audio_after_interrupt_ms):>9} {_fmt(i.audio_end_ms):>9} "
            f"{_fmt(i.played_ms):>8} {_fmt(i.truncation_error_ms):>9}"
        )
    if not m.interrupts:
        lines.append(f"{'(none)':>12}")
    lines += ["", f"{'speech':>6} {'onset':>8} {'offset':>8} {'frames':>6} {'floor':>8} {'should-int':>10} {'interrupted':>11} {'voice2voice':>11}  text"]
    for u in m.utterances:
        lines.append(
            f"{'#' + str(u.index):>6} {u.onset_s:>7.2f}s {u.offset_s:>7.2f}s {u.speech_frames:>6} {_fmt(u.floor_ms):>8} "
            f"{('yes' if u.expected_interrupt else 'no') + ('' if u.expectation_source == 'auto' else '*'):>10} "
            f"{'yes' if u.interrupted else 'no':>11} {_fmt(u.voice_to_voice_ms):>11}  {u.text[:50]}"
        )
    lines.append(
        "(frames: reference speech frames of the user's clean signal; floor: when the window rule fires on them, "
        "from the onset, '-' = never; * = set by the scenario)"
    )
    lines += [
        "",
        f"false interrupts {m.false_interrupts}, missed interrupts {m.missed_interrupts}, "
        f"responses {', '.join(m.statuses) or '-'}",
        "transcripts: " + (" | ".join(m.transcripts) if m.transcripts else "-"),
    ]
    for w in result.client.warnings:
        lines.append(f"warning: {w}")
    if checks:
        lines.append("")
        for c in checks:
            lines.append(f"  [{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
    return "\n".join(lines)


def summary_table(rows: list[tuple[str, RunResult | None, str]]) -> str:
    """One line per scenario of a suite: (name, result or None, error text)."""
    head = (
        f"{'scenario':<28} {'int':>3} {'latency':>8} {'floor':>7} {'overhead':>8} {'false':>5} {'missed':>6} "
        f"{'v2v':>8} {'sim':>6} {'speed':>6}  result"
    )
    lines = [head, "-" * len(head)]
    for name, res, err in rows:
        if res is None:
            lines.append(f"{name:<28} {'':>3} {'':>8} {'':>7} {'':>8} {'':>5} {'':>6} {'':>8} {'':>6} {'':>6}  ERROR {err}")
            continue
        m: Metrics = res.metrics()
        real = [i for i in m.interrupts if not i.false]
        first = real[0] if real else None
        v2v = next((u.voice_to_voice_ms for u in reversed(m.utterances) if u.voice_to_voice_ms is not None), None)
        failed = [c.name for c in res.checks() if not c.ok]
        speed = f"x{res.speedup:.0f}" if res.speedup else "-"
        lines.append(
            f"{name:<28} {len(m.interrupts):>3} {_fmt(first.latency_ms if first else None):>8} "
            f"{_fmt(first.floor_ms if first else None):>7} {_fmt(first.overhead_ms if first else None):>8} "
            f"{m.false_interrupts:>5} {m.missed_interrupts:>6} {_fmt(v2v):>8} {res.end_s:>5.1f}s {speed:>6}  "
            + ("PASS" if not failed else "FAIL " + ", ".join(failed))
        )
    return "\n".join(lines)


def speed_line(rows: list[tuple[str, RunResult | None, str]], load_s: float = 0.0) -> str:
    """Total simulated time over total wall time of the runs (engine loading excluded)."""
    done = [res for _, res, _ in rows if res is not None and res.wall_s]
    sim = sum(r.end_s for r in done)
    wall = sum(r.wall_s or 0.0 for r in done)
    if not done or wall <= 0:
        return "speed: -"
    slowest = min(done, key=lambda r: r.speedup or 0.0)
    return (
        f"speed: {sim:.1f} s simulated in {wall:.1f} s wall = x{sim / wall:.1f} real time "
        f"(slowest {slowest.scenario.name} x{slowest.speedup:.1f}; one-time engine load {load_s:.1f} s not counted)"
    )


class Progress:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width, self.done = total, stream, width, 0

    def update(self, label: str) -> None:
        filled = int(self.width * self.done / max(1, self.total))
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {label[:40]:<40}")
        self.stream.flush()

    def step(self, label: str) -> None:
        self.done += 1
        self.update(label)
        if self.done == self.total:
            self.stream.write("\n")
