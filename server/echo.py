"""Echo gate: keeps the assistant's own voice, come back through the user's
microphone, from counting as user speech in the barge-in detector.

The server knows exactly what it sent and, from the playback timeline, roughly
where the client's playback is. A mic frame can only be the user (near-end
speech) if it is louder than what echo of that far-end audio could be: a
frame more than ``margin_db`` below the loudest far-end audio around the
playback position is taken as echo. This is the Geigel double-talk test, with
the margin in dB. It sits in front of the frame VAD, where a server-side echo
canceller (which would subtract the same reference) will go.

Why it is needed (measured with the simulator): a client echo canceller leaves
a residual (30 dB of attenuation leaves the assistant's voice at about
-57 dBFS), WebRTC VAD calls that residual speech, and Silero confirms it,
because it *is* speech. Without any echo canceller the echo is only ~6 dB
below the far end and still counts, as the spec expects (clients need AEC).
"""

from __future__ import annotations

import math

import numpy as np

#: Resolution of the far-end level track.
BLOCK_S = 0.01


def level_dbfs(pcm: bytes | np.ndarray) -> float:
    """RMS level of PCM16 audio in dB relative to full scale (-inf for silence)."""
    x = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, (bytes, bytearray)) else pcm
    if len(x) == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf


class FarEndLevels:
    """The level, block by block, of the audio sent for the current response."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.block = max(1, int(round(sample_rate * BLOCK_S)))
        self.levels: list[float] = []
        self._tail = np.zeros(0, dtype=np.int16)

    def reset(self) -> None:
        self.levels.clear()
        self._tail = np.zeros(0, dtype=np.int16)

    def append(self, pcm: bytes) -> None:
        """Add audio sent to the client, in order."""
        x = np.concatenate([self._tail, np.frombuffer(pcm, dtype=np.int16)])
        whole = len(x) // self.block * self.block
        blocks = x[:whole].reshape(-1, self.block).astype(np.float64)
        rms = np.sqrt(np.mean(blocks**2, axis=1))
        with np.errstate(divide="ignore"):
            self.levels.extend((20 * np.log10(rms / 32768)).tolist())
        self._tail = x[whole:]

    def peak_db(self, start_s: float, end_s: float) -> float:
        """Loudest block between two positions (seconds into the response's audio)."""
        a = max(0, int(start_s / BLOCK_S))
        b = min(len(self.levels), int(math.ceil(end_s / BLOCK_S)))
        return max(self.levels[a:b], default=-math.inf)


class EchoGate:
    """Near-end speech is possible only where a frame beats the far end minus ``margin_db``.

    ``lookback_s`` covers the echo delay (device buffers, the room) and errors of
    the playback position estimate; ``lookahead_s`` covers a client that started
    playing earlier than the server thinks.
    """

    def __init__(self, margin_db: float, lookback_s: float = 0.5, lookahead_s: float = 0.2) -> None:
        self.margin_db = margin_db
        self.lookback_s = lookback_s
        self.lookahead_s = lookahead_s

    def near_end_possible(self, frame_db: float, far: FarEndLevels, position_s: float | None) -> bool:
        """False when the frame is quiet enough to be echo of the far end at ``position_s``."""
        if position_s is None:
            return True
        far_db = far.peak_db(position_s - self.lookback_s, position_s + self.lookahead_s)
        return frame_db > far_db - self.margin_db
