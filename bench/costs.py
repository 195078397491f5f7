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

from bench.caller import CONFIG, REPO, SPEECH
from simulator.audio import read_wav

SR = 16000
FRAME_MS = 30
FRAME_BYTES = SR * FRAME_MS // 1000 * 2
NOISE = REPO / "fixtures" / "noise"
ANSWER = (
    "Diversify across regions and currencies. Hedge part of the exposure with forwards. "
    "Keep some cash for the next few months."
)


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def speech_frames(limit_s: float = 30.0) -> list[bytes]:
    """The speech fixtures back to back, cut into 30 ms PCM16 frames (at most ``limit_s`` of them)."""
    pcm = b"".join(read_pcm(p) for p in sorted(SPEECH.glob("*.wav")))
    return frames_of(pcm[: int(limit_s * SR) * 2])


def read_pcm(path: Path) -> bytes:
    """A fixture WAV as 16 kHz PCM16 bytes."""
    return _pcm16(read_wav(path, SR))


def frames_of(pcm: bytes) -> list[bytes]:
    """``pcm`` cut into whole 30 ms frames (a trailing partial frame is dropped)."""
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


#: The floors a call is measured on: digital silence (None), then each of fixtures/noise.
FLOORS: list[str | None] = [None, *sorted(p.stem for p in NOISE.glob("*.wav"))]


def on_floor(pcm: bytes, floor: str | None) -> bytes:
    """``pcm`` with the noise floor ``floor`` (a fixtures/noise stem, looped) added; ``None``: as is."""
    if floor is None:
        return pcm
    x = np.frombuffer(pcm, "<i2").astype(np.int32)
    noise = np.frombuffer(read_pcm(NOISE / f"{floor}.wav"), "<i2").astype(np.int32)
    return np.clip(x + np.resize(noise, x.size), -32768, 32767).astype("<i2").tobytes()


#: The barge-in fires about this long after the onset of the interrupting speech (its floor, docs/bargein.md).
BARGE_IN_S = 0.5


def call_streams(floor: str | None, wait_s: float = 0.5) -> list[list[bytes]]:
    """What listening sessions' turn gates get in the bench caller's calls: lists of frames, one per gate.

    Caller ``i`` (one per question fixture), over ``floor``: 0.5 s of floor,
    the question, the tutorial's 3.5 s end-of-turn silence and ``wait_s``
    until the answer's first audio (no frame reaches the gate while the answer
    plays); the barge-in then resets the gate, which gets the interrupting
    speech (``interrupt_*.wav``, "Stop, ... tell me", pause included) from
    :data:`BARGE_IN_S` after its onset, 3.5 s of end-of-turn silence and ``wait_s``.
    """
    import json

    questions = sorted(SPEECH.glob("question_*.wav"))
    interrupts = sorted(SPEECH.glob("interrupt_*.wav"))

    def quiet(s: float) -> bytes:
        return b"\0" * (int(s * SR) * 2)

    streams = []
    for i, question in enumerate(questions):
        streams.append(frames_of(on_floor(quiet(0.5) + read_pcm(question) + quiet(3.5 + wait_s), floor)))
        interrupt = interrupts[i % len(interrupts)]
        fired = json.loads(interrupt.with_suffix(".json").read_text())["speech"][0]["onset_s"] + BARGE_IN_S
        rest = read_pcm(interrupt)[int(fired * SR) * 2 :]
        streams.append(frames_of(on_floor(rest + quiet(3.5 + wait_s), floor)))
    return streams


def per_frame(fn: Callable[[int, bytes], Any], frames: list[bytes]) -> dict[str, float]:
    """Wall-clock p50 / mean / p99 µs of ``fn(k, frame)`` over the frames, the mean as % of a
    frame's duration, and ``cpu_mean_us``: this thread's CPU time per frame (time.thread_time),
    which leaves out the time the thread waited preempted, so it holds on a busy machine."""
    for k, f in enumerate(frames[:50]):
        fn(k, f)  # warm caches and lazy set-up
    costs = np.empty(len(frames))
    cpu0 = time.thread_time_ns()
    for k, f in enumerate(frames):
        t = time.perf_counter_ns()
        fn(k, f)
        costs[k] = time.perf_counter_ns() - t
    cpu_us = (time.thread_time_ns() - cpu0) / 1000 / max(1, len(frames))
    mean_us = float(costs.mean()) / 1000
    return {
        "mean_us": round(mean_us, 1),
        "p50_us": round(float(np.median(costs)) / 1000, 1),
        "p99_us": round(float(np.percentile(costs, 99)) / 1000, 1),
        "share_of_frame_pct": round(100 * mean_us / (FRAME_MS * 1000), 3),
        "cpu_mean_us": round(cpu_us, 1),
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
    if hasattr(turn_gate, "model_runs"):  # per_frame pushed its 50 warm-up frames, then all
        chunks = (len(frames) + min(50, len(frames))) * FRAME_BYTES / 2 / 512
        out["turn_gate"]["model_runs_pct"] = round(100.0 * turn_gate.model_runs / chunks, 1)
    out |= call_gate_costs()

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
    ticks = itertools.count(1)  # per_frame replays its warm-up frames: session time must still go forward
    out["session_listening"] = per_frame(lambda k, f: session.receive(next(ticks) * FRAME_MS / 1000, AudioAppend(f)), frames)
    return out


def call_gate_costs() -> dict[str, Any]:
    """The turn gate per frame on what it gets in the bench caller's calls (:func:`call_streams`), every floor.

    Rows ``turn_gate_call_silero`` (the plain gate: the model on every chunk)
    and ``turn_gate_call`` (``auto``), each with ``model_runs_pct``: ONNX runs
    as a share of one per 32 ms chunk. A fresh gate per stream, as the session
    has at its start and after a barge-in.
    """
    from server import vad

    calls = [stream for floor in FLOORS for stream in call_streams(floor)]
    frames = [f for call in calls for f in call]
    starts = set(np.cumsum([len(c) for c in calls]).tolist()) | {0}
    out: dict[str, Any] = {}
    for row, name in (("turn_gate_call_silero", "silero"), ("turn_gate_call", "auto")):
        gates: list[Any] = []

        def push(k: int, f: bytes, name: str = name, gates: list[Any] = gates) -> None:
            if k in starts:
                gates.append(vad.get_speech_gate(name, sample_rate=SR, frame_ms=FRAME_MS))
            gates[-1].push(f)

        costs = per_frame(push, frames)
        pushed = len(frames) + min(50, len(frames))  # per_frame's warm-up frames, then all of them
        runs = sum(getattr(g, "model_runs", 0) for g in gates) if hasattr(gates[-1], "model_runs") else None
        pct = 100.0 if runs is None else 100.0 * runs / (pushed * FRAME_BYTES // 2 / 512)
        out[row] = costs | {"gate": gates[-1].name, "model_runs_pct": round(pct, 1), "audio_s": round(len(frames) * FRAME_MS / 1000, 1)}
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
