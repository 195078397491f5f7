"""Engine work a session asks its driver to run, and the results it gets back.

A session never calls a slow engine itself: it returns a :class:`Job`, the
driver runs ``job.run()`` where it likes (a worker thread in the server, inline
on a virtual clock in the simulator and tests) and feeds the result back with
``Session.job_done(t, result)`` at whatever time it completed. That keeps the
session's audio path (VAD, barge-in) on time while a decode is in progress, and
makes the same session core deterministic on a virtual clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from server.agents.brain import AgentRequest, Brain
    from server.asr.base import AsrEngine
    from server.tts.base import TtsEngine, Voice


@dataclass(frozen=True)
class AgentText:
    job_id: int
    text: str
    spoken: str


@dataclass(frozen=True)
class SpeechAudio:
    job_id: int
    pcm: bytes


@dataclass(frozen=True)
class Transcript:
    job_id: int
    text: str
    final: bool


@dataclass(frozen=True)
class JobFailed:
    """A job raised. ``message`` names the engine and the error."""

    job_id: int
    message: str


JobResult = Union[AgentText, SpeechAudio, Transcript, JobFailed]


@dataclass(frozen=True)
class AgentJob:
    """Ask an agent brain for one agent's text."""

    job_id: int
    brain: "Brain" = field(repr=False)
    request: "AgentRequest"

    kind = "agent"

    def run(self) -> JobResult:
        out = self.brain.respond(self.request)
        return AgentText(self.job_id, out.text, out.spoken)


@dataclass(frozen=True)
class SpeechJob:
    """Synthesize one sentence (streamed synthesis: one job per sentence)."""

    job_id: int
    engine: "TtsEngine" = field(repr=False)
    text: str
    voice: "Voice"
    sample_rate: int

    kind = "speech"

    def run(self) -> JobResult:
        return SpeechAudio(self.job_id, self.engine.synthesize(self.text, self.voice, self.sample_rate))


@dataclass(frozen=True)
class TranscribeJob:
    """Transcribe the utterance so far (partial) or all of it (final).

    ``speculative``: a final decode asked for before the turn ended, on audio
    that is already fixed (docs/asr.md); it runs exactly as any final, the
    flag only tells observers (tests, the journal) why it was asked for.
    """

    job_id: int
    engine: "AsrEngine" = field(repr=False)
    utterance_id: str
    pcm: bytes = field(repr=False)
    sample_rate: int
    final: bool
    speculative: bool = False

    kind = "transcribe"

    def run(self) -> JobResult:
        text = self.engine.transcribe(self.utterance_id, self.pcm, self.sample_rate, final=self.final)
        return Transcript(self.job_id, text.strip(), self.final)


Job = Union[AgentJob, SpeechJob, TranscribeJob]


def run_job(job: Job, fail: str | None = None) -> JobResult:
    """Run a job, turning an engine exception into :class:`JobFailed`.

    ``fail`` (fault injection, :mod:`server.faults`): do not run the engine,
    fail with this reason instead.
    """
    if fail is not None:
        return JobFailed(job.job_id, f"{job.kind} engine failed: {fail}")
    try:
        return job.run()
    except Exception as exc:  # an engine failure must reach the session, not kill the driver
        return JobFailed(job.job_id, f"{job.kind} engine failed: {type(exc).__name__}: {exc}")
