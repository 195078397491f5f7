"""Voice activity detection: frame VADs, the neural speech confirmer and speech gates.

Three small interfaces, each with a registry keyed by name:

* :class:`FrameVad` classifies one 10/20/30 ms PCM16 frame (``webrtc``). It is the
  cheap frame counter of the barge-in spec. It calls low white noise "speech"
  (engines.md), so it must never decide anything alone.
* :class:`SpeechConfirmer` looks at a stretch of audio (about a second) and says
  whether it holds speech (``silero``: the ONNX model shipped in the silero-vad
  wheel, run with onnxruntime; ``import silero_vad`` is never done because it
  imports torch).
* :class:`SpeechGate` is a per-stream, stateful frame classifier for end-of-turn
  decisions that stays quiet on a noise floor (``silero`` streaming;
  ``silero-skip``: the same without the model on long quiet; or
  ``webrtc+energy``: WebRTC AND energy above an adaptive noise floor).

:class:`Framer` cuts arbitrary input chunks into timestamped frames.

Everything here is pure computation: no clock, no sleeps, no I/O besides loading
the model file once.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)

VALID_FRAME_MS = (10, 20, 30)
WEBRTC_RATES = (8000, 16000, 32000, 48000)


class VadError(ValueError):
    """Bad VAD name, mode or audio; the message says what to do."""


class VadUnavailableError(VadError):
    """A known VAD engine whose package is not installed."""


def frame_bytes(sample_rate: int, frame_ms: int) -> int:
    """Byte length of one PCM16 mono frame of ``frame_ms`` at ``sample_rate``."""
    if frame_ms not in VALID_FRAME_MS:
        raise VadError(f"frame_ms must be one of {VALID_FRAME_MS}, got {frame_ms!r}")
    return sample_rate * frame_ms // 1000 * 2


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """PCM16 little-endian bytes -> float32 samples in [-1, 1)."""
    if len(pcm) % 2:
        raise VadError(f"PCM16 audio must have an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def rms_dbfs(pcm: bytes) -> float:
    """Root-mean-square level of PCM16 audio in dBFS (-120 for digital silence)."""
    x = pcm16_to_float(pcm)
    if x.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 1e-6 else -120.0


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class TimedFrame:
    """One frame of input; ``t`` is the session time of its *last* sample."""

    t: float
    pcm: bytes


class Framer:
    """Cuts input chunks of any length into frames of ``frame_ms``.

    ``push(t, pcm)`` takes the time of the chunk's last sample and returns the
    whole frames it completes, each stamped with the time of its own last
    sample, counted back in audio time from ``t``. A partial frame waits for
    the next chunk. The session passes audio positions (seconds of input so
    far) and maps them to session time with :mod:`server.inputclock`.
    """

    def __init__(self, sample_rate: int, frame_ms: int) -> None:
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_len = frame_bytes(sample_rate, frame_ms)
        self._pending = b""

    def push(self, t: float, pcm: bytes) -> list[TimedFrame]:
        if len(pcm) % 2:
            raise VadError(f"PCM16 chunk has an odd number of bytes ({len(pcm)}); send whole 16-bit samples")
        data = self._pending + pcm
        n = len(data) // self.frame_len
        self._pending = data[n * self.frame_len :]
        tail_s = len(self._pending) / 2 / self.sample_rate
        frames: list[TimedFrame] = []
        for i in range(n):
            remaining_frames = n - 1 - i
            end_t = t - tail_s - remaining_frames * self.frame_ms / 1000.0
            frames.append(TimedFrame(end_t, data[i * self.frame_len : (i + 1) * self.frame_len]))
        return frames

    def reset(self) -> None:
        self._pending = b""


# ----------------------------------------------------------------------- frame VAD


class FrameVad(Protocol):
    """Classifies one PCM16 mono frame of 10, 20 or 30 ms."""

    name: str

    def is_speech(self, frame: bytes, sample_rate: int) -> bool: ...


class WebRtcFrameVad:
    """Google's WebRTC VAD (``webrtcvad-wheels``); ``mode`` 0 (lenient) .. 3 (aggressive).

    It is *stateful*: it adapts a noise model to the frames it has seen (after
    digital silence it calls -44 dBFS white noise speech in 100 % of frames; a
    fresh instance fed the same noise settles to 0 % within ~0.3 s). Use one
    instance per audio stream: :func:`get_frame_vad` builds a new one per call.
    """

    name = "webrtc"

    def __init__(self, mode: int = 2) -> None:
        if not isinstance(mode, int) or not 0 <= mode <= 3:
            raise VadError(f"vad_mode must be an integer 0..3 (3 = most aggressive), got {mode!r}")
        try:
            import webrtcvad
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise VadUnavailableError("frame VAD 'webrtc' needs `pip install webrtcvad-wheels`") from exc
        self.mode = mode
        self._vad = webrtcvad.Vad(mode)
        # webrtcvad's C object is not documented as thread-safe; one lock keeps
        # a shared instance safe at 2.5 us per frame.
        self._lock = threading.Lock()

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        if sample_rate not in WEBRTC_RATES:
            raise VadError(f"WebRTC VAD supports sample rates {WEBRTC_RATES}, got {sample_rate}; resample first")
        n_ms = len(frame) / 2 / sample_rate * 1000
        if len(frame) % 2 or round(n_ms, 6) not in VALID_FRAME_MS:
            raise VadError(
                f"WebRTC VAD needs a 10, 20 or 30 ms PCM16 frame; got {len(frame)} bytes "
                f"({n_ms:g} ms at {sample_rate} Hz)"
            )
        with self._lock:
            return self._vad.is_speech(frame, sample_rate)


_FRAME_VADS: dict[str, Callable[[int], FrameVad]] = {"webrtc": WebRtcFrameVad}


def register_frame_vad(name: str, factory: Callable[[int], FrameVad]) -> None:
    """Add a frame VAD engine; ``factory(mode)`` builds it."""
    _FRAME_VADS[name] = factory


def get_frame_vad(name: str = "webrtc", mode: int = 2) -> FrameVad:
    """Build the frame VAD called ``name`` (see :func:`frame_vad_names`)."""
    try:
        factory = _FRAME_VADS[name]
    except KeyError:
        raise VadError(f"unknown frame_vad {name!r}; choose one of {sorted(_FRAME_VADS)}") from None
    return factory(mode)


def frame_vad_names() -> list[str]:
    return sorted(_FRAME_VADS)


# ---------------------------------------------------------------- neural confirmer


class SpeechConfirmer(Protocol):
    """Says whether a stretch of audio holds speech; must be thread-safe.

    ``min_audio_s`` is the least audio, in seconds, on which :meth:`has_speech`
    can reliably say yes to clear speech. Callers must give it at least that
    much of the most recent input: on less it may say no to any speech, and a
    barge-in confirmed by it would never fire.
    """

    name: str
    min_audio_s: float

    def has_speech(self, pcm: bytes, sample_rate: int) -> bool: ...

    def speech_probabilities(self, pcm: bytes, sample_rate: int) -> list[float]: ...


def silero_model_path() -> Path:
    """Path of ``silero_vad.onnx`` inside the installed silero-vad wheel.

    Found with ``find_spec`` so that the package (which imports torch) is never
    imported.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailableError(
            "neural VAD 'silero' needs the silero-vad wheel: `pip install --no-deps silero-vad` "
            "(plus onnxruntime); or set neural_vad: none"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise VadUnavailableError(f"silero-vad is installed but data/silero_vad.onnx is missing under {list(spec.submodule_search_locations)}")


_SILERO_SESSION: onnxruntime.InferenceSession | None = None
_SILERO_LOCK = threading.Lock()


def _silero_session() -> onnxruntime.InferenceSession:
    """The process-wide ONNX session (onnxruntime's ``run`` is thread-safe)."""
    global _SILERO_SESSION
    with _SILERO_LOCK:
        if _SILERO_SESSION is None:
            try:
                import onnxruntime as ort
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise VadUnavailableError("neural VAD 'silero' needs `pip install onnxruntime`") from exc
            options = ort.SessionOptions()
            # Many sessions share 2 cores; one thread per call is cheapest overall.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(silero_model_path()), options, providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}
            if names != {"input", "state", "sr"}:
                raise VadUnavailableError(f"unexpected silero_vad.onnx inputs {sorted(names)}; expected input, state, sr")
            _SILERO_SESSION = session
        return _SILERO_SESSION


class SileroStream:
    """Streaming Silero state for one audio stream (not shared between threads).

    Feed float32 samples at 16 or 8 kHz with :meth:`push`; it returns the speech
    probability of each completed 512-sample (256 at 8 kHz) chunk.
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate not in (8000, 16000):
            raise VadError(f"Silero runs at 8000 or 16000 Hz, got {sample_rate}")
        self.sample_rate = sample_rate
        self.chunk = 512 if sample_rate == 16000 else 256
        self._context_len = 64 if sample_rate == 16000 else 32
        self._session = _silero_session()
        self._sr = np.array(sample_rate, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(self._context_len, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def context_len(self) -> int:
        """Samples of the previous chunk the model sees before each chunk (64 at 16 kHz)."""
        return self._context_len

    def restart(self, context: np.ndarray | None = None) -> None:
        """Drop the pending samples, keeping the model state: the next sample starts a chunk.

        ``context``: the ``context_len`` samples before that chunk (zeros if ``None``).
        """
        if context is not None and context.size != self._context_len:
            raise VadError(f"Silero context is {self._context_len} samples, got {context.size}")
        self._context = np.zeros(self._context_len, dtype=np.float32) if context is None else context.astype(np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def pending_len(self) -> int:
        """Samples waiting for the next whole chunk."""
        return int(self._pending.size)

    def push(self, samples: np.ndarray) -> list[float]:
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        probs: list[float] = []
        n = data.size // self.chunk
        for i in range(n):
            chunk = data[i * self.chunk : (i + 1) * self.chunk]
            x = np.concatenate([self._context, chunk])[np.newaxis, :]
            out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
            self._context = chunk[-self._context_len :]
            probs.append(float(out[0][0]))
        self._pending = data[n * self.chunk :]
        return probs


def _to_silero_rate(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    if sample_rate in (8000, 16000):
        return x, sample_rate
    import soxr  # only for unusual input rates

    return soxr.resample(x, sample_rate, 16000).astype(np.float32), 16000


#: Silero's chunk: 512 samples at 16 kHz, 256 at 8 kHz.
SILERO_CHUNK_S = 0.032


class SileroConfirmer:
    """Silero VAD v5 (ONNX) as the barge-in confirmer.

    Rule for "finds speech": at least ``min_speech_chunks`` *consecutive* 32 ms
    chunks (512 samples at 16 kHz) with probability >= ``threshold``. Defaults
    6 and 0.5: ~190 ms of confident speech. Every word of the speech fixtures
    gives a run of 12 or more ("Stop," 12, "okay" 13); stationary noise, clicks
    and silence give none, but an abrupt sound after silence can get up to 5
    (a door knock of fixtures/sounds: 0.73 0.86 0.85 0.84 0.63), which 3 let
    interrupt the assistant. Each call starts from a fresh model state, so
    concurrent calls on the shared session are safe.

    A fresh state needs a few chunks to warm up: on clear speech its first
    chunk or two score below 0.5 where the streaming model (which has heard
    the audio before) scores above. Measured on the 11 speech fixtures, at
    every 10 ms step where the streaming model had 3 speech chunks in a row
    (2235 positions), the shortest fresh-state stretch ending there that
    confirms: 3 chunks 38 %, <= 6 chunks 93 %, <= 10 chunks 99.7 %
    (``scripts/silero_warmup.py``). So ``min_audio_s`` =
    (``min_speech_chunks`` + ``warmup_chunks``) x 32 ms, 0.416 s by default.
    """

    name = "silero"

    def __init__(self, threshold: float = 0.5, min_speech_chunks: int = 6, warmup_chunks: int = 7) -> None:
        if not 0.0 < threshold < 1.0:
            raise VadError(f"silero threshold must be in (0, 1), got {threshold}")
        if min_speech_chunks < 1:
            raise VadError(f"min_speech_chunks must be >= 1, got {min_speech_chunks}")
        if warmup_chunks < 0:
            raise VadError(f"warmup_chunks must be >= 0, got {warmup_chunks}")
        self.threshold = threshold
        self.min_speech_chunks = min_speech_chunks
        self.warmup_chunks = warmup_chunks
        _silero_session()  # fail now, not on the first interrupt

    @property
    def min_audio_s(self) -> float:
        """Least audio (s) to run on: (min_speech_chunks + warmup_chunks) x 32 ms."""
        return (self.min_speech_chunks + self.warmup_chunks) * SILERO_CHUNK_S

    def speech_probabilities(self, pcm: bytes, sample_rate: int) -> list[float]:
        """Probability of speech for each 32 ms chunk of ``pcm`` (a trailing partial chunk is dropped)."""
        x, rate = _to_silero_rate(pcm16_to_float(pcm), sample_rate)
        return SileroStream(rate).push(x)

    def has_speech(self, pcm: bytes, sample_rate: int) -> bool:
        run = 0
        for p in self.speech_probabilities(pcm, sample_rate):
            run = run + 1 if p >= self.threshold else 0
            if run >= self.min_speech_chunks:
                return True
        return False


_CONFIRMERS: dict[str, Callable[[], SpeechConfirmer]] = {"silero": SileroConfirmer}
_NO_CONFIRMER = {None, "", "none", "off"}


def register_confirmer(name: str, factory: Callable[[], SpeechConfirmer]) -> None:
    """Add a neural VAD engine."""
    _CONFIRMERS[name] = factory


def get_confirmer(name: str | None = "silero", *, missing_ok: bool = True) -> SpeechConfirmer | None:
    """The neural VAD called ``name``; ``None``/``"none"`` means no confirmation.

    The spec confirms candidates only "when the neural VAD is enabled, and its
    package is installed": with ``missing_ok`` a known engine whose package is
    missing logs a warning and returns ``None`` (every candidate is confirmed).
    Unknown names always raise.
    """
    if name in _NO_CONFIRMER:
        return None
    try:
        factory = _CONFIRMERS[name]
    except KeyError:
        raise VadError(f"unknown neural_vad {name!r}; choose one of {sorted(_CONFIRMERS)} or 'none'") from None
    try:
        return factory()
    except VadUnavailableError as exc:
        if not missing_ok:
            raise
        log.warning("neural VAD disabled: %s", exc)
        return None


def confirmer_names() -> list[str]:
    return sorted(_CONFIRMERS)


# -------------------------------------------------------------------- speech gates


class SpeechGate(Protocol):
    """Stateful per-stream speech/non-speech decision for end-of-turn detection.

    Push consecutive frames of one stream; unlike :class:`FrameVad` it may use
    context (model state, a noise floor) so it stays quiet on steady noise.
    """

    name: str

    def push(self, frame: bytes) -> bool: ...

    def reset(self) -> None: ...


class SileroGate:
    """Streaming Silero with hysteresis: enters speech at p >= ``threshold``, leaves below ``release``.

    The decision for a frame is that of the latest completed 32 ms chunk, so it
    lags the audio by at most one chunk.
    """

    name = "silero"

    def __init__(self, sample_rate: int, threshold: float = 0.5, release: float = 0.35) -> None:
        if not 0.0 < release <= threshold < 1.0:
            raise VadError(f"need 0 < release <= threshold < 1, got release={release}, threshold={threshold}")
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.release = release
        self._resampler = None
        rate = sample_rate
        if sample_rate not in (8000, 16000):
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, 16000, 1, dtype="float32")
            rate = 16000
        self._stream = SileroStream(rate)
        self._speaking = False
        self.last_probability = 0.0

    @property
    def stream(self) -> SileroStream:
        """The model state this gate runs on."""
        return self._stream

    @property
    def speaking(self) -> bool:
        """The decision after the latest chunk."""
        return self._speaking

    def decide(self, p: float) -> bool:
        """Take the next chunk's probability through the hysteresis; the decision after it."""
        self.last_probability = p
        self._speaking = p >= (self.release if self._speaking else self.threshold)
        return self._speaking

    def push(self, frame: bytes) -> bool:
        x = pcm16_to_float(frame)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        for p in self._stream.push(x):
            self.decide(p)
        return self._speaking

    def reset(self) -> None:
        self._stream.reset()
        self._speaking = False
        self.last_probability = 0.0


class PrefilteredSileroGate:
    """:class:`SileroGate` that skips the model where a frame VAD has long heard nothing.

    Runs the streaming Silero gate as usual, and besides it a WebRTC frame VAD
    (~4 µs a frame against Silero's ~130 µs; its own instance, as the
    protocol gives a gate frames only, and WebRTC adapts to the frames it
    sees: the session's barge-in VAD sees frames the gate does not). Once the gate
    is out of speech and, for ``hangover_ms``, the frame VAD has called no
    frame speech and Silero no chunk ``quiet_p`` or more, it stops running the
    model: every frame is "no speech" until the frame VAD calls one speech,
    and the last ``backlog_ms`` of skipped frames are kept. That frame resumes
    the model with the state it stopped with: if no skipped frame was dropped
    it hears them all, then the frame (exactly the model that never stopped,
    at once); else the kept ones are a pre-roll cut on the chunk grid of a
    model that never stopped. :meth:`reset` drops what was skipped: the
    saving. A burst at a resume runs at most ``backlog_ms`` of audio (1.2 s:
    37 runs, ~5 ms).

    Where it differs from the plain gate (measured, ``python -m
    bench.gate_fidelity``; docs/bench.md, "The end-of-turn gate"):

    * skipped frames are "no speech"; ``late_chunks`` counts the chunks the
      model, catching up, found >= ``threshold`` there (WebRTC heard the onset
      after Silero). None on the fixtures at 1.8 s of hangover; on white and
      pink noise floors shorter hangovers miss onsets by a frame or two.
    * after a pause longer than hangover + backlog (3 s) the model resumes as
      after a shorter pause: Silero's state drifts through silence and never
      settles, so a turn event can move by a few frames, less than the plain
      gate's own events move when the pause is a second longer.

    ``model_runs`` counts ONNX runs, ``skipped_frames`` the frames decided
    without the model. 8 and 16 kHz input only.
    """

    name = "silero-skip"

    def __init__(
        self,
        sample_rate: int,
        frame_ms: int = 30,
        mode: int = 2,
        threshold: float = 0.5,
        release: float = 0.35,
        hangover_ms: int = 1800,
        backlog_ms: int = 1200,
        quiet_p: float = 0.1,
        frame_vad: FrameVad | None = None,
    ) -> None:
        if sample_rate not in (8000, 16000):
            raise VadError(f"gate 'silero-skip' runs at 8000 or 16000 Hz, got {sample_rate}; use gate 'silero' (it resamples)")
        if hangover_ms < 0 or backlog_ms < 0:
            raise VadError(f"hangover_ms and backlog_ms must be >= 0, got {hangover_ms} and {backlog_ms}")
        self.sample_rate = sample_rate
        self.frame_len = frame_bytes(sample_rate, frame_ms)
        self.quiet_p = quiet_p
        self._gate = SileroGate(sample_rate, threshold, release)
        self._vad = frame_vad or get_frame_vad("webrtc", mode)
        self._hangover_frames = math.ceil(hangover_ms / frame_ms)
        # At least one frame: a pre-roll of at least a chunk with the frame.
        self._backlog: deque[bytes] = deque(maxlen=max(1, math.ceil(backlog_ms / frame_ms)))
        self.model_runs = 0
        self.skipped_frames = 0
        self.late_chunks = 0
        self.reset()

    @property
    def last_probability(self) -> float:
        return self._gate.last_probability

    @property
    def model_running(self) -> bool:
        """False while frames are decided without the model."""
        return self._running

    def push(self, frame: bytes) -> bool:
        if len(frame) != self.frame_len:
            raise VadError(f"gate 'silero-skip' needs frames of {self.frame_len} bytes (PCM16), got {len(frame)}")
        # The frame VAD sees every frame: it adapts to the stream's noise.
        voiced = self._vad.is_speech(frame, self.sample_rate)
        self._samples += len(frame) // 2
        if self._running:
            speaking = self._run(frame)
        elif voiced:
            speaking = self._resume(frame)
        else:
            self._backlog.append(frame)
            self._skipped_since_stop += 1
            self.skipped_frames += 1
            return False
        quiet = not (voiced or speaking or self._gate.last_probability >= self.quiet_p)
        self._quiet_frames = self._quiet_frames + 1 if quiet else 0
        if self._quiet_frames >= self._hangover_frames:
            self._running = False
            self._skipped_since_stop = 0
        return speaking

    def _run(self, frame: bytes) -> bool:
        stream = self._gate.stream
        self.model_runs += (stream.pending_len() + len(frame) // 2) // stream.chunk
        return self._gate.push(frame)

    def _resume(self, frame: bytes) -> bool:
        """Catch the stopped model up on the skipped frames it kept, then this frame.

        All skipped frames kept: exactly the continuous model. Some dropped: the
        kept ones are a pre-roll, cut on the continuous stream's chunk grid.
        """
        stream = self._gate.stream
        audio = pcm16_to_float(b"".join(self._backlog) + frame)
        pending = stream.pending_len()
        if self._skipped_since_stop > len(self._backlog):
            first = self._samples - audio.size  # stream position of the pre-roll's first sample
            skip = (-first) % stream.chunk  # up to the continuous stream's next chunk boundary
            stream.restart(audio[skip - stream.context_len : skip] if skip >= stream.context_len else None)
            audio, pending = audio[skip:], 0
        probs = stream.push(audio)
        self.model_runs += len(probs)
        frame_start = pending + audio.size - len(frame) // 2  # in samples from the first chunk's start
        speaking = self._gate.speaking
        for k, p in enumerate(probs):
            speaking = self._gate.decide(p)
            if speaking and (k + 1) * stream.chunk <= frame_start:
                self.late_chunks += 1  # the skipped frames were answered "no speech"
        self._backlog.clear()
        self._running = True
        return speaking

    def reset(self) -> None:
        self._gate.reset()
        self._backlog.clear()
        self._samples = 0
        self._skipped_since_stop = 0
        self._running = True
        self._quiet_frames = 0


class EnergyGate:
    """WebRTC VAD AND frame level at least ``margin_db`` above an adaptive noise floor.

    The floor is the quietest frame of the last ``floor_window_s`` seconds:
    speech has pauses between words that keep it low, steady noise pulls it up
    to the noise level within one window, so a raised noise floor (a browser's
    fake mic, a fan) stops counting as speech. Frames below ``min_dbfs`` are
    never speech. The first frame of a stream only seeds the floor.

    Trade-off of ``floor_window_s`` (measured, eSpeak sentence, -44 dBFS noise):
    noise that starts right after digital silence counts as speech for about
    one window (1 s: 20 % of a 5 s noise tail, 4 s: 80 %); a shorter window
    loses speech frames in long loud stretches (speech kept: 1 s 84 %, 4 s 88 %).
    """

    name = "webrtc+energy"

    def __init__(
        self,
        sample_rate: int,
        frame_ms: int = 30,
        mode: int = 2,
        margin_db: float = 10.0,
        floor_window_s: float = 1.0,
        min_dbfs: float = -60.0,
        frame_vad: FrameVad | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.margin_db = margin_db
        self.min_dbfs = min_dbfs
        self._vad = frame_vad or get_frame_vad("webrtc", mode)
        self._levels: deque[float] = deque(maxlen=max(1, round(floor_window_s * 1000 / frame_ms)))

    @property
    def noise_floor_dbfs(self) -> float | None:
        return min(self._levels) if self._levels else None

    def push(self, frame: bytes) -> bool:
        level = rms_dbfs(frame)
        floor = self.noise_floor_dbfs
        self._levels.append(level)
        # The frame VAD sees every frame: it adapts to the stream, and skipping
        # frames would give it a different history than the barge-in counter's.
        voiced = self._vad.is_speech(frame, self.sample_rate)
        return voiced and floor is not None and level >= self.min_dbfs and level >= floor + self.margin_db

    def reset(self) -> None:
        self._levels.clear()


class RawFrameGate:
    """The frame VAD alone (for comparison and for clean, echo-free input)."""

    name = "webrtc"

    def __init__(self, sample_rate: int, mode: int = 2) -> None:
        self.sample_rate = sample_rate
        self._vad = get_frame_vad("webrtc", mode)

    def push(self, frame: bytes) -> bool:
        return self._vad.is_speech(frame, self.sample_rate)

    def reset(self) -> None:
        pass


GateFactory = Callable[[int, int, int], SpeechGate]
_GATES: dict[str, GateFactory] = {
    "silero": lambda rate, frame_ms, mode: SileroGate(rate),
    "silero-skip": lambda rate, frame_ms, mode: PrefilteredSileroGate(rate, frame_ms, mode),
    "webrtc+energy": lambda rate, frame_ms, mode: EnergyGate(rate, frame_ms, mode),
    "webrtc": lambda rate, frame_ms, mode: RawFrameGate(rate, mode),
}


def register_speech_gate(name: str, factory: GateFactory) -> None:
    """Add a gate; ``factory(sample_rate, frame_ms, mode)`` builds one per stream."""
    _GATES[name] = factory


def get_speech_gate(name: str = "auto", *, sample_rate: int = 16000, frame_ms: int = 30, mode: int = 2) -> SpeechGate:
    """A new gate for one stream.

    ``auto``: ``silero-skip`` (the ``silero`` gate's decisions at a fraction
    of its cost on silence, see :class:`PrefilteredSileroGate`) if Silero is
    installed, ``silero`` at sample rates other than 8 and 16 kHz, else
    ``webrtc+energy``.
    """
    frame_bytes(sample_rate, frame_ms)  # validates frame_ms
    if name == "auto":
        try:
            return _GATES["silero-skip" if sample_rate in (8000, 16000) else "silero"](sample_rate, frame_ms, mode)
        except VadUnavailableError as exc:
            log.warning("end-of-turn gate falls back to webrtc+energy: %s", exc)
            return _GATES["webrtc+energy"](sample_rate, frame_ms, mode)
    try:
        factory = _GATES[name]
    except KeyError:
        raise VadError(f"unknown speech gate {name!r}; choose 'auto' or one of {sorted(_GATES)}") from None
    return factory(sample_rate, frame_ms, mode)


def speech_gate_names() -> list[str]:
    return ["auto", *sorted(_GATES)]
