"""End of turn on a virtual clock (hand-labelled frames) and on real audio (fixtures + gates)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server import vad
from server.turns import SpeechStarted, TurnDetector, TurnEnded

RATE = 16000
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def t_of(k: int, frame_ms: int = 30) -> float:
    return k * frame_ms / 1000


def frame(k: int, frame_ms: int = 30) -> bytes:
    n = RATE * frame_ms // 1000
    return struct.pack(f"<{n}h", *([k % 32000] * n))


def run(det: TurnDetector, speech: Callable[[int], bool], first: int, last: int) -> list[tuple[int, SpeechStarted | TurnEnded]]:
    events = []
    for k in range(first, last + 1):
        ev = det.feed(t_of(k, det.frame_ms), frame(k, det.frame_ms), speech(k))
        if ev is not None:
            events.append((k, ev))
    return events


def samples(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2")


# ------------------------------------------------------------ virtual clock


def test_turn_ends_after_exactly_silence_duration() -> None:
    det = TurnDetector(frame_ms=30, silence_duration_ms=700, prefix_padding_ms=300, sample_rate=RATE, min_speech_ms=90)
    speech = lambda k: 21 <= k <= 50
    events = run(det, speech, 1, 200)
    # Start: 3 consecutive speech frames (90 ms) -> frame 23; onset = start of frame 21.
    # End: 700 ms = 23.3 frames -> the 24th silent frame, 50 + 24 = 74 (23 frames = 690 ms is not enough).
    assert [(k, type(ev).__name__) for k, ev in events] == [(23, "SpeechStarted"), (74, "TurnEnded")]
    started, ended = events[0][1], events[1][1]
    assert isinstance(started, SpeechStarted) and started.onset_t == pytest.approx(t_of(20))
    assert isinstance(ended, TurnEnded) and ended.reason == "silence"
    assert ended.t == pytest.approx(t_of(74)) and ended.speech_end_t == pytest.approx(t_of(50))


@pytest.mark.parametrize(("frame_ms", "silence_ms", "silent_frames"), [(20, 700, 35), (10, 700, 70), (30, 3500, 117)])
def test_silence_count_is_exact_for_other_frames_and_the_tutorials_3500_ms(frame_ms: int, silence_ms: int, silent_frames: int) -> None:
    det = TurnDetector(frame_ms=frame_ms, silence_duration_ms=silence_ms, prefix_padding_ms=0, sample_rate=RATE, min_speech_ms=frame_ms)
    events = run(det, lambda k: k == 5, 1, 400)
    assert [k for k, _ in events] == [5, 5 + silent_frames]


def test_prefix_padding_and_trailing_silence_in_turn_audio() -> None:
    det = TurnDetector(frame_ms=30, silence_duration_ms=700, prefix_padding_ms=300, sample_rate=RATE, trailing_silence_ms=300)
    events = run(det, lambda k: 21 <= k <= 50, 1, 200)
    ended = events[-1][1]
    assert isinstance(ended, TurnEnded)
    got = samples(ended.audio)
    # From onset (start of frame 21) - 300 ms = start of frame 11, to the last speech frame + 300 ms = frame 60.
    assert ended.audio_start_t == pytest.approx(t_of(10))
    assert got[0] == 11 and got[-1] == 60 and got.size == 50 * 480


def test_prefix_padding_not_a_multiple_of_the_frame() -> None:
    det = TurnDetector(frame_ms=30, silence_duration_ms=300, prefix_padding_ms=100, sample_rate=RATE)
    events = run(det, lambda k: 21 <= k <= 30, 1, 100)
    ended = events[-1][1]
    assert isinstance(ended, TurnEnded)
    assert ended.audio_start_t == pytest.approx(t_of(20) - 0.1)
    got = samples(ended.audio)
    # 100 ms = 1600 samples before frame 21: 160 samples of frame 17, then frames 18-20.
    assert (got[:160] == 17).all() and got[160] == 18 and (got[1600:2080] == 21).all()


def test_clicks_do_not_start_a_turn() -> None:
    det = TurnDetector(frame_ms=30, silence_duration_ms=700, prefix_padding_ms=300, sample_rate=RATE, min_speech_ms=90)
    clicks = {10, 30, 31, 60, 90, 91}  # 30 ms and 60 ms bursts
    assert run(det, lambda k: k in clicks, 1, 150) == []
    assert not det.in_turn and det.utterance_so_far() == b""


def test_dropouts_inside_speech_do_not_end_the_turn() -> None:
    det = TurnDetector(frame_ms=30, silence_duration_ms=300, prefix_padding_ms=0, sample_rate=RATE, min_speech_ms=90)
    speech = lambda k: 10 <= k <= 60 and k % 7 != 0  # a 30 ms dropout every 210 ms
    events = run(det, speech, 1, 200)
    assert [type(ev).__name__ for _, ev in events] == ["SpeechStarted", "TurnEnded"]
    assert events[1][0] == 60 + 10  # 300 ms after the last speech frame


def test_utterance_so_far_clear_and_begin_with() -> None:
    det = TurnDetector(frame_ms=30, silence_duration_ms=300, prefix_padding_ms=300, sample_rate=RATE)
    run(det, lambda k: k >= 20, 1, 30)
    assert det.in_turn and samples(det.utterance_so_far())[0] == 10  # 300 ms before frame 20's start
    det.clear()
    assert not det.in_turn and det.utterance_so_far() == b""
    assert run(det, lambda k: False, 31, 80) == []

    # A barge-in's audio (onset at 3.0 s, padded from 2.7 s) becomes the next turn.
    heard = frame(7) * 20  # 0.6 s
    started = det.begin_with(3.0, heard, audio_start_t=2.7)
    assert started.onset_t == 3.0 and started.t == pytest.approx(3.3)
    events = run(det, lambda k: k <= 112, 111, 200)  # frames 111.. continue at t 3.33
    ended = events[-1][1]
    assert isinstance(ended, TurnEnded) and events[-1][0] == 112 + 10
    got = samples(ended.audio)
    assert (got[: 20 * 480] == 7).all() and got[20 * 480] == 111
    assert ended.onset_t == 3.0 and ended.audio_start_t == 2.7


def test_settled_audio_is_the_turns_final_audio_once_the_trailing_silence_is_heard() -> None:
    # Trailing silence kept for ASR: 300 ms = 10 frames. The final audio is fixed
    # (the speculative final decode's input) from the 10th silent frame on.
    det = TurnDetector(frame_ms=30, silence_duration_ms=700, prefix_padding_ms=0, sample_rate=RATE, min_speech_ms=90)
    settled: dict[int, bytes | None] = {}
    ended = None
    for k in range(1, 120):
        speech = 10 <= k <= 30 or 45 <= k <= 50  # a 420 ms pause, then the last words
        ev = det.feed(t_of(k), frame(k), speech)
        settled[k] = det.settled_audio()
        assert det.settled == (settled[k] is not None)
        if k == 44:
            assert det.silence_s == pytest.approx(14 * 0.03)
        if isinstance(ev, TurnEnded):
            ended = ev
            break
    assert ended is not None and ended.reason == "silence"
    assert settled[39] is None and settled[40] == b"".join(frame(k) for k in range(10, 41))
    assert settled[44] == settled[40]  # silence adds nothing
    assert settled[45] is None  # speech resumed: the audio grows again
    assert settled[59] is None and settled[60] == ended.audio
    assert all(settled[k] == ended.audio for k in range(60, 74))
    assert det.settled_audio() is None and not det.settled  # between turns


def test_max_turn_length() -> None:
    det = TurnDetector(
        frame_ms=30, silence_duration_ms=700, prefix_padding_ms=0, sample_rate=RATE, min_speech_ms=90, max_turn_seconds=3.0
    )
    events = run(det, lambda k: True, 1, 200)
    assert [(k, type(ev).__name__) for k, ev in events][:2] == [(3, "SpeechStarted"), (100, "TurnEnded")]
    assert isinstance(events[1][1], TurnEnded) and events[1][1].reason == "max_duration"


def test_a_turn_cut_at_the_cap_goes_on_with_no_audio_lost() -> None:
    # Speech with no pause: cut at exactly 3 s each time, the next turn starting
    # with the very next sample, with no SpeechStarted and no min_speech_ms wait.
    det = TurnDetector(
        frame_ms=30, silence_duration_ms=700, prefix_padding_ms=0, sample_rate=RATE, min_speech_ms=90, max_turn_seconds=3.0
    )
    events = run(det, lambda k: True, 1, 350)
    ends = [ev for _, ev in events if isinstance(ev, TurnEnded)]
    assert [type(ev).__name__ for _, ev in events] == ["SpeechStarted"] + ["TurnEnded"] * 3
    assert all(ev.reason == "max_duration" and len(ev.audio) == 3 * RATE * 2 for ev in ends)
    assert det.in_turn
    heard = b"".join(ev.audio for ev in ends) + det.utterance_so_far()
    assert heard == b"".join(frame(k) for k in range(1, 351))
    for before, after in zip(ends, ends[1:]):
        assert after.audio_start_t == pytest.approx(before.audio_start_t + 3.0)


def test_a_cut_at_the_cap_falls_in_the_middle_of_the_longest_recent_pause() -> None:
    det = TurnDetector(
        frame_ms=30, silence_duration_ms=700, prefix_padding_ms=0, sample_rate=RATE, min_speech_ms=90, max_turn_seconds=3.0
    )
    pauses = set(range(60, 62)) | set(range(80, 85))  # 60 ms, then 150 ms of non-speech
    events = run(det, lambda k: k not in pauses, 1, 150)
    ended = events[1][1]
    assert isinstance(ended, TurnEnded) and events[1][0] == 100 and ended.reason == "max_duration"
    # Audio runs from frame 1; the 150 ms pause is frames 80-84: its middle is 81.5 frames in.
    assert len(ended.audio) == int(81.5 * 480) * 2
    assert ended.audio + det.utterance_so_far() == b"".join(frame(k) for k in range(1, 151))
    assert det.audio_start_t == pytest.approx(81.5 * 0.03)
    # The half pause the next turn starts with is too far back to cut at again.
    events = run(det, lambda k: True, 151, 300)
    assert [len(ev.audio) for _, ev in events] == [3 * RATE * 2] * 2


def test_silence_right_after_a_cut_ends_an_empty_turn() -> None:
    det = TurnDetector(
        frame_ms=30, silence_duration_ms=700, prefix_padding_ms=0, sample_rate=RATE, min_speech_ms=90, max_turn_seconds=3.0
    )
    events = run(det, lambda k: k <= 100, 1, 200)
    assert [(k, type(ev).__name__) for k, ev in events] == [(3, "SpeechStarted"), (100, "TurnEnded"), (124, "TurnEnded")]
    cut, empty = events[1][1], events[2][1]
    assert isinstance(cut, TurnEnded) and len(cut.audio) == 100 * 960
    assert isinstance(empty, TurnEnded) and empty.reason == "silence" and empty.audio == b""
    assert not det.in_turn


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="silence_duration_ms"):
        TurnDetector(silence_duration_ms=0)
    with pytest.raises(ValueError, match="prefix_padding_ms"):
        TurnDetector(prefix_padding_ms=-5)
    det = TurnDetector()
    with pytest.raises(ValueError, match="960 bytes"):
        det.feed(0.0, b"\0" * 320, True)


# ------------------------------------------------------------- real audio


def load(name: str) -> tuple[bytes, dict]:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"fixture {path} is missing (generated by scripts/; see the Makefile)", pytrace=False)
    data, rate = sf.read(path, dtype="int16")
    assert rate == RATE
    return data.astype("<i2").tobytes(), json.loads(path.with_suffix(".json").read_text())


def mix(a: bytes, b: bytes) -> bytes:
    x = np.frombuffer(a, dtype="<i2").astype(np.int32)
    y = np.resize(np.frombuffer(b, dtype="<i2"), x.size).astype(np.int32)
    return np.clip(x + y, -32768, 32767).astype("<i2").tobytes()


def turns_of(pcm: bytes, gate: vad.SpeechGate, silence_ms: int = 700) -> list[tuple[float, SpeechStarted | TurnEnded]]:
    det = TurnDetector(frame_ms=30, silence_duration_ms=silence_ms, prefix_padding_ms=300, sample_rate=RATE)
    framer = vad.Framer(RATE, 30)
    events = []
    for i in range(0, len(pcm), 960):
        for f in framer.push((i + 960) / 2 / RATE, pcm[i : i + 960]):
            ev = det.feed(f.t, f.pcm, gate.push(f.pcm))
            if ev is not None:
                events.append((f.t, ev))
    return events


@pytest.mark.parametrize("gate_name", ["silero", "webrtc+energy"])
@pytest.mark.parametrize("noise_name", ["white_-45dBFS", "pink_-45dBFS", "room_tone_-55dBFS"])
def test_noise_floor_does_not_keep_a_turn_open(gate_name: str, noise_name: str) -> None:
    speech, meta = load("speech/question_diversify_joe.wav")
    noise, _ = load(f"noise/{noise_name}.wav")
    lead = 1.0
    stream = mix(noise[: int(lead * RATE) * 2] + speech + noise + noise, noise)  # noise all along
    events = turns_of(stream, vad.get_speech_gate(gate_name, sample_rate=RATE))
    kinds = [type(ev).__name__ for _, ev in events]
    assert kinds == ["SpeechStarted", "TurnEnded"], events
    seg = meta["speech"][0]
    onset, offset = lead + seg["onset_s"], lead + seg["offset_s"]
    start_ev, end_ev = events[0][1], events[1][1]
    assert abs(start_ev.onset_t - onset) < 0.15
    # Ends 700 ms after the speech, give or take the gate's lag and the word-final
    # decay (webrtc+energy loses ~0.2 s of soft ending under -45 dBFS noise) ...
    assert offset + 0.7 - 0.3 <= events[1][0] <= offset + 0.7 + 0.3
    # ... which the kept trailing silence (300 ms) still covers.
    assert isinstance(end_ev, TurnEnded) and end_ev.audio_start_t == pytest.approx(start_ev.onset_t - 0.3)
    assert end_ev.audio_start_t + len(end_ev.audio) / 2 / RATE >= offset


def test_interrupt_session_recording_turns() -> None:
    pcm, meta = load("interrupt.wav")
    events = turns_of(pcm, vad.get_speech_gate("silero", sample_rate=RATE))
    ends = [t for t, ev in events if isinstance(ev, TurnEnded)]
    labelled = [seg["offset_s"] + 0.7 for seg in meta["speech"]]
    assert len(ends) == len(labelled)
    for got, want in zip(ends, labelled):
        assert want - 0.15 <= got <= want + 0.3


def uneven_t(k: int) -> float:
    """Frame times as a burst, a late chunk and jitter leave them: squeezed, then a jump."""
    if k <= 15:
        return 0.2 + 0.005 * k  # a burst: frames 1..15 stamped 5 ms apart
    return t_of(k) + (0.013 if k >= 18 else 0.0)  # a 13 ms jump between 17 and 18


@pytest.mark.parametrize("padding_ms", [300, 100])
def test_turn_audio_depends_on_the_frames_not_their_times(padding_ms: int) -> None:
    """Issue 10: the audio given to ASR is counted in frames from the onset, so
    frame times squeezed by a burst or spread by a late chunk change nothing."""
    speech = lambda k: 21 <= k <= 50
    exact = TurnDetector(frame_ms=30, silence_duration_ms=700, prefix_padding_ms=padding_ms, sample_rate=RATE)
    uneven = TurnDetector(frame_ms=30, silence_duration_ms=700, prefix_padding_ms=padding_ms, sample_rate=RATE)
    want = [ev for k in range(1, 120) if (ev := exact.feed(t_of(k), frame(k), speech(k)))]
    got = [ev for k in range(1, 120) if (ev := uneven.feed(uneven_t(k), frame(k), speech(k)))]
    assert [type(e) for e in got] == [type(e) for e in want] == [SpeechStarted, TurnEnded]
    assert got[1].audio == want[1].audio
    # Times: the onset is the onset frame's start; the padding is audio before it.
    assert got[1].onset_t == pytest.approx(uneven_t(21) - 0.03)
    assert got[1].audio_start_t == pytest.approx(got[1].onset_t - padding_ms / 1000)
def test_the_default_onset_ignores_runs_of_speech_frames_shorter_than_a_word() -> None:
    # 7 frames (210 ms) of consecutive speech start a turn; the loudest syllable of a TV
    # across the room or the onset of a hum (up to ~190 ms, docs/bargein.md) do not.
    det = TurnDetector(frame_ms=30, silence_duration_ms=300, prefix_padding_ms=0, sample_rate=RATE)
    assert run(det, lambda k: 10 <= k <= 15, 1, 40) == []  # 180 ms
    events = run(det, lambda k: 50 <= k <= 56, 41, 80)  # 210 ms
    assert [(k, type(ev).__name__) for k, ev in events][:1] == [(56, "SpeechStarted")]
    assert events[0][1].onset_t == pytest.approx(t_of(49))
