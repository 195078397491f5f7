"""The algorithmic floor of barge-in latency: the spec's window rule on perfect labels.

The floor answers "how early could the detector fire for this speech, if its
frame VAD saw only the user?". It runs the rule of ``config-and-bargein.md``
(a ring of the last ``window_size`` frame decisions, armed from the first audio
of a response, an interrupt at the first frame where the ring holds
``threshold`` speech frames and the lockout is over) over *reference labels*:
one speech / non-speech decision per frame of the user's clean signal as it was
placed on the microphone timeline, before echo and noise are mixed in.

Reference labels: a frame is speech when the user's clean signal in it is
within 40 dB of the loudest frame of that clip (about the rule that marks the
fixtures' sidecar speech spans: -55 dBFS on clips peak-normalised to -3 dBFS,
40-43 dB below their loudest 30 ms frame; so the floor and the onset latency is
measured from agree to within a frame), and gaps of at most 100 ms inside speech are filled (a
stop closure inside "Stop" is still the word; the 0.36 s pause after it is not).
Why not WebRTC VAD on the clean clip: its hangover marks 3-4 frames after every
phrase as speech, so it turns the 13 frames of "Stop," into 16, above the
tutorial's 15, and credits the detector with firing on a word the user had
finished ~0.1 s before; it also misses onset frames now and then. A perfect VAD
has neither. The real frame VAD's hangover can still beat the floor by a frame or
three: that, not more, is the slightly negative overhead one may see.

Everything here is pure: times are inputs, nothing reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: A frame is speech when within this many dB of the clip's loudest frame...
REFERENCE_RELATIVE_DB = -40.0
#: ... and above this absolute level (about 16-bit quantisation noise: a silent clip has no speech).
REFERENCE_ABSOLUTE_DBFS = -90.0
#: Gaps inside speech up to this long are speech too (closures inside words).
REFERENCE_MAX_GAP_MS = 100
#: Times are sums of float steps; compare with this slack (as the server does).
EPS = 1e-9


@dataclass(frozen=True)
class FrameLabels:
    """Speech decisions for consecutive frames from t = 0: frame ``k`` covers
    ``[k * frame_s, (k + 1) * frame_s)`` and is dated by its end, as the server dates frames."""

    frame_ms: int
    speech: tuple[bool, ...]

    @property
    def frame_s(self) -> float:
        return self.frame_ms / 1000.0

    def end_t(self, k: int) -> float:
        """Time of the last sample of frame ``k`` (the time the server sees it)."""
        return (k + 1) * self.frame_ms / 1000.0

    def count(self) -> int:
        return sum(self.speech)


@dataclass(frozen=True)
class ArmedSpan:
    """One response as the detector sees it: armed ``[start, end)``, lockout over at ``lockout_end``."""

    start: float
    end: float  # float("inf") when the response was still armed when it was interrupted
    lockout_end: float


def first_fire(
    labels: FrameLabels,
    threshold: int,
    window_size: int,
    span: ArmedSpan,
    *,
    not_before: float = float("-inf"),
) -> float | None:
    """The end time of the first frame at which the window rule fires within ``span``.

    The ring starts empty when the span arms (frames before it are never
    counted), counts during the lockout, and fires at the first armed frame with
    ``threshold`` speech frames in the last ``window_size`` once the lockout is
    over. A firing before ``not_before`` (earlier speech, not the utterance asked
    about) clears the ring and counting goes on, so each utterance gets its own
    floor. Returns None when it never fires while armed.
    """
    if not 1 <= threshold <= window_size:
        raise ValueError(f"threshold must be in 1..window_size ({window_size}), got {threshold}")
    ring: deque[bool] = deque(maxlen=window_size)
    in_ring = 0
    for k, speech in enumerate(labels.speech):
        t = labels.end_t(k)
        if t + EPS < span.start:
            continue
        if t + EPS >= span.end:
            return None
        if len(ring) == window_size and ring[0]:
            in_ring -= 1
        ring.append(speech)
        in_ring += speech
        if in_ring >= threshold and t + EPS >= span.lockout_end:
            if t + EPS >= not_before:
                return t
            ring.clear()
            in_ring = 0
    return None


def labels_from_spans(spans: Iterable[tuple[float, float]], n_frames: int, frame_ms: int) -> FrameLabels:
    """Labels from speech spans (seconds): a frame is speech when at least half of it lies in a span.

    For records without audio (hand-made in tests) and as a readable fallback.
    """
    frame_s = frame_ms / 1000.0
    out = [False] * n_frames
    for on, off in spans:
        for k in range(max(0, int(on / frame_s) - 1), min(n_frames, int(off / frame_s) + 2)):
            a, b = k * frame_s, (k + 1) * frame_s
            if min(b, off) - max(a, on) >= frame_s / 2 - EPS:
                out[k] = True
    return FrameLabels(frame_ms, tuple(out))


def reference_labels(
    placements: Iterable[tuple[int, np.ndarray]],
    n_samples: int,
    sample_rate: int,
    frame_ms: int,
) -> FrameLabels:
    """Labels of the user's clean speech on the microphone's frame grid.

    ``placements``: (start sample, samples) of each clip as placed in the
    microphone (gain applied), ``n_samples``: length of the microphone signal.
    Each clip is judged against its own loudest frame, so a quiet speaker is
    labelled as well as a loud one.
    """
    if frame_ms not in (10, 20, 30):
        raise ValueError(f"frame_ms must be 10, 20 or 30 (the detector's frames), got {frame_ms}")
    n = sample_rate * frame_ms // 1000
    frames = n_samples // n
    speech = np.zeros(frames, dtype=bool)
    for start, samples in placements:
        if start < 0:
            raise ValueError(f"a placement cannot start before sample 0, got {start}")
        track = np.zeros(frames * n, dtype=np.float64)
        lo, hi = start, min(frames * n, start + len(samples))
        if hi <= lo:
            continue
        track[lo:hi] = samples[: hi - lo]
        rms = np.sqrt(np.mean(track.reshape(frames, n) ** 2, axis=1))
        db = 20 * np.log10(rms + 1e-12)
        speech |= (db > db.max() + REFERENCE_RELATIVE_DB) & (db > REFERENCE_ABSOLUTE_DBFS)
    max_gap = REFERENCE_MAX_GAP_MS // frame_ms
    on = np.flatnonzero(speech)
    for a, b in zip(on[:-1], on[1:]):
        if 1 < b - a <= max_gap + 1:
            speech[a:b] = True
    return FrameLabels(frame_ms, tuple(bool(x) for x in speech))


def speech_frames_between(labels: FrameLabels, a: float, b: float) -> int:
    """How many frames ending in ``(a, b]`` are speech (e.g. the length of a backchannel in frames)."""
    return sum(1 for k, s in enumerate(labels.speech) if s and a < labels.end_t(k) <= b + EPS)


def as_runs(labels: Sequence[bool]) -> str:
    """A compact picture of labels, ``1`` speech / ``0`` not (for reports and test messages)."""
    return "".join("1" if s else "0" for s in labels)
