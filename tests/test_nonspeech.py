"""Sounds that are not speech, far talkers and room noise (issue #10, part 5).

Real engines (WebRTC VAD, Silero, Whisper tiny.en) on the committed sound set
``fixtures/sounds`` (scripts/make_sounds.py) and speech fixtures. The
scenario suite over these sounds is ``tests/test_nonspeech_suite.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from server.asr.hallucination import collapse_repeats, is_known_hallucination
from server.asr.wer import normalize_words, wer
from server.asr.whisper import WhisperAsr
from server.neartalk import DEFAULT_NEAR_DBFS, NEAR_MARGIN_DB, NearTalker
from server.vad import SileroConfirmer, WebRtcFrameVad
from simulator.audio import load_clip
from simulator.metrics import Metrics, check_expectations
from simulator.scenario import Expect

REPO = Path(__file__).resolve().parents[1]
SOUNDS = sorted((REPO / "fixtures" / "sounds").glob("*.wav"))
NOT_SPEECH = [p for p in SOUNDS if p.stem != "tv_babble"]  # the TV is speech, only far away
RATE = 16000


def _check(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), "--check"], capture_output=True, text=True, timeout=120)


def _pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), path
        return w.readframes(w.getnframes())


@pytest.fixture(scope="module")
def whisper() -> WhisperAsr:
    return WhisperAsr()


# --- the sound set -------------------------------------------------------------


def test_the_committed_sounds_and_scenarios_are_what_the_scripts_make():
    for script in ("make_sounds.py", "make_nonspeech_scenarios.py"):
        proc = _check(script)
        assert proc.returncode == 0, f"run scripts/{script} and commit:\n{proc.stdout}{proc.stderr}"


def test_the_sound_set_has_eight_kinds_of_non_speech_that_the_frame_vad_takes_for_speech():
    assert {"hum", "noise_bursts", "music", "tv_babble", "cough", "claps", "typing"} <= {p.stem for p in SOUNDS}
    assert any(p.stem.startswith("door") for p in SOUNDS) and len(SOUNDS) >= 8
    for path in SOUNDS:
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["speech"] == [] and meta["kind"] == "nonspeech", path.name
        pcm = _pcm(path)
        assert 1.5 <= len(pcm) / 2 / RATE <= 15.0, path.name
        vad = WebRtcFrameVad(2)
        frames = [pcm[i : i + 960] for i in range(0, len(pcm) - 959, 960)]
        voiced = sum(vad.is_speech(f, RATE) for f in frames)
        # Each sound makes the cheap frame VAD say "speech" often (docs/simulator.md has
        # the figures): they test what comes after it, not a silent input.
        assert voiced / len(frames) >= 0.2, f"{path.name}: WebRTC VAD speech in only {voiced}/{len(frames)} frames"


def test_the_neural_confirmation_hears_every_word_and_no_non_speech_sound():
    confirmer = SileroConfirmer()
    for path in NOT_SPEECH:  # the knock's onset: 5 chunks of p >= 0.5, under the 6 asked for
        assert not confirmer.has_speech(_pcm(path), RATE), path.name
    for path in sorted((REPO / "fixtures" / "speech").glob("*.wav")):
        assert confirmer.has_speech(_pcm(path), RATE), path.name


# --- the simulator: sounds, user_turns, transcript_excludes ------------------------


def test_a_nonspeech_sidecar_makes_a_sound_and_an_empty_list_alone_still_means_energy_spans(tmp_path):
    hum = REPO / "fixtures" / "sounds" / "hum.wav"
    assert load_clip(hum).speech == ()
    plain = tmp_path / "hum.wav"
    plain.write_bytes(hum.read_bytes())
    meta = json.loads(hum.with_suffix(".json").read_text())
    plain.with_suffix(".json").write_text(json.dumps({**meta, "kind": "noise"}))
    assert len(load_clip(plain).speech) == 1  # found by energy: the hum counts as an utterance


def test_user_turns_and_transcript_excludes_expectations():
    m = Metrics([], [], 0, 0, ["How should I hedge my portfolio?"], [])
    checks = check_expectations(m, Expect(user_turns=1, transcript_excludes=["volatility", "hedge my"]))
    assert {c.name: c.ok for c in checks} == {"user_turns": True, "transcript_excludes": False}
    checks = check_expectations(m, Expect(user_turns=0, transcript_excludes=["edge"]))  # whole words only
    assert {c.name: c.ok for c in checks} == {"user_turns": False, "transcript_excludes": True}
    # No answered utterance: a voice-to-voice bound cannot hold.
    assert [c.ok for c in check_expectations(m, Expect(max_voice_to_voice_ms=4500))] == [False]


# --- ASR: no words from non-speech -----------------------------------------------


@pytest.mark.parametrize("path", NOT_SPEECH, ids=lambda p: p.stem)
def test_whisper_writes_no_words_for_a_sound(whisper, path):
    pcm = _pcm(path)
    assert whisper.transcribe("s", pcm, RATE, final=True) == ""
    # What a turn started by the sound's first moments would hand over (onset + 0.8 s):
    # "Thank you." for the knock and the claps before the bag of hallucinations.
    assert whisper.transcribe("s", pcm[int(0.2 * RATE) * 2 : int(1.0 * RATE) * 2], RATE, final=True) == ""


def test_known_hallucinations_are_dropped_only_when_whisper_doubts_speech():
    assert is_known_hallucination("Thank you.", no_speech_prob=0.93)
    assert is_known_hallucination("thanks for watching", no_speech_prob=0.6)
    assert not is_known_hallucination("Thank you.", no_speech_prob=0.05)  # the user said it
    assert not is_known_hallucination("Thank you, that helps.", no_speech_prob=0.9)


def test_collapse_repeats_removes_decoder_loops_and_keeps_ordinary_speech():
    assert collapse_repeats("I'm going to, I'm going to, I'm going to go.") == "I'm going to, go."
    assert collapse_repeats("Okay. Okay. Okay. Okay.") == "Okay."
    assert collapse_repeats("No, no, I said bonds.") == "No, no, I said bonds."
    assert collapse_repeats("How should I hedge my portfolio?") == "How should I hedge my portfolio?"
    with pytest.raises(ValueError, match="min_repeats"):
        collapse_repeats("a a", min_repeats=1)


# --- ASR under steady room noise --------------------------------------------------

QUESTIONS = sorted((REPO / "fixtures" / "speech").glob("question_*.wav")) + sorted(
    (REPO / "fixtures" / "speech").glob("interrupt_*.wav")
)
#: tiny.en mishears eSpeak's US voice under any added noise ("about dividend stocks" ->
#: "come out to David's end talks": the same sounds, other words; also with the stock
#: 30 s window), so its WER is bounded on the mean only (docs/asr.md).
MISHEARD = {"question_dividends_espeak_us"}


@pytest.mark.parametrize(
    ("noise", "level_db"),
    [("pink_-45dBFS", -45.0), ("pink_-45dBFS", -35.0), ("white_-45dBFS", -45.0), ("room_tone_-55dBFS", -55.0)],
    ids=["pink-45", "pink-35", "white-45", "room-55"],
)
def test_transcripts_under_steady_noise_hold_no_invented_or_repeated_words(whisper, noise, level_db):
    noise_x = np.frombuffer(_pcm(REPO / "fixtures" / "noise" / f"{noise}.wav"), "<i2").astype(np.float64)
    noise_x *= 10 ** ((level_db - float(noise.split("_")[-1].removesuffix("dBFS"))) / 20)
    rates = []
    for path in QUESTIONS:
        x = np.frombuffer(_pcm(path), "<i2").astype(np.float64)
        mixed = np.clip(x + np.resize(noise_x, x.size), -32768, 32767).astype("<i2").tobytes()
        reference = json.loads(path.with_suffix(".json").read_text())["text"]
        text = whisper.transcribe(path.stem, mixed, RATE, final=True)
        words = normalize_words(text)
        assert all(a != b for a, b in zip(words, words[1:])), f"{path.stem}: repeated word in {text!r}"
        rates.append(wer(reference, text))
        if path.stem not in MISHEARD:
            assert rates[-1] <= 0.2, f"{path.stem} under {noise} at {level_db} dBFS: {text!r}"
            assert len(words) <= len(normalize_words(reference)), f"{path.stem}: invented words in {text!r}"
    assert np.mean(rates) <= 0.15, rates


# --- near talker or far speech ----------------------------------------------------


def _frame(level_dbfs: float) -> bytes:
    t = np.arange(480) / RATE
    x = np.sin(2 * np.pi * 200 * t) * np.sqrt(2) * 10 ** (level_dbfs / 20)
    return (x * 32768).round().astype("<i2").tobytes()


def test_near_talker_rule_before_any_turn_uses_the_default_level():
    near = NearTalker(30)
    threshold = DEFAULT_NEAR_DBFS - NEAR_MARGIN_DB
    assert near.push(_frame(threshold + 1.0))
    far = NearTalker(30)
    assert not far.push(_frame(threshold - 1.0))


def test_near_talker_envelope_holds_the_quiet_frames_inside_a_word():
    near = NearTalker(30)
    assert near.push(_frame(-18.0))
    # 10 dB under the threshold right after a loud frame: still the same word...
    assert near.push(_frame(DEFAULT_NEAR_DBFS - NEAR_MARGIN_DB - 10.0))
    # ...but not once the envelope has released (33 dB/s: 17 dB take ~0.5 s).
    for _ in range(20):
        quiet = near.push(_frame(-60.0))
    assert not quiet


def _turn(near: NearTalker, level_dbfs: float) -> None:
    for _ in range(20):
        near.push(_frame(level_dbfs))
        near.note_user_speech()


def test_near_talker_learns_the_users_level_from_confirmed_turns_only():
    near = NearTalker(30)
    threshold = DEFAULT_NEAR_DBFS - NEAR_MARGIN_DB
    _turn(near, -28.0)
    near.turn_dropped()
    assert near.reference_dbfs == DEFAULT_NEAR_DBFS and near.turns_learned == 0
    _turn(near, -28.0)
    near.turn_confirmed()
    assert near.reference_dbfs == pytest.approx(-24.0, abs=0.1)  # halfway from -20 to -28
    assert near.threshold_dbfs == pytest.approx(threshold - 4.0, abs=0.1)
    # A loud user raises the bar: far talk 20 dB under them stays out.
    _turn(near, -8.0)
    near.turn_confirmed()
    assert near.reference_dbfs == pytest.approx(-16.0, abs=0.1) and near.turns_learned == 2
    assert not near.holds_near_speech(_frame(-30.0) * 30) and near.holds_near_speech(_frame(-20.0) * 30)
    with pytest.raises(ValueError, match="margin_db"):
        NearTalker(30, margin_db=-1)


def test_near_talker_learns_each_ended_turn_when_its_transcript_comes_back():
    # Turns wait for their transcripts in a queue: the levels go with the turn that ended.
    near = NearTalker(30)
    _turn(near, -28.0)
    first = near.end_turn()
    _turn(near, -8.0)  # the next turn is heard before the first one's transcript is back
    near.learn(first)
    assert near.reference_dbfs == pytest.approx(-24.0, abs=0.1) and near.turns_learned == 1
    near.learn(near.end_turn())
    assert near.reference_dbfs == pytest.approx(-16.0, abs=0.1) and near.turns_learned == 2


def test_near_check_with_digital_silence_in_the_window_is_not_nan():
    # Digital silence is -inf dBFS; the 90th percentile interpolates towards the loud frame.
    assert NearTalker(30).holds_near_speech(bytes(960) + _frame(-6.0))


def test_a_reading_that_repeats_a_phrase_is_a_loop():
    from server.asr.hallucination import repeats_a_phrase

    assert repeats_a_phrase("What do you think I'm out of them, Stark? What do you think I'm out")
    assert not repeats_a_phrase("What do you think about dividend stocks?")
    assert not repeats_a_phrase("Stop. Tell me about bonds instead.")
