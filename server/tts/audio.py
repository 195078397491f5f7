"""Sample conversion shared by the TTS engines: resample with soxr, emit PCM16."""

from __future__ import annotations

import numpy as np
import soxr

__all__ = ["check_sample_rate", "to_pcm16", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE"]

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


def check_sample_rate(sample_rate: int) -> int:
    """Return ``sample_rate`` if it is a usable output rate, else raise ValueError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
        raise ValueError(f"sample_rate must be an int in Hz (e.g. 16000 or 24000), got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate {sample_rate} Hz is out of range: use {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} "
            "(the realtime API uses 16000 or 24000)"
        )
    return sample_rate


def to_pcm16(samples: np.ndarray, source_rate: int, target_rate: int) -> bytes:
    """Mono samples (int16 or float in [-1, 1]) at ``source_rate`` -> PCM16 LE bytes at ``target_rate``."""
    check_sample_rate(target_rate)
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {x.shape}")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    else:
        x = x.astype(np.float32, copy=False)
    if x.size and source_rate != target_rate:
        x = soxr.resample(x, source_rate, target_rate, quality="HQ")
    return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()
