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
    """A clip: samples, its text and where speech is inside it (seconds from clip start).

    No spans: a non-speech sound (its sidecar says ``"speech": []``, ``"kind": "nonspeech"``).
    """

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


#: What a sidecar may hold (docs/simulator.md, "Speech clips and sidecars").
SIDECAR_FIELDS = (
    "speech (required): a list of {onset_s, offset_s (seconds from the clip's start, onset < offset), "
    "text, role, voice, source (optional)}; an empty list: find speech by energy (with kind \"nonspeech\": "
    "a sound that is not speech); "
    "text, duration_s (must match the WAV), sample_rate, voice, kind, description (optional)"
)
_SPAN_KEYS = {"onset_s", "offset_s", "text", "role", "voice", "source"}
#: Tolerance of ``duration_s`` and of span ends against the WAV's real length.
_DURATION_TOLERANCE_S = 0.05


def read_sidecar(sidecar: Path, clip_s: float) -> tuple[str | None, list[tuple[float, float]], list[str], bool]:
    """The text, speech spans, span texts of a clip's JSON sidecar, and whether it
    declares a sound that is not speech (``"speech": []``, ``"kind": "nonspeech"``).

    Raises :class:`ClipError` naming the file and the expected fields when the
    sidecar is not valid JSON, has no ``speech`` list, a span lacks or misnames
    ``onset_s``/``offset_s``, a span is empty or outside the clip, or
    ``duration_s`` does not match the WAV (``clip_s`` seconds): a sidecar read
    wrongly would silently measure latencies from the wrong speech.
    """

    def bad(why: str) -> ClipError:
        return ClipError(f"{sidecar}: {why}; a sidecar must hold {SIDECAR_FIELDS}")

    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"cannot read it as JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise bad(f"found a JSON {type(meta).__name__}, not an object")
    if not isinstance(meta.get("speech"), list):
        found = "no `speech`" if "speech" not in meta else f"`speech` of type {type(meta['speech']).__name__}"
        raise bad(f"found {found} (keys: {', '.join(sorted(meta)) or 'none'})")
    duration = meta.get("duration_s")
    if duration is not None:
        if not isinstance(duration, (int, float)) or isinstance(duration, bool):
            raise bad(f"`duration_s` must be a number, found {duration!r}")
        if abs(float(duration) - clip_s) > _DURATION_TOLERANCE_S:
            raise bad(f"`duration_s` is {duration} s but the WAV lasts {clip_s:.3f} s (a sidecar of another file?)")
    text = meta.get("text")
    if text is not None and not isinstance(text, str):
        raise bad(f"`text` must be a string, found {text!r}")
    spans: list[tuple[float, float]] = []
    texts: list[str] = []
    for i, item in enumerate(meta["speech"]):
        where = f"speech[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{where} is {item!r}, not an object")
        unknown = sorted(set(item) - _SPAN_KEYS)
        if unknown or "onset_s" not in item or "offset_s" not in item:
            raise bad(f"{where} has keys {sorted(item)}" + (f" (unknown: {unknown})" if unknown else ""))
        on, off = item["onset_s"], item["offset_s"]
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in (on, off)):
            raise bad(f"{where}: onset_s and offset_s must be numbers, found {on!r}, {off!r}")
        if not 0 <= on < off <= clip_s + _DURATION_TOLERANCE_S:
            raise bad(f"{where}: the span {on}..{off} s is empty or outside the clip (0..{clip_s:.3f} s)")
        spans.append((float(on), float(off)))
        texts.append(str(item.get("text") or ""))
    return text, spans, texts, not spans and meta.get("kind") == "nonspeech"


def load_clip(path: Path | str, text: str | None = None, sample_rate: int = 16000) -> Clip:
    """Load a WAV and its sidecar (same name, ``.json``: ``speech`` spans and ``text``).

    Without a sidecar, speech spans come from the Silero neural VAD
    (:func:`neural_speech_spans`; an energy detector when the silero-vad wheel
    is missing); a sidecar with an empty ``speech`` list keeps the energy
    detector, so the simulator still knows where the sound is. A sidecar with
    ``"speech": []`` and ``"kind": "nonspeech"`` declares a sound that is not
    speech (``fixtures/sounds/``): no spans. The text comes from ``text``
    (empty when not given); ``Clip.speech_source`` says where the spans came
    from, and reports repeat it. A sidecar that cannot be read raises
    :class:`ClipError` (:func:`read_sidecar`).
    """
    path = Path(path)
    samples = read_wav(path, sample_rate)
    sidecar = path.with_suffix(".json")
    spans: list[tuple[float, float]] = []
    texts: list[str] = []
    source = "sidecar"
    if sidecar.is_file():
        meta_text, spans, texts, nonspeech = read_sidecar(sidecar, len(samples) / sample_rate)
        if nonspeech:
            return Clip(path, samples, "", ())
        if text is None:
            text = meta_text or ""
        if not spans:
            spans, source = energy_speech_spans(samples, sample_rate), "energy"
    else:
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
