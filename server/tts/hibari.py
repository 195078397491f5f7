"""Engine ``hibari``: a small neural voice (``heart``, American English, female).

Natural-sounding and offline: the ``heart`` model ships inside the
``hibari-tts`` wheel. Its other voices download on first use, which we must
never do, so this engine has exactly one voice and every language and cloud
voice maps to it (``Voice.requested`` still records what was asked for).
Output is 24 kHz float; we resample with soxr.
"""

from __future__ import annotations

import threading

from .audio import check_sample_rate, to_pcm16
from .base import TtsError, Voice

__all__ = ["HibariEngine", "HIBARI_VOICE"]

HIBARI_VOICE = "heart"
HIBARI_LANGUAGE = "en-US"


class HibariEngine:
    """hibari-tts with its bundled ``heart`` voice (real-time factor ~0.035 on the shared 2-core dev box)."""

    name = "hibari"

    def __init__(self, threads: int = 1, speed: float = 1.0, seed: int | None = 0) -> None:
        if not 0.5 <= speed <= 2.0:
            raise ValueError(f"hibari speed must be 0.5..2.0, got {speed}")
        try:
            from hibari import Hibari
            from hibari.voices import voice_path
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise TtsError("hibari engine needs `pip install hibari-tts`") from exc
        # Refuse anything but the bundled file: voice_path would otherwise download.
        model = voice_path(HIBARI_VOICE, download_missing=False)
        self._tts = Hibari(voice=HIBARI_VOICE, model=model, threads=threads)
        self.native_rate: int = int(self._tts.sample_rate)
        self.speed = speed
        # A fixed seed makes the noise component (and so tests) reproducible.
        self.seed = seed
        self._lock = threading.Lock()

    def voice_for(self, language: str | None, cloud_voice: str | None) -> Voice:
        """Always ``heart`` (the only offline voice); never raises."""
        return Voice(
            engine=self.name,
            voice_id=HIBARI_VOICE,
            language=HIBARI_LANGUAGE,
            gender="female",
            requested=cloud_voice,
        )

    def synthesize(self, text: str, voice: Voice, sample_rate: int) -> bytes:
        """PCM16 mono at ``sample_rate``; empty bytes for blank text."""
        check_sample_rate(sample_rate)
        if voice.engine != self.name or voice.voice_id != HIBARI_VOICE:
            raise ValueError(
                f"voice {voice.label} is not a hibari voice: use HibariEngine.voice_for() "
                f"(hibari has one offline voice, {HIBARI_VOICE!r})"
            )
        if not text or not text.strip():
            return b""
        with self._lock:  # one onnxruntime session, G2P state: one call at a time
            samples = self._tts(text, speed=self.speed, seed=self.seed)
        return to_pcm16(samples, self.native_rate, sample_rate)
