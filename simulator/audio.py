"""Reading speech clips and their JSON sidecars."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ClipError(ValueError):
    """A speech clip or its sidecar cannot be used; the message says why and what to do."""


def read_wav(path: Path | str, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of a WAV file at ``sample_rate`` (mixed down and resampled)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise ClipError(f"audio file not found: {path} (run `make fixtures` if it is a fixture)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as exc:
        raise ClipError(f"cannot read {path} as audio: {exc}") from exc
    mono = data.mean(axis=1)
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


@dataclass(frozen=True)
class Clip:
    """A clip: samples, its text and where speech is inside it (seconds from clip start).

    No spans: a non-speech sound (its sidecar says ``"speech": []``, ``"kind": "nonspeech"``).
    """

    path: Path
    samples: np.ndarray
    text: str
    speech: tuple[tuple[float, float], ...]
    span_texts: tuple[str, ...] = ()

    @property
    def onset_s(self) -> float:
        """Start of the first speech span."""
        return self.speech[0][0]

    @property
    def offset_s(self) -> float:
        """End of the last speech span."""
        return self.speech[-1][1]


def load_clip(path: Path | str, text: str | None = None, sample_rate: int = 16000) -> Clip:
    """Load a WAV and its sidecar (same name, ``.json``: ``text`` and ``speech`` spans).

    Without a sidecar, speech spans come from an energy detector and the text
    from ``text`` (empty when not given). A sidecar with ``"speech": []`` and
    ``"kind": "nonspeech"`` declares a sound that is not speech
    (``fixtures/sounds/``): no spans.
    """
    path = Path(path)
    samples = read_wav(path, sample_rate)
    sidecar = path.with_suffix(".json")
    spans: list[tuple[float, float]] = []
    texts: list[str] = []
    declared_nonspeech = False
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            declared_nonspeech = meta.get("speech") == [] and meta.get("kind") == "nonspeech"
            for item in meta.get("speech") or []:
                spans.append((float(item["onset_s"]), float(item["offset_s"])))
                texts.append(str(item.get("text") or ""))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ClipError(
                f"{sidecar}: expected {{'text': str, 'speech': [{{'onset_s', 'offset_s', 'text'}}]}} ({exc})"
            ) from exc
        if text is None:
            text = str(meta.get("text") or "")
    if declared_nonspeech:
        return Clip(path, samples, "", ())
    if not spans:
        spans = energy_speech_spans(samples, sample_rate)
    if not spans:
        raise ClipError(f"{path}: no speech found in the clip (silent file?)")
    if len(texts) != len(spans):
        texts = [text or ""] if len(spans) == 1 else [""] * len(spans)
    return Clip(path, samples, text or "", tuple(spans), tuple(texts))


def energy_speech_spans(samples: np.ndarray, sample_rate: int = 16000, frame_ms: int = 10) -> list[tuple[float, float]]:
    """One span from the first to the last 10 ms frame louder than -40 dB below the peak frame."""
    n = int(sample_rate * frame_ms / 1000)
    frames = len(samples) // n
    if frames == 0:
        return []
    energy = np.sqrt(np.mean(samples[: frames * n].reshape(frames, n) ** 2, axis=1)) + 1e-12
    loud = np.nonzero(20 * np.log10(energy / energy.max()) > -40)[0]
    if energy.max() < 1e-4 or not len(loud):
        return []
    return [(loud[0] * frame_ms / 1000, (loud[-1] + 1) * frame_ms / 1000)]
