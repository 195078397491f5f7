"""The TTS engine interface. Engines register in :mod:`server.tts`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Voice:
    """A local voice chosen for an agent.

    ``engine`` is the registry name of the engine that owns it, ``voice_id`` the
    engine's own id, ``requested`` the cloud voice name it stands in for (if any).
    """

    engine: str
    voice_id: str
    language: str
    gender: str | None = None
    requested: str | None = None

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.voice_id}"


class TtsError(RuntimeError):
    """A TTS engine failed to produce audio (missing library, stuck engine, ...)."""


class TtsEngine(Protocol):
    """Text in, PCM16 mono out. Implementations must be safe to call from a
    worker thread (one call at a time per engine instance is enough: callers
    serialise)."""

    name: str

    def voice_for(self, language: str | None, cloud_voice: str | None) -> Voice:
        """Pick the local voice standing in for a cloud voice name / language."""
        ...

    def synthesize(self, text: str, voice: Voice, sample_rate: int) -> bytes:
        """Synthesize ``text`` as PCM16 little-endian mono at ``sample_rate``."""
        ...
