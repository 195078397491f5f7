"""The echo gate in front of the barge-in frame VAD (server/echo.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.echo import BLOCK_S, EchoGate, FarEndLevels, level_dbfs

RATE = 16000


def tone(db: float, seconds: float) -> np.ndarray:
    n = int(RATE * seconds)
    amp = 32768 * 10 ** (db / 20) * math.sqrt(2)  # RMS of a sine is amp / sqrt(2)
    return (amp * np.sin(2 * np.pi * 440 * np.arange(n) / RATE)).astype(np.int16)


def test_level_of_a_sine_and_of_silence():
    assert level_dbfs(tone(-20, 0.03).tobytes()) == pytest.approx(-20, abs=0.1)
    assert level_dbfs(np.zeros(480, dtype=np.int16).tobytes()) == -math.inf


def test_far_end_levels_do_not_depend_on_chunking():
    audio = np.concatenate([tone(-12, 0.5), np.zeros(RATE // 2, dtype=np.int16), tone(-30, 0.5)])
    whole, pieces = FarEndLevels(RATE), FarEndLevels(RATE)
    whole.append(audio.tobytes())
    for start in range(0, len(audio), 777):
        pieces.append(audio[start : start + 777].tobytes())
    assert whole.levels == pieces.levels and len(whole.levels) == round(1.5 / BLOCK_S)
    assert whole.peak_db(0.0, 0.5) == pytest.approx(-12, abs=0.2)
    assert whole.peak_db(0.55, 0.95) == -math.inf
    assert whole.peak_db(1.0, 1.5) == pytest.approx(-30, abs=0.2)


def test_gate_blocks_echo_residual_and_passes_speech_over_the_far_end():
    far = FarEndLevels(RATE)
    far.append(tone(-12, 2.0).tobytes())
    gate = EchoGate(margin_db=30)
    residual = level_dbfs(tone(-12 - 36, 0.03).tobytes())  # -6 dB echo path, 30 dB AEC
    no_aec = level_dbfs(tone(-12 - 6, 0.03).tobytes())
    user = level_dbfs(tone(-25, 0.03).tobytes())
    assert not gate.near_end_possible(residual, far, position_s=1.0)
    assert gate.near_end_possible(no_aec, far, position_s=1.0)  # without AEC echo counts
    assert gate.near_end_possible(user, far, position_s=1.0)
    assert gate.near_end_possible(residual, far, position_s=None)  # nothing playing
    assert gate.near_end_possible(residual, far, position_s=3.0)  # long after the audio ended
