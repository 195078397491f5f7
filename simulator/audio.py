"""Reading speech clips and their JSON sidecars."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ClipError(ValueError):
    """A speech clip or its sidecar cannot be used; the message says why and what to do."""


def read_wav(path: Path | str, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of a WAV file at ``sample_rate`` (mixed down and resampled).

    Any WAV libsndfile reads: 8-48 kHz (or more), 16/24/32-bit integer or
    float, mono or stereo (channels are averaged). Read by ``soundfile``
    (libsndfile: every WAV sub-format, no hand-written RIFF parsing) and
    resampled by ``soxr`` (high-quality, band-limited).
    """
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
    """A speech clip: samples, its text and where speech is inside it (seconds from clip start)."""

    path: Path
    samples: np.ndarray
    text: str
    speech: tuple[tuple[float, float], ...]
    span_texts: tuple[str, ...] = ()
    #: Where ``speech`` came from: "sidecar", "silero" (neural VAD, no sidecar) or "energy".
    speech_source: str = "sidecar"

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

    Without a sidecar (or with one that lists no spans), speech spans come from
    the Silero neural VAD (:func:`neural_speech_spans`; an energy detector when
    the silero-vad wheel is missing) and the text from ``text`` (empty when not
    given); ``Clip.speech_source`` says which, and reports repeat it.
    """
    path = Path(path)
    samples = read_wav(path, sample_rate)
    sidecar = path.with_suffix(".json")
    spans: list[tuple[float, float]] = []
    texts: list[str] = []
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            for item in meta.get("speech") or []:
                spans.append((float(item["onset_s"]), float(item["offset_s"])))
                texts.append(str(item.get("text") or ""))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ClipError(
                f"{sidecar}: expected {{'text': str, 'speech': [{{'onset_s', 'offset_s', 'text'}}]}} ({exc})"
            ) from exc
        if text is None:
            text = str(meta.get("text") or "")
    source = "sidecar"
    if not spans:
        from server.vad import VadUnavailableError

        try:
            spans, source = neural_speech_spans(samples, sample_rate), "silero"
        except VadUnavailableError:
            spans, source = energy_speech_spans(samples, sample_rate), "energy"
    if not spans:
        raise ClipError(f"{path}: no speech found in the clip (silent file?); add a sidecar {sidecar.name} with its speech spans")
    if len(texts) != len(spans):
        texts = [text or ""] if len(spans) == 1 else [""] * len(spans)
    return Clip(path, samples, text or "", tuple(spans), tuple(texts), source)


#: Silero's own defaults for speech timestamps (silero-vad ``get_speech_timestamps``):
#: start at p >= 0.5, end after p < 0.35 for 100 ms, drop spans under 250 ms.
NEURAL_THRESHOLD = 0.5
NEURAL_END_THRESHOLD = 0.35
NEURAL_MIN_SILENCE_S = 0.1
NEURAL_MIN_SPEECH_S = 0.25


def neural_speech_spans(samples: np.ndarray, sample_rate: int = 16000) -> list[tuple[float, float]]:
    """Speech spans (seconds) of a clip by the Silero VAD, with the hysteresis of silero-vad's
    ``get_speech_timestamps`` (thresholds and durations above; no padding, so an onset is
    the first confident 32 ms chunk). Raises ``server.vad.VadUnavailableError`` without the wheel.
    """
    from server.vad import SileroStream

    x = samples.astype(np.float32)
    if sample_rate not in (8000, 16000):
        import soxr

        x, sample_rate = soxr.resample(x, sample_rate, 16000).astype(np.float32), 16000
    stream = SileroStream(sample_rate)
    step = stream.chunk / sample_rate
    spans: list[tuple[float, float]] = []
    start: float | None = None
    quiet = 0.0
    for k, p in enumerate(stream.push(x)):
        t = k * step
        if start is None:
            if p >= NEURAL_THRESHOLD:
                start, quiet = t, 0.0
        elif p < NEURAL_END_THRESHOLD:
            quiet += step
            if quiet >= NEURAL_MIN_SILENCE_S:
                spans.append((start, t + step - quiet))
                start = None
        else:
            quiet = 0.0
    if start is not None:
        spans.append((start, len(x) / sample_rate - quiet))
    return [(round(a, 3), round(b, 3)) for a, b in spans if b - a >= NEURAL_MIN_SPEECH_S]


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
