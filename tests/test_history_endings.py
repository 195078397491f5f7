"""What the history keeps of an answer, for every way the answer ends (issue #10).

Each row drives a whole session on the virtual clock (real scripted agents, real
TTS, real VAD and ASR for the spoken rows): the user types the tutorial's
question, the client starts playing at the first audio delta, and the answer
ends at a chosen point of its playback. The row says which assistant turns the
history must hold then: whole (the agent's shown text), cut (the first spoken
words), and which one is marked interrupted. The history the session asked to
persist (``auto_load``) must be the same.

Playback positions of the tutorial's answer (scripted agents, local voices):
Stock Planner 0-28.2 s (first sentence 0-3.8 s, 11 words), Currency Planner
28.2-32.4 s (a spoken one-sentence summary, "In short, ..."), Risk Assessment
Planner text only, placed at 32.4 s, Investment Strategy Advisor 32.4-42.4 s.
The rows cut at 3 s, 30 s and 35 s, well inside those spans.

The last test runs the late-skip-history case end to end against the server
process and reads the saved history file.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import websockets
import yaml

from server import protocol as proto
from server.config import load_project_config
from server.history import END_TOLERANCE_S, HistoryStore, PlayedSentence, ResponsePart, heard_turns
from server.virtual import JobLatency, VirtualSession, open_virtual_session
from tests.support.server_proc import running_server

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures"
RAW = yaml.safe_load((FIX / "configs/bargein_flow_superagent_realtime.yaml").read_text())
RAW["memory_config"] = {"save_config": {"auto_load": True}}  # the case's tutorial_autoload.yaml
CONFIG = load_project_config(RAW).config
QUESTION = "How should I hedge my portfolio against currency risk?"
FOLLOW_UP = "What about gold?"
SP, CP, RAP, ISA = "Stock Planner", "Currency Planner", "Risk Assessment Planner", "Investment Strategy Advisor"
CHUNK_S = 0.03
RATE = 16000
FAST = JobLatency()  # the whole answer is sent within 0.5 s: cuts come after response.done
SLOW = JobLatency(agent_s=2.0)  # the answer is still generating 3 s into playback
SLOWER = JobLatency(agent_s=10.0)  # ... and 30 s into playback (ISA's text comes at ~40 s)


def clip(name: str) -> np.ndarray:
    audio, rate = sf.read(FIX / f"{name}.wav", dtype="int16")
    assert rate == RATE
    return audio


BONDS = clip("speech/interrupt_bonds_joe")  # "Stop, tell me about bonds instead." speech 0.3-2.5 s


@dataclass(frozen=True)
class Cut:
    """An agent cut inside its audio: the first words it spoke, ``lo..hi`` of them."""

    agent: str
    starts: str
    lo: int
    hi: int


@dataclass(frozen=True)
class Ending:
    id: str
    how: str  # cancel | typed | voice | stop_then_speak
    at_s: float  # playback position of the cut (voice: where the user starts speaking)
    latency: JobLatency
    whole: tuple[str, ...]  # agents kept whole, in order, before the cut one
    cut: Cut | None  # None: nothing cut inside an agent
    interrupted: bool  # the last assistant turn is marked interrupted
    generating: bool  # the answer is still generating at the cut


IN_SP = Cut(SP, "You asked: How should I", 6, 10)  # 3 s of the 3.8 s, 11-word first sentence
IN_CP = Cut(CP, "In short, match", 3, 7)  # 1.8 s of its 4.2 s, 13-word summary
IN_ISA = Cut(ISA, "To sum up, the", 4, 9)  # 2.6 s of its 10 s, 27 words

ENDINGS = [
    # (1) voice interrupt while generating
    Ending("voice-generating", "voice", 1.6, SLOW, (), IN_SP, True, True),
    # (2) voice interrupt after response.done, still playing (RAP reached: kept whole)
    Ending("voice-after-done", "voice", 33.5, FAST, (SP, CP, RAP), IN_ISA, True, False),
    # (3) response.cancel while generating
    Ending("cancel-generating-sp", "cancel", 3.0, SLOW, (), IN_SP, True, True),
    Ending("cancel-generating-cp", "cancel", 30.0, SLOWER, (SP,), IN_CP, True, True),
    # (4) response.cancel after response.done, still playing: the late-skip-history case
    Ending("cancel-after-done", "cancel", 3.0, FAST, (), IN_SP, True, False),
    Ending("cancel-after-done-cp", "cancel", 30.0, FAST, (SP,), IN_CP, True, False),
    Ending("cancel-after-done-isa", "cancel", 35.0, FAST, (SP, CP, RAP), IN_ISA, True, False),
    # (5) a new typed query over the answer, generating or still playing; a new spoken turn
    Ending("typed-generating", "typed", 30.0, SLOWER, (SP,), IN_CP, True, True),
    Ending("typed-while-playing", "typed", 30.0, FAST, (SP,), IN_CP, True, False),
    Ending("spoken-after-stop", "stop_then_speak", 3.0, FAST, (), IN_SP, True, False),
    # (6) completed and played to the end (or to within END_TOLERANCE_S of it): all of it
    Ending("played-to-end-typed", "typed", 45.0, FAST, (SP, CP, RAP, ISA), None, False, False),
    Ending("played-to-end-cancel", "cancel", 42.3, FAST, (SP, CP, RAP, ISA), None, False, False),
]


class Client:
    """A scripted client on the virtual clock: plays from the first audio delta."""

    def __init__(self, latency: JobLatency) -> None:
        self.vs: VirtualSession = open_virtual_session(CONFIG, latency=latency, partial_transcripts=False)
        self.vs.start()
        self.events = self.vs.deliver(0.0, proto.TextInput(QUESTION))
        self.mic: list[np.ndarray] = []
        self.t = 0.0
        self.play_t: float | None = None
        self.interrupt_ms: int | None = None

    def _react(self, events) -> None:
        for e in events:
            self.events.append(e)
            kind = e.event["type"]
            if kind == "response.audio.delta" and self.play_t is None:
                self.play_t = max(e.t, self.vs.now)
                self.events += self.vs.deliver(self.play_t, proto.PlaybackStarted())
            elif kind == "response.interrupted" and self.interrupt_ms is None:
                self.interrupt_ms = e.event["audio_end_ms"]
                self._react(self.vs.deliver(max(e.t, self.vs.now), proto.PlaybackStopped()))
                self._react(self.vs.deliver(max(e.t, self.vs.now), proto.ResponseCancel()))

    def wait(self, until: float) -> None:
        """Advance the clock to ``until`` (no microphone), in small steps."""
        while self.t < until - 1e-9:
            self.t = min(round(self.t + 0.01, 6), until)
            self._react(self.vs.advance(self.t))

    def stream(self, until: float, stop=None) -> None:
        """Stream the microphone (queued clips, then silence) up to ``until`` or ``stop``."""
        n = int(RATE * CHUNK_S)
        while self.t < until - 1e-9:
            chunk = np.zeros(n, dtype=np.int16)
            filled = 0
            while self.mic and filled < n:
                take = min(n - filled, len(self.mic[0]))
                chunk[filled : filled + take] = self.mic[0][:take]
                filled += take
                self.mic[0] = self.mic[0][take:]
                if not len(self.mic[0]):
                    self.mic.pop(0)
            self.t = round(self.t + CHUNK_S, 6)
            before = len(self.events)
            self._react(self.vs.deliver(self.t, proto.AudioAppend(chunk.tobytes())))
            if stop and any(stop(e.event) for e in self.events[before:]):
                return

    def first(self, kind: str):
        return next((e for e in self.events if e.event["type"] == kind), None)

    def shown(self) -> dict[str, str]:
        """Each agent's text as shown (``response.text.delta``) in the first response."""
        rid = self.first("response.created").event["response_id"]
        return {e.event["role"]: e.event["content"] for e in self.events
                if e.event["type"] == "response.text.delta" and e.event["response_id"] == rid}


def end_answer(ending: Ending) -> tuple[Client, float]:
    """Play the answer and end it as the row says; return the client and the cut position (s)."""
    c = Client(ending.latency)
    voice = ending.how in ("voice", "stop_then_speak")
    if voice:
        c.stream(20.0, stop=lambda ev: ev["type"] == "response.audio.delta")
    while c.play_t is None:
        c.wait(c.t + 0.01)
    cut_t = c.play_t + ending.at_s
    if ending.how == "voice":
        c.stream(cut_t)
        c.mic.append(BONDS.copy())
        c.stream(cut_t + 4.0, stop=lambda ev: ev["type"] == "response.interrupted")
        assert c.interrupt_ms is not None, "the barge-in did not fire"
        cut_s, end_t = c.interrupt_ms / 1000, c.first("response.interrupted").t
    else:
        (c.stream if voice else c.wait)(cut_t)
        cut_s, end_t = ending.at_s, cut_t
        if ending.how == "cancel":
            c._react(c.vs.deliver(cut_t, proto.PlaybackStopped()))
            c._react(c.vs.deliver(cut_t, proto.ResponseCancel()))
        elif ending.how == "typed":
            c._react(c.vs.deliver(cut_t, proto.TextInput(FOLLOW_UP)))
        else:  # the user stops playback (no cancel), then asks the next question by voice
            c._react(c.vs.deliver(cut_t, proto.PlaybackStopped()))
            c.mic.append(BONDS.copy())
            c.stream(cut_t + 10.0, stop=lambda ev: ev["type"] == "response.audio_transcript.done")
            assert c.first("response.audio_transcript.done") is not None, "the spoken turn did not end"
    done = c.first("response.done")
    generating = done is None or done.t >= end_t - 1e-9
    assert generating == ending.generating, "the row's premise (still generating at the cut or not) does not hold"
    c.t = round(c.t + 60.0, 6)
    c._react(c.vs.advance(c.t))  # let a follow-up answer finish: it must not move the first one's turns
    return c, cut_s


def first_answer_turns(history) -> list:
    """The assistant turns between the first user turn and the next one."""
    turns = list(history.turns)
    assert turns[0].role == "user" and turns[0].text == QUESTION
    rest = turns[1:]
    nxt = next((i for i, t in enumerate(rest) if t.role == "user"), len(rest))
    return rest[:nxt]


@pytest.mark.parametrize("ending", ENDINGS, ids=[e.id for e in ENDINGS])
def test_history_holds_what_was_heard(ending: Ending):
    c, cut_s = end_answer(ending)
    shown = c.shown()
    turns = first_answer_turns(c.vs.session.history)
    expected_agents = list(ending.whole) + ([ending.cut.agent] if ending.cut else [])
    assert [t.agent for t in turns] == expected_agents, f"cut at {cut_s:.2f} s of playback"
    for turn in turns[: len(ending.whole)]:
        assert turn.text == shown[turn.agent], f"{turn.agent} was heard to its end: its whole shown text"
    if ending.cut:
        words = turns[-1].text.split()
        assert turns[-1].text.startswith(ending.cut.starts), turns[-1].text
        assert ending.cut.lo <= len(words) <= ending.cut.hi, f"cut at {cut_s:.2f} s: {turns[-1].text}"
    assert [t.interrupted for t in turns] == [False] * (len(turns) - 1) + [ending.interrupted]
    # Persisted (auto_load) after the last change, late ones included.
    assert c.vs.saved_history is not None and c.vs.saved_history.turns == c.vs.session.history.turns
    if ending.how in ("typed", "stop_then_speak"):
        # The follow-up's own turns come after its user turn, not before.
        roles = [t.role for t in c.vs.session.history.turns]
        assert roles.count("user") == 2 and roles[-1] == "assistant"


def test_a_second_cancel_or_a_new_turn_does_not_change_a_settled_history():
    c, _ = end_answer(next(e for e in ENDINGS if e.id == "cancel-after-done"))
    settled = list(c.vs.session.history.turns)
    c._react(c.vs.deliver(c.t + 5.0, proto.ResponseCancel()))
    c._react(c.vs.deliver(c.t + 5.0, proto.TextInput(FOLLOW_UP)))
    assert list(c.vs.session.history.turns)[: len(settled)] == settled


# -- the rule alone, at its edges --------------------------------------------------------


def parts() -> list[ResponsePart]:
    """Text-only "Intro" first, "A" speaking 0-4 s (two sentences), text-only "T" at 4 s, "B" 4-6 s."""
    return [
        ResponsePart("Intro", "Shown first.", 0.0, finished=True),
        ResponsePart("A", "One two three. Four five six seven!", 0.0, [
            PlayedSentence("one two three", 0.0, 2.0), PlayedSentence("four five six seven", 2.0, 4.0)], finished=True),
        ResponsePart("T", "Text only.", 4.0, finished=True),
        ResponsePart("B", "Eight nine.", 4.0, [PlayedSentence("eight nine", 4.0, 6.0)], finished=True),
    ]


@pytest.mark.parametrize("played_s, complete, expected", [
    (0.0, False, [("Intro", "Shown first.", True)]),  # shown before any audio: delivered
    (3.0, False, [("Intro", "Shown first.", False), ("A", "one two three four five", True)]),
    (4.0, False, [("Intro", "Shown first.", False), ("A", "One two three. Four five six seven!", False),
                  ("T", "Text only.", True)]),  # the cut reached T's place: T delivered, B not
    (3.99, True, [("Intro", "Shown first.", False), ("A", "one two three four five six", True)]),
    (6.0 - END_TOLERANCE_S, True, [("Intro", "Shown first.", False), ("A", "One two three. Four five six seven!", False),
                                   ("T", "Text only.", False), ("B", "Eight nine.", False)]),
    (6.0, False, [("Intro", "Shown first.", False), ("A", "One two three. Four five six seven!", False),
                  ("T", "Text only.", False), ("B", "Eight nine.", True)]),  # all played, but agents never ran
])
def test_heard_turns_rule(played_s, complete, expected):
    turns = heard_turns(parts(), played_s, complete=complete)
    assert [(t.agent, t.text, t.interrupted) for t in turns] == expected
    assert all(t.role == "assistant" for t in turns)


def test_heard_turns_nothing_heard_and_a_speaking_agent_not_yet_voiced():
    speaking = [ResponsePart("A", "Shown, not yet spoken.", 0.0)]  # text out, first sentence synthesizing
    assert heard_turns(speaking, 0.0, complete=False) == []
    assert heard_turns(parts()[1:], 0.0, complete=False) == []


# -- end to end: the late-skip-history case against the server process --------------------

HEADERS = {"Authorization": "Bearer any-key", "sdk_version": "1.33.2"}


async def _skip_after_done(ws_url: str) -> dict[str, str]:
    """Type the question, play from the first delta, wait for response.done, press
    skip (playback.stopped + response.cancel) 3 s into playback; the shown texts."""
    shown: dict[str, str] = {}
    async with websockets.connect(ws_url, additional_headers=HEADERS, max_size=None, ping_interval=None) as ws:

        async def until(kind: str) -> dict:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if event["type"] == "response.text.delta":
                    shown[event["role"]] = event["content"]
                if event["type"] == kind:
                    return event

        await until("session.created")
        await ws.send(json.dumps({"type": "input_text", "text": QUESTION}))
        await until("response.audio.delta")
        await ws.send(json.dumps({"type": "playback.started"}))
        started = time.monotonic()
        done = await until("response.done")
        assert done["status"] == "completed"
        await asyncio.sleep(max(0.0, started + 3.0 - time.monotonic()))
        await ws.send(json.dumps({"type": "playback.stopped"}))
        await ws.send(json.dumps({"type": "response.cancel"}))  # read before the close that follows
    return shown


def test_late_skip_saves_only_what_was_heard_end_to_end(tmp_path):
    with running_server(tmp_path) as server:
        created = httpx.post(f"{server.url}/distiller/create", headers=HEADERS, timeout=60,
                             json={"project": "skip", "config": RAW, "sdk_version": "1.33.2"})
        assert created.status_code == 201, created.text
        url = f"{server.ws_url}/distiller/realtime/refinery-mock-local/skip/user1"
        shown = asyncio.run(_skip_after_done(url))
        # The server saves on every change and awaits pending saves when the socket closes;
        # wait for the session to be gone, then read the file.
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/sessions", timeout=10).json().get("sessions") and time.monotonic() < deadline:
            time.sleep(0.1)
        history = HistoryStore(tmp_path).load("skip", "user1")
    assert [t.role for t in history.turns] == ["user", "assistant"], server.log_tail()
    turn = history.turns[1]
    assert turn.agent == SP and turn.interrupted
    words = turn.text.split()
    # About 3 s of speech: the start of the first sentence, never the whole agent.
    assert 1 <= len(words) < len(shown[SP].split()) and shown[SP].startswith(turn.text)
