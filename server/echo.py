"""Echo gate: keeps the assistant's own voice, come back through the user's
microphone, from counting as user speech in the barge-in detector.

The server knows exactly what it sent (the far end) and, from the playback
timeline, roughly where the client's playback is. :class:`EchoEstimator`
measures the echo path from that reference: the delay of the echo relative to
the estimated playback position and its coupling (echo level minus far-end
level, dB: the echo return loss plus whatever a client echo canceller
removes). Then a mic frame is "explained by echo" when the level of its
non-stationary part (:class:`StationaryFloor`: its power above the mic's
stationary floor, so a loud hum or tone does not hide the echo under it) is no
more than ``margin_db`` above the echo the path predicts for it. Explained frames
are not counted by the barge-in frame counter and are silenced in the audio
the neural confirmer hears. With no measurable echo (headphones, a browser's
fake microphone) there is no coupling and nothing is explained, so the gate
drops nothing.

Why a gate is needed (measured with the simulator): a client echo canceller
leaves a residual (30 dB of attenuation leaves the assistant's voice at about
-57 dBFS), WebRTC VAD calls that residual speech, and Silero confirms it,
because it *is* speech; and Silero's recurrent state, primed by that residual,
goes on calling a hum after it speech.

Method (cheap by design: the issue #11 budget is <= 0.2 ms of server work per
30 ms frame, so no per-sample adaptive filter): 10 ms level envelopes in dB of
the mic and of the far end. For every candidate delay on a 10 ms grid the
Pearson correlation of the mic envelope with the delayed far-end envelope is
computed over the last few seconds; the best delay wins when the correlation
is high enough, and the coupling is the 25th percentile of mic minus far-end
level over the blocks where the far end is loud. Double talk (a user talking
over the answer) lowers the correlation, so the previous path is kept
meanwhile, and it only raises mic minus far end, which a low quantile ignores. This is
envelope-based time-delay estimation (as in WebRTC's delay estimator, which
matches binary spectra instead) plus a Geigel-style level test against the
*predicted echo* rather than against the far end itself (Geigel tests a
fixed margin below the far-end peak, which drops quiet user speech even when
no echo exists; D. L. Duttweiler, "A twelve-channel digital echo canceler",
IEEE Trans. Commun. 1978).

It sits in front of the frame VAD, with the same reference store a
server-side echo canceller would use (docs/design.md).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Resolution of the level envelopes (seconds).
BLOCK_S = 0.01
#: Levels are clamped to this floor (dBFS): digital silence must not dominate the correlation.
FLOOR_DB = -80.0


def pcm16_samples(pcm: bytes | np.ndarray) -> np.ndarray:
    """PCM16 audio as an int16 array: a view of ``pcm`` (no copy); arrays pass through."""
    return np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, (bytes, bytearray, memoryview)) else pcm


def level_dbfs(pcm: bytes | np.ndarray) -> float:
    """RMS level of PCM16 audio (bytes or int16 samples) in dB relative to full scale (-inf for silence)."""
    x = pcm16_samples(pcm)
    if len(x) == 0:
        return -math.inf
    xf = x.astype(np.float64)
    # The squares of int16 samples are integers, and so is every partial sum of
    # fewer than 2^23 of them in float64: the dot product is the exact sum,
    # whatever its order (the same figure as a mean of squares, at a third of the cost).
    rms = math.sqrt(float(np.dot(xf, xf)) / len(x))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf


class FarEndLevels:
    """The far-end reference: the level, block by block (10 ms), of the audio
    sent for the current response.

    Block ``k`` covers positions ``[k, k + 1) x BLOCK_S`` seconds into the
    response's audio.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.block = max(1, int(round(sample_rate * BLOCK_S)))
        self.levels: list[float] = []
        self._tail = np.zeros(0, dtype=np.int16)
        self._array: np.ndarray | None = None

    def reset(self) -> None:
        self.levels.clear()
        self._tail = np.zeros(0, dtype=np.int16)
        self._array = None

    def append(self, pcm: bytes) -> None:
        """Add audio sent to the client, in order."""
        x = np.concatenate([self._tail, np.frombuffer(pcm, dtype=np.int16)])
        whole = len(x) // self.block * self.block
        blocks = x[:whole].reshape(-1, self.block).astype(np.float64)
        rms = np.sqrt(np.mean(blocks**2, axis=1))
        with np.errstate(divide="ignore"):
            self.levels.extend((20 * np.log10(rms / 32768)).tolist())
        self._tail = x[whole:]
        self._array = None

    def array(self) -> np.ndarray:
        """The levels as float32, clamped to :data:`FLOOR_DB` (cached until the next append)."""
        if self._array is None:
            self._array = np.maximum(np.asarray(self.levels, dtype=np.float32), FLOOR_DB)
        return self._array

    def peak_db(self, start_s: float, end_s: float) -> float:
        """Loudest block between two positions (seconds into the response's audio)."""
        a = max(0, int(start_s / BLOCK_S))
        b = min(len(self.levels), int(math.ceil(end_s / BLOCK_S)))
        return max(self.levels[a:b], default=-math.inf)


@dataclass(frozen=True)
class EchoPathEstimate:
    """A measured echo path.

    ``delay_s``: how far the echo lags the estimated playback position (s; may
    be negative when the client started earlier than the server thinks).
    ``coupling_db``: echo level minus far-end level (dB, negative: -6 for a
    speaker coupled at half amplitude, -36 with a 30 dB echo canceller after it).
    ``correlation``: Pearson correlation of the envelopes at that delay (0..1),
    the confidence. ``blocks``: how many 10 ms blocks it was measured on.
    """

    delay_s: float
    coupling_db: float
    correlation: float
    blocks: int


class StationaryFloor:
    """Per-bin stationary part of the mic spectrum and the frame power above it.

    Each frame is analysed with the one before it (a Hann-windowed 2-frame
    window: 60 ms at 30 ms frames, so a 50/60 Hz hum spans whole-enough periods
    that its bin powers do not swing with its phase). The floor of each bin is
    the minimum of its power over the last ``window_s`` (``subwindows`` sub-
    windows, as in minimum statistics: R. Martin, "Noise power spectral density
    estimation based on optimal smoothing and minimum statistics", IEEE Trans.
    Speech Audio Process. 2001; no smoothing or bias correction, the floor is
    over-subtracted by ``over_db`` instead). A steady hum or tone sits on the
    floor; speech (its bins fall silent between syllables) does not.

    What is left after spectral subtraction may still hold one moving pure tone
    (a siren sweeps ~800 Hz/s, far too fast for the floor): when one peak
    (+/- ``peak_bins``) holds at least ``tone_share`` of it, that peak is taken
    out too. Speech spreads its power over several harmonics and formants.

    Frames whose result nobody needs (nothing plays, so no frame can be echo)
    go to :meth:`skip`: the floor must still learn from them (it is learned
    before an answer starts and subtracted from its first frame on), but the
    analysis waits for the next :meth:`push`, which then analyses only the
    skipped frames its minima still depend on (the last ``subwindows``
    complete sub-windows and the one being filled): the same floor, bit for
    bit, for at most ``window_s`` + one sub-window of analyses once per answer
    instead of one per frame.
    """

    def __init__(
        self,
        window_s: float = 0.45,
        frame_s: float = 0.03,
        subwindows: int = 3,
        over_db: float = 3.0,
        peak_bins: int = 4,
        tone_share: float = 0.6,
    ) -> None:
        frames = max(subwindows, int(round(window_s / frame_s)))
        self.sub_len = max(1, frames // subwindows)
        self.subwindows = subwindows
        self.over = 10 ** (over_db / 10)
        self.peak_bins = peak_bins
        self.tone_share = tone_share
        self._prev = np.zeros(0)
        self._mins: deque[np.ndarray] = deque(maxlen=subwindows)
        self._cur: np.ndarray | None = None  # the minimum of the sub-window being filled
        self._past: np.ndarray | None = None  # the minimum of the completed ones
        self._count = 0
        self._window: np.ndarray | None = None
        # Skipped frames not analysed yet (the last (subwindows + 1) x sub_len of them
        # are all a catch-up can need) and how many were skipped in all.
        self._backlog: deque[np.ndarray] = deque(maxlen=(subwindows + 1) * self.sub_len)
        self._skipped = 0

    def push(self, x: np.ndarray) -> float:
        """Take one frame (float samples scaled to +/-1, or int16 PCM); returns the power (mean
        square, full scale = 1) of its non-stationary part, at most the frame's own power."""
        x = _unit_scale(x)
        if self._skipped:
            self._catch_up()
        power, floor = self._learn(x)
        energy = float(np.dot(x, x)) / len(x)
        if floor is None:  # no sub-window complete yet: nothing is known to be stationary
            return energy
        total = float(power.sum())
        if total <= 0:
            return 0.0
        rest = np.subtract(power, np.multiply(floor, self.over, out=floor), out=floor)  # floor is a fresh array
        np.maximum(rest, 0.0, out=rest)
        left = float(rest.sum())
        if left > 0:
            k = int(np.argmax(rest))
            peak = float(rest[max(0, k - self.peak_bins) : k + self.peak_bins + 1].sum())
            if peak >= self.tone_share * left:
                left -= peak
        return energy * left / total

    def skip(self, x: np.ndarray) -> None:
        """Take one frame as :meth:`push` does, without its result: it is analysed at the next push, if it still matters."""
        if self._window is None or len(self._window) != 2 * len(x) or len(self._prev) != len(x):
            # The analysis window is (re)starting (the first two frames, or the frame
            # length changed): learn now, so a backlog always starts from a settled state.
            if self._skipped:
                self._catch_up()
            self._learn(_unit_scale(x))
            return
        self._backlog.append(x)
        self._skipped += 1

    def _catch_up(self) -> None:
        """Analyse the skipped frames, or just those the floor still depends on."""
        n, sub = self._skipped, self.sub_len
        frames = list(self._backlog)
        self._backlog.clear()
        self._skipped = 0
        if n >= (self.subwindows + 1) * sub:
            # The floor after these frames holds the last `subwindows` complete
            # sub-windows and the partial one: start afresh at the first of them
            # (sub-windows keep their phase: `_count` frames were in the open one).
            partial = (self._count % sub if self._cur is not None else 0) + n
            keep = partial % sub + self.subwindows * sub
            self._mins.clear()
            self._cur, self._past, self._count = None, None, 0
            self._prev = _unit_scale(frames[-keep - 1])
            frames = frames[-keep:]
        for x in frames:
            self._learn(_unit_scale(x))

    def _learn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Update the minima with one frame (float, +/-1); its power spectrum and the floor before it (None: none yet)."""
        seg = np.concatenate([self._prev, x]) if len(self._prev) == len(x) else x
        self._prev = x
        if self._window is None or len(self._window) != len(seg):
            self._window = np.hanning(len(seg))
            self._mins.clear()
            self._past = None
            self._cur = None
        spec = np.fft.rfft(seg * self._window)
        power = spec.real**2 + spec.imag**2
        if self._cur is None:
            self._cur, self._count = power.copy(), 0
        else:
            np.minimum(self._cur, power, out=self._cur)
        self._count += 1
        past = self._past
        floor = None if past is None else np.minimum(self._cur, past)
        if self._count >= self.sub_len:
            self._mins.append(self._cur)
            self._past = np.min(self._mins, axis=0)
            self._cur = None
        return power, floor


def _unit_scale(x: np.ndarray) -> np.ndarray:
    """int16 PCM as float64 scaled to +/-1 (floats pass through)."""
    return x.astype(np.float64) / 32768.0 if x.dtype == np.int16 else x


@dataclass
class _Frame:
    t: float
    level_db: float  # the frame's non-stationary part (StationaryFloor), clamped to FLOOR_DB
    mic: np.ndarray  # (n_blocks,) block levels, dB
    far: np.ndarray  # (n_blocks, n_lags) far-end level at each candidate delay, dB


class EchoEstimator:
    """Measures the echo path from level envelopes and says which mic frames echo explains.

    ``far`` is the session's far-end reference store; mic audio is PCM16 at
    ``sample_rate``. Feed every mic frame with :meth:`push` (``t`` = time of its last sample,
    ``position_s`` = the estimated playback position at ``t``, None when
    nothing is playing). :meth:`explains` answers for any frame still in the
    history (the last ``history_s``) with the *current* estimate, so the
    barge-in confirmation can re-judge frames heard before the path was known.

    Knobs: ``margin_db`` how far above the predicted echo a frame may be and
    still be echo; ``min_delay_s`` .. ``max_delay_s`` the delay search range;
    ``min_correlation`` the confidence needed to accept a path, plus
    2/sqrt(blocks) for chance correlation over a short history;
    ``min_active_s`` how much loud far-end audio the history must hold;
    ``update_every`` frames between re-estimates (cost);
    ``tail_s`` / ``tail_db_per_s`` far-end audio this long before the direct
    path still explains echo, decaying at this rate (room reverberation);
    ``spread_s`` tolerance of the delay in either direction;
    ``max_spread_db`` how unsteady the coupling may be (median minus 25th
    percentile of mic minus far-end level where the far end is loud).
    Cost (measured on the shared 2-core test machine, 30 ms frames, ``python -m bench
    --only costs``): while something plays ~60 us per push at p50, ~70 us on average
    with the re-estimates, the stationary floor's ~22 us included (WebRTC VAD: 3-4 us
    there); while nothing plays ~1 us (the floor's analysis waits, see
    :meth:`StationaryFloor.skip`; the first frame of an answer pays up to 20 of them,
    ~0.35 ms once); ~1.3 ms per :meth:`near_end` (once per barge-in candidate).
    """

    def __init__(
        self,
        far: FarEndLevels,
        sample_rate: int = 16000,
        margin_db: float = 6.0,
        *,
        min_delay_s: float = -0.2,
        max_delay_s: float = 0.6,
        history_s: float = 3.0,
        min_correlation: float = 0.6,
        min_active_s: float = 0.4,
        update_every: int = 4,
        tail_s: float = 0.2,
        tail_db_per_s: float = 100.0,
        spread_s: float = 0.02,
        max_spread_db: float = 3.0,
    ) -> None:
        if margin_db < 0:
            raise ValueError(f"echo margin must be >= 0 dB, got {margin_db}")
        if not min_delay_s < max_delay_s:
            raise ValueError(f"need min_delay_s < max_delay_s, got {min_delay_s} .. {max_delay_s}")
        self.far = far
        self.sample_rate = sample_rate
        self.margin_db = margin_db
        self.max_spread_db = max_spread_db
        self.min_correlation = min_correlation
        self.min_active_blocks = int(round(min_active_s / BLOCK_S))
        self.update_every = max(1, update_every)
        self._lo = int(math.floor(min_delay_s / BLOCK_S + 1e-9))
        self._hi = int(math.ceil(max_delay_s / BLOCK_S - 1e-9))
        self._spread = int(round(spread_s / BLOCK_S))
        self._tail = int(round(tail_s / BLOCK_S))
        # Candidate delays in blocks; the grid reaches past the search range so
        # that spread and reverberation tail can be looked up at its edges.
        self._lags = np.arange(self._lo - self._spread, self._hi + self._spread + self._tail + 1)
        self._search = slice(self._spread, self._spread + self._hi - self._lo + 1)
        # Extra loss of far-end audio k blocks older than the direct path (reverberation),
        # and the spread around the direct path at no loss.
        k = np.arange(-self._spread, self._tail + 1)
        self._offsets = k
        self._loss = np.where(k > 0, np.maximum(0, k - self._spread) * BLOCK_S * tail_db_per_s, 0.0)
        self.history_s = history_s
        # Frames of the last history_s, to re-judge them (explains, near_end).
        self._frames: deque[_Frame] = deque()
        # Blocks heard while something played (the last history_s of them) and
        # sliding sums over them for the correlation at every searched delay.
        cap = max(1, int(round(history_s / BLOCK_S)))
        n_search = self._hi - self._lo + 1
        self._mic_ring = np.zeros(cap)
        self._far_ring = np.zeros((cap, n_search))
        self._used = np.zeros(cap, dtype=bool)
        self._head = 0
        self._added = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # blocks not yet in the ring
        self._zero_sums()
        self.path: EchoPathEstimate | None = None
        self._floor = StationaryFloor()
        self._block = max(1, int(round(sample_rate * BLOCK_S)))
        # Row b, column l of a frame's far rows is element b + (n_lags - 1 - l) of its far-end run.
        self._row_index = np.zeros((0, len(self._lags)), dtype=np.intp)

    # -- input --

    def push(self, t: float, frame: bytes | np.ndarray, position_s: float | None) -> bool:
        """Take one mic frame (PCM16 at :attr:`sample_rate`, bytes or int16 samples); True when
        echo explains it (with the estimate after this frame)."""
        x = pcm16_samples(frame)
        block = self._block
        n = len(x) // block
        frames = self._frames
        while frames and frames[0].t < t - self.history_s:
            frames.popleft()
        if position_s is None or n == 0 or not self.far.levels:
            # Nothing plays: no echo to explain now or when re-judged later (a frame
            # with no far end never is), nothing to measure the path on. Only the
            # stationary floor learns, and it may wait until it is needed.
            if n:
                self._floor.skip(x[: n * block])
            return False
        xf = x[: n * block].astype(np.float64)
        blocks = xf.reshape(n, block)
        # Exact sums of squares (integers, see level_dbfs), then the same divisions as a mean.
        power = np.einsum("ij,ij->i", blocks, blocks) / block / 32768.0**2
        mic = np.maximum(10 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)
        # The frame is judged on its non-stationary part: a steady hum or tone far
        # louder than the echo must not hide the echo under it (the envelopes
        # the path is measured on stay broadband).
        nonstationary = self._floor.push(xf / 32768.0)
        level = max(10 * math.log10(max(nonstationary, 1e-30)), FLOOR_DB)
        far_rows = self._far_rows(position_s, n)
        record = _Frame(t, level, mic, far_rows)
        frames.append(record)
        self._pending.append((mic, far_rows[:, self._search]))
        if len(self._pending) >= self.update_every:
            self.update()
        return self._explained(record)

    def _far_rows(self, position_s: float, n: int) -> np.ndarray:
        """``(n, n_lags)``: the far-end level (dB, :data:`FLOOR_DB` outside the reference)
        at each candidate delay of the frame's ``n`` mic blocks, played up to ``position_s``."""
        levels = self.far.array()
        # Mic block b (of n) ends at position p - (n - 1 - b) x BLOCK_S; echo delayed by
        # lag blocks comes from far-end block round(end / BLOCK_S) - 1 - lag. The lags
        # are consecutive, so the frame needs one run of far-end blocks, from `first`.
        n_lags = len(self._lags)
        first = int(round(position_s / BLOCK_S)) - (n - 1) - 1 - int(self._lags[-1])
        run = np.full(n - 1 + n_lags, FLOOR_DB)
        a, b = max(first, 0), min(first + len(run), len(levels))
        if a < b:
            run[a - first : b - first] = levels[a:b]
        if n > len(self._row_index):
            self._row_index = np.arange(n)[:, None] + np.arange(n_lags - 1, -1, -1)[None, :]
        return run[self._row_index[:n]]

    def new_reference(self) -> None:
        """The far end starts over (a new response): forget the blocks measured
        against the old reference, keep the measured path and the frames.

        Why: the ring holds the last ``history_s`` of blocks heard *while
        something played*, however long ago. Blocks of an earlier answer (a user
        talking over an answer interrupted in its first second, before the path
        was measured) stayed in it and held the next answer's measurement back
        until newer blocks displaced them, ~3 s, while its echo counted as user
        speech and interrupted it.
        """
        self._used[:] = False
        self._pending.clear()
        self._zero_sums()

    def reset(self) -> None:
        """Forget the history and the measured path."""
        self._frames.clear()
        self._used[:] = False
        self._pending.clear()
        self._zero_sums()
        self.path = None

    # -- queries --

    def explains(self, t: float) -> bool:
        """True when echo (current estimate) explains the frame that ended at ``t``; False if unknown."""
        for frame in reversed(self._frames):
            if abs(frame.t - t) < 1e-6:
                return self._explained(frame)
            if frame.t < t:
                break
        return False

    def predicted_echo_db(self, far_rows: np.ndarray) -> np.ndarray:
        """Predicted echo level (dBFS) of mic blocks given their far-end rows ``(n, n_lags)``."""
        path = self.path
        if path is None or far_rows.size == 0:
            return np.full(len(far_rows), -math.inf)
        j = int(round(path.delay_s / BLOCK_S)) - self._lo + self._spread
        # The offsets are consecutive: a slice, no gather.
        cols = far_rows[:, j + self._offsets[0] : j + self._offsets[-1] + 1] - self._loss[None, :]
        return cols.max(axis=1) + path.coupling_db

    def update(self) -> EchoPathEstimate | None:
        """Re-estimate the path from the history; keeps the old one when the new one is not confident."""
        if self._pending:
            self._add_blocks(np.concatenate([m for m, _ in self._pending]), np.concatenate([f for _, f in self._pending]))
            self._pending.clear()
        n = self._n
        if n < self.min_active_blocks:
            return self.path
        var_mic = self._syy / n - (self._sy / n) ** 2
        if var_mic < 1.0:  # a steady mic (silence, steady noise) follows nothing
            return self.path
        # All blocks take part: leaving out those the current path calls double
        # talk would make any accepted path, right or wrong, confirm itself.
        # Double talk lowers the correlation, so the old path is kept meanwhile.
        var_far = self._sxx / n - (self._sx / n) ** 2
        cov = self._sxy / n - self._sx * self._sy / n**2
        corr = cov / np.sqrt(np.maximum(var_far, 1e-9) * var_mic)
        corr[var_far < 1e-6] = 0.0
        best = int(np.argmax(corr))
        # The best of ~80 delays of two unrelated envelopes correlates by chance, the
        # more so the shorter the history (measured on independent speech-like
        # bursts: up to 0.83 over 0.5 s, 0.78 over 1 s, 0.66 over 1.5 s).
        if corr[best] < self.min_correlation + 2.0 / math.sqrt(n):
            return self.path
        f = self._far_ring[self._used, best]
        mic = self._mic_ring[self._used]
        loud = f >= f.max() - 20.0
        if np.count_nonzero(loud) < self.min_active_blocks // 2:
            return self.path
        # Double talk only raises mic minus far end: a low quantile ignores it.
        # An echo follows the far end at a steady coupling; a chance match does not.
        q25, q50 = _quartile_and_median(mic[loud] - f[loud])
        if q50 - q25 > self.max_spread_db:
            return self.path
        self.path = EchoPathEstimate((best + self._lo) * BLOCK_S, float(q25), float(corr[best]), n)
        return self.path

    def _zero_sums(self) -> None:
        n_search = self._far_ring.shape[1]
        self._n = 0
        self._sy = self._syy = 0.0
        self._sx = np.zeros(n_search)
        self._sxx = np.zeros(n_search)
        self._sxy = np.zeros(n_search)

    def _add_blocks(self, mic: np.ndarray, far: np.ndarray) -> None:
        """Put blocks in the ring, keeping the sliding sums (exactly recomputed once per ring turn)."""
        cap = len(self._mic_ring)
        slots = (self._head + np.arange(len(mic))) % cap
        old = slots[self._used[slots]]
        if len(old):
            om, of = self._mic_ring[old], self._far_ring[old]
            self._n -= len(old)
            self._sy -= om.sum()
            self._syy -= (om**2).sum()
            self._sx -= of.sum(axis=0)
            self._sxx -= (of**2).sum(axis=0)
            self._sxy -= om @ of
        self._mic_ring[slots] = mic
        self._far_ring[slots] = far
        self._used[slots] = True
        self._n += len(mic)
        self._sy += mic.sum()
        self._syy += (mic**2).sum()
        self._sx += far.sum(axis=0)
        self._sxx += (far**2).sum(axis=0)
        self._sxy += mic @ far
        self._head = int((self._head + len(mic)) % cap)
        self._added += len(mic)
        if self._added % cap < len(mic):  # rounding errors of add-and-subtract stay bounded
            m, f = self._mic_ring[self._used], self._far_ring[self._used]
            self._n, self._sy, self._syy = len(m), float(m.sum()), float((m**2).sum())
            self._sx, self._sxx, self._sxy = f.sum(axis=0), (f**2).sum(axis=0), m @ f

    def near_end(self, frames: Sequence[tuple[float, bytes]]) -> bytes:
        """The mic audio of consecutive frames ``(t, pcm16)`` without the frames echo explains.

        Re-estimates the path first (a barge-in candidate is worth it), so echo
        heard before the path was measured is judged too. Explained frames are
        left out, not silenced: Silero, fed digital silence and then a quiet
        steady sound (a -35 dBFS hum), calls the onset speech (measured:
        0.8-0.9 per chunk, against 0.03-0.3 on the same hum heard from its
        start). Without a measured path the audio is returned whole.
        """
        self.update()
        if self.path is None:
            return b"".join(pcm for _, pcm in frames)
        records = {round(f.t, 6): f for f in self._frames if f.t >= frames[0][0] - 1e-6}
        return b"".join(
            pcm for t, pcm in frames if not ((rec := records.get(round(t, 6))) is not None and self._explained(rec))
        )

    def _explained(self, frame: _Frame) -> bool:
        if self.path is None or frame.far.shape[0] == 0:
            return False
        predicted = self.predicted_echo_db(frame.far)
        # Frame-level prediction: the power mean of its blocks' predictions.
        powers = 10 ** (predicted / 10)
        echo_db = 10 * math.log10(max(float(powers.sum()) / len(powers), 1e-30))  # np.mean's arithmetic
        # Below the level floor there is nothing near-end to count either.
        return frame.level_db <= max(echo_db, FLOOR_DB) + self.margin_db



def _quartile_and_median(d: np.ndarray) -> tuple[float, float]:
    """``np.percentile(d, [25, 50])`` (linear interpolation), to the bit, at a tenth of its cost.

    numpy's general quantile code costs ~40 us a call (this: 2-4 us), more than the rest of
    :meth:`EchoEstimator.update`; this follows its arithmetic (index ``(n - 1) q``,
    its two-sided lerp) for one 1-D array without NaN.
    """
    s = np.sort(d)
    n = len(s)
    out = []
    for q in (0.25, 0.5):
        v = (n - 1) * q
        i = int(v)
        if i >= n - 1:
            out.append(float(s[-1]))
            continue
        a, b, g = float(s[i]), float(s[i + 1]), v - i
        diff = b - a
        out.append(b - diff * (1 - g) if g >= 0.5 else a + diff * g)
    return out[0], out[1]
