"""The speculative final decode (docs/asr.md), through the whole session core on a virtual clock.

Once the silence after the last speech frame covers the trailing silence kept
for ASR (300 ms), a turn's final audio is fixed unless speech resumes; the
session decodes it then, and the turn's end (3.5 s of silence in the tutorial
config) finds its final transcript done. Real engines (WebRTC, Silero,
Whisper, eSpeak/Piper) on the committed speech fixtures; each test compares
with the same input run with speculation off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from server.config import load_project_config
from server.session import SPECULATIVE_LEAD_S
from server.virtual import JobLatency, open_virtual_session
from server.work import TranscribeJob
from tests.test_session_speech import FIX, QMETA, QUESTION, RATE, TUTORIAL, Run, clip
from tests.test_session_turns_order import CONFIG as SHORT_EOT  # 700 ms end of turn
from tests.test_session_turns_order import GOLD, GOLD_META, STOCKS, STOCKS_META, speech_span

RATES, RATES_META = clip("speech/interrupt_rates_joe")  # "Hold on, I have a different question about interest rates."
LATENCY = JobLatency()  # transcribe_final_s = 0.15


@dataclass
class Decode:
    t: float
    pcm: bytes
    speculative: bool


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), dtype=np.int16)


def words_only(audio: np.ndarray, meta: dict) -> np.ndarray:
    seg = meta["speech"][0]
    return audio[int(seg["onset_s"] * RATE) : int(seg["offset_s"] * RATE)]


def speak(*pieces: np.ndarray, speculative: bool, config=TUTORIAL, latency: JobLatency = LATENCY,
          until_s: float = 25.0, busy: bool = False, to_the_end: bool = False) -> tuple[Run, list[Decode]]:
    """Stream ``pieces`` then silence until the answer is done (``to_the_end``: until
    ``until_s``); the final decodes started, in order."""
    vs = open_virtual_session(config, latency=latency, partial_transcripts=False, speculative_finals=speculative)
    vs.session.asr_busy = busy
    finals: list[Decode] = []
    vs.on_job_started = lambda t, job: (
        finals.append(Decode(t, job.pcm, job.speculative)) if isinstance(job, TranscribeJob) and job.final else None
    )
    vs.start()
    run = Run(vs)
    for piece in pieces:
        run.say(piece)
    run.stream_until(until_s, stop=None if to_the_end else lambda ev: ev["type"] == "response.done")
    return run, finals


def notes(run: Run) -> list[dict]:
    return [e for e in run.vs.journal.entries() if e["type"] == "speculative_final"]


def test_the_final_transcript_comes_earlier_by_the_decode_with_the_same_words():
    off, off_finals = speak(QUESTION, speculative=False)
    on, on_finals = speak(QUESTION, speculative=True)
    # Without speculation: one final decode, at the turn's end (3.5 s of silence).
    [end] = off_finals
    assert not end.speculative
    # With it: one final decode too, of the very same bytes, started SPECULATIVE_LEAD_S
    # (1 s, within a frame) before the turn's end.
    [spec] = on_finals
    assert spec.speculative and spec.pcm == end.pcm
    assert end.t - spec.t == pytest.approx(SPECULATIVE_LEAD_S, abs=0.03)
    done_off, done_on = off.first("response.audio_transcript.done"), on.first("response.audio_transcript.done")
    assert done_on.event["text"] == done_off.event["text"]
    assert done_off.t == pytest.approx(end.t + LATENCY.transcribe_final_s)
    # Out at the turn's end itself: earlier by exactly the decode's latency, and the answer with it.
    assert done_on.t == pytest.approx(end.t)
    assert on.first("response.created").t == pytest.approx(off.first("response.created").t - LATENCY.transcribe_final_s)
    assert on.first("response.audio.delta").t == pytest.approx(off.first("response.audio.delta").t - LATENCY.transcribe_final_s)
    assert QMETA["text"].lower().rstrip("?") in done_on.event["text"].lower()
    counters = on.vs.session.counters
    assert (counters["speculative_used"], counters["speculative_wasted"]) == (1, 0)
    assert [n["action"] for n in notes(on)] == ["start", "use"]


def test_the_driver_sets_how_long_before_the_turns_end_the_decode_starts():
    # The server raises the lead to what final decodes take now (server.realtime.speculative_lead_s):
    # with 3 s, the decode starts 0.5 s into the tutorial's 3.5 s of silence.
    vs = open_virtual_session(TUTORIAL, partial_transcripts=False)
    vs.session.speculative_lead_s = 3.0
    started: list[tuple[float, bool]] = []
    vs.on_job_started = lambda t, job: started.append((t, job.speculative)) if isinstance(job, TranscribeJob) else None
    vs.start()
    run = Run(vs)
    run.say(QUESTION)
    run.stream_until(25, stop=lambda ev: ev["type"] == "response.audio_transcript.done")
    [(t, speculative)] = started
    done = run.first("response.audio_transcript.done")
    assert speculative and done.t - t == pytest.approx(3.0, abs=0.03)


def test_a_pause_shorter_than_the_end_of_turn_less_the_lead_costs_no_decode():
    # A 1.2 s pause mid-turn: the turn would end 2.3 s later at the earliest, so
    # nothing is decoded then; the turn's end finds its one speculative decode done.
    pieces = (silence(0.3), words_only(STOCKS, STOCKS_META), silence(1.2), words_only(RATES, RATES_META))
    off, off_finals = speak(*pieces, speculative=False)
    on, on_finals = speak(*pieces, speculative=True)
    [end], [spec] = off_finals, on_finals
    assert spec.speculative and spec.pcm == end.pcm
    text = on.first("response.audio_transcript.done").event["text"]
    assert text == off.first("response.audio_transcript.done").event["text"]
    assert "market drop" in text.lower() and "interest rates" in text.lower()
    assert [n["action"] for n in notes(on)] == ["start", "use"]


@pytest.mark.parametrize("transcribe_final_s", [0.15, 2.0])
def test_speech_resuming_after_the_speculative_decode_drops_it_and_the_whole_turn_is_decoded(transcribe_final_s: float):
    # A 3 s pause mid-turn (under the 3.5 s end of turn, over it less the 1 s lead):
    # the first part is decoded speculatively, then the user goes on; the final
    # covers both parts. With a 2 s recogniser the speech resumes while that
    # decode runs: its result, when it comes, is ignored.
    pieces = (silence(0.3), words_only(STOCKS, STOCKS_META), silence(3.0), words_only(RATES, RATES_META))
    latency = JobLatency(transcribe_final_s=transcribe_final_s)
    off, off_finals = speak(*pieces, speculative=False, latency=latency)
    on, on_finals = speak(*pieces, speculative=True, latency=latency)
    [end] = off_finals
    first, whole = on_finals
    assert first.speculative and whole.speculative
    assert end.pcm.startswith(first.pcm) and len(first.pcm) < len(end.pcm)
    assert whole.pcm == end.pcm  # the second pause's speculative decode is the final
    text = on.first("response.audio_transcript.done").event["text"]
    assert text == off.first("response.audio_transcript.done").event["text"]
    assert "market drop" in text.lower() and "interest rates" in text.lower()
    assert len(on.all("response.audio_transcript.done")) == 1
    counters = on.vs.session.counters
    assert (counters["speculative_used"], counters["speculative_wasted"]) == (1, 1)
    assert [(n["action"], n.get("reason")) for n in notes(on)] == [
        ("start", None), ("drop", "speech resumed"), ("start", None), ("use", None)
    ]


def test_a_speculative_decode_still_running_at_the_turns_end_is_the_final():
    # A recogniser slower than the rest of the end-of-turn silence (5 s > 1 s):
    # the turn's end waits for the decode under way; it does not start another.
    slow = JobLatency(transcribe_final_s=5.0)
    off, off_finals = speak(QUESTION, speculative=False, latency=slow)
    on, on_finals = speak(QUESTION, speculative=True, latency=slow)
    [end], [spec] = off_finals, on_finals
    assert spec.speculative and spec.pcm == end.pcm
    done_off, done_on = off.first("response.audio_transcript.done"), on.first("response.audio_transcript.done")
    assert done_on.event["text"] == done_off.event["text"]
    assert done_on.t == pytest.approx(spec.t + 5.0) and done_off.t == pytest.approx(end.t + 5.0)
    assert done_off.t - done_on.t == pytest.approx(end.t - spec.t)
    assert [(n["action"], n.get("running")) for n in notes(on)] == [("start", None), ("use", True)]


def test_no_speculation_while_the_recogniser_is_backed_up_or_when_turned_off():
    # The driver says decodes are backed up (the server: another decode in flight):
    # a speculative decode would queue in front of someone's final. Only the final runs.
    _, busy = speak(QUESTION, speculative=True, busy=True)
    _, off = speak(QUESTION, speculative=False)
    assert [d.speculative for d in busy] == [False] and busy[0].t == off[0].t


def test_a_streaming_recogniser_is_not_decoded_speculatively():
    # PocketSphinx keeps a decoder per utterance and ends it on the final call:
    # a decode ahead of the turn's end would not be the same decode.
    config = load_project_config(
        (FIX / "configs/bargein_flow_superagent_realtime.yaml").read_text().replace(
            "  asr:\n", "  asr:\n    engine: pocketsphinx\n", 1)
    ).config
    assert config.audio_config.asr.engine == "pocketsphinx"
    run, finals = speak(QUESTION, speculative=True, config=config)
    assert [d.speculative for d in finals] == [False]
    assert run.first("response.audio_transcript.done") is not None


@pytest.mark.parametrize("transcribe_final_s", [0.15, 2.5])
def test_adjacent_turns_keep_their_order_with_one_decode_each(transcribe_final_s: float):
    # 700 ms end of turn, 1.5 s between the questions: each turn is decoded
    # speculatively once; with a 2.5 s recogniser the first is still running
    # when the second turn ends, and the transcripts still go out in order.
    _, stocks_end = speech_span(STOCKS_META)
    gold_onset, _ = speech_span(GOLD_META)
    pieces = (silence(0.5), STOCKS[: int(stocks_end * RATE)], silence(1.5 - gold_onset), GOLD)
    latency = JobLatency(transcribe_final_s=transcribe_final_s)
    off, off_finals = speak(*pieces, speculative=False, config=SHORT_EOT, latency=latency, to_the_end=True)
    on, on_finals = speak(*pieces, speculative=True, config=SHORT_EOT, latency=latency, to_the_end=True)
    assert [d.speculative for d in on_finals] == [True, True]
    assert [d.pcm for d in on_finals] == [d.pcm for d in off_finals]
    texts = [e.event["text"] for e in on.all("response.audio_transcript.done")]
    assert texts == [e.event["text"] for e in off.all("response.audio_transcript.done")]
    assert "market drop" in texts[0].lower() and "gold" in texts[1].lower()
    counters = on.vs.session.counters
    assert (counters["speculative_used"], counters["speculative_wasted"]) == (2, 0)


def test_a_barge_in_turn_is_decoded_speculatively_too():
    # The interrupting utterance starts from the barge-in's audio; its final is
    # decoded during its end-of-turn silence like any other turn's.
    runs = {}
    for speculative in (False, True):
        vs = open_virtual_session(TUTORIAL, partial_transcripts=False, speculative_finals=speculative)
        vs.start()
        run = Run(vs)
        run.ask_then_interrupt()
        run.stream_until(30, stop=lambda ev: ev["type"] == "response.audio_transcript.done" and "bonds" in ev["text"].lower())
        runs[speculative] = run
    off, on = runs[False], runs[True]
    assert on.first("response.interrupted") is not None
    texts = [[e.event["text"] for e in r.all("response.audio_transcript.done")] for r in (off, on)]
    assert texts[0] == texts[1] and len(texts[1]) == 2
    # The client speaks relative to the answer's audio, which comes earlier too:
    # time the interrupting turn's transcript from the interrupt.
    after = [r.all("response.audio_transcript.done")[-1].t - r.first("response.interrupted").t for r in (off, on)]
    assert after[1] == pytest.approx(after[0] - LATENCY.transcribe_final_s)
    assert on.vs.session.counters["speculative_used"] == 2
