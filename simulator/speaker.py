"""The simulated loudspeaker: a playback timeline on the microphone's sample clock.

Response audio arrives in chunks at known times; the speaker plays it back to
back. Audio that arrives while the speaker is idle starts at the next output
block boundary (a real audio device pulls audio in blocks, and the simulated
client's block is its 30 ms tick), so the moment playback starts is also the
moment the client can report it. Audio that arrives while earlier audio is
still playing is appended after it. ``stop`` cuts playback at once and drops
what was queued.

Everything is in integer sample indices at one rate (the microphone's) so the
echo path and the metrics see exact sample positions. No clock is read here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np


@dataclass
class Segment:
    """One chunk of response audio placed on the timeline."""

    start: int
    samples: np.ndarray  # float32 in [-1, 1]
    response_id: str | None = None
    role: str | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


class Speaker:
    """Playback timeline. ``block`` is the output block in samples (1 = no alignment)."""

    def __init__(self, block: int = 1) -> None:
        if block < 1:
            raise ValueError(f"speaker block must be >= 1 sample, got {block}")
        self.block = block
        self.segments: list[Segment] = []
        self._starts: list[int] = []
        self.stops: list[int] = []

    @property
    def queue_end(self) -> int:
        """Sample index at which everything queued so far has been played."""
        return self.segments[-1].end if self.segments else 0

    def _align(self, n: int) -> int:
        return -(-n // self.block) * self.block

    def enqueue(self, n: int, samples: np.ndarray, response_id: str | None = None, role: str | None = None) -> Segment:
        """Queue ``samples`` that arrived at sample ``n``; returns where they were placed."""
        if n < 0:
            raise ValueError(f"arrival sample must be >= 0, got {n}")
        # Still playing (or queued) at n: play right after; idle: wait for the next block.
        start = self.queue_end if self.queue_end >= n and self.segments else self._align(n)
        seg = Segment(start, np.asarray(samples, dtype=np.float32), response_id, role)
        if len(seg.samples):
            self.segments.append(seg)
            self._starts.append(seg.start)
        return seg

    def stop(self, n: int) -> int:
        """Stop playback at sample ``n``: cut the playing chunk, drop the queue.

        Returns how many queued samples were discarded.
        """
        dropped = 0
        keep: list[Segment] = []
        for seg in self.segments:
            if seg.end <= n:
                keep.append(seg)
            elif seg.start < n:
                dropped += seg.end - n
                keep.append(Segment(seg.start, seg.samples[: n - seg.start], seg.response_id, seg.role))
            else:
                dropped += len(seg.samples)
        self.segments = keep
        self._starts = [s.start for s in keep]
        self.stops.append(n)
        return dropped

    def is_playing(self, n: int) -> bool:
        """True when sample ``n`` is being played."""
        i = bisect.bisect_right(self._starts, n) - 1
        return i >= 0 and self.segments[i].start <= n < self.segments[i].end

    def render(self, a: int, b: int) -> np.ndarray:
        """The speaker's output for samples ``[a, b)`` (zeros where silent)."""
        out = np.zeros(max(0, b - a), dtype=np.float32)
        if b <= a:
            return out
        i = max(0, bisect.bisect_right(self._starts, a) - 1)
        while i < len(self.segments) and self.segments[i].start < b:
            seg = self.segments[i]
            lo, hi = max(a, seg.start), min(b, seg.end)
            if hi > lo:
                out[lo - a : hi - a] = seg.samples[lo - seg.start : hi - seg.start]
            i += 1
        return out

    def played(self, response_id: str, n: int) -> int:
        """Samples of ``response_id`` played before sample ``n``."""
        return sum(
            min(max(n - seg.start, 0), len(seg.samples)) for seg in self.segments if seg.response_id == response_id
        )

    def played_between(self, a: int, b: int) -> int:
        """Samples of any response played in ``[a, b)``."""
        return sum(max(0, min(b, seg.end) - max(a, seg.start)) for seg in self.segments)

    def intervals(self) -> list[tuple[int, int]]:
        """Merged ``[start, end)`` spans during which the speaker plays."""
        spans: list[tuple[int, int]] = []
        for seg in self.segments:
            if spans and seg.start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], seg.end))
            else:
                spans.append((seg.start, seg.end))
        return spans
