"""Spoken turns and barge-in through the whole session core, on a virtual clock.

Real engines (WebRTC VAD, Silero, Whisper, eSpeak) on the committed speech
fixtures; no network, no sleeps. Each test streams a microphone in 30 ms chunks
and reacts to events like the tutorial page: ``playback.started`` at the first
audio delta, ``response.cancel`` on ``response.interrupted``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server import protocol as proto
from server.asr.wer import wer
from server.config import load_project_config, load_project_config_file
from server.vad import get_frame_vad
from server.virtual import JobLatency, open_virtual_session

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures"
TUTORIAL = load_project_config_file(FIX / "configs/bargein_flow_superagent_realtime.yaml").config
# The spec's detector alone (no echo gate in front of the frame VAD), for exact predictions.
NO_GATE = load_project_config(
    (FIX / "configs/bargein_flow_superagent_realtime.yaml").read_text() + "    echo_gate_margin_db: none\n"
).config
PTT = load_project_config_file(FIX / "configs/pushtotalk_flow_superagent.yaml").config
CHUNK_S = 0.03
RATE = 16000


def clip(name: str) -> tuple[np.ndarray, dict]:
    audio, rate = sf.read(FIX / f"{name}.wav", dtype="int16")
    assert rate == RATE
    return audio, json.loads((FIX / f"{name}.json").read_text())


@dataclass
class Run:
    """A scripted client: a mic timeline, and what it saw."""

    vs: object
    mic: list[np.ndarray] = field(default_factory=list)  # queued clips
    events: list = field(default_factory=list)
    sent: list = field(default_factory=list)  # (t, pcm) actually streamed
    t: float = 0.0
    cancel_on_interrupt: bool = True
    playing: bool = False

    def say(self, audio: np.ndarray) -> None:
        self.mic.append(audio.copy())

    def _next_chunk(self) -> bytes:
        n = int(RATE * CHUNK_S)
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while self.mic and filled < n:
            head = self.mic[0]
            take = min(n - filled, len(head))
            out[filled : filled + take] = head[:take]
            filled += take
            if take == len(head):
                self.mic.pop(0)
            else:
                self.mic[0] = head[take:]
        return out.tobytes()

    def _react(self, events) -> None:
        for e in events:
            self.events.append(e)
            kind = e.event["type"]
            if kind == "response.audio.delta" and not self.playing:
                self.playing = True
                self.events += self.vs.deliver(max(e.t, self.vs.now), proto.PlaybackStarted())
            elif kind == "response.interrupted":
                self.playing = False
                if self.cancel_on_interrupt:
                    self._react(self.vs.deliver(max(e.t, self.vs.now), proto.ResponseCancel()))

    def stream_until(self, t_end: float, stop=None) -> None:
        """Stream the mic up to ``t_end`` or until ``stop(event)`` is true."""
        while self.t < t_end - 1e-9:
            pcm = self._next_chunk()
            self.t = round(self.t + CHUNK_S, 6)
            self.sent.append((self.t, pcm))
            before = len(self.events)
            self._react(self.vs.deliver(self.t, proto.AudioAppend(pcm)))
            if stop and any(stop(e.event) for e in self.events[before:]):
                return

    def ask_then_interrupt(self, after_audio_s: float = 0.6) -> None:
        """Speak the question, wait for the answer's first audio, then start the
        interrupting utterance ``after_audio_s`` later (past a 0.5 s lockout)."""
        self.say(QUESTION)
        self.stream_until(20, stop=lambda ev: ev["type"] == "response.audio.delta")
        self.stream_until(self.t + after_audio_s)
        self.say(BONDS)

    def first(self, kind: str, after: float = -1.0):
        return next((e for e in self.events if e.event["type"] == kind and e.t > after), None)

    def all(self, kind: str):
        return [e for e in self.events if e.event["type"] == kind]


def new_run(config=TUTORIAL, **kw) -> Run:
    vs = open_virtual_session(config, partial_transcripts=False, **kw)
    vs.start()
    return Run(vs)


def predicted_fire(run: Run, arm_t: float, settings) -> float:
    """When the spec's counter must fire, from an independent WebRTC pass over
    exactly the audio the session heard (same mode, same frames, same order)."""
    vad = get_frame_vad("webrtc", settings.vad_mode)
    ring: list[bool] = []
    lockout_end = arm_t + settings.lockout_seconds
    for t, pcm in run.sent:
        speech = vad.is_speech(pcm, RATE)
        if t < arm_t - 1e-9:
            continue  # not armed yet: not counted
        ring = (ring + [speech])[-settings.window_size :]
        if sum(ring) >= settings.threshold and t >= lockout_end - 1e-9:
            return t
    raise AssertionError("the counter never reaches the threshold")


QUESTION, QMETA = clip("speech/question_currency_heart")
BONDS, BMETA = clip("speech/interrupt_bonds_joe")


def test_spoken_question_is_transcribed_and_answered():
    run = new_run()
    run.say(QUESTION)
    run.stream_until(15, stop=lambda ev: ev["type"] == "response.done")
    done = run.first("response.audio_transcript.done")
    assert done is not None and wer(QMETA["text"], done.event["text"]) <= 0.1
    types = [e.event["type"] for e in run.events]
    assert types.index("response.audio_transcript.done") < types.index("response.created")
    assert run.first("response.done").event["status"] == "completed"
    # End of turn: silence_duration_ms (3.5 s) after the speech ends, not before.
    offset = QMETA["speech"][0]["offset_s"]
    assert offset + 3.5 - 0.1 <= done.t <= offset + 3.5 + 0.5


def test_barge_in_while_generating_fires_at_the_predicted_frame_and_stops_the_flow():
    # A slow brain (2 s per agent) keeps the flow generating while the user barges in.
    run = new_run(NO_GATE, latency=JobLatency(agent_s=2.0))
    run.say(QUESTION)
    run.stream_until(20, stop=lambda ev: ev["type"] == "response.audio.delta")
    first_audio = run.first("response.audio.delta")
    assert first_audio is not None
    run.stream_until(first_audio.t + 0.6)  # past the 0.5 s lockout
    run.say(BONDS)
    run.stream_until(run.t + 12, stop=lambda ev: ev["type"] == "response.created" and run.first("response.interrupted"))
    interrupted = run.first("response.interrupted")
    assert interrupted is not None
    settings = run.vs.session.vad
    assert interrupted.t == pytest.approx(predicted_fire(run, first_audio.t, settings), abs=1e-6)
    rid = interrupted.event["response_id"]
    later = [e for e in run.events if e.t >= interrupted.t and e.event.get("response_id") == rid]
    assert [e.event["type"] for e in later] == ["response.interrupted", "response.audio.done", "response.done"]
    assert later[-1].event["status"] == "interrupted"
    roles = {e.event["role"] for e in run.all("response.text.delta") if e.event["response_id"] == rid}
    assert roles == {"Stock Planner"}  # later agents of the flow never ran
    assert 0 < interrupted.event["audio_end_ms"] <= 1000 * (interrupted.t - first_audio.t) + 1
    # The interrupting speech, from before its onset, is the next turn.
    nxt = run.first("response.audio_transcript.done", after=interrupted.t)
    assert nxt is not None and wer(BMETA["text"], nxt.event["text"]) <= 0.1
    history = run.vs.session.history.turns
    assistant = [t for t in history if t.role == "assistant"]
    assert assistant and assistant[0].interrupted and len(assistant[0].text) < len(
        run.first("response.text.delta").event["content"]
    )


def test_interrupted_response_closes_itself_when_the_client_never_cancels():
    run = new_run(latency=JobLatency(agent_s=2.0))
    run.cancel_on_interrupt = False  # the SDK skips cancel_response after an interrupt
    run.ask_then_interrupt()
    run.stream_until(run.t + 4, stop=lambda ev: ev["type"] == "response.done")
    interrupted = run.first("response.interrupted")
    done = run.first("response.done")
    assert done.event["status"] == "interrupted"
    assert done.t == pytest.approx(interrupted.t + 1.0, abs=CHUNK_S + 1e-6)


def test_barge_in_after_all_audio_was_sent_is_an_interrupt_alone():
    run = new_run()  # fast engines: the whole response is sent before the lockout ends
    run.say(QUESTION)
    run.stream_until(20, stop=lambda ev: ev["type"] == "response.done")
    done = run.first("response.done")
    run.stream_until(run.t + 0.6)
    run.say(BONDS)
    run.stream_until(run.t + 3, stop=lambda ev: ev["type"] == "response.interrupted")
    interrupted = run.first("response.interrupted")
    assert interrupted is not None and interrupted.event["response_id"] == done.event["response_id"]
    assert len(run.all("response.done")) == 1  # no second response.done for it


@pytest.mark.parametrize("config", [TUTORIAL, NO_GATE], ids=["echo-gate", "no-echo-gate"])
def test_noise_during_the_response_never_interrupts(config):
    noise, _ = clip("noise/white_-45dBFS")
    # 20 dB up (-25 dBFS): as loud as a near talker, so the level rule (server/neartalk.py)
    # lets it through and the frame VAD and the neural confirmation are what is tested.
    noise = (noise.astype(np.int32) * 10).clip(-32768, 32767).astype(np.int16)
    run = new_run(config)
    run.say(QUESTION)
    run.stream_until(20, stop=lambda ev: ev["type"] == "response.audio.delta")
    run.say(noise)
    run.stream_until(run.t + len(noise) / RATE)
    assert run.first("response.interrupted") is None
    stats = run.vs.session.detector.stats
    assert stats.fired == 0
    if config is NO_GATE:
        # WebRTC alone calls this noise speech; the neural confirmation is what drops it.
        assert stats.dropped > 0


def test_push_to_talk_ignores_speech_during_the_response():
    run = new_run(PTT, latency=JobLatency(agent_s=2.0))
    run.say(QUESTION)
    run.stream_until(20, stop=lambda ev: ev["type"] == "response.audio.delta")
    run.say(BONDS)
    run.stream_until(run.t + 12, stop=lambda ev: ev["type"] == "response.done")
    assert run.first("response.interrupted") is None
    assert run.first("response.done").event["status"] == "completed"
    assert run.vs.session.counters["ignored_audio_ms"] > 1000 * (len(BONDS) / RATE) * 0.9
    assert len(run.all("response.audio_transcript.done")) == 1


def test_a_new_turn_before_the_cancel_closes_the_interrupted_response_as_interrupted():
    run = new_run(latency=JobLatency(agent_s=2.0))
    run.cancel_on_interrupt = False
    run.ask_then_interrupt()
    run.stream_until(run.t + 4, stop=lambda ev: ev["type"] == "response.interrupted")
    interrupted = run.first("response.interrupted")
    events = run.vs.deliver(run.t + 0.1, proto.TextInput("What about gold?")) + run.vs.advance(run.t + 30)
    done = [e.event for e in events if e.event["type"] == "response.done"]
    assert done[0]["response_id"] == interrupted.event["response_id"] and done[0]["status"] == "interrupted"
    assert done[1]["status"] == "completed"


def test_commits_never_end_a_turn_and_clear_drops_pending_input():
    run = new_run()
    run.say(QUESTION)
    # Commit every 0.3 s like the bridge does: the turn still ends on silence only.
    while run.t < 5.0:  # the question ends at 3.07 s; its turn would end 3.5 s later
        run.stream_until(run.t + 0.3)
        run._react(run.vs.deliver(run.t, proto.AudioCommit()))
    assert run.first("response.audio_transcript.done") is None
    run._react(run.vs.deliver(run.t, proto.AudioClear()))
    run.stream_until(12)
    assert run.first("response.audio_transcript.done") is None  # the half-heard question is gone
    assert run.first("response.created") is None


def test_engine_warm_up_runs_each_engine_without_filling_the_sentence_cache():
    from server.engines import build_engines
    from server.tts.cache import SHARED_CACHE

    engines = build_engines(TUTORIAL)
    counts = dict(engines.asr.decode_counts)
    lookups = (SHARED_CACHE.hits, SHARED_CACHE.misses)
    engines.warm_up()
    # The recogniser really decoded (speech, not skipped silence)...
    assert sum(engines.asr.decode_counts.values()) > sum(counts.values())
    # ...and no session can be handed the warm-up sentence from the cache.
    assert (SHARED_CACHE.hits, SHARED_CACHE.misses) == lookups


def test_synthesis_is_streamed_sentence_by_sentence():
    from server.session import Send, Session, StartJob
    from server.engines import build_engines
    from server.work import SpeechJob, run_job

    session = Session(TUTORIAL, build_engines(TUTORIAL), session_id="s")
    pending = session.receive(0.0, proto.TextInput("How do I hedge currency risk?"))
    while not any(isinstance(o, StartJob) and isinstance(o.job, SpeechJob) for o in pending):
        job = next(o.job for o in pending if isinstance(o, StartJob))
        pending = session.job_done(0.0, run_job(job))
    first_speech = next(o.job for o in pending if isinstance(o, StartJob))
    outputs = session.job_done(0.1, run_job(first_speech))
    deltas = [o for o in outputs if isinstance(o, Send) and o.event["type"] == "response.audio.delta"]
    more = [o for o in outputs if isinstance(o, StartJob) and isinstance(o.job, SpeechJob)]
    # The first sentence's audio goes out while the next sentence is still to be synthesized.
    assert deltas and len(more) == 1 and more[0].job.text != first_speech.text


def test_a_barge_in_turn_gets_a_partial_transcript_at_once():
    vs = open_virtual_session(TUTORIAL, latency=JobLatency(agent_s=2.0))  # partials on
    vs.start()
    run = Run(vs)
    run.ask_then_interrupt()
    run.stream_until(run.t + 3, stop=lambda ev: ev["type"] == "response.audio_transcript.delta" and run.first("response.interrupted"))
    interrupted = run.first("response.interrupted")
    partial = run.first("response.audio_transcript.delta", after=interrupted.t - 1e-9)
    assert partial is not None and "stop" in partial.event["text"].lower()
    # Asked with the frame after the interrupt; done after the modelled partial latency.
    assert partial.t <= interrupted.t + CHUNK_S + JobLatency().transcribe_partial_s + 1e-6


def test_push_to_talk_ignores_speech_until_playback_ends_then_listens():
    run = new_run(PTT)
    run.say(QUESTION)
    run.stream_until(20, stop=lambda ev: ev["type"] == "response.done")
    done = run.first("response.done")
    played_until = run.vs.session.playback.estimated_playback_end()
    assert played_until > done.t + 5  # audio went out far ahead of real time
    run.say(BONDS)  # right after response.done, while the answer still plays
    run.stream_until(run.t + len(BONDS) / RATE + 4)
    assert len(run.all("response.audio_transcript.done")) == 1
    assert run.vs.session.counters["ignored_audio_ms"] >= 1000 * len(BONDS) / RATE * 0.9
    run.stream_until(played_until + 0.1)
    run.say(BONDS)  # after the answer has played out: a new turn
    run.stream_until(run.t + 8, stop=lambda ev: ev["type"] == "response.audio_transcript.done")
    last = run.all("response.audio_transcript.done")
    assert len(last) == 2 and wer(BMETA["text"], last[-1].event["text"]) <= 0.1
