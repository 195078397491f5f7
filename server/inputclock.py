"""The input audio's own clock: where each input sample sits on the session clock.

The input stream is timed by its sample count, not by when its chunks arrive.
A chunk that arrives at session time ``a`` and ends at audio position ``p``
(seconds of audio received so far) was captured no later than ``a``; its
*transit* ``a - p`` is the capture-to-arrival delay plus a constant (the
session time at which the stream's position 0 was captured). The smallest
transit seen over the last :data:`WINDOW_S` seconds of arrivals is taken as
that constant, and a sample at position ``q`` is placed at ``q + offset``.
This is the minimum-transit-delay estimate that RTP receivers and NTP use to
separate clock offset from network delay: the least delayed packet is the best
witness of the offset (D. Mills, "Network Time Protocol Version 4", RFC 5905,
section 10, clock filter; RFC 3550 section 6.4.1 and appendix A.8 for the
transit of RTP packets).

What that gives (docs/bargein.md, "Input audio time"):

* paced input (every chunk arrives when its last sample was captured, plus a
  constant delay): every sample is stamped exactly at its capture time plus
  that delay, frames exactly one frame apart;
* jitter (chunks delayed by varying amounts): absorbed, stamps follow the
  least delayed chunk of the window;
* a stall shorter than the window followed by a catch-up burst: the delayed
  audio is stamped at its capture times, not at its late arrival;
* a burst of audio faster than real time (buffered audio at start-up, a
  bridge catching up): the offset drops to the burst's transit, so the audio
  that follows in real time maps onto its arrival again; the burst itself is
  stamped no later than it arrived (it cannot have been captured in the
  future), squeezed together;
* a gap longer than the window (the client stopped sending: push-to-talk mic
  off, recording stopped and restarted) re-anchors the clock when audio
  resumes. A gap shorter than the window looks like a stall at first and is
  stamped as if the audio had been captured right after the gap began, until
  the chunks from before the gap leave the window (ambiguity resolved after
  at most ``window_s``: a real stall is followed by a catch-up burst, a gap is
  not).

Stamps never decrease and never exceed the latest arrival. When the offset
drops, stamps slew: they advance at least ``min_rate`` times the audio's
duration (but stop at the arrival time) instead of jumping back. When it
rises, they jump forward.

Pure computation: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque

#: Seconds of arrivals over which the smallest transit is taken. Longer than
#: a stall we want to stamp at capture time (2 s tested) and than jitter's
#: swings; short enough that a client that stopped sending re-anchors soon.
WINDOW_S = 3.0
#: While catching up with a dropped offset, stamps advance at least this
#: share of the audio's duration (and never past the arrival time).
MIN_RATE = 0.5


class InputClock:
    """Maps positions in one input audio stream to session time.

    Call :meth:`add_chunk` for every chunk as it arrives (``arrival_t``
    non-decreasing, seconds on the session clock), then :meth:`stamp` for the
    positions inside it, in non-decreasing order.
    """

    def __init__(self, sample_rate: int, *, window_s: float = WINDOW_S, min_rate: float = MIN_RATE) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate}")
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
        if not 0 < min_rate <= 1:
            raise ValueError(f"min_rate must be in (0, 1], got {min_rate}")
        self.sample_rate = sample_rate
        self.window_s = window_s
        self.min_rate = min_rate
        self._samples = 0
        self._arrival_t: float | None = None
        # (arrival, transit) with increasing arrival and increasing transit: the
        # sliding-window minimum is the front (a monotonic queue).
        self._window: deque[tuple[float, float]] = deque()
        self._last: tuple[float, float] | None = None  # (position, stamp) of the latest stamp

    @property
    def position_s(self) -> float:
        """Seconds of audio received so far (the end of the latest chunk)."""
        return self._samples / self.sample_rate

    @property
    def offset(self) -> float | None:
        """Session time of audio position 0 by the current estimate (None before any audio)."""
        return self._window[0][1] if self._window else None

    def add_chunk(self, arrival_t: float, n_samples: int) -> float:
        """Record a chunk of ``n_samples`` that arrived at ``arrival_t``; return the new :attr:`position_s`.

        Raises ``ValueError`` if ``arrival_t`` goes back or ``n_samples`` < 0.
        An empty chunk says nothing about capture time and is ignored.
        """
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        if self._arrival_t is not None and arrival_t < self._arrival_t:
            raise ValueError(f"arrival times must not go back: {arrival_t} < {self._arrival_t}")
        if n_samples == 0:
            return self.position_s
        self._arrival_t = arrival_t
        self._samples += n_samples
        transit = arrival_t - self.position_s
        while self._window and self._window[-1][1] >= transit:
            self._window.pop()
        self._window.append((arrival_t, transit))
        while self._window[0][0] < arrival_t - self.window_s:
            self._window.popleft()
        return self.position_s

    def stamp(self, position_s: float) -> float:
        """Session time of the sample at ``position_s`` (seconds into the stream).

        Call for positions already received, in non-decreasing order. The
        result is ``position_s + offset`` except while slewing after the offset
        dropped; it never decreases from one call to the next and never exceeds
        the latest arrival time.
        """
        if self._arrival_t is None:
            raise ValueError("stamp() before any audio: call add_chunk first")
        if position_s > self.position_s + 1e-9:
            raise ValueError(f"position {position_s} s is beyond the audio received ({self.position_s} s)")
        stamp = position_s + self._window[0][1]
        if self._last is not None:
            last_position, last_stamp = self._last
            if position_s < last_position - 1e-9:
                raise ValueError(f"positions must not go back: {position_s} < {last_position}")
            stamp = max(stamp, last_stamp + self.min_rate * (position_s - last_position))
        stamp = min(stamp, self._arrival_t)
        self._last = (position_s, stamp)
        return stamp
