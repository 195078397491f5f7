"""The engines a session runs with, chosen from its project config.

Each kind of engine has its own registry (:mod:`server.vad`, :mod:`server.asr`,
:mod:`server.tts`, :mod:`server.agents.brain`); this module only resolves the
config's names through them, once per session, so that a bad choice (an
unknown engine, a Vosk engine without a model) fails when the session opens,
with the reason, instead of in the middle of a turn.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from server import asr, tts, vad
from server.agents.brain import Brain, get_brain
from server.asr.base import AsrEngine
from server.config import ConfigIssue, EffectiveSpeech, ProjectConfig
from server.tts.base import TtsEngine, Voice
from server.tts.cache import CachedTts


log = logging.getLogger(__name__)

#: What :meth:`EngineSet.warm_up` says and then recognises.
WARM_UP_TEXT = "Ready when you are."


def warm_up_noise(sample_rate: int = 16000) -> bytes:
    """One second of seeded noise at -26 dBFS, 16-bit PCM: a recogniser's warm-up input.

    The recogniser skips silence undecoded, so a warm-up needs sound; this
    stands in where no synthesized speech is at hand.
    """
    return np.random.default_rng(0).normal(0, 1600, sample_rate).astype("<i2").tobytes()


@dataclass
class EngineSet:
    brain: Brain
    asr: AsrEngine
    asr_name: str
    frame_vad: vad.FrameVad
    frame_vad_name: str
    confirmer: vad.SpeechConfirmer | None
    confirmer_name: str | None
    turn_gate_name: str
    tts_override: str | None
    voices: dict[str, Voice] = field(default_factory=dict)

    def voice_for(self, speech: EffectiveSpeech) -> Voice:
        engine_name = tts.engine_for_model(speech.model, self.tts_override)
        return tts.get_tts_engine(engine_name).voice_for(speech.language, speech.voice)

    def voice_for_step(self, step) -> Voice:
        voice = self.voices.get(step.name)
        return voice if voice is not None else self.voice_for(step.speech)

    def new_turn_gate(self, sample_rate: int, frame_ms: int) -> vad.SpeechGate:
        """A fresh end-of-turn speech gate (they keep per-stream state)."""
        return vad.get_speech_gate(self.turn_gate_name, sample_rate=sample_rate, frame_ms=frame_ms)

    def tts_for(self, voice: Voice) -> TtsEngine:
        return CachedTts(tts.get_tts_engine(voice.engine))

    def warm_up(self, *, light_asr: bool = False) -> None:
        """Run every engine once on a short real input.

        Loading a model is not all of its one-time cost: the first inference
        also sets up kernels, buffers and (eSpeak) voice data, ~50 ms each.
        Doing it here keeps that out of the first session's latency. The
        synthesis bypasses the sentence cache, so no session ever gets a
        warm-up result.

        ``light_asr``: warm the recogniser with its ``prime`` (Whisper: one
        short pass, ~0.2 s of CPU on the 2-core machine) instead of a whole
        final decode (four passes, two on the 20 s window: ~1.3 s); the first
        real decodes then cost about what they cost after the whole one
        (docs/simulator.md, "Wall time as a user waits"). The synthesis is
        always done: eSpeak carries state from one utterance to the next
        (docs/tts.md), so it keeps every later synthesis what it was.
        """
        rate = 16000
        spoken = [
            tts.get_tts_engine(voice.engine).synthesize(WARM_UP_TEXT, voice, rate)
            for voice in dict.fromkeys(self.voices.values())
        ]
        speech = spoken[-1] if spoken else warm_up_noise(rate)
        prime = getattr(self.asr, "prime", None) if light_asr else None
        if prime is not None:
            prime(speech, rate)
        else:
            self.asr.transcribe("warm-up", speech, rate, final=True)
            self.asr.forget("warm-up")
        vad.get_speech_gate(self.turn_gate_name, sample_rate=rate, frame_ms=30).push(speech[: rate * 2 * 30 // 1000])
        if self.confirmer is not None:
            self.confirmer.has_speech(speech, rate)


def build_engines(config: ProjectConfig, *, brain: str | None = None, asr_engine: str | None = None,
                  tts_engine: str | None = None) -> EngineSet:
    """Resolve every engine the config names. Raises ``ValueError`` naming the
    field and the fix when a choice cannot be honoured.

    ``asr_engine`` / ``tts_engine``: the server's choice (the pytest plugin's
    ``--refinery-asr-engine``), used where the config names no engine, before
    ``$REFINERY_ASR_ENGINE`` / ``$REFINERY_TTS_ENGINE``.
    """
    asr_name, asr_options = _asr_choice(config, asr_engine)
    asr_engine = asr.get_asr_engine(asr_name, **asr_options)
    settings = config.barge_in
    frame_vad_name = settings.frame_vad if settings else "webrtc"
    frame_vad = vad.get_frame_vad(frame_vad_name, settings.vad_mode if settings else 2)
    confirmer_name = settings.neural_vad if settings else None
    confirmer = vad.get_confirmer(confirmer_name) if confirmer_name else None
    engines = EngineSet(
        brain=get_brain(brain or os.environ.get("REFINERY_BRAIN", "scripted")),
        asr=asr_engine,
        asr_name=asr_name,
        frame_vad=frame_vad,
        frame_vad_name=frame_vad_name,
        confirmer=confirmer,
        confirmer_name=confirmer_name if confirmer else None,
        turn_gate_name=_turn_gate_name(),
        tts_override=_tts_override(config, tts_engine),
    )
    for name, speech in _speaking_agents(config):
        engines.voices[name] = engines.voice_for(speech)
    return engines


def _asr_choice(config: ProjectConfig, asr_engine: str | None) -> tuple[str, dict[str, str]]:
    audio = config.audio_config
    name = asr.engine_for_model(audio.asr.model, audio.asr.engine or asr_engine or os.environ.get("REFINERY_ASR_ENGINE"))
    return name, ({"model_path": audio.asr.model_path} if audio.asr.model_path else {})


def _tts_override(config: ProjectConfig, tts_engine: str | None) -> str | None:
    return config.audio_config.tts.engine or tts_engine or os.environ.get("REFINERY_TTS_ENGINE")


def _turn_gate_name() -> str:
    return os.environ.get("REFINERY_TURN_GATE", "auto")


def _speaking_agents(config: ProjectConfig) -> list[tuple[str, EffectiveSpeech]]:
    names = [a.agent_name for a in config.utility_agents] + [a.agent_name for a in config.super_agents]
    return [(name, speech) for name in names if (speech := config.speech_for(name)).enable_speech]


def preload_engines(configs: Iterable[ProjectConfig], *, asr_engine: str | None = None,
                    tts_engine: str | None = None) -> Callable[[], None]:
    """Start loading every engine the configs name, one thread per model; returns a
    function that waits until all are loaded.

    Loading is most of an engine's start-up (the Whisper weights, twice: int8
    and the float32 encoder copy; Silero's ONNX session; the eSpeak driver), and
    it runs in C++ with the GIL released (CTranslate2, ONNX Runtime), so the
    models load side by side and the caller's thread keeps working meanwhile.
    Nothing is run: :func:`build_engines` then finds every engine in its
    registry. Best effort: a load that fails here is left for
    :func:`build_engines` to raise, with its message naming the field.
    """
    jobs: dict[tuple, Callable[[], object]] = {}
    for config in configs:
        name, options = _asr_choice(config, asr_engine)
        jobs[("asr", name, *sorted(options.items()))] = partial(asr.get_asr_engine, name, **options)
        settings = config.barge_in
        if settings is not None and settings.neural_vad:
            jobs[("confirmer", settings.neural_vad)] = partial(vad.get_confirmer, settings.neural_vad)
        # The end-of-turn gate of every session ("auto": Silero's session, shared with the confirmer).
        jobs[("gate", _turn_gate_name())] = partial(vad.get_speech_gate, _turn_gate_name())
        override = _tts_override(config, tts_engine)
        for _, speech in _speaking_agents(config):
            jobs[("tts", speech.model, override)] = partial(_load_tts, speech.model, override)
    threads = [threading.Thread(target=_quietly, args=(job,), name=f"load-{key[0]}", daemon=True)
               for key, job in jobs.items()]
    for t in threads:
        t.start()

    def wait() -> None:
        for t in threads:
            t.join()

    return wait


def _load_tts(model: str | None, override: str | None) -> None:
    tts.get_tts_engine(tts.engine_for_model(model, override))


def _quietly(job: Callable[[], object]) -> None:
    try:
        job()
    except Exception as exc:  # noqa: BLE001 - build_engines raises it again, with the field to fix
        log.debug("preloading an engine failed (build_engines will say why): %s", exc)


def engine_name_issues(config: ProjectConfig) -> list[ConfigIssue]:
    """Engine names in the config that no registry knows, as config problems,
    so that a typo is a 422 at ``create_project`` and not a failed session later."""
    issues = []
    audio = config.audio_config

    def check(path: str, name: str | None, known: list[str]) -> None:
        if name is not None and name not in known:
            issues.append(ConfigIssue(path, repr(name), f"one of {', '.join(known)}"))

    check("audio_config.asr.engine", audio.asr.engine, asr.available_asr_engines())
    check("audio_config.tts.engine", audio.tts.engine, tts.available_tts_engines())
    if audio.vad is not None:
        check("audio_config.vad.frame_vad", audio.vad.frame_vad, vad.frame_vad_names())
        check("audio_config.vad.neural_vad", audio.vad.neural_vad, vad.confirmer_names())
    return issues

