"""Server-side barge-in: the playback timeline and the interruption detector.

Implements "Barge-in semantics" of ``spec/config-and-bargein.md``. Pure logic:
no I/O, no clock. Every method takes ``t``, seconds on the session clock, and a
frame's ``t`` is the time of its *last* sample (see :class:`server.vad.Framer`).

Usage by the session (one detector per session)::

    det = BargeInDetector(BargeInSettings.from_config(vad_cfg, asr_cfg), get_confirmer("silero"))
    det.new_response()                         # response.created
    det.on_audio_sent(t, 0.4)                  # each response.audio.delta sent
    det.on_response_audio_complete(t)          # the response's last audio was sent
    det.on_playback_started(t) / det.on_playback_stopped(t)   # client events
    hit = det.feed(t, frame, frame_vad.is_speech(frame, 16000))  # every input frame
    if hit: ...  # response.interrupted(audio_end_ms=hit.audio_end_ms); next turn starts with hit.audio
    det.disarm_deadline()                      # when to run a timer, if the session wants one

Times are compared with a tolerance of 1 ns so that frame times built by adding
0.03 s steps land on the boundaries the rules name (30 x 0.03 s >= 0.9 s).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.vad import SpeechConfirmer, VadError, frame_bytes

EPS = 1e-9


class EchoExplainer(Protocol):
    """Knows which input frames are echo of the response only (:class:`server.echo.EchoEstimator`)."""

    def near_end(self, frames: list[tuple[float, bytes]]) -> bytes:
        """The audio of consecutive frames ``(t, pcm16)`` (``t`` = time of a frame's last
        sample) without the frames that are echo only."""
        ...


class BargeInConfigError(ValueError):
    """A barge-in setting is out of range; the message names the field."""


@dataclass(frozen=True)
class BargeInSettings:
    """The ``audio_config.vad`` knobs the detector uses (defaults = the spec's).

    ``prefix_padding_ms`` comes from ``audio_config.asr``: the audio handed to the
    next turn starts that long before the onset. ``onset_min_run_ms`` (ours):
    the onset is the start of the earliest run of at least this much
    consecutive speech in the window, so a click does not count as the onset.
    ``onset_max_gap_ms`` and ``onset_lookback_ms`` (ours): speech runs before
    the window that end less than ``onset_max_gap_ms`` before the onset belong
    to the same utterance ("Stop, ... tell me about bonds": the pause after
    "Stop" can push "Stop" out of the window before it fires), so the onset
    moves back to them, at most ``onset_lookback_ms`` before the window.
    """

    frame_ms: int = 30
    threshold: int = 30
    window_size: int = 48
    lockout_seconds: float = 1.0
    grace_period_seconds: float = 3.0
    silero_min_samples_seconds: float = 1.5
    prefix_padding_ms: int = 300
    onset_min_run_ms: int = 90
    onset_max_gap_ms: int = 600
    onset_lookback_ms: int = 2000

    def __post_init__(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise BargeInConfigError(f"vad.frame_ms must be 10, 20 or 30, got {self.frame_ms!r}")
        if not isinstance(self.window_size, int) or self.window_size < 1:
            raise BargeInConfigError(f"vad.window_size must be an integer >= 1, got {self.window_size!r}")
        if not isinstance(self.threshold, int) or not 1 <= self.threshold <= self.window_size:
            raise BargeInConfigError(
                f"vad.threshold must be an integer in 1..window_size ({self.window_size}), got {self.threshold!r}"
            )
        for name in (
            "lockout_seconds", "grace_period_seconds", "silero_min_samples_seconds", "prefix_padding_ms",
            "onset_min_run_ms", "onset_max_gap_ms", "onset_lookback_ms",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise BargeInConfigError(f"{name} must be a number >= 0, got {value!r}")

    @property
    def frame_s(self) -> float:
        return self.frame_ms / 1000.0

    @property
    def confirm_window_s(self) -> float:
        """Audio the neural VAD is run on: max(window_size x frame_ms, silero_min_samples_seconds)."""
        return max(self.window_size * self.frame_s, self.silero_min_samples_seconds)

    @classmethod
    def from_config(cls, vad: Any, asr: Any | None = None) -> BargeInSettings:
        """Build from ``server.config`` models (duck-typed: any object with the field names)."""
        kwargs = {
            name: getattr(vad, name)
            for name in ("frame_ms", "threshold", "window_size", "lockout_seconds", "grace_period_seconds", "silero_min_samples_seconds")
            if getattr(vad, name, None) is not None
        }
        if asr is not None and getattr(asr, "prefix_padding_ms", None) is not None:
            kwargs["prefix_padding_ms"] = asr.prefix_padding_ms
        return cls(**kwargs)


class PlaybackTimeline:
    """What the server knows about the client's playback of the current response.

    Armed from the first audio delta (or first ``playback.started``, if earlier)
    until the first of (a) ``playback.stopped`` after the last audio was sent,
    (b) estimated end of playback + grace. Repeated ``playback.started`` and a
    ``playback.stopped`` before the last audio change nothing.

    Estimated end: the start (first ``playback.started``, else first delta) plus
    the audio sent. Ours, identical whenever audio is sent ahead of real time
    (the spec's pacing): if a later delta is sent after the estimated playback
    position has already run out (synthesis fell behind, the client's buffer ran
    dry), playback resumes from that delta, so the estimate adds the wait.

    Lockout anchor: the first ``playback.started`` if it arrives before the
    lockout counted from the first delta has ended; a later one cannot bring
    back a lockout that is over (the lockout is never restarted).
    """

    def __init__(self, lockout_seconds: float, grace_period_seconds: float) -> None:
        self.lockout_seconds = lockout_seconds
        self.grace_period_seconds = grace_period_seconds
        self.new_response()

    def new_response(self) -> None:
        """Forget the previous response; a response is now open and not yet speaking."""
        self.open = True
        self.first_delta_t: float | None = None
        self.first_started_t: float | None = None
        self.lockout_anchor_t: float | None = None
        self.audio_sent_s = 0.0
        self.last_audio_sent_t: float | None = None
        self.stopped_after_last_t: float | None = None
        self.interrupted_t: float | None = None
        self._stall_start_t: float | None = None  # a playback.stopped not yet followed by playback.started
        self._stalled_s = 0.0
        self._deltas: list[tuple[float, float]] = []
        self._end_cache: float | None = None

    def close(self) -> None:
        """No response: never armed until :meth:`new_response`."""
        self.new_response()
        self.open = False

    # -- events --

    def on_audio_sent(self, t: float, duration_s: float, last: bool = False) -> None:
        if duration_s < 0:
            raise ValueError(f"audio duration must be >= 0 s, got {duration_s}")
        if not self.open:
            self.new_response()
        if self.first_delta_t is None:
            self.first_delta_t = t
            if self.lockout_anchor_t is None:
                self.lockout_anchor_t = t
        self._deltas.append((t, duration_s))
        self.audio_sent_s += duration_s
        self._end_cache = None
        if last:
            self.on_response_audio_complete(t)

    def on_response_audio_complete(self, t: float) -> None:
        if self.last_audio_sent_t is None:
            self.last_audio_sent_t = t

    def on_playback_started(self, t: float) -> None:
        if self.open and self.first_started_t is not None and self._stall_start_t is not None:
            # The client's buffer had run dry and refilled: it played nothing meanwhile.
            self._stalled_s += max(0.0, t - self._stall_start_t)
            self._stall_start_t = None
        if not self.open or self.first_started_t is not None or self.stopped_after_last_t is not None:
            return
        self.first_started_t = t
        self._end_cache = None
        delta_lockout_over = self.first_delta_t is not None and t + EPS >= self.first_delta_t + self.lockout_seconds
        if not delta_lockout_over:
            self.lockout_anchor_t = t

    def on_playback_stopped(self, t: float) -> None:
        if self.open and self.first_started_t is not None and self._stall_start_t is None:
            self._stall_start_t = t
        if self.open and self.last_audio_sent_t is not None and self.stopped_after_last_t is None:
            self.stopped_after_last_t = t

    def mark_interrupted(self, t: float) -> None:
        """The response was interrupted (or cancelled): disarmed until the next response."""
        if self.interrupted_t is None:
            self.interrupted_t = t

    # -- queries --

    @property
    def playback_start_t(self) -> float | None:
        """First ``playback.started``, else first delta, else None."""
        return self.first_started_t if self.first_started_t is not None else self.first_delta_t

    def estimated_playback_end(self) -> float | None:
        start = self.playback_start_t
        if start is None:
            return None
        if self._end_cache is None:
            if not self._deltas:
                self._end_cache = start
            else:
                cursor = start + self._deltas[0][1]
                for sent_t, duration in self._deltas[1:]:
                    cursor = max(cursor, sent_t) + duration
                self._end_cache = cursor
        return self._end_cache

    def disarm_deadline(self) -> float | None:
        """When rule (b) disarms: estimated end + grace (None before any audio/playback)."""
        end = self.estimated_playback_end()
        return None if end is None else end + self.grace_period_seconds

    def armed(self, t: float) -> bool:
        if not self.open or self.interrupted_t is not None or self.stopped_after_last_t is not None:
            return False
        deadline = self.disarm_deadline()
        if deadline is None:
            return False
        return t + EPS < deadline

    def lockout_end(self) -> float | None:
        return None if self.lockout_anchor_t is None else self.lockout_anchor_t + self.lockout_seconds

    def lockout_over(self, t: float) -> bool:
        end = self.lockout_end()
        return end is not None and t + EPS >= end

    def played_s(self, t: float) -> float:
        """Audio played by ``t``: time since first ``playback.started`` (else first
        delta), less the time the client said its playback was stalled (from a
        ``playback.stopped`` to the next ``playback.started``), capped by audio sent."""
        start = self.playback_start_t
        if start is None:
            return 0.0
        stalled = self._stalled_s + (max(0.0, t - self._stall_start_t) if self._stall_start_t is not None else 0.0)
        return min(max(0.0, t - start - stalled), self.audio_sent_s)

    def audio_end_ms(self, t: float) -> int:
        """:meth:`played_s` in whole milliseconds (``response.interrupted``'s ``audio_end_ms``)."""
        return int(round(self.played_s(t) * 1000))


@dataclass(frozen=True)
class BargeIn:
    """A confirmed interruption.

    ``audio`` is the input from ``audio_start_t`` (= onset - prefix padding, or
    as far back as kept) to ``t``: the start of the user's next utterance.
    """

    t: float
    onset_t: float
    audio_start_t: float
    audio: bytes
    audio_end_ms: int
    speech_frames: int
    confirmed_by: str | None


@dataclass
class BargeInStats:
    frames: int = 0
    armed_frames: int = 0
    candidates: int = 0
    dropped: int = 0
    fired: int = 0
    drop_times: list[float] = field(default_factory=list)


class BargeInDetector:
    """The spec's sliding-window counter with neural confirmation.

    Feed *every* input frame with :meth:`feed`. While the timeline is armed the
    frame's decision enters a ring of the last ``window_size`` decisions (during
    the lockout too). When the ring holds ``threshold`` speech frames and the
    lockout is over, a candidate is raised at that very frame; the confirmer
    (if any) runs on the latest ``confirm_window_s`` of input; a "no" drops the
    candidate and clears the ring.

    ``echo`` (ours, optional): frames it says are echo only are left out of
    the audio the confirmer hears, judged when the candidate is raised, so
    echo heard before the echo path was measured is left out too. The
    assistant's own voice in the confirmation window would otherwise confirm
    any candidate (it is speech), and it primes Silero's recurrent state,
    which then calls a following hum speech.

    Ours: frames that arrive while disarmed are not counted and the ring is
    cleared, so a re-armed detector (next response, or more audio after a
    grace timeout) starts from an empty window. After firing, the detector is
    disarmed until :meth:`new_response`. The input audio is kept while disarmed
    too (it is the input stream, and confirmation may look back past arming).
    """

    def __init__(
        self,
        settings: BargeInSettings,
        confirmer: SpeechConfirmer | None = None,
        sample_rate: int = 16000,
        echo: EchoExplainer | None = None,
    ) -> None:
        self.settings = settings
        self.confirmer = confirmer
        self.echo = echo
        self.sample_rate = sample_rate
        try:
            self.frame_len = frame_bytes(sample_rate, settings.frame_ms)
        except VadError as exc:
            raise BargeInConfigError(str(exc)) from None
        self.timeline = PlaybackTimeline(settings.lockout_seconds, settings.grace_period_seconds)
        self.timeline.close()
        self.stats = BargeInStats()
        self._ring: deque[tuple[float, bool]] = deque(maxlen=settings.window_size)
        self._speech_in_ring = 0
        lookback_frames = math.ceil(settings.onset_lookback_ms / settings.frame_ms - EPS)
        # Armed decisions, the window's and up to onset_lookback_ms before it, for the onset.
        self._history: deque[tuple[float, bool]] = deque(maxlen=settings.window_size + lookback_frames)
        keep_s = max(
            settings.window_size * settings.frame_s + (settings.onset_lookback_ms + settings.prefix_padding_ms) / 1000.0,
            settings.confirm_window_s,
        )
        self._audio: deque[tuple[float, bytes]] = deque(maxlen=math.ceil(keep_s / settings.frame_s - EPS) + 1)

    # -- playback events (delegated to the timeline) --

    def new_response(self) -> None:
        """A response starts (``response.created``): fresh timeline, empty window."""
        self.timeline.new_response()
        self._clear_ring()

    def end_response(self) -> None:
        """The response is over (done or cancelled): disarm until the next one."""
        self.timeline.close()
        self._clear_ring()

    def reset(self) -> None:
        """Forget everything, including kept input audio."""
        self.end_response()
        self._audio.clear()

    def on_audio_sent(self, t: float, duration_s: float, last: bool = False) -> None:
        self.timeline.on_audio_sent(t, duration_s, last)

    def on_response_audio_complete(self, t: float) -> None:
        self.timeline.on_response_audio_complete(t)

    def on_playback_started(self, t: float) -> None:
        self.timeline.on_playback_started(t)

    def on_playback_stopped(self, t: float) -> None:
        self.timeline.on_playback_stopped(t)

    def armed(self, t: float) -> bool:
        return self.timeline.armed(t)

    def disarm_deadline(self) -> float | None:
        return self.timeline.disarm_deadline()

    @property
    def speech_in_window(self) -> int:
        return self._speech_in_ring

    # -- input --

    def feed(self, t: float, frame: bytes, is_speech: bool) -> BargeIn | None:
        """Take one input frame (``t`` = time of its last sample); return a confirmed barge-in or None."""
        if len(frame) != self.frame_len:
            raise ValueError(
                f"barge-in detector needs {self.settings.frame_ms} ms frames of {self.frame_len} bytes "
                f"(PCM16 at {self.sample_rate} Hz), got {len(frame)} bytes; cut input with server.vad.Framer"
            )
        self.stats.frames += 1
        self._audio.append((t, frame))
        if not self.timeline.armed(t):
            self._clear_ring()
            return None
        self.stats.armed_frames += 1
        if len(self._ring) == self._ring.maxlen and self._ring[0][1]:
            self._speech_in_ring -= 1
        self._ring.append((t, bool(is_speech)))
        self._history.append((t, bool(is_speech)))
        self._speech_in_ring += bool(is_speech)
        if self._speech_in_ring < self.settings.threshold or not self.timeline.lockout_over(t):
            return None

        self.stats.candidates += 1
        if self.confirmer is not None:
            recent = self._recent_audio(t - self.settings.confirm_window_s, near_end_only=True)[1]
            if not self.confirmer.has_speech(recent, self.sample_rate):
                self.stats.dropped += 1
                self.stats.drop_times.append(t)
                self._clear_ring()
                return None

        onset = self._onset()
        start, audio = self._recent_audio(onset - self.settings.prefix_padding_ms / 1000.0)
        hit = BargeIn(
            t=t,
            onset_t=onset,
            audio_start_t=start,
            audio=audio,
            audio_end_ms=self.timeline.audio_end_ms(t),
            speech_frames=self._speech_in_ring,
            confirmed_by=None if self.confirmer is None else self.confirmer.name,
        )
        self.stats.fired += 1
        self.timeline.mark_interrupted(t)
        self._clear_ring()
        return hit

    # -- internals --

    def _clear_ring(self) -> None:
        self._ring.clear()
        self._history.clear()
        self._speech_in_ring = 0

    def _onset(self) -> float:
        """Start of the speech that fired.

        First the earliest run in the window of ``onset_min_run_ms`` consecutive
        speech frames (else the earliest speech frame), from where that run
        really starts (it may have begun before the window). Then earlier runs
        of at least ``onset_min_run_ms`` that end within ``onset_max_gap_ms`` of
        the onset, before the window too, are the same utterance: the onset
        moves back to them. All speech in the window counts, pauses included.
        """
        frames = list(self._history)
        frame_s = self.settings.frame_s
        min_run = max(1, math.ceil(self.settings.onset_min_run_ms / self.settings.frame_ms - EPS))
        max_gap = math.floor(self.settings.onset_max_gap_ms / self.settings.frame_ms + EPS)
        runs: list[tuple[int, int]] = []  # (first, last) indices of consecutive speech
        for i, (_, speech) in enumerate(frames):
            if not speech:
                continue
            if runs and runs[-1][1] == i - 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
        window_start = len(frames) - len(self._ring)
        chosen = next(
            (k for k, (first, last) in enumerate(runs) if last >= window_start and last - max(first, window_start) + 1 >= min_run),
            None,
        )
        if chosen is None:  # no long run: the earliest speech frame in the window
            chosen = next(k for k, (_, last) in enumerate(runs) if last >= window_start)
        start = runs[chosen][0]
        for first, last in reversed(runs[:chosen]):
            if start - last - 1 > max_gap:
                break
            if last - first + 1 >= min_run:
                start = first
        return frames[start][0] - frame_s

    def _recent_audio(self, since_t: float, near_end_only: bool = False) -> tuple[float, bytes]:
        """Kept input from ``since_t`` (or the oldest kept sample) to the newest frame.

        ``near_end_only``: without the frames :attr:`echo` says are echo only.
        """
        frame_s = self.settings.frame_s
        chosen = [(ft, pcm) for ft, pcm in self._audio if ft > since_t + EPS]
        if not chosen:
            return since_t, b""
        first_start = chosen[0][0] - frame_s
        skip = max(0, round((since_t - first_start) * self.sample_rate)) * 2
        if near_end_only and self.echo is not None:
            data = self.echo.near_end([(chosen[0][0], chosen[0][1][skip:]), *chosen[1:]])
        else:
            data = b"".join(pcm for _, pcm in chosen)[skip:]
        return first_start + skip / 2 / self.sample_rate, data
