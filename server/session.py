"""The realtime session core: a state machine with no I/O and no clock.

Feed it timestamped inputs (client messages, job results, ticks); it returns
outputs: events to send, engine jobs to run, history to persist. The Starlette
handler (:mod:`server.realtime`) runs it on the wall clock; the simulator and
the tests run it on a virtual clock (:mod:`server.virtual`). All times are
seconds on the session's clock.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from server import protocol as proto
from server.agents.brain import AgentRequest, PriorTurn
from server.agents.flow import AgentStep, plan_turn
from server.bargein import BargeIn, BargeInDetector, BargeInSettings, PlaybackTimeline
from server.config import ProjectConfig
from server.echo import EchoEstimator, FarEndLevels
from server.engines import EngineSet
from server.history import ConversationHistory, PlayedSentence, ResponsePart, heard_turns
from server.inputclock import InputClock
from server.neartalk import NearConfirmer, NearTalker
from server.tts.normalize import split_sentences, spoken_form
from server.turns import SpeechStarted, TurnDetector, TurnEnded
from server.vad import Framer
from server.work import AgentJob, AgentText, Job, JobFailed, JobResult, SpeechAudio, SpeechJob, Transcript, TranscribeJob

log = logging.getLogger("refinery.session")

#: Seconds to wait for the client's ``response.cancel`` after an interrupt
#: before closing the response ourselves (protocol.md).
CANCEL_TIMEOUT_S = 1.0
#: How often a partial transcript is asked for while the user speaks.
PARTIAL_EVERY_S = 0.5
#: Response audio goes out in deltas of this length (seconds).
DELTA_S = 0.2
#: Ended utterances' audio that may wait for final transcripts at once
#: (seconds); past it the newest utterance is dropped with a ``warning``, so a
#: stuck or slow recogniser cannot make the session hold audio without bound.
MAX_ASR_BACKLOG_S = 180.0
#: A speculative final decode starts this long before the turn would end on
#: silence (or as soon as the final audio is fixed, if that is later): long
#: enough for a decode (0.1-0.3 s unloaded), short enough that the pauses of
#: a user who goes on talking (most under a second) cost no decode.
SPECULATIVE_LEAD_S = 1.0
#: A turn with no end-of-turn pause is cut into turns of at most this length
#: (seconds), the next one starting where it was cut. Whisper decodes up to
#: 30 s in one window; longer audio goes through its sliding windows, which
#: lose words at the seams (docs/bargein.md).
MAX_TURN_S = 28.0


@dataclass(frozen=True)
class Send:
    """Send this event to the client."""

    event: dict[str, Any]


@dataclass(frozen=True)
class StartJob:
    """Run this job and feed its result back with ``job_done``."""

    job: Job


@dataclass(frozen=True)
class PersistHistory:
    """Save the conversation history (``memory_config.save_config.auto_load``)."""

    history: ConversationHistory


Output = Union[Send, StartJob, PersistHistory]


@dataclass
class _Response:
    id: str
    query: str
    steps: list[AgentStep]
    step: int = 0
    status: str = "generating"  # generating | interrupted (awaiting cancel) | closed
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (agent, full text)
    sentences: list[str] = field(default_factory=list)
    sentence: int = 0
    audio_s: float = 0.0
    parts: list[ResponsePart] = field(default_factory=list)  # what went out, in playback order
    job: int | None = None
    close_deadline: float | None = None
    interrupted_at_ms: int | None = None
    history_index: int = 0  # where its assistant turns go in the history (after its user turn)
    history_len: int = 0  # how many assistant turns it has there now
    heard_final: bool = False  # ended or cut: what the user heard of it is known


@dataclass
class _Utterance:
    id: str
    job: int | None = None  # transcribe job in flight
    new_speech_s: float = 0.0  # speech heard since the last partial request
    final_requested: bool = False
    audio_s: float = 0.0  # length of the audio sent for the final transcript
    text: str | None = None  # the final transcript, once it is back
    near_levels: list[float] = field(default_factory=list)  # its speech frames' levels, learned if it holds words
    # A speculative final decode (docs/asr.md): the fixed final audio it was asked
    # for, its job while in flight (in the single ``job`` slot), its text once back.
    spec_audio: bytes | None = None
    spec_job: int | None = None
    spec_text: str | None = None


class Session:
    """One client's realtime session.

    Construct, call :meth:`start` once, then :meth:`receive`, :meth:`job_done`
    and :meth:`tick` with non-decreasing times.
    """

    def __init__(
        self,
        config: ProjectConfig,
        engines: EngineSet,
        *,
        session_id: str,
        project: str = "project",
        uuid: str = "session",
        history: ConversationHistory | None = None,
    ) -> None:
        self.config = config
        self.engines = engines
        self.session_id = session_id
        self.project = project
        self.uuid = uuid
        self.history = history or ConversationHistory()
        self.sample_rate = 16000
        self.output_rate = config.audio_config.tts.sample_rate
        self.vad = config.barge_in  # None: push-to-talk
        frame_ms = self.vad.frame_ms if self.vad else 30
        self.framer = Framer(self.sample_rate, frame_ms)
        self.frame_s = frame_ms / 1000
        asr = config.audio_config.asr
        self.turns = TurnDetector(
            frame_ms=frame_ms,
            silence_duration_ms=asr.silence_duration_ms,
            prefix_padding_ms=asr.prefix_padding_ms,
            sample_rate=self.sample_rate,
            max_turn_seconds=MAX_TURN_S,
        )
        # Speech well below the user's own level (a TV, people across the room) is not the user's.
        self.near = NearTalker(frame_ms)
        self.detector = (
            BargeInDetector(
                BargeInSettings.from_config(self.vad, asr), NearConfirmer(engines.confirmer, self.near), self.sample_rate
            )
            if self.vad is not None
            else None
        )
        # What the client is playing: the detector's timeline in barge-in mode;
        # in push-to-talk, one with no lockout or grace, to know when it ends.
        if self.detector is not None:
            self.playback = self.detector.timeline
        else:
            self.playback = PlaybackTimeline(lockout_seconds=0.0, grace_period_seconds=0.0)
            self.playback.close()
        self.turn_gate = engines.new_turn_gate(self.sample_rate, frame_ms)
        # The far-end reference: what this session sent, by playback position.
        self.far_end = FarEndLevels(self.output_rate)
        margin = self.vad.echo_gate_margin if self.vad is not None else None
        self.echo = EchoEstimator(self.far_end, self.sample_rate, margin) if margin is not None else None
        if self.detector is not None:
            self.detector.echo = self.echo
        self._ids = itertools.count(1)
        self.input_clock = InputClock(self.sample_rate)
        self._audio_arrival_t = float("-inf")  # when the latest input chunk arrived
        self._utterance: _Utterance | None = None  # the turn in progress, if any
        # Ended utterances, oldest first, until their final transcripts are out:
        # results can come back in any order, transcripts go out in this one.
        self._ended: list[_Utterance] = []
        # Spoken text transcribed but not yet answered: the user went on talking.
        self._unanswered: list[str] = []
        self.max_asr_backlog_s = MAX_ASR_BACKLOG_S
        self._response: _Response | None = None
        self._last_response: _Response | None = None  # for interrupts after response.done
        self._jobs: dict[int, str] = {}  # job id -> what it is for ("asr", "agent", "speech")
        self.counters = {"ignored_audio_ms": 0.0, "bad_frames": 0, "interrupts": 0, "responses": 0,
                         "speculative_used": 0, "speculative_wasted": 0}
        self.trace: list[tuple[float, bool, int, bool, bool]] = []  # (t, speech, window, armed, lockout)
        self.record_trace = False
        #: Partial transcripts (``response.audio_transcript.delta``); the
        #: simulator's fast mode turns them off: they cost a decode each.
        self.partial_transcripts = True
        #: Speculative final decodes (docs/asr.md): the final transcript decoded
        #: during the end-of-turn silence, once its audio is fixed. Needs an ASR
        #: engine that keeps no per-utterance state (``AsrEngine.stateless``).
        self.speculative_finals = True
        #: How long before the turn would end a speculative final starts (seconds);
        #: the server's driver raises it to what final decodes take now.
        self.speculative_lead_s = SPECULATIVE_LEAD_S
        #: Set by the driver when decodes are backed up (the server: another decode
        #: in flight in the process): optional decodes (partials, speculative
        #: finals) are not asked for, so they never delay anyone's final.
        self.asr_busy = False
        #: Decision sink set by the driver (a :class:`server.journal.Journal`):
        #: called ``journal(t, type, **data)``; a plain append, no I/O.
        self.journal: Callable[..., None] | None = None
        self._t = 0.0  # time of the input being handled, for decisions noted deep inside

    def attach_journal(self, journal: Callable[..., None]) -> None:
        """Note this session's decisions (and its detector's) in ``journal``."""
        self.journal = journal
        if self.detector is not None:
            self.detector.note = journal

    def _note(self, type: str, at: float | None = None, **data: Any) -> None:
        """Note a decision made at ``at`` (default: the time of the input being handled)."""
        if self.journal is not None:
            self.journal(self._t if at is None else at, type, **data)

    # -- public API ---------------------------------------------------------

    def start(self, t: float) -> list[Output]:
        """The ``session.created`` event."""
        return [Send(proto.session_created(self.describe(), vad_enabled=self.vad is not None))]

    def describe(self) -> dict[str, Any]:
        """What this session runs with: audio format, mode, engines, voices."""
        asr = self.config.audio_config.asr
        voices = {
            name: {"requested": voice.requested, "local": voice.label, "language": voice.language}
            for name, voice in self.engines.voices.items()
        }
        info: dict[str, Any] = {
            "id": self.session_id,
            "project": self.project,
            "uuid": self.uuid,
            "mode": "barge-in" if self.vad else "push-to-talk",
            "audio": {
                "format": "pcm16",
                "input_sample_rate": self.sample_rate,
                "output_sample_rate": self.output_rate,
                "channels": 1,
            },
            "turn_detection": {
                "silence_duration_ms": asr.silence_duration_ms,
                "prefix_padding_ms": asr.prefix_padding_ms,
            },
            "engines": {
                "asr": {"model": asr.model, "engine": self.engines.asr_name},
                "tts": {"model": self.config.audio_config.tts.model, "engines": sorted({v.engine for v in self.engines.voices.values()})},
                "frame_vad": self.engines.frame_vad_name,
                "neural_vad": self.engines.confirmer_name or "none",
                "brain": self.engines.brain.name,
            },
            "voices": voices,
            "history_turns": len(self.history.turns),
        }
        if self.vad is not None:
            info["vad"] = self.vad.model_dump()
        return info

    def receive(self, t: float, msg: proto.ClientMessage | proto.BadFrame) -> list[Output]:
        """Handle one client message received at ``t``."""
        self._t = t
        out: list[Output] = []
        if isinstance(msg, proto.BadFrame):
            self.counters["bad_frames"] += 1
            out.append(Send(proto.warning(msg.code, msg.message)))
        elif isinstance(msg, proto.AudioAppend):
            self._on_audio(t, msg.pcm, out)
        elif isinstance(msg, proto.TextInput):
            self._note("turn", source="text", text=msg.text)
            self._add_user_turn(msg.text, out)
            self._start_response(t, msg.text, out)
        elif isinstance(msg, proto.PlaybackStarted):
            self.playback.on_playback_started(t)
        elif isinstance(msg, proto.PlaybackStopped):
            self.playback.on_playback_stopped(t)
        elif isinstance(msg, proto.ResponseCancel):
            self._on_cancel(t, out)
        elif isinstance(msg, proto.AudioClear):
            # Drops the turn in progress; ended utterances are the user's and stay.
            self.framer.reset()
            self.turns.clear()
            self._drop_utterance()
            self._maybe_answer(t, out)
        # commit, session.update and PONG need nothing: commits never end a turn.
        out.extend(self.tick(t))
        return out

    def job_done(self, t: float, result: JobResult) -> list[Output]:
        """Handle the result of a job this session started."""
        self._t = t
        out: list[Output] = []
        purpose = self._jobs.pop(result.job_id, None)
        if purpose is None:
            return out  # a job of a response or utterance that is gone
        if isinstance(result, JobFailed):
            log.error("session %s: %s", self.session_id, result.message)
            out.append(Send(proto.warning("engine_failed", result.message)))
            if purpose == "asr":
                self._utterance_failed(t, result, out)
            else:
                self._advance_after_failure(t, result, out)
        elif isinstance(result, Transcript):
            self._on_transcript(t, result, out)
        elif isinstance(result, AgentText):
            self._on_agent_text(t, result, out)
        elif isinstance(result, SpeechAudio):
            self._on_speech(t, result, out)
        out.extend(self.tick(t))
        return out

    def tick(self, t: float) -> list[Output]:
        """Run timers due at ``t``."""
        self._t = t
        out: list[Output] = []
        resp = self._response
        if resp is not None and resp.close_deadline is not None and t >= resp.close_deadline:
            self._close_response(t, "interrupted", out)
        return out

    def next_deadline(self) -> float | None:
        """The next time :meth:`tick` has work, if any."""
        resp = self._response
        return resp.close_deadline if resp is not None else None

    def close(self) -> None:
        """The client is gone: drop all pending work."""
        self._drop_utterance()
        for utt in self._ended:
            self.engines.asr.forget(utt.id)
        self._ended.clear()
        self._unanswered.clear()
        self._jobs.clear()
        self._response = None

    def inspect(self) -> dict[str, Any]:
        """A snapshot of the state, for the simulator's reports and debugging."""
        resp = self._response
        return {
            "session": self.session_id,
            "mode": "barge-in" if self.vad else "push-to-talk",
            "response": None if resp is None else {"id": resp.id, "status": resp.status, "step": resp.step, "audio_s": resp.audio_s},
            "utterance": None if self._utterance is None else self._utterance.id,
            "awaiting_transcripts": [utt.id for utt in self._ended],
            "jobs_in_flight": len(self._jobs),
            "detector": None if self.detector is None else {
                "speech_in_window": self.detector.speech_in_window,
                "threshold": self.detector.settings.threshold,
                "window_size": self.detector.settings.window_size,
                "stats": dict(vars(self.detector.stats)),
            },
            "counters": dict(self.counters),
            "history_turns": len(self.history.turns),
        }

    # -- audio in -----------------------------------------------------------

    def _response_active(self) -> bool:
        return self._response is not None and self._response.status != "closed"

    def _on_audio(self, t: float, pcm: bytes, out: list[Output]) -> None:
        # Frames are timed by the audio's own clock (its sample count, mapped to
        # session time by server.inputclock), not by when their chunk arrived:
        # a burst, a stall or jitter must not shift the detector's time. Audio
        # ignored below still counts: the client did capture it.
        self.input_clock.add_chunk(t, len(pcm) // 2)
        self._audio_arrival_t = t
        if self.vad is None and (self._response_active() or self.playback.armed(t)):
            # Push-to-talk: the user interrupts only with response.cancel, and the
            # mic does not talk over the answer while the client is still playing
            # it (audio goes out ahead of real time, so that outlasts response.done).
            self.counters["ignored_audio_ms"] += len(pcm) / 2 / self.sample_rate * 1000
            return
        # The framer counts positions back from the chunk's end, in audio seconds.
        for frame in self.framer.push(self.input_clock.position_s, pcm):
            self._on_frame(self.input_clock.stamp(frame.t), frame.pcm, out)

    def _on_frame(self, t: float, frame: bytes, out: list[Output]) -> None:
        armed = False
        near = self.near.push(frame)
        if self.detector is not None:
            voiced = self.engines.frame_vad.is_speech(frame, self.sample_rate)
            speech = self._maybe_user(t, frame) and voiced
            fire = self.detector.feed(t, frame, speech)
            armed = self.detector.armed(t)
            if self.record_trace:
                lockout = armed and not self.playback.lockout_over(t)
                self.trace.append((t, speech, self.detector.speech_in_window, armed, lockout))
            if fire is not None:
                self._on_barge_in(t, fire, out)
                return
        resp = self._response
        speaking = resp is not None and resp.status == "generating" and resp.audio_s > 0
        if armed or (self.vad is not None and speaking):
            # While the assistant speaks, only a confirmed barge-in starts a user
            # turn: echo and noise must not end a turn and start a response.
            # Before its first audio there is nothing to echo: the user's next
            # words are a turn as usual (and withdraw the silent response).
            return
        speech = self.turn_gate.push(frame) and near
        event = self.turns.feed(t, frame, speech)
        if speech and self.turns.in_turn:
            self.near.note_user_speech()
        if speech and self._utterance is not None:
            self._utterance.new_speech_s += self.frame_s
            if self._utterance.spec_audio is not None:
                self._drop_speculation(self._utterance, "speech resumed")
        self._on_turn_event(t, event, out)

    def _maybe_user(self, t: float, frame: bytes) -> bool:
        """False when echo of the response being played explains the frame.

        Every frame goes to the echo estimator, so it keeps measuring the echo path.
        """
        if self.echo is None:
            return True
        playing = self.playback.playback_start_t is not None and self.far_end.levels
        position = self.playback.played_s(t) if playing else None
        explained = self.echo.push(t, frame, position)
        if explained:
            self.counters["echo_gated_frames"] = self.counters.get("echo_gated_frames", 0) + 1
        return not explained

    def _on_turn_event(self, t: float, event: Any, out: list[Output]) -> None:
        if isinstance(event, SpeechStarted):
            self._utterance = _Utterance(f"utt_{next(self._ids)}")
            self._withdraw_silent_response(t, out)
        elif isinstance(event, TurnEnded):
            self._end_utterance(t, event, out)
            if self.turns.in_turn:
                # Cut at max_turn_seconds while the user talks on: the rest is the next turn.
                self._utterance = _Utterance(f"utt_{next(self._ids)}")
            return
        utt = self._utterance
        # Optional decodes (the driver may say the recogniser is backed up), one at
        # a time per utterance. Partials re-decode the utterance so far: ask only
        # when enough new speech came in (trailing silence adds nothing).
        if utt is None or utt.final_requested or utt.job is not None or self.asr_busy:
            return
        if self._may_speculate(utt):
            # The final audio is fixed: decode it now rather than a partial of it.
            self._speculate(utt, out)
        elif self.partial_transcripts and utt.new_speech_s >= PARTIAL_EVERY_S - 1e-9:
            audio = self.turns.utterance_so_far()
            if audio:
                utt.new_speech_s = 0.0
                self._request_transcript(utt, audio, final=False, out=out)

    # -- speculative final decode (docs/asr.md) -------------------------------

    def _may_speculate(self, utt: _Utterance) -> bool:
        """True when the turn's final audio is fixed and not yet decoded speculatively
        (once per pause), the turn would end within ``speculative_lead_s``, and
        speculation is on for this engine."""
        return (
            self.speculative_finals
            and utt.spec_audio is None
            and self.turns.settled
            and self.turns.silence_s >= self.turns.silence_duration_ms / 1000 - self.speculative_lead_s - 1e-9
            and getattr(self.engines.asr, "stateless", False)
        )

    def _speculate(self, utt: _Utterance, out: list[Output]) -> None:
        """Decode the turn's final audio now that it is fixed (``TurnDetector.settled``):
        the turn's end then finds its final transcript done, or under way."""
        audio = self.turns.settled_audio()
        assert audio is not None
        utt.spec_audio = audio
        utt.new_speech_s = 0.0  # it covers all the speech heard: no partial of it after
        utt.spec_job = self._request_transcript(utt, audio, final=True, out=out, speculative=True)
        self._note("speculative_final", action="start", utterance_id=utt.id, job_id=utt.spec_job, audio_bytes=len(audio),
                   lead_s=round(self.speculative_lead_s, 3))

    def _drop_speculation(self, utt: _Utterance, reason: str) -> None:
        """The speculative decode of ``utt`` will not be the final: drop it (counted as wasted)."""
        job = utt.spec_job
        if job is not None and utt.job == job:
            self._jobs.pop(job, None)
            utt.job = None
        utt.spec_audio = utt.spec_job = utt.spec_text = None
        self.counters["speculative_wasted"] += 1
        self._note("speculative_final", action="drop", utterance_id=utt.id, job_id=job, reason=reason)

    def _speculation_for(self, utt: _Utterance, audio: bytes) -> str | None:
        """At the turn's end: ``"done"`` or ``"running"`` when a speculative decode
        was of exactly ``audio`` (the turn's final audio), so that its text is (or
        will be) the final transcript; else None, and a speculative decode of other
        audio (speech resumed, a cut at the cap) or that failed is dropped."""
        if utt.spec_audio is None:
            return None
        running = utt.spec_job is not None and utt.job == utt.spec_job
        if audio != utt.spec_audio or (utt.spec_text is None and not running):
            self._drop_speculation(utt, "audio changed" if audio != utt.spec_audio else "decode failed")
            return None
        return "running" if running else "done"

    def _use_speculation(self, utt: _Utterance) -> None:
        """The speculative decode is the final: its text now, or its result when it is back."""
        running = utt.spec_text is None
        if not running:
            utt.text = utt.spec_text
        self.counters["speculative_used"] += 1
        self._note("speculative_final", action="use", utterance_id=utt.id, job_id=utt.spec_job, running=running)

    def _end_utterance(self, t: float, event: TurnEnded, out: list[Output]) -> None:
        """Queue the ended turn for its final transcript (each utterance keeps its own job)."""
        utt = self._utterance or _Utterance(f"utt_{next(self._ids)}")
        self._utterance = None
        utt.final_requested = True
        utt.near_levels = self.near.end_turn()
        utt.audio_s = len(event.audio) / 2 / self.sample_rate
        backlog = sum(u.audio_s for u in self._ended if u.text is None)
        self._ended.append(utt)
        speculated = self._speculation_for(utt, event.audio)
        if speculated == "done":
            self._use_speculation(utt)  # nothing waits for the recogniser: no backlog check
        elif not event.audio:
            utt.text = ""  # a cut at the cap followed by silence: no words
        elif backlog + utt.audio_s > self.max_asr_backlog_s:
            if speculated == "running":
                self._drop_speculation(utt, "asr backlog")
            utt.text = ""
            message = (
                f"dropped utterance {utt.id} ({utt.audio_s:.1f} s of speech): {backlog:.1f} s of earlier "
                f"speech is still waiting for transcription (limit {self.max_asr_backlog_s:.0f} s); "
                "the recogniser is too slow for this input, say it again later"
            )
            log.warning("session %s: %s", self.session_id, message)
            out.append(Send(proto.warning("asr_backlog", message)))
        elif speculated == "running":
            self._use_speculation(utt)  # its result is the final: no second decode
        else:
            self._request_transcript(utt, event.audio, final=True, out=out)
        self._deliver_transcripts(t, out)

    def _request_transcript(self, utt: _Utterance, audio: bytes, *, final: bool, out: list[Output],
                            speculative: bool = False) -> int:
        job_id = next(self._ids)
        utt.job = job_id
        self._jobs[job_id] = "asr"
        out.append(StartJob(TranscribeJob(job_id, self.engines.asr, utt.id, audio, self.sample_rate, final, speculative)))
        return job_id

    def _utterance_of(self, job_id: int) -> _Utterance | None:
        for utt in (self._utterance, *self._ended):
            if utt is not None and utt.job == job_id:
                return utt
        return None

    def _on_transcript(self, t: float, result: Transcript, out: list[Output]) -> None:
        utt = self._utterance_of(result.job_id)
        if utt is None:
            return  # a partial overtaken by the final request
        utt.job = None
        if not result.final:
            if result.text and not utt.final_requested:
                out.append(Send(proto.transcript_delta(result.text, item_id=utt.id)))
            return
        if not utt.final_requested:
            # A speculative final back before the turn's end: kept for it, and shown as
            # the partial it supersedes (the whole utterance, decoded as the final).
            utt.spec_text = result.text
            if result.text and self.partial_transcripts:
                out.append(Send(proto.transcript_delta(result.text, item_id=utt.id)))
            return
        utt.text = result.text
        self._deliver_transcripts(t, out)

    def _utterance_failed(self, t: float, result: JobFailed, out: list[Output]) -> None:
        utt = self._utterance_of(result.job_id)
        if utt is None:
            return
        utt.job = None
        if utt.final_requested:
            utt.text = ""  # the engine_failed warning already named the error
            self._deliver_transcripts(t, out)

    def _deliver_transcripts(self, t: float, out: list[Output]) -> None:
        """Send final transcripts in utterance order, then answer if the user is done."""
        while self._ended and self._ended[0].text is not None:
            utt = self._ended.pop(0)
            self.engines.asr.forget(utt.id)
            if not utt.text:
                log.info("session %s: utterance %s had no recognisable words; no response", self.session_id, utt.id)
                continue
            self.near.learn(utt.near_levels)
            self._note("turn", source="speech", utterance_id=utt.id, text=utt.text)
            out.append(Send(proto.transcript_done(utt.text, item_id=utt.id)))
            self._unanswered.append(utt.text)
        self._maybe_answer(t, out)

    def _maybe_answer(self, t: float, out: list[Output]) -> None:
        """Answer what was said once the user has stopped: no turn in progress and
        every ended utterance transcribed. Utterances said before that are one turn."""
        if not self._unanswered or self._utterance is not None or self._ended:
            return
        query = " ".join(self._unanswered)
        self._unanswered.clear()
        self._add_user_turn(query, out)
        self._start_response(t, query, out)

    def _withdraw_silent_response(self, t: float, out: list[Output]) -> None:
        """The user talks on before hearing any of the answer: close the response
        (``cancelled``) and answer its query together with what they say now."""
        resp = self._response
        if resp is None or resp.status != "generating" or resp.audio_s > 0:
            return
        self._close_response(t, "cancelled", out)
        self._last_response = None  # nothing of it was played: nothing to interrupt later
        turns = self.history.turns
        if turns and turns[-1].role == "user" and turns[-1].text == resp.query:
            turns.pop()  # added again as part of the merged turn
            self._note("history", action="remove", index=len(turns), reason="answer withdrawn: the user talked on")
        self._unanswered.insert(0, resp.query)

    def _drop_utterance(self) -> None:
        """Drop the turn in progress (not yet ended); ended ones keep their jobs."""
        self.near.turn_dropped()
        if self._utterance is not None:
            if self._utterance.spec_audio is not None:
                self._drop_speculation(self._utterance, "turn dropped")
            if self._utterance.job is not None:
                self._jobs.pop(self._utterance.job, None)
            self.engines.asr.forget(self._utterance.id)
            self._utterance = None

    # -- barge-in -----------------------------------------------------------

    def _on_barge_in(self, t: float, fire: BargeIn, out: list[Output]) -> None:
        assert self.detector is not None
        audio_end_ms = fire.audio_end_ms
        resp = self._response
        self.counters["interrupts"] += 1
        target = resp if resp is not None and resp.status == "generating" else self._last_response
        self._note(
            "interrupt",
            at=t,  # the firing frame's time, as the detector's decisions
            response_id=None if target is None else target.id,
            onset_t=round(fire.onset_t, 6),
            latency_ms=round(fire.decision_ms, 3),
            floor_ms=None if fire.floor_ms is None else round(fire.floor_ms, 3),
            audio_end_ms=audio_end_ms,
            confirmed_by=fire.confirmed_by,
            speech_frames=fire.speech_frames,
        )
        decision = {"decision_latency_ms": fire.decision_ms, "decision_floor_ms": fire.floor_ms}
        if resp is not None and resp.status == "generating":
            out.append(Send(proto.response_interrupted(resp.id, audio_end_ms, **decision)))
            resp.status = "interrupted"
            resp.interrupted_at_ms = audio_end_ms
            # From now, not from t (the firing frame's capture time): a stalled
            # client's audio is processed late, and the client gets the full wait.
            resp.close_deadline = self._audio_arrival_t + CANCEL_TIMEOUT_S
            if resp.job is not None:
                self._jobs.pop(resp.job, None)
                resp.job = None
            self._settle_heard(resp, audio_end_ms / 1000, out)
        elif self._last_response is not None:
            # All audio was already sent; the client is still playing it.
            last = self._last_response
            out.append(Send(proto.response_interrupted(last.id, audio_end_ms, **decision)))
            self._settle_heard(last, audio_end_ms / 1000, out)
        # The speech that fired starts the user's next turn, from prefix padding before
        # its onset; it replaces a turn in progress, never an ended one awaiting its transcript.
        self._drop_utterance()
        # The speech heard so far is enough for a first partial right away.
        self._utterance = _Utterance(f"utt_{next(self._ids)}", new_speech_s=PARTIAL_EVERY_S)
        self.turn_gate.reset()
        self.turns.begin_with(fire.onset_t, fire.audio, fire.audio_start_t)

    # -- responses ----------------------------------------------------------

    def _add_user_turn(self, text: str, out: list[Output]) -> None:
        self.history.add(PriorTurn("user", text))
        self._note("history", action="add", index=len(self.history.turns) - 1, turns=[_turn_json(self.history.turns[-1])])
        self._persist(out)

    def _persist(self, out: list[Output]) -> None:
        if self.config.memory_config.save_config.auto_load:
            # A copy: the driver saves it on another thread while the session goes on.
            out.append(PersistHistory(ConversationHistory(self.history.turns)))

    def _start_response(self, t: float, query: str, out: list[Output]) -> None:
        if self._response_active():
            # An interrupted response still waiting for the client's cancel closes
            # as interrupted; one still generating is cancelled by the new turn.
            status = "interrupted" if self._response.status == "interrupted" else "cancelled"
            self._close_response(t, status, out)
        else:
            # The last answer may still be playing: the new turn cuts it.
            self._end_playback(t, out)
        resp = _Response(f"resp_{next(self._ids)}", query, plan_turn(self.config, query))
        # Its assistant turns go right after the user turn that asked for it.
        resp.history_index = len(self.history.turns)
        self._response = resp
        self._last_response = resp
        self.counters["responses"] += 1
        if self.detector is not None:
            self.detector.new_response()  # also empties its window
        else:
            self.playback.new_response()
        self.far_end.reset()
        if self.echo is not None:
            self.echo.new_reference()
        out.append(Send(proto.response_created(resp.id)))
        self._next_step(t, resp, out)

    def _next_step(self, t: float, resp: _Response, out: list[Output]) -> None:
        if resp.step >= len(resp.steps):
            self._close_response(t, "completed", out)
            return
        step = resp.steps[resp.step]
        request = AgentRequest(
            agent_name=step.name,
            agent_class=step.agent_class,
            description=step.description,
            query=resp.query,
            task=step.task,  # type: ignore[arg-type]
            goal=step.goal,
            config=step.config,
            earlier=tuple(resp.outputs),
            history=self.history.snapshot()[:-1] if self.history.turns else (),
            summarize=step.summarize,
        )
        self._job(resp, "agent", AgentJob(next(self._ids), self.engines.brain, request), out)

    def _job(self, resp: _Response, purpose: str, job: Job, out: list[Output]) -> None:
        resp.job = job.job_id
        self._jobs[job.job_id] = purpose
        out.append(StartJob(job))

    def _current(self, job_id: int) -> _Response | None:
        resp = self._response
        if resp is None or resp.status != "generating" or resp.job != job_id:
            return None
        resp.job = None
        return resp

    def _on_agent_text(self, t: float, result: AgentText, out: list[Output]) -> None:
        resp = self._current(result.job_id)
        if resp is None:
            return
        step = resp.steps[resp.step]
        resp.outputs.append((step.name, result.text))
        resp.parts.append(ResponsePart(step.name, result.text, resp.audio_s))
        out.append(Send(proto.text_delta(resp.id, step.name, result.text)))
        if not step.speech.enable_speech or not result.spoken.strip():
            self._finish_step(t, resp, result.text, out)
            return
        spoken = spoken_form(result.spoken, language=self.engines.voice_for_step(step).language, expand=step.speech.normalize_text)
        resp.sentences = split_sentences(spoken) or [spoken]
        resp.sentence = 0
        self._synthesize_next(resp, out)

    def _synthesize_next(self, resp: _Response, out: list[Output]) -> None:
        step = resp.steps[resp.step]
        voice = self.engines.voice_for_step(step)
        text = resp.sentences[resp.sentence]
        job = SpeechJob(next(self._ids), self.engines.tts_for(voice), text, voice, self.output_rate)
        self._job(resp, "speech", job, out)

    def _on_speech(self, t: float, result: SpeechAudio, out: list[Output]) -> None:
        resp = self._current(result.job_id)
        if resp is None:
            return
        step = resp.steps[resp.step]
        pcm = result.pcm[: len(result.pcm) // 2 * 2]
        chunk = int(self.output_rate * DELTA_S) * 2
        duration = len(pcm) / 2 / self.output_rate
        if pcm:
            resp.parts[-1].sentences.append(PlayedSentence(resp.sentences[resp.sentence], resp.audio_s, resp.audio_s + duration))
        self.far_end.append(pcm)
        for start in range(0, len(pcm), chunk):
            piece = pcm[start : start + chunk]
            out.append(Send(proto.audio_delta(resp.id, step.name, piece)))
            self.playback.on_audio_sent(t, len(piece) / 2 / self.output_rate)
        resp.audio_s += duration
        resp.sentence += 1
        if resp.sentence < len(resp.sentences):
            self._synthesize_next(resp, out)
        else:
            self._finish_step(t, resp, resp.outputs[-1][1], out)

    def _finish_step(self, t: float, resp: _Response, text: str, out: list[Output]) -> None:
        out.append(Send(proto.text_done(resp.id, resp.steps[resp.step].name, text)))
        resp.parts[-1].finished = True
        resp.step += 1
        self._next_step(t, resp, out)

    def _advance_after_failure(self, t: float, result: JobFailed, out: list[Output]) -> None:
        resp = self._response
        if resp is None or resp.status != "generating":
            return
        resp.job = None
        if resp.outputs and len(resp.outputs) == resp.step + 1:
            # Speech failed mid-agent: its text went out; finish it without audio.
            self._finish_step(t, resp, resp.outputs[-1][1], out)
        else:
            resp.step += 1
            self._next_step(t, resp, out)

    def _on_cancel(self, t: float, out: list[Output]) -> None:
        resp = self._response
        if resp is not None and resp.status in ("generating", "interrupted"):
            self._close_response(t, "interrupted" if resp.status == "interrupted" else "cancelled", out)
        else:
            # The skip key after response.done: the client was still playing the answer.
            self._end_playback(t, out)
        # The client stopped playing: nothing left to interrupt or to talk over.
        if self.detector is not None:
            self.detector.end_response()
        else:
            self.playback.close()

    def _close_response(self, t: float, status: str, out: list[Output]) -> None:
        resp = self._response
        assert resp is not None
        if resp.job is not None:
            self._jobs.pop(resp.job, None)
            resp.job = None
        if status == "completed":
            # Provisional: sent is not heard; a cut while it still plays re-truncates it.
            self._record_assistant(resp, None, out)
        else:
            self._settle_heard(resp, self.playback.played_s(t), out)
        resp.status = "closed"
        resp.close_deadline = None
        out.append(Send(proto.audio_done(resp.id)))
        out.append(Send(proto.response_done(resp.id, status)))
        if status == "completed":
            self.playback.on_response_audio_complete(t)
        self._response = None

    # -- history ------------------------------------------------------------

    def _end_playback(self, t: float, out: list[Output]) -> None:
        """The client's playback of the last response ends at ``t`` (skip key, new turn)."""
        last = self._last_response
        if last is not None and self.playback.open:
            # The timeline still tracks it: it is closed on cancel and renewed per response.
            self._settle_heard(last, self.playback.played_s(t), out)

    def _settle_heard(self, resp: _Response, played_s: float, out: list[Output]) -> None:
        """The response ended or was cut when ``played_s`` seconds of it had been
        played: record what was heard; the first such ending is final."""
        if resp.heard_final:
            return
        resp.heard_final = True
        self._record_assistant(resp, played_s, out)

    def _record_assistant(self, resp: _Response, played_s: float | None, out: list[Output]) -> None:
        """Put the response's heard turns (:func:`server.history.heard_turns`) in
        its place in the history, replacing what it had there; persist on change."""
        turns = heard_turns(resp.parts, played_s, complete=resp.step >= len(resp.steps))
        place = slice(resp.history_index, resp.history_index + resp.history_len)
        if self.history.turns[place] == turns:
            return
        self.history.turns[place] = turns
        self._note("history", action="replace", response_id=resp.id, index=resp.history_index,
                   replaced=resp.history_len, turns=[_turn_json(turn) for turn in turns])
        resp.history_len = len(turns)
        self._persist(out)


def _turn_json(turn: PriorTurn) -> dict[str, Any]:
    return {"role": turn.role, "text": turn.text, "agent": turn.agent, "interrupted": turn.interrupted}
