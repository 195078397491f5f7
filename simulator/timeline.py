"""The PNG timeline of a run: microphone (speech marked, residual echo), speaker,
the detector's frame decisions and window count, and the client's events.

Drawn with matplotlib's object API on the Agg canvas (``Figure`` +
``FigureCanvasAgg``), not ``pyplot``: no global figure manager or backend
switch, nothing to close, and ~0.1 s fewer imports. A picture costs ~0.4 s of
CPU (tight layout ~0.1 s, drawing and PNG encoding ~0.25 s); a suite draws
them in a :class:`Renderer` process while its next scenario runs.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # not imported at run time: a Renderer's process only needs numpy and matplotlib
    from simulator.floor import ArmedSpan
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
    from simulator.metrics import armed_span

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


@dataclass
class Timeline:
    """What the picture shows, as plain data (picklable: drawn in another process by
    :class:`Renderer`). Times in seconds; ``mix``/``echo``/``spk`` are the decimated
    signals at ``t_mic``/``t_spk``; spans are ``(start, end)``."""

    title: str
    end: float
    t_mic: np.ndarray
    mix: np.ndarray
    echo: np.ndarray
    t_spk: np.ndarray
    spk: np.ndarray
    utterances: list[tuple[float, float, str, str]]  # onset, offset, colour, label
    roles: list[tuple[str, float]]  # agent, first heard at
    lockouts: list[tuple[float, float]]
    graces: list[tuple[float, float]]
    trace_source: str
    trace_t: np.ndarray
    trace_count: list[int]
    trace_speech: list[bool]
    labels_t: np.ndarray
    labels_speech: tuple[bool, ...]
    floors: list[float]
    threshold: int | None
    window_size: int | None
    armed: list[tuple[float, float]]
    events: list[tuple[float, str]]  # (t, event type) of the styled events up to ``end``


def timeline_of(result: RunResult) -> Timeline:
    """The data of ``result``'s picture (the signals decimated to ~40000 points each)."""
    client = result.client
    sr = client.sr
    mix = client.mic.signal("mix")
    echo = client.mic.signal("echo")
    end = max(result.end_s, len(mix) / sr)
    spk = client.speaker.render(0, int(end * sr))
    trace = result.trace if result.trace else local_vad_trace(result)
    m = result.metrics()
    step = max(1, len(mix) // 40000)  # plotting every sample of a minute is slow and looks the same
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
    roles_seen: dict[str, float] = {}
    for seg in client.speaker.segments:
        if seg.role and seg.role not in roles_seen:
            roles_seen[seg.role] = seg.start / sr
    labels = result.labels
    return Timeline(
        title=title,
        end=end,
        t_mic=np.arange(0, len(mix), step) / sr,
        mix=np.ascontiguousarray(mix[::step]),
        echo=np.ascontiguousarray(echo[::step]),
        t_spk=np.arange(0, len(spk), step) / sr,
        spk=np.ascontiguousarray(spk[::step]),
        utterances=[(u.onset_s, u.offset_s, "tab:green" if u.expected_interrupt else "tab:cyan", f"#{u.index} {u.text[:28]}")
                    for u in m.utterances],
        roles=list(roles_seen.items()),
        lockouts=_lockout_spans(result),
        graces=_grace_spans(result),
        trace_source=result.trace_source if result.trace else "client estimate",
        trace_t=np.array([r[0] for r in trace]),
        trace_count=[r[2] for r in trace],
        trace_speech=[r[1] for r in trace],
        # The detector's frame k covers [k, k+1) frames and is dated by its end: drawn over its span.
        labels_t=np.array([labels.end_t(k) - labels.frame_s for k in range(len(labels.speech))]),
        labels_speech=labels.speech,
        floors=[i.onset_s + i.floor_ms / 1000 for i in m.interrupts if i.floor_ms is not None and i.onset_s is not None],
        threshold=result.vad.threshold if result.vad is not None else None,
        window_size=result.vad.window_size if result.vad is not None else None,
        armed=_armed_spans(result),
        events=[(e.t, e.type) for e in client.log if e.type in EVENT_STYLE and e.t <= end],
    )


def write_png(result: RunResult, path: Path) -> Path:
    """The timeline: mic (speech marked, echo), speaker, VAD decisions and window count, events."""
    return draw(timeline_of(result), path)


def draw(tl: Timeline, path: Path) -> Path:
    """Draw ``tl`` into the PNG ``path`` (folders are created); returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 1.2]})
    ax = axes[0]
    ax.plot(tl.t_mic, tl.mix, color="0.55", lw=0.5, label="microphone (sent)")
    ax.plot(tl.t_mic, tl.echo, color="tab:orange", lw=0.5, alpha=0.9, label="residual echo")
    for onset, offset, color, label in tl.utterances:
        ax.axvspan(onset, offset, color=color, alpha=0.18)
        ax.text(onset, 0.92, label, fontsize=7, va="top", transform=ax.get_xaxis_transform(), clip_on=True)
    ax.set_ylabel("mic")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(tl.title, fontsize=10)

    ax = axes[1]
    ax.plot(tl.t_spk, tl.spk, color="tab:blue", lw=0.5, label="speaker (played)")
    for role, t0 in tl.roles:
        ax.text(t0, 0.9, role, fontsize=7, transform=ax.get_xaxis_transform(), clip_on=True)
    for a, b in tl.lockouts:
        ax.axvspan(a, b, color="0.3", alpha=0.18, hatch="//", label="lockout")
    for a, b in tl.graces:
        ax.axvspan(a, b, color="gold", alpha=0.25, label="grace (est.)")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), loc="lower right", fontsize=7)
    ax.set_ylabel("speaker")

    ax = axes[2]
    if len(tl.trace_t):
        ax.step(tl.trace_t, tl.trace_count, where="post", color="tab:purple", lw=1,
                label=f"speech frames in window ({tl.trace_source})")
        ax.fill_between(tl.trace_t, 0, [1.5 if s else 0 for s in tl.trace_speech], step="post", color="tab:green",
                        alpha=0.5, label="frame VAD: speech")
    if tl.labels_speech:
        ax.fill_between(tl.labels_t, 1.8, [3.3 if s else 1.8 for s in tl.labels_speech], step="post", color="0.35",
                        alpha=0.5, lw=0, label="reference: user's own speech (floor labels)")
    for ft in tl.floors:
        ax.axvline(ft, color="black", ls=":", lw=1.2)
        ax.text(ft, 0.97, " floor", fontsize=7, va="top", transform=ax.get_xaxis_transform(), clip_on=True)
    if tl.threshold is not None and tl.window_size is not None:
        ax.axhline(tl.threshold, color="tab:red", ls="--", lw=1, label=f"threshold {tl.threshold}")
        ax.set_ylim(0, tl.window_size + 1)
    for a, b in tl.armed:
        ax.axvspan(a, b, color="tab:blue", alpha=0.08)
    ax.set_ylabel("detector")
    ax.legend(loc="upper left", fontsize=7)

    ax = axes[3]
    ax.set_yticks([])
    ax.set_ylabel("events")
    for row, (t, kind) in enumerate(tl.events):
        color, label = EVENT_STYLE[kind]
        for a in axes:
            a.axvline(t, color=color, lw=0.8 if kind != "response.interrupted" else 1.6, alpha=0.6)
        ax.text(t, 0.1 + 0.28 * (row % 3), label, fontsize=7, color=color, transform=ax.get_xaxis_transform(), clip_on=True)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, tl.end)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


class Renderer:
    """Draws timelines in ``processes`` worker processes while the caller goes on.

    A suite's runs are single-threaded Python; its pictures are independent of
    the next run, so on a machine with a second core they cost the suite only
    :func:`timeline_of` (~20 ms each) and the wait for the last one. Workers are
    started with ``spawn`` (forking a process that runs ONNX Runtime /
    CTranslate2 threads can deadlock, as in :mod:`simulator.executor`) and
    import matplotlib at once, so that overlaps the caller's engine loading.
    The pictures are the ones :func:`write_png` draws, pixel for pixel.
    """

    def __init__(self, processes: int = 1) -> None:
        self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
        self._pending: list[Future[object]] = [self._pool.submit(import_matplotlib) for _ in range(processes)]

    def submit(self, result: RunResult, path: Path) -> Path:
        """Queue the picture of ``result`` for ``path``; returns ``path`` (written by :meth:`close`)."""
        self._pending.append(self._pool.submit(draw, timeline_of(result), path))
        return path

    def close(self) -> None:
        """Wait until every queued picture is written; raises the first drawing error."""
        try:
            for fut in self._pending:
                fut.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def import_matplotlib() -> None:
    """Import what :func:`draw` needs (~0.3 s), ahead of the first picture: a caller does it
    while something else (engine loading) runs; a :class:`Renderer` worker as soon as it starts."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
