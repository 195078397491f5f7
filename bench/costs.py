"""In-process costs: per 30 ms frame (frame VAD, neural VAD, echo gate,
detector, turn gate, a whole listening session), ASR RTF + WER, TTS RTF +
time to first audio per engine.

Each stage runs on the speech fixtures cut into frames, after one warm-up
pass (model loading and first-inference set-up are start-up costs, reported
by the simulator-speed figures instead). Times are wall-clock on this
process with the other stages idle: a floor for what the server's event loop
pays per frame per session.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.caller import CONFIG, SPEECH
from simulator.audio import read_wav

SR = 16000
FRAME_MS = 30
FRAME_BYTES = SR * FRAME_MS // 1000 * 2
ANSWER = (
    "Diversify across regions and currencies. Hedge part of the exposure with forwards. "
    "Keep some cash for the next few months."
)


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def speech_frames(limit_s: float = 30.0) -> list[bytes]:
    """The speech fixtures back to back, cut into 30 ms PCM16 frames (at most ``limit_s`` of them)."""
    pcm = b"".join(_pcm16(read_wav(p, SR)) for p in sorted(SPEECH.glob("*.wav")))
    pcm = pcm[: int(limit_s * SR) * 2]
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def per_frame(fn: Callable[[int, bytes], Any], frames: list[bytes]) -> dict[str, float]:
    """Mean and p99 µs of ``fn(k, frame)`` over the frames, and the mean as % of a frame's duration."""
    for k, f in enumerate(frames[:50]):
        fn(k, f)  # warm caches and lazy set-up
    costs = np.empty(len(frames))
    for k, f in enumerate(frames):
        t = time.perf_counter_ns()
        fn(k, f)
        costs[k] = time.perf_counter_ns() - t
    mean_us = float(costs.mean()) / 1000
    return {
        "mean_us": round(mean_us, 1),
        "p50_us": round(float(np.median(costs)) / 1000, 1),
        "p99_us": round(float(np.percentile(costs, 99)) / 1000, 1),
        "share_of_frame_pct": round(100 * mean_us / (FRAME_MS * 1000), 3),
    }


def frame_costs(frames: list[bytes]) -> dict[str, Any]:
    """Per-frame cost of each stage of the server's audio path (tutorial config settings)."""
    from server import vad
    from server.bargein import BargeInDetector, BargeInSettings
    from server.config import load_project_config_file
    from server.echo import EchoEstimator, FarEndLevels
    from server.engines import build_engines
    from server.journal import Journal
    from server.neartalk import NearTalker
    from server.protocol import AudioAppend, encode_client_message, parse_client_message
    from server.session import Session

    config = load_project_config_file(CONFIG).config
    settings = config.barge_in
    assert settings is not None, "the tutorial config has barge-in"
    out: dict[str, Any] = {}
    webrtc = vad.get_frame_vad(settings.frame_vad, settings.vad_mode)
    out["frame_vad"] = per_frame(lambda k, f: webrtc.is_speech(f, SR), frames)
    silero = vad.get_speech_gate("silero", sample_rate=SR, frame_ms=FRAME_MS)
    out["neural_vad_stream"] = per_frame(lambda k, f: silero.push(f), frames)
    turn_gate = vad.get_speech_gate("auto", sample_rate=SR, frame_ms=FRAME_MS)
    out["turn_gate"] = per_frame(lambda k, f: turn_gate.push(f), frames) | {"gate": turn_gate.name}

    # The echo gate while an answer plays (its echo path measured on the mic frames
    # themselves: the far end is the same audio) and while nothing plays.
    far = FarEndLevels(SR)
    far.append(b"".join(frames))
    margin = settings.echo_gate_margin if settings.echo_gate_margin is not None else 6.0
    playing = EchoEstimator(far, SR, margin)
    out["echo_gate"] = per_frame(lambda k, f: playing.push((k + 1) * FRAME_MS / 1000, f, (k + 1) * FRAME_MS / 1000), frames)
    idle = EchoEstimator(far, SR, margin)
    out["echo_gate_idle"] = per_frame(lambda k, f: idle.push((k + 1) * FRAME_MS / 1000, f, None), frames)
    near = NearTalker(FRAME_MS)
    out["near_talker"] = per_frame(lambda k, f: near.push(f), frames)
    # The receive path in front of the session, per 30 ms chunk: JSON + base64, the journal's record.
    messages = [encode_client_message(AudioAppend(f)) for f in frames]
    out["parse_audio_message"] = per_frame(lambda k, f: parse_client_message(messages[k]), frames)
    journal = Journal("bench", "bench", "bench")
    out["journal_audio_message"] = per_frame(lambda k, f: journal.received_message(k * FRAME_MS / 1000, AudioAppend(f)), frames)

    det = BargeInDetector(BargeInSettings.from_config(settings, config.audio_config.asr), None, SR)
    speech = [webrtc.is_speech(f, SR) for f in frames]

    def feed(k: int, f: bytes) -> None:
        t = (k + 1) * FRAME_MS / 1000
        if not det.armed(t):  # (re-)arm: a response playing from now on, for a long time
            det.new_response()
            det.on_audio_sent(t, 3600.0)
            det.on_playback_started(t)
        det.feed(t, f, speech[k])

    out["detector"] = per_frame(feed, frames)
    confirmer = vad.get_confirmer(settings.neural_vad) if settings.neural_vad else None
    if confirmer is not None:
        second = b"".join(frames[:33])
        confirmer.has_speech(second, SR)
        t = time.perf_counter()
        for _ in range(20):
            confirmer.has_speech(second, SR)
        ms = (time.perf_counter() - t) / 20 * 1000
        out["neural_vad_confirm_1s"] = {"mean_ms": round(ms, 2), "share_of_frame_pct": round(100 * ms / FRAME_MS, 1)}

    engines = build_engines(config)
    session = Session(config, engines, session_id="bench")
    session.partial_transcripts = False  # the listening path alone; decodes run elsewhere
    session.start(0.0)
    clock = itertools.count(1)  # per_frame's warm-up pass runs the first frames twice: time must go on
    out["session_listening"] = per_frame(lambda k, f: session.receive(next(clock) * FRAME_MS / 1000, AudioAppend(f)), frames)
    return out


def asr_figures(limit: int | None = None) -> dict[str, Any]:
    """RTF (decode time / audio time) and WER of the config's ASR on every speech fixture with a transcript."""
    import json

    from server import asr
    from server.config import load_project_config_file
    from tests.support.text_metrics import word_error_rate

    config = load_project_config_file(CONFIG).config
    name = asr.engine_for_model(config.audio_config.asr.model, config.audio_config.asr.engine)
    engine = asr.get_asr_engine(name)
    wavs = sorted(SPEECH.glob("*.wav"))[:limit]
    engine.transcribe("warm", _pcm16(read_wav(wavs[0], SR)), SR, final=True)
    engine.forget("warm")
    rows, decode_s, audio_s, errors, words = [], 0.0, 0.0, 0.0, 0
    for wav in wavs:
        text = json.loads(Path(wav).with_suffix(".json").read_text()).get("text", "")
        pcm = _pcm16(read_wav(wav, SR))
        t = time.perf_counter()
        hyp = engine.transcribe(wav.stem, pcm, SR, final=True)
        dt = time.perf_counter() - t
        engine.forget(wav.stem)
        dur = len(pcm) / 2 / SR
        wer = word_error_rate(text, hyp)
        n_words = len(text.split())
        rows.append({"wav": wav.name, "audio_s": round(dur, 2), "decode_s": round(dt, 3), "rtf": round(dt / dur, 3), "wer": round(wer, 3)})
        decode_s, audio_s, errors, words = decode_s + dt, audio_s + dur, errors + wer * n_words, words + n_words
    return {
        "engine": name,
        "rtf": round(decode_s / audio_s, 3),
        "wer": round(errors / max(1, words), 3),
        "decodes_per_s_one_thread": round(len(rows) / decode_s, 2),
        "files": rows,
    }


def tts_figures() -> dict[str, Any]:
    """Per engine: time to first audio (the first sentence, as the session synthesises) and RTF over an answer."""
    from server import tts
    from server.tts.normalize import split_sentences

    rate = 24000
    out: dict[str, Any] = {}
    for name in tts.available_tts_engines():
        try:
            engine = tts.get_tts_engine(name)
            voice = engine.voice_for("en", None)
            engine.synthesize("Warm up.", voice, rate)
            sentences = split_sentences(ANSWER)
            t = time.perf_counter()
            first = None
            audio_s = 0.0
            for s in sentences:
                pcm = engine.synthesize(s, voice, rate)
                first = first if first is not None else time.perf_counter() - t
                audio_s += len(pcm) / 2 / rate
            total = time.perf_counter() - t
            out[name] = {"first_audio_ms": round((first or 0) * 1000, 1), "rtf": round(total / max(audio_s, 1e-9), 3), "voice": voice.label}
        except Exception as exc:  # noqa: BLE001 - an engine missing here is a figure, not a crash
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    return out
