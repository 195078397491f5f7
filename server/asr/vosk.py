"""Vosk (Kaldi) streaming ASR with a model directory the user provides.

No English Vosk model is on any package registry and ``Model(lang=...)``
downloads, so this engine never guesses: the model directory comes from the
``model_path`` option (``audio_config.asr.model_path``) or the
``REFINERY_VOSK_MODEL`` environment variable, and a missing one is an
immediate error that says how to fix it.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.asr.audio import ASR_SAMPLE_RATE, StreamingResampler, check_pcm

MODEL_ENV_VAR = "REFINERY_VOSK_MODEL"
_HOW_TO_FIX = (
    "download a Vosk model (e.g. vosk-model-small-en-us-0.15 from https://alphacephei.com/vosk/models), "
    f"unpack it, and set {MODEL_ENV_VAR}=/path/to/model or audio_config.asr.model_path in the config"
)


class VoskModelMissingError(RuntimeError):
    """No usable Vosk model directory was configured."""


def resolve_model_path(model_path: str | None = None) -> Path:
    """The Vosk model directory from ``model_path`` or ``$REFINERY_VOSK_MODEL``.

    Raises :class:`VoskModelMissingError` naming what was tried when neither
    points at an existing directory.
    """
    candidate = model_path or os.environ.get(MODEL_ENV_VAR)
    if not candidate:
        raise VoskModelMissingError(f"the vosk ASR engine needs a model directory and none is set: {_HOW_TO_FIX}")
    path = Path(candidate).expanduser()
    source = "model_path" if model_path else f"${MODEL_ENV_VAR}"
    if not path.is_dir():
        raise VoskModelMissingError(f"Vosk model directory {path} (from {source}) does not exist: {_HOW_TO_FIX}")
    if not (path / "am").is_dir() and not (path / "final.mdl").exists():
        raise VoskModelMissingError(
            f"{path} (from {source}) is not a Vosk model directory (no am/ inside): {_HOW_TO_FIX}"
        )
    return path


@dataclass
class _Stream:
    recognizer: Any
    resampler: StreamingResampler
    consumed: int = 0
    text_so_far: str = ""  # results of segments Kaldi already closed


class VoskAsr:
    """The ``vosk`` engine: one ``KaldiRecognizer`` per utterance, fed the new tail."""

    name = "vosk"
    stateless = False

    def __init__(self, model_path: str | None = None) -> None:
        path = resolve_model_path(model_path)  # before importing vosk: fail fast and clearly
        import vosk

        vosk.SetLogLevel(-1)
        self.model_path = path
        self._vosk = vosk
        self._model = vosk.Model(model_path=str(path))
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()

    def transcribe(self, utterance_id: str, pcm: bytes, sample_rate: int, *, final: bool) -> str:
        """Feed the unseen tail of ``pcm``; partial text, or the final text when ``final``."""
        check_pcm(pcm, sample_rate)
        with self._lock:
            stream = self._streams.get(utterance_id)
            if stream is None or len(pcm) < stream.consumed or stream.resampler.sample_rate != sample_rate:
                stream = _Stream(
                    self._vosk.KaldiRecognizer(self._model, ASR_SAMPLE_RATE), StreamingResampler(sample_rate)
                )
                self._streams[utterance_id] = stream
        audio = stream.resampler.feed(pcm[stream.consumed :], last=final)
        stream.consumed = len(pcm)
        # Kaldi closes a segment at its own endpoint; keep the text of closed ones.
        if audio and stream.recognizer.AcceptWaveform(audio):
            stream.text_so_far = _join(stream.text_so_far, json.loads(stream.recognizer.Result()).get("text", ""))
        if not final:
            return _join(stream.text_so_far, json.loads(stream.recognizer.PartialResult()).get("partial", ""))
        text = _join(stream.text_so_far, json.loads(stream.recognizer.FinalResult()).get("text", ""))
        self.forget(utterance_id)
        return text

    def forget(self, utterance_id: str) -> None:
        """Drop the recognizer of ``utterance_id``."""
        with self._lock:
            self._streams.pop(utterance_id, None)


def _join(a: str, b: str) -> str:
    return f"{a} {b}".strip()
