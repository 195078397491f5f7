"""The engines a session runs with, chosen from its project config.

Each kind of engine has its own registry (:mod:`server.vad`, :mod:`server.asr`,
:mod:`server.tts`, :mod:`server.agents.brain`); this module only resolves the
config's names through them, once per session, so that a bad choice (an
unknown engine, a Vosk engine without a model) fails when the session opens,
with the reason, instead of in the middle of a turn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from server import asr, tts, vad
from server.agents.brain import Brain, get_brain
from server.asr.base import AsrEngine
from server.config import ConfigIssue, EffectiveSpeech, ProjectConfig
from server.tts.base import TtsEngine, Voice
from server.tts.cache import CachedTts


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

    def warm_up(self) -> None:
        """Run every engine once on a short real input.

        Loading a model is not all of its one-time cost: the first inference
        also sets up kernels, buffers and (eSpeak) voice data, ~50 ms each.
        Doing it here keeps that out of the first session's latency and out of
        the simulator's speed figures. The synthesis bypasses the sentence
        cache, so no session ever gets a warm-up result.
        """
        rate = 16000
        spoken = [
            tts.get_tts_engine(voice.engine).synthesize(WARM_UP_TEXT, voice, rate)
            for voice in dict.fromkeys(self.voices.values())
        ]
        speech = spoken[-1] if spoken else warm_up_noise(rate)
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
    audio = config.audio_config
    asr_name = asr.engine_for_model(audio.asr.model, audio.asr.engine or asr_engine or os.environ.get("REFINERY_ASR_ENGINE"))
    asr_options = {"model_path": audio.asr.model_path} if audio.asr.model_path else {}
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
        turn_gate_name=os.environ.get("REFINERY_TURN_GATE", "auto"),
        tts_override=audio.tts.engine or tts_engine or os.environ.get("REFINERY_TTS_ENGINE"),
    )
    names = [a.agent_name for a in config.utility_agents] + [a.agent_name for a in config.super_agents]
    for name in names:
        speech = config.speech_for(name)
        if speech.enable_speech:
            engines.voices[name] = engines.voice_for(speech)
    return engines


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

