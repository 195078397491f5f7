"""PCM conversions the ASR engines share (all engines decode 16 kHz mono)."""

from __future__ import annotations

import numpy as np
import soxr

ASR_SAMPLE_RATE = 16_000


def check_pcm(pcm: bytes, sample_rate: int) -> None:
    """Raise ``ValueError`` unless ``pcm`` looks like PCM16 mono at a usable rate."""
    if len(pcm) % 2:
        raise ValueError(
            f"PCM16 audio must have an even number of bytes, got {len(pcm)}: "
            "send 16-bit little-endian mono samples"
        )
    if not 8_000 <= sample_rate <= 48_000:
        raise ValueError(f"sample_rate {sample_rate} Hz is not supported: use 8000-48000 Hz")


def pcm16_to_float(pcm: bytes, sample_rate: int) -> np.ndarray:
    """PCM16 little-endian mono at ``sample_rate`` -> float32 in [-1, 1] at 16 kHz."""
    check_pcm(pcm, sample_rate)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if sample_rate != ASR_SAMPLE_RATE and audio.size:
        audio = soxr.resample(audio, sample_rate, ASR_SAMPLE_RATE).astype(np.float32)
    return audio


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of float audio in dBFS (-inf-safe: silence gives -120)."""
    if audio.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-6))


class StreamingResampler:
    """Resample PCM16 chunks of one stream to 16 kHz PCM16 (identity at 16 kHz)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._stream = (
            None
            if sample_rate == ASR_SAMPLE_RATE
            else soxr.ResampleStream(sample_rate, ASR_SAMPLE_RATE, 1, dtype="int16")
        )

    def feed(self, pcm: bytes, *, last: bool = False) -> bytes:
        """Resample the next chunk; ``last=True`` flushes the filter tail."""
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return self._stream.resample_chunk(samples, last=last).astype("<i2").tobytes()
