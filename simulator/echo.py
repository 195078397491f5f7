"""The acoustic path into the simulated microphone: echo, room, AEC and noise.

The microphone hears the user, background noise and the speaker's own output
(echo). The echo is the speaker signal delayed by ``delay_ms``, scaled by
``gain``, optionally smeared by a short synthetic room response, and then
attenuated by the client's echo canceller, modelled only by its echo return
loss enhancement (ERLE, dB). Sample ``n`` of the microphone depends on what the
speaker played before ``n - delay``, so chunks are mixed one at a time, in
order, as the run progresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.speaker import Speaker

SAMPLE_RATE = 16000


def db_to_gain(db: float) -> float:
    """Amplitude factor for ``db`` decibels (20 log10)."""
    return float(10.0 ** (db / 20.0))


@dataclass(frozen=True)
class EchoSettings:
    """Echo path parameters. ``aec_erle_db=None`` means no echo canceller."""

    delay_ms: float = 40.0
    gain: float = 0.5
    aec_erle_db: float | None = 30.0
    room_rt60_ms: float | None = None
    seed: int = 7

    def __post_init__(self) -> None:
        if self.delay_ms < 0:
            raise ValueError(f"echo delay_ms must be >= 0, got {self.delay_ms}")
        if self.gain < 0:
            raise ValueError(f"echo gain must be >= 0, got {self.gain}")
        if self.aec_erle_db is not None and self.aec_erle_db < 0:
            raise ValueError(f"aec_erle_db must be >= 0 dB (or no AEC), got {self.aec_erle_db}")
        if self.room_rt60_ms is not None and not 0 < self.room_rt60_ms <= 1000:
            raise ValueError(f"room_rt60_ms must be in (0, 1000], got {self.room_rt60_ms}")

    @property
    def attenuation(self) -> float:
        """Amplitude factor the AEC leaves of the echo (1.0 without AEC)."""
        return 1.0 if self.aec_erle_db is None else db_to_gain(-self.aec_erle_db)


def room_impulse_response(rt60_ms: float, sample_rate: int = SAMPLE_RATE, seed: int = 7) -> np.ndarray:
    """A short synthetic room response: the direct path (1.0) then a decaying noise tail.

    The tail decays by 60 dB over ``rt60_ms`` and is scaled to a modest
    fraction of the direct path, as in a small room with the mic near the
    speaker. Seeded, so every run gets the same room.
    """
    n = max(1, int(round(rt60_ms * sample_rate / 1000)))
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / (rt60_ms / 1000.0))
    tail *= 0.3 / max(1e-9, float(np.sqrt(np.sum(tail**2))))
    h = tail.astype(np.float32)
    h[0] = 1.0
    return h


class EchoPath:
    """Residual echo (after AEC) that reaches the microphone."""

    def __init__(self, settings: EchoSettings, sample_rate: int = SAMPLE_RATE) -> None:
        self.settings = settings
        self.delay = int(round(settings.delay_ms * sample_rate / 1000))
        self.impulse = (
            room_impulse_response(settings.room_rt60_ms, sample_rate, settings.seed)
            if settings.room_rt60_ms
            else np.ones(1, dtype=np.float32)
        )

    def raw(self, speaker: Speaker, a: int, b: int) -> np.ndarray:
        """Echo before the canceller for microphone samples ``[a, b)``."""
        if self.settings.gain == 0 or b <= a:
            return np.zeros(max(0, b - a), dtype=np.float32)
        taps = len(self.impulse)
        src = speaker.render(a - self.delay - taps + 1, b - self.delay)
        if taps == 1:
            out = src * self.impulse[0]
        else:
            out = np.convolve(src, self.impulse, mode="valid")
        return (out * self.settings.gain).astype(np.float32)

    def residual(self, speaker: Speaker, a: int, b: int) -> np.ndarray:
        """Echo left after the canceller for microphone samples ``[a, b)``."""
        return (self.raw(speaker, a, b) * self.settings.attenuation).astype(np.float32)


@dataclass(frozen=True)
class NoiseSettings:
    """Background noise at ``db`` dBFS RMS (None = silence), from a WAV or synthetic."""

    db: float | None = None
    file: Path | None = None
    seed: int = 11
    #: Where in the looped buffer sample 0 of the run falls (a file's other stretches).
    offset: int = 0


class NoiseSource:
    """Deterministic background noise indexed by sample position (a looped buffer)."""

    def __init__(self, settings: NoiseSettings, sample_rate: int = SAMPLE_RATE) -> None:
        self.settings = settings
        self.buffer: np.ndarray | None = None
        if settings.db is None:
            return
        if settings.file is not None:
            from simulator.audio import read_wav

            base = read_wav(settings.file, sample_rate)
        else:
            base = _pink_noise(10 * sample_rate, settings.seed)
        rms = float(np.sqrt(np.mean(base.astype(np.float64) ** 2)))
        if rms == 0:
            raise ValueError(f"noise file {settings.file} is silent; pick a file with noise in it")
        self.buffer = (base * (db_to_gain(settings.db) / rms)).astype(np.float32)

    def chunk(self, a: int, b: int) -> np.ndarray:
        """Noise samples ``[a, b)``."""
        if self.buffer is None or b <= a:
            return np.zeros(max(0, b - a), dtype=np.float32)
        idx = (np.arange(a, b) + self.settings.offset) % len(self.buffer)
        return self.buffer[idx]


def _pink_noise(n: int, seed: int) -> np.ndarray:
    # 1/f spectrum shaped from white noise: closer to room/fan noise than white.
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n).astype(np.float32)


@dataclass
class Placement:
    """A user's clip placed in the microphone signal at sample ``start``.

    ``speech`` False: a sound that is not speech (a cough, a door): heard by the
    microphone, left out of the reference speech labels.
    """

    start: int
    samples: np.ndarray
    speech: bool = True

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass
class MicChunk:
    """One microphone chunk and its parts (float32, same length)."""

    a: int
    mix: np.ndarray
    user: np.ndarray
    echo: np.ndarray
    noise: np.ndarray

    def pcm16(self) -> bytes:
        """The mix as PCM16 little-endian, clipped to full scale."""
        return (np.clip(self.mix, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


@dataclass
class Microphone:
    """Mixes user speech, residual echo and noise, one chunk at a time, and records it."""

    echo: EchoPath
    noise: NoiseSource
    placements: list[Placement] = field(default_factory=list)
    recorded: list[MicChunk] = field(default_factory=list)
    next_sample: int = 0

    def place(self, start: int, samples: np.ndarray, *, speech: bool = True) -> Placement:
        """Put a user clip at sample ``start`` (must not be in the already mixed past); ``speech`` as in :class:`Placement`."""
        if start < self.next_sample:
            raise ValueError(
                f"cannot place speech at sample {start}: the microphone has already produced "
                f"audio up to sample {self.next_sample}"
            )
        p = Placement(start, np.asarray(samples, dtype=np.float32), speech)
        self.placements.append(p)
        return p

    def user(self, a: int, b: int) -> np.ndarray:
        out = np.zeros(max(0, b - a), dtype=np.float32)
        for p in self.placements:
            lo, hi = max(a, p.start), min(b, p.end)
            if hi > lo:
                out[lo - a : hi - a] += p.samples[lo - p.start : hi - p.start]
        return out

    def mix(self, speaker: Speaker, b: int) -> MicChunk:
        """Produce samples ``[next_sample, b)``; the speaker must be final up to ``b - delay``."""
        a = self.next_sample
        if b < a:
            raise ValueError(f"microphone already at sample {a}, cannot mix up to {b}")
        user = self.user(a, b)
        echo = self.echo.residual(speaker, a, b)
        noise = self.noise.chunk(a, b)
        chunk = MicChunk(a, user + echo + noise, user, echo, noise)
        self.recorded.append(chunk)
        self.next_sample = b
        return chunk

    def signal(self, part: str = "mix") -> np.ndarray:
        """Everything recorded so far of one part: mix, user, echo or noise."""
        if not self.recorded:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([getattr(c, part) for c in self.recorded])
