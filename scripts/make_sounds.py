#!/usr/bin/env python
"""Generate the non-speech sound fixtures (``make sounds``).

Writes ``fixtures/sounds/<name>.wav`` (16 kHz mono PCM16) with a JSON sidecar
(``"speech": []``, ``"kind": "nonspeech"``, as the case files of issue #10)
for each sound a microphone hears in a room that is *not* the user talking:

=============  ==============================================================
``hum``        mains hum: 100 Hz and harmonics 2-7 at 1/n, steady, switched on
               and off (the hum of ``shared/cases/nonspeech-sounds``, identical)
``noise_bursts`` broadband (white) noise bursts of 0.15-0.5 s: a fan switched
               on and off, a sss of steam, paper rustle
``music``      synthesized music: a chord progression (triads, 5 harmonics,
               plucked envelopes) on a 120 bpm beat with a melody and a kick
``tv_babble``  a TV far away: four speech fixtures, one talker cutting in
               after the other, low-passed at 3.4 kHz, through a 0.6 s
               synthetic reverb, at about -42 dBFS RMS (some 20-25 dB below
               a user at the mic); continuous, as a TV is
``cough``      three coughs: a glottal burst (pulse train at ~150 Hz through
               two broad resonances) with a noisy tail
``claps``      six hand claps: 10 ms noise bursts band-passed at 1-3 kHz
``typing``     keyboard typing: ~9 clicks a second, each a 3-8 ms click with a
               short resonance, and a louder space bar now and then
``door_knock`` three knocks on a wooden door: damped low resonances (170/330 Hz)
``door_slam``  a door slammed: a low thump, then the frame rattling
=============  ==============================================================

Each clip has 0.3 s of leading and 0.5 s of trailing silence (like the speech
fixtures), a few seconds of sound, and is peak-normalised to the level given in
its sidecar (``peak_dbfs``). Deterministic: numpy's seeded generator only
(seed per sound), so ``--check`` can verify the committed files.
The babble mixes the committed speech fixtures, so it changes only if they do.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
LEAD_S = 0.3
TRAIL_S = 0.5
ROOT = Path(__file__).resolve().parent.parent / "fixtures"
OUT = ROOT / "sounds"


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE


def _fft_filter(x: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Zero-phase filter: multiply the spectrum by ``gain(freqs_hz)``."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    return np.fft.irfft(spectrum * gain(freqs), n=x.size)


def _band(lo: float, hi: float, order: int = 4) -> Callable[[np.ndarray], np.ndarray]:
    """Butterworth-like magnitude response of a band-pass (0 Hz = low-pass)."""

    def gain(f: np.ndarray) -> np.ndarray:
        high = 1 / np.sqrt(1 + (f / hi) ** (2 * order))
        low = 1.0 if lo <= 0 else 1 / np.sqrt(1 + (lo / np.maximum(f, 1e-3)) ** (2 * order))
        return high * low

    return gain


def _resonance(x: np.ndarray, freq: float, decay_s: float) -> np.ndarray:
    """Ring ``x`` through a damped sinusoid (a struck body: wood, a key cap)."""
    t = _t(min(6 * decay_s, 1.0))
    ir = np.exp(-t / decay_s) * np.sin(2 * np.pi * freq * t)
    return np.convolve(x, ir)[: x.size]


def _place(total: np.ndarray, event: np.ndarray, at_s: float) -> None:
    i = max(0, int(round(at_s * SAMPLE_RATE)))
    n = min(event.size, total.size - i)
    total[i : i + n] += event[:n]


def hum(rng: np.random.Generator) -> np.ndarray:
    t = _t(2.0)
    x = sum(np.sin(2 * np.pi * 100 * n * t) / n for n in range(1, 8))
    # Switched on and off (at zero crossings): the hum of shared/cases/nonspeech-sounds, sample for sample.
    return x


def noise_bursts(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(3.0 * SAMPLE_RATE))
    at = 0.0
    for _ in range(5):
        dur = rng.uniform(0.15, 0.5)
        n = int(dur * SAMPLE_RATE)
        ramp = np.minimum(1, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * SAMPLE_RATE))
        _place(out, rng.normal(0, 1, n) * ramp * rng.uniform(0.5, 1.0), at)
        at += dur + rng.uniform(0.1, 0.3)
    return out


def music(rng: np.random.Generator) -> np.ndarray:
    beat = 0.5  # 120 bpm
    out = np.zeros(int(4.0 * SAMPLE_RATE))
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    melody = [659.3, 587.3, 523.3, 587.3, 659.3, 659.3, 659.3, 587.3]

    def note(freq: float, dur: float, decay: float) -> np.ndarray:
        t = _t(dur)
        tone = sum(np.sin(2 * np.pi * freq * k * t) / k**1.5 for k in range(1, 6))
        return tone * np.exp(-t / decay) * np.minimum(1, t / 0.005)

    for bar, chord in enumerate(chords):
        for f in chord:
            _place(out, 0.25 * note(f, 2 * beat, 0.6), bar * 2 * beat)
    for i, f in enumerate(melody):
        _place(out, 0.35 * note(f, beat, 0.25), i * beat)
    for i in range(8):  # kick on every beat
        t = _t(0.15)
        _place(out, 0.6 * np.sin(2 * np.pi * (60 + 80 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.05), i * beat)
    return out


def tv_babble(rng: np.random.Generator) -> np.ndarray:
    """A TV show far away: talkers one after the other (some overlap), band-limited
    like a TV speaker, reverberant. Continuous, like a TV: no pause long enough to end a turn."""
    names = ["question_diversify_joe", "question_volatility_heart", "interrupt_rates_joe", "question_stocks_joe"]
    parts = [_read_wav(ROOT / "speech" / f"{name}.wav") for name in names]
    out = np.zeros(sum(p.size for p in parts))
    at = 0.0
    for x in parts:
        _place(out, x * rng.uniform(0.6, 1.0), at)
        at += x.size / SAMPLE_RATE - rng.uniform(0.6, 0.9)  # the next talker cuts in before the silence ends
    out = out[: int((at + 0.8) * SAMPLE_RATE)]
    out = _fft_filter(out, _band(200.0, 3400.0))
    t = _t(0.6)  # reverb tail: RT60 0.6 s (decay of 60 dB over 0.6 s)
    ir = rng.normal(0, 1, t.size) * 10 ** (-3 * t / 0.6)
    ir[0] = 8.0  # the direct sound
    wet = np.convolve(out, ir)[: out.size]
    ramp = np.minimum(1, np.minimum(np.arange(out.size), np.arange(out.size)[::-1]) / (0.05 * SAMPLE_RATE))
    return wet * ramp


def cough(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(2.4 * SAMPLE_RATE))
    for at in (0.0, 0.55, 1.3):
        n = int(0.3 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        envelope = np.minimum(1, t / 0.008) * np.exp(-t / 0.07)
        f0 = rng.uniform(130, 170)
        pulses = (np.sin(2 * np.pi * f0 * t) > 0.95).astype(float)  # a glottal pulse train
        burst = 0.6 * pulses + rng.normal(0, 1, n)
        body = _fft_filter(burst, lambda f: np.exp(-(((f - 500) / 300) ** 2)) + 0.7 * np.exp(-(((f - 1700) / 600) ** 2)))
        _place(out, body * envelope, at)
    return out


def claps(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(3.0 * SAMPLE_RATE))
    for i in range(6):
        n = int(0.08 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        clap = _fft_filter(rng.normal(0, 1, n), _band(1000.0, 3000.0, 2)) * np.exp(-t / 0.012)
        _place(out, clap, 0.02 + 0.45 * i + rng.uniform(-0.02, 0.02))
    return out


def typing(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(3.0 * SAMPLE_RATE))
    at = 0.0
    while at < 2.9:
        space = rng.random() < 0.12
        n = int(rng.uniform(0.003, 0.008) * SAMPLE_RATE)
        click = rng.normal(0, 1, n) * np.exp(-np.arange(n) / (0.002 * SAMPLE_RATE))
        padded = np.concatenate([click, np.zeros(int(0.04 * SAMPLE_RATE))])
        key = _resonance(padded, rng.uniform(1800, 3500), 0.004) + 0.3 * padded
        _place(out, key * (1.6 if space else rng.uniform(0.5, 1.0)), at)
        at += rng.uniform(0.06, 0.2)
    return out


def door_knock(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(1.6 * SAMPLE_RATE))
    for i, at in enumerate((0.0, 0.28, 0.56)):
        n = int(0.004 * SAMPLE_RATE)
        hit = np.concatenate([rng.normal(0, 1, n), np.zeros(int(0.2 * SAMPLE_RATE))])
        knock = _resonance(hit, 170.0, 0.03) + 0.6 * _resonance(hit, 330.0, 0.02) + 0.05 * hit
        _place(out, knock * (1.0 - 0.1 * i), at)
    return out


def door_slam(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(1.6 * SAMPLE_RATE))
    t = _t(0.4)
    thump = np.sin(2 * np.pi * (55 + 40 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.09)
    crack = _fft_filter(rng.normal(0, 1, t.size), _band(300.0, 5000.0, 2)) * np.exp(-t / 0.015)
    _place(out, thump + 0.5 * crack, 0.0)
    for i in range(10):  # the frame and handle rattling
        n = int(0.003 * SAMPLE_RATE)
        tick = np.concatenate([rng.normal(0, 1, n), np.zeros(int(0.05 * SAMPLE_RATE))])
        _place(out, 0.25 * np.exp(-i / 4) * _resonance(tick, rng.uniform(900, 1600), 0.006), 0.08 + 0.045 * i)
    return out


@dataclass(frozen=True)
class Sound:
    name: str
    make: Callable[[np.random.Generator], np.ndarray]
    peak_dbfs: float
    description: str


SOUNDS = [
    Sound("hum", hum, -10.0, "mains hum: 100 Hz with harmonics 2-7 at 1/n, 2 s"),
    Sound("noise_bursts", noise_bursts, -12.0, "five broadband (white) noise bursts of 0.15-0.5 s"),
    Sound("music", music, -12.0, "synthesized music: four chords at 120 bpm, a melody and a kick drum, 4 s"),
    Sound("tv_babble", tv_babble, -22.0, "a TV far away: talkers one after the other, low-passed at 3.4 kHz, 0.6 s reverb, ~-42 dBFS RMS"),
    Sound("cough", cough, -8.0, "three coughs"),
    Sound("claps", claps, -6.0, "six hand claps, 0.45 s apart"),
    Sound("typing", typing, -14.0, "keyboard typing, ~9 keys a second, 3 s"),
    Sound("door_knock", door_knock, -8.0, "three knocks on a wooden door"),
    Sound("door_slam", door_slam, -4.0, "a door slammed shut, then the frame rattling"),
]


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16 kHz mono PCM16; regenerate it with `make fixtures`")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def render(sound: Sound, seed: int) -> tuple[bytes, dict]:
    """The WAV bytes and sidecar of one sound (peak-normalised, with lead and trail silence)."""
    x = sound.make(np.random.default_rng(seed))
    x = x / np.max(np.abs(x)) * 10 ** (sound.peak_dbfs / 20)
    x = np.concatenate([np.zeros(int(LEAD_S * SAMPLE_RATE)), x, np.zeros(int(TRAIL_S * SAMPLE_RATE))])
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    active = x[int(LEAD_S * SAMPLE_RATE) : x.size - int(TRAIL_S * SAMPLE_RATE)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    sidecar = {
        "text": "",
        "voice": f"synthetic (scripts/make_sounds.py, numpy seed {seed})",
        "sample_rate": SAMPLE_RATE,
        "duration_s": round(pcm.size / SAMPLE_RATE, 3),
        "speech": [],
        "kind": "nonspeech",
        "description": sound.description,
        "peak_dbfs": sound.peak_dbfs,
        "rms_dbfs": round(20 * np.log10(np.sqrt(np.mean(active**2))), 1),
    }
    return buf.getvalue(), sidecar


def sync_files(files: dict[Path, bytes], argv: list[str] | None, description: str) -> int:
    """Write ``files`` whose bytes changed, or with ``--check`` in ``argv`` only list them.

    Returns the exit status: 1 when checking found a difference, else 0.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare with the committed files; exit 1 on a difference")
    args = parser.parse_args(argv)
    stale = [path for path, data in files.items() if not (path.is_file() and path.read_bytes() == data)]
    for path in stale:
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[path])
        print(("differs: " if args.check else "wrote ") + str(path.relative_to(ROOT.parent)))
    return 1 if args.check and stale else 0


def main(argv: list[str] | None = None) -> int:
    files: dict[Path, bytes] = {}
    for seed, sound in enumerate(SOUNDS, start=1):
        wav, sidecar = render(sound, seed)
        files[OUT / f"{sound.name}.wav"] = wav
        files[OUT / f"{sound.name}.json"] = (json.dumps(sidecar, indent=1) + "\n").encode()
    return sync_files(files, argv, __doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
