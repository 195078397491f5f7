"""The PNG timeline of a run: microphone (speech marked, residual echo), speaker,
the detector's frame decisions and window count, and the client's events.

Drawn with matplotlib's object API on the Agg canvas (``Figure`` +
``FigureCanvasAgg``), not ``pyplot``: no global figure manager or backend
switch, nothing to close, and ~0.1 s fewer imports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.floor import ArmedSpan
from simulator.metrics import armed_span
from simulator.run import RunResult, TraceRow


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
    client = result.client
    sr = client.sr
    mix = client.mic.signal("mix")
    echo = client.mic.signal("echo")
    end = max(result.end_s, len(mix) / sr)
    spk = client.speaker.render(0, int(end * sr))
    trace = result.trace if result.trace else local_vad_trace(result)
    source = result.trace_source if result.trace else "client estimate"
    m = result.metrics()

    fig = Figure(figsize=(14, 9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 1.2]})
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
    return path
