"""Reports of runs: JSON, a text table, a PNG timeline, and the suite summary."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from simulator.floor import ArmedSpan
from simulator.metrics import Metrics, armed_span
from simulator.run import RunResult, TraceRow


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


def local_vad_trace(result: RunResult) -> list[TraceRow]:
    """Frame decisions of WebRTC VAD on the microphone signal, for runs without a server trace.

    Armed/lockout flags are estimated from the client's own events (the server's
    state is not visible over the wire).
    """
    from server.vad import frame_bytes, get_frame_vad

    vad = result.vad
    frame_ms = vad.frame_ms if vad else 30
    window = vad.window_size if vad else 48
    det = get_frame_vad()  # the server's default frame VAD (webrtc, mode 2)
    sr = result.client.sr
    nb = frame_bytes(sr, frame_ms)
    pcm = b"".join(c.pcm16() for c in result.client.mic.recorded)  # exactly what was sent
    spans = _armed_spans(result)
    locks = _lockout_spans(result)
    ring: list[bool] = []
    rows: list[TraceRow] = []
    for k in range(len(pcm) // nb):
        speech = det.is_speech(pcm[k * nb : (k + 1) * nb], sr)
        ring = (ring + [speech])[-window:]
        t = (k + 1) * frame_ms / 1000
        rows.append((t, speech, sum(ring), any(a <= t < b for a, b in spans), any(a <= t < b for a, b in locks)))
    return rows


def _client_spans(result: RunResult) -> list[tuple[ArmedSpan, float]]:
    # The metrics' own estimate (armed_span) of each response, so the picture shows the
    # spans the floor was computed on; with when the response was cut (inf: never).
    rec = result.record()
    out = []
    for rid, tr in result.client.responses.items():
        span = armed_span(rec, rid)
        if span is not None:
            out.append((span, tr.interrupted_t if tr.interrupted_t is not None else float("inf")))
    return out


def _lockout_spans(result: RunResult) -> list[tuple[float, float]]:
    if result.vad is None:
        return []
    lockout_s = result.vad.lockout_s
    return [(s.lockout_end - lockout_s, min(s.lockout_end, cut)) for s, cut in _client_spans(result)]


def _grace_spans(result: RunResult) -> list[tuple[float, float]]:
    """Estimated end of playback (start + audio sent) to + grace, per uninterrupted response."""
    if result.vad is None:
        return []
    out = []
    for tr in result.client.responses.values():
        start = tr.playback_started_t if tr.playback_started_t is not None else tr.first_delta_t
        if start is None or tr.interrupted_t is not None:
            continue
        end = start + tr.received_ms / 1000
        out.append((end, end + result.vad.grace_s))
    return out


def _armed_spans(result: RunResult) -> list[tuple[float, float]]:
    if result.trace and result.trace_source == "server":
        step = result.vad.frame_ms / 1000 if result.vad else 0.03
        return _runs([(t, armed) for t, _, _, armed, _ in result.trace], step)
    return [(s.start, min(s.end, cut)) for s, cut in _client_spans(result)]


def _runs(flags: list[tuple[float, bool]], step: float) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    start = None
    prev_t = 0.0
    for t, on in flags:
        if on and start is None:
            start = t - step
        elif not on and start is not None:
            spans.append((start, prev_t))
            start = None
        prev_t = t
    if start is not None:
        spans.append((start, prev_t))
    return spans


EVENT_STYLE = {
    "response.created": ("tab:blue", "created"),
    "response.interrupted": ("tab:red", "INTERRUPTED"),
    "response.done": ("tab:gray", "done"),
    "playback.started": ("tab:green", "play>"),
    "playback.stopped": ("tab:olive", "play|"),
    "response.cancel": ("tab:purple", "cancel"),
    "input_text": ("tab:cyan", "text"),
    "response.audio_transcript.done": ("tab:brown", "transcript"),
}


def write_png(result: RunResult, path: Path) -> Path:
    """The timeline: mic (speech marked, echo), speaker, VAD decisions and window count, events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    client = result.client
    sr = client.sr
    mix = client.mic.signal("mix")
    echo = client.mic.signal("echo")
    end = max(result.end_s, len(mix) / sr)
    spk = client.speaker.render(0, int(end * sr))
    trace = result.trace if result.trace else local_vad_trace(result)
    source = result.trace_source if result.trace else "client estimate"
    m = result.metrics()

    fig, axes = plt.subplots(4, 1, figsize=(14, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 1.2]})
    step = max(1, len(mix) // 40000)  # plotting every sample of a minute is slow and looks the same
    t_mic = np.arange(0, len(mix), step) / sr
    ax = axes[0]
    ax.plot(t_mic, mix[::step], color="0.55", lw=0.5, label="microphone (sent)")
    ax.plot(t_mic, echo[::step], color="tab:orange", lw=0.5, alpha=0.9, label="residual echo")
    for u in m.utterances:
        color = "tab:green" if u.expected_interrupt else "tab:cyan"
        ax.axvspan(u.onset_s, u.offset_s, color=color, alpha=0.18)
        ax.text(u.onset_s, 0.92, f"#{u.index} {u.text[:28]}", fontsize=7, va="top", transform=ax.get_xaxis_transform(), clip_on=True)
    ax.set_ylabel("mic")
    ax.legend(loc="lower right", fontsize=7)
    title = f"{result.scenario.name} ({result.mode}): "
    title += ", ".join(
        f"interrupt at {i.t:.2f}s"
        + (
            " FALSE" if i.false
            else f" latency {i.latency_ms:.0f} ms = floor {i.floor_ms:.0f} + overhead {i.overhead_ms:.0f}"
            if i.latency_ms is not None and i.floor_ms is not None and i.overhead_ms is not None
            else f" latency {i.latency_ms:.0f} ms (no floor)" if i.latency_ms is not None else ""
        )
        for i in m.interrupts
    ) or "no interrupt"
    ax.set_title(title, fontsize=10)

    ax = axes[1]
    t_spk = np.arange(0, len(spk), step) / sr
    ax.plot(t_spk, spk[::step], color="tab:blue", lw=0.5, label="speaker (played)")
    roles_seen: dict[str, float] = {}
    for seg in client.speaker.segments:
        if seg.role and seg.role not in roles_seen:
            roles_seen[seg.role] = seg.start / sr
    for role, t0 in roles_seen.items():
        ax.text(t0, 0.9, role, fontsize=7, transform=ax.get_xaxis_transform(), clip_on=True)
    for a, b in _lockout_spans(result):
        ax.axvspan(a, b, color="0.3", alpha=0.18, hatch="//", label="lockout")
    for a, b in _grace_spans(result):
        ax.axvspan(a, b, color="gold", alpha=0.25, label="grace (est.)")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), loc="lower right", fontsize=7)
    ax.set_ylabel("speaker")

    ax = axes[2]
    if trace:
        tt = np.array([r[0] for r in trace])
        ax.step(tt, [r[2] for r in trace], where="post", color="tab:purple", lw=1, label=f"speech frames in window ({source})")
        ax.fill_between(tt, 0, [1.5 if r[1] else 0 for r in trace], step="post", color="tab:green", alpha=0.5, label="frame VAD: speech")
    labels = result.labels
    if labels.speech:
        # The detector's frame k covers [k, k+1) frames and is dated by its end: draw it over its span.
        lt = np.array([labels.end_t(k) - labels.frame_s for k in range(len(labels.speech))])
        ax.fill_between(lt, 1.8, [3.3 if s else 1.8 for s in labels.speech], step="post", color="0.35", alpha=0.5, lw=0,
                        label="reference: user's own speech (floor labels)")
    for i in m.interrupts:
        if i.floor_ms is not None and i.onset_s is not None:
            ft = i.onset_s + i.floor_ms / 1000
            ax.axvline(ft, color="black", ls=":", lw=1.2)
            ax.text(ft, 0.97, " floor", fontsize=7, va="top", transform=ax.get_xaxis_transform(), clip_on=True)
    if result.vad is not None:
        ax.axhline(result.vad.threshold, color="tab:red", ls="--", lw=1, label=f"threshold {result.vad.threshold}")
        ax.set_ylim(0, result.vad.window_size + 1)
    for a, b in _armed_spans(result):
        ax.axvspan(a, b, color="tab:blue", alpha=0.08)
    ax.set_ylabel("detector")
    ax.legend(loc="upper left", fontsize=7)

    ax = axes[3]
    ax.set_yticks([])
    ax.set_ylabel("events")
    row = 0
    for e in client.log:
        style = EVENT_STYLE.get(e.type)
        if style is None or e.t > end:
            continue
        color, label = style
        for a in axes:
            a.axvline(e.t, color=color, lw=0.8 if e.type != "response.interrupted" else 1.6, alpha=0.6)
        ax.text(e.t, 0.1 + 0.28 * (row % 3), label, fontsize=7, color=color, transform=ax.get_xaxis_transform(), clip_on=True)
        row += 1
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, end)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
