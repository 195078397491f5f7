"""Helpers for the browser tests: fake-microphone WAVs and Chromium flags."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SPEECH_DIR = REPO_ROOT / "fixtures" / "speech"
ARTIFACTS = REPO_ROOT / "test-output" / "browser"
RATE = 16000


def speech(name: str) -> np.ndarray:
    """A speech fixture as int16 samples at 16 kHz."""
    audio, rate = sf.read(SPEECH_DIR / name, dtype="int16")
    assert rate == RATE, f"{name}: expected {RATE} Hz, got {rate}"
    return audio


def compose_mic(path: Path, parts: list[tuple[float, np.ndarray]], total_s: float) -> Path:
    """Write a fake-microphone WAV: each (start_s, samples) placed on a silent
    timeline of ``total_s`` seconds."""
    out = np.zeros(int(total_s * RATE), dtype=np.int16)
    for start_s, samples in parts:
        i = int(start_s * RATE)
        assert i + len(samples) <= len(out), "mic timeline too short for its parts"
        out[i : i + len(samples)] = samples
    sf.write(path, out, RATE, subtype="PCM_16")
    return path.resolve()


def chromium_args(mic_wav: Path) -> list[str]:
    """Chromium flags: headless as root, a fake mic playing ``mic_wav`` once.
    (The fresh profile dir is passed to ``launch_persistent_context``.)"""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}%noloop",
    ]
