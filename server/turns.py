"""End-of-turn detection with prefix padding (pure: no I/O, no clock).

Feed every input frame with its speech decision (from a noise-robust
:class:`server.vad.SpeechGate`, not raw WebRTC, which calls steady noise
speech and would keep turns open forever)::

    turns = TurnDetector(frame_ms=30, silence_duration_ms=700, prefix_padding_ms=300)
    event = turns.feed(t, frame, gate.push(frame))
    # SpeechStarted -> input_audio_buffer.speech_started
    # TurnEnded     -> input_audio_buffer.speech_stopped, recognise event.audio, respond

Decisions (documented in docs/bargein.md):

* A turn starts after ``min_speech_ms`` (210) of *consecutive* speech frames:
  a click, a knock, the first moment of a hum (Silero takes the onset of a
  100 Hz hum for speech for ~190 ms, a knock for ~130 ms) or the loudest
  syllable of a TV across the room (runs of up to 150 ms above the
  near-talker level) does not start one, the shortest word does ("no", "okay":
  250 ms and more). The onset is the start of the
  first frame of that run, and the utterance begins ``prefix_padding_ms``
  before it (as far as the pre-roll holds).
* It ends at the first frame at which the non-speech since the last speech
  frame reaches ``silence_duration_ms`` (counted in samples, so exactly). Any
  speech frame restarts the count.
* ``TurnEnded.audio`` keeps at most ``trailing_silence_ms`` of the trailing
  silence: ASR gains nothing from 3.5 s of silence and Whisper tends to
  hallucinate on it.
* A turn longer than ``max_turn_seconds`` is ended (reason ``max_duration``)
  so that a stuck gate or a monologue cannot grow an utterance without bound.
  The next turn starts at once, with no ``SpeechStarted`` and no audio lost:
  the cut is in the middle of the longest run of non-speech frames of the
  last ``cut_lookback_ms`` (at most half the cap) (a pause between words: no word is split, and each
  piece keeps some silence at the seam, without which Whisper drops the words
  next to it), else at the cap; the audio after the cut opens the next turn.
  If no speech follows the cut, that turn ends on silence with empty ``audio``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from server.vad import frame_bytes

EPS = 1e-9


@dataclass(frozen=True)
class SpeechStarted:
    """Speech confirmed at ``t``; it began at ``onset_t``."""

    t: float
    onset_t: float


@dataclass(frozen=True)
class TurnEnded:
    """The user's turn ended at ``t``; ``audio`` starts at ``audio_start_t``."""

    t: float
    onset_t: float
    speech_end_t: float
    audio_start_t: float
    audio: bytes
    reason: str  # "silence", or "max_duration" (the next turn has already started)


class TurnDetector:
    """Speech onset and end of turn for one input stream; ``t`` = time of a frame's last sample."""

    def __init__(
        self,
        frame_ms: int = 30,
        silence_duration_ms: int = 700,
        prefix_padding_ms: int = 300,
        sample_rate: int = 16000,
        min_speech_ms: int = 210,
        trailing_silence_ms: int = 300,
        max_turn_seconds: float = 60.0,
        cut_lookback_ms: int = 5000,
    ) -> None:
        for name, value in (
            ("silence_duration_ms", silence_duration_ms),
            ("prefix_padding_ms", prefix_padding_ms),
            ("min_speech_ms", min_speech_ms),
            ("trailing_silence_ms", trailing_silence_ms),
            ("cut_lookback_ms", cut_lookback_ms),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer number of ms >= 0, got {value!r}")
        if silence_duration_ms == 0:
            raise ValueError("silence_duration_ms must be > 0 (a turn would end on its first silent frame)")
        if max_turn_seconds <= 0:
            raise ValueError(f"max_turn_seconds must be > 0, got {max_turn_seconds}")
        self.frame_ms = frame_ms
        self.sample_rate = sample_rate
        self.frame_len = frame_bytes(sample_rate, frame_ms)
        self.silence_duration_ms = silence_duration_ms
        self.prefix_padding_ms = prefix_padding_ms
        self.min_speech_frames = max(1, math.ceil(min_speech_ms / frame_ms - EPS))
        self._silence_bytes_needed = silence_duration_ms * sample_rate // 1000 * 2
        self._trailing_bytes = trailing_silence_ms * sample_rate // 1000 * 2
        self._max_bytes = int(max_turn_seconds * sample_rate) * 2
        # At most half the cap back, so that no piece of a long turn is shorter than half the cap.
        self._cut_lookback_bytes = min(cut_lookback_ms * sample_rate // 1000 * 2, self._max_bytes // 2)
        prefix_frames = math.ceil(prefix_padding_ms / frame_ms - EPS)
        self._preroll: deque[tuple[float, bytes, bool]] = deque(maxlen=prefix_frames + self.min_speech_frames)
        self._reset_turn()

    # -- state --

    def _reset_turn(self) -> None:
        self._in_turn = False
        self._utterance = bytearray()
        self.onset_t: float | None = None
        self.audio_start_t: float | None = None
        self._speech_end_len = 0
        self._speech_end_t: float | None = None
        self._silence_bytes = 0
        self._run = 0
        self._pauses: list[list[int]] = []  # [start, end) byte ranges of non-speech runs in the turn

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    def utterance_so_far(self) -> bytes:
        """The current turn's audio (from the padded onset), for partial ASR; empty between turns."""
        return bytes(self._utterance)

    def settled_audio(self) -> bytes | None:
        """The audio this turn's ``TurnEnded`` will carry if it ends on silence
        with no more speech, once that is fixed; None before (or between turns).

        It is fixed once the silence since the last speech frame covers the
        ``trailing_silence_ms`` kept for ASR: later silent frames add nothing
        to ``TurnEnded.audio``. A speech frame (or a cut at the cap) changes
        it; the caller compares it with the event's audio to know.
        A speculative final decode runs on it (docs/asr.md).
        """
        return bytes(self._utterance[: self._speech_end_len + self._trailing_bytes]) if self.settled else None

    @property
    def silence_s(self) -> float:
        """Seconds of non-speech since the turn's last speech frame (0 between turns)."""
        return self._silence_bytes / 2 / self.sample_rate if self._in_turn else 0.0

    @property
    def settled(self) -> bool:
        """True when :meth:`settled_audio` has the audio (a cheap check, no copy)."""
        return self._in_turn and bool(self._speech_end_len) and len(self._utterance) >= self._speech_end_len + self._trailing_bytes

    def clear(self) -> None:
        """``input_audio_buffer.clear``: drop the turn in progress and the pre-roll."""
        self._preroll.clear()
        self._reset_turn()

    def begin_with(self, onset_t: float, audio: bytes, audio_start_t: float | None = None) -> SpeechStarted:
        """Start a turn from audio already heard (a barge-in's ``BargeIn.audio``).

        ``audio`` runs from ``audio_start_t`` (default: ``onset_t`` minus the
        prefix padding) to now and is taken to end in speech; following frames
        extend it and end it as usual.
        """
        if len(audio) % 2:
            raise ValueError(f"begin_with needs PCM16 audio (even byte count), got {len(audio)} bytes")
        self._preroll.clear()
        self._reset_turn()
        self._in_turn = True
        self.onset_t = onset_t
        self.audio_start_t = onset_t - self.prefix_padding_ms / 1000.0 if audio_start_t is None else audio_start_t
        self._utterance.extend(audio)
        self._speech_end_len = len(self._utterance)
        now = self.audio_start_t + len(audio) / 2 / self.sample_rate
        self._speech_end_t = now
        return SpeechStarted(t=now, onset_t=onset_t)

    # -- input --

    def feed(self, t: float, frame: bytes, speech: bool) -> SpeechStarted | TurnEnded | None:
        """Take one frame and its speech decision; return an event when a turn starts or ends."""
        if len(frame) != self.frame_len:
            raise ValueError(
                f"turn detector needs {self.frame_ms} ms frames of {self.frame_len} bytes "
                f"(PCM16 at {self.sample_rate} Hz), got {len(frame)} bytes; cut input with server.vad.Framer"
            )
        if not self._in_turn:
            return self._feed_idle(t, frame, speech)
        self._utterance.extend(frame)
        if speech:
            self._silence_bytes = 0
            self._speech_end_len = len(self._utterance)
            self._speech_end_t = t
        else:
            self._silence_bytes += len(frame)
            end = len(self._utterance)
            if self._pauses and self._pauses[-1][1] == end - len(frame):
                self._pauses[-1][1] = end
            else:
                self._pauses.append([end - len(frame), end])
        if self._silence_bytes >= self._silence_bytes_needed:
            return self._end(t, "silence")
        if len(self._utterance) >= self._max_bytes:
            return self._cut(t)
        return None

    def _cut(self, t: float) -> TurnEnded:
        """End the turn at the cap and carry on with the next one, losing no audio."""
        size = len(self._utterance)
        recent = [p for p in self._pauses if p[1] >= size - self._cut_lookback_bytes]
        if recent:
            start, end = max(reversed(recent), key=lambda p: p[1] - p[0])  # longest, latest on ties
            cut = (start + end) // 4 * 2  # mid-pause, on a sample boundary
        else:
            cut = self._max_bytes  # no pause: at the cap exactly (the last frame may run past it)
        rest = bytes(self._utterance[cut:])
        speech_end_in_rest = max(0, self._speech_end_len - cut)
        silence_bytes, speech_end_t = self._silence_bytes, self._speech_end_t
        pauses = [[max(0, s - cut), e - cut] for s, e in self._pauses if e > cut]
        del self._utterance[cut:]
        self._speech_end_len = cut
        self._speech_end_t = t - len(rest) / 2 / self.sample_rate
        event = self._end(t, "max_duration")
        self._in_turn = True
        self.audio_start_t = self.onset_t = t - len(rest) / 2 / self.sample_rate
        self._utterance.extend(rest)
        self._speech_end_len = speech_end_in_rest
        self._speech_end_t = speech_end_t if speech_end_in_rest else self.audio_start_t
        self._silence_bytes = silence_bytes  # the end-of-turn count goes on across the cut
        self._pauses = pauses
        return event

    def _feed_idle(self, t: float, frame: bytes, speech: bool) -> SpeechStarted | None:
        self._preroll.append((t, frame, speech))
        self._run = self._run + 1 if speech else 0
        if self._run < self.min_speech_frames:
            return None
        frame_s = self.frame_ms / 1000.0
        onset_index = len(self._preroll) - self._run
        onset = self._preroll[onset_index][0] - frame_s
        # The padding is counted in audio (frames and samples before the onset),
        # never from frame times: the audio given to ASR must depend only on the
        # audio, not on when it arrived (docs/bargein.md, "Input audio time").
        pad_bytes = self.prefix_padding_ms * self.sample_rate // 1000 * 2
        pad_frames = min(onset_index, math.ceil(pad_bytes / self.frame_len))
        audio = b"".join(pcm for _, pcm, _ in list(self._preroll)[onset_index - pad_frames :])
        audio = audio[max(0, pad_frames * self.frame_len - pad_bytes) :]
        padding_s = (len(audio) - self._run * self.frame_len) / 2 / self.sample_rate
        self._preroll.clear()
        self._reset_turn()
        self._in_turn = True
        self.onset_t = onset
        self.audio_start_t = onset - padding_s
        self._utterance.extend(audio)
        self._speech_end_len = len(self._utterance)
        self._speech_end_t = t
        return SpeechStarted(t=t, onset_t=onset)

    def _end(self, t: float, reason: str) -> TurnEnded:
        # No speech frame since a cut at the cap: nothing worth recognising.
        keep = min(len(self._utterance), self._speech_end_len + self._trailing_bytes) if self._speech_end_len else 0
        assert self.onset_t is not None and self.audio_start_t is not None and self._speech_end_t is not None
        event = TurnEnded(
            t=t,
            onset_t=self.onset_t,
            speech_end_t=self._speech_end_t,
            audio_start_t=self.audio_start_t,
            audio=bytes(self._utterance[:keep]),
            reason=reason,
        )
        self._reset_turn()
        return event
