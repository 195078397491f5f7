"""Unit tests of the simulator's pure parts: speaker, echo, client, scenarios, metrics."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from server.protocol import AudioAppend, PlaybackStarted, PlaybackStopped, Pong, ResponseCancel, TextInput
from simulator.audio import Clip
from simulator.client import LogEntry, PlacedUtterance, ResponseTrack, SimClient
from simulator.echo import EchoPath, EchoSettings, Microphone, NoiseSettings, NoiseSource, db_to_gain, room_impulse_response
from simulator.floor import ArmedSpan, FrameLabels, as_runs, first_fire, labels_from_spans, reference_labels
from simulator.metrics import PlayedSegment, RunRecord, VadParams, check_expectations, compute_metrics
from simulator.scenario import Expect, ScenarioError, load_scenario, scenario_from_dict
from simulator.speaker import Speaker

SR = 16000


# -- speaker ------------------------------------------------------------------


def test_speaker_starts_at_next_block_and_queues_back_to_back() -> None:
    spk = Speaker(block=480)
    a = spk.enqueue(100, np.ones(1000, dtype=np.float32), "r1")
    b = spk.enqueue(900, np.full(500, 0.5, dtype=np.float32), "r1")
    assert (a.start, a.end) == (480, 1480)
    assert (b.start, b.end) == (1480, 1980)  # arrived while playing: appended
    assert not spk.is_playing(479) and spk.is_playing(480) and spk.is_playing(1979) and not spk.is_playing(1980)
    out = spk.render(470, 1490)
    assert out[:10].sum() == 0 and out[10] == 1.0 and out[-1] == 0.5


def test_speaker_gap_restarts_on_block_and_stop_cuts_exactly() -> None:
    spk = Speaker(block=480)
    spk.enqueue(0, np.ones(480, dtype=np.float32), "r1")
    late = spk.enqueue(1000, np.ones(2000, dtype=np.float32), "r2")
    assert late.start == 1440  # idle at 1000: waits for the block boundary
    assert spk.intervals() == [(0, 480), (1440, 3440)]
    dropped = spk.stop(2000)
    assert dropped == 1440
    assert spk.queue_end == 2000
    assert spk.played("r2", 10_000) == 560
    assert spk.played("r1", 240) == 240
    assert spk.played_between(0, 10_000) == 480 + 560


# -- echo ---------------------------------------------------------------------


def test_echo_delay_gain_and_erle_at_exact_samples() -> None:
    spk = Speaker()
    impulse = np.zeros(100, dtype=np.float32)
    impulse[0] = 1.0
    spk.enqueue(1000, impulse)
    path = EchoPath(EchoSettings(delay_ms=40, gain=0.5, aec_erle_db=30), SR)
    assert path.delay == 640
    echo = path.residual(spk, 0, 4000)
    assert np.argmax(np.abs(echo)) == 1640
    assert echo[1640] == pytest.approx(0.5 * 10 ** (-30 / 20), rel=1e-6)
    assert np.count_nonzero(echo) == 1
    raw = path.raw(spk, 0, 4000)
    assert raw[1640] == pytest.approx(0.5)
    no_aec = EchoPath(EchoSettings(aec_erle_db=None), SR)
    assert no_aec.residual(spk, 1640, 1641)[0] == pytest.approx(0.5)


def test_echo_in_chunks_equals_echo_at_once_with_room() -> None:
    spk = Speaker()
    rng = np.random.default_rng(0)
    spk.enqueue(0, rng.standard_normal(8000).astype(np.float32) * 0.1)
    path = EchoPath(EchoSettings(delay_ms=10, gain=0.7, aec_erle_db=20, room_rt60_ms=50), SR)
    whole = path.residual(spk, 0, 9600)
    parts = np.concatenate([path.residual(spk, a, a + 480) for a in range(0, 9600, 480)])
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    h = room_impulse_response(50, SR)
    assert h[0] == 1.0 and len(h) == 800
    assert np.sum(h[1:80] ** 2) > np.sum(h[-80:] ** 2) * 10  # the tail decays


def test_noise_level_matches_dbfs() -> None:
    src = NoiseSource(NoiseSettings(db=-40.0), SR)
    x = src.chunk(0, 5 * SR).astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(x**2))) == pytest.approx(-40.0, abs=0.5)
    np.testing.assert_array_equal(src.chunk(100, 200), src.chunk(100, 200))
    assert not NoiseSource(NoiseSettings(db=None), SR).chunk(0, 10).any()
    assert db_to_gain(-20) == pytest.approx(0.1)


def test_microphone_refuses_speech_in_the_past() -> None:
    mic = Microphone(EchoPath(EchoSettings(gain=0.0), SR), NoiseSource(NoiseSettings(), SR))
    mic.place(100, np.ones(50, dtype=np.float32))
    chunk = mic.mix(Speaker(), 480)
    assert chunk.user[100] == 1.0 and chunk.user[99] == 0.0 and chunk.user[150] == 0.0
    assert len(chunk.pcm16()) == 960
    with pytest.raises(ValueError, match="already produced"):
        mic.place(10, np.ones(5, dtype=np.float32))


# -- client -------------------------------------------------------------------


def _clip(seconds: float = 1.0, onset: float = 0.1, offset: float = 0.9) -> Clip:
    t = np.arange(int(seconds * SR)) / SR
    return Clip(Path("tone.wav"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), "hello", ((onset, offset),), ("hello",))


def _client(extra: dict | None = None, **kw) -> SimClient:
    data = {
        "name": "unit",
        "utterances": [{"wav": "tone.wav", "after": "playback.started", "delay_s": 0.5}],
        "echo": {"gain": 0.0},
        **(extra or {}),
    }
    return SimClient(scenario_from_dict(data), clips={"tone.wav": _clip()}, **kw)


def _delta(rid: str, seconds: float, role: str = "A") -> dict:
    pcm = (np.full(int(seconds * SR), 1000, dtype="<i2")).tobytes()
    b64 = base64.b64encode(pcm).decode()
    return {"type": "response.audio.delta", "response_id": rid, "role": role, "audio": b64, "delta": b64}


def test_client_reports_playback_and_places_anchored_speech() -> None:
    c = _client()
    c.on_event(0.0, {"type": "session.created", "session": {}, "capabilities": {"vad_enabled": True}})
    assert c.vad_enabled is True
    c.on_event(0.1, {"type": "response.created", "response_id": "r1"})
    c.on_event(0.1, _delta("r1", 0.5))
    assert c.control(0.09) == []
    assert c.control(0.12) == [PlaybackStarted()]  # 0.1 s arrival -> next 30 ms block
    assert c.control(0.12) == []
    assert [(p.start_s, p.onset_s) for p in c.placed] == [(pytest.approx(0.62), pytest.approx(0.72))]
    assert c.control(0.63) == [PlaybackStopped()]  # drained at 0.62, seen at the next tick
    msg = c.mic_chunk(0.03)
    assert isinstance(msg, AudioAppend) and len(msg.pcm) == 960


def test_client_stops_at_once_and_cancels_on_interrupt() -> None:
    c = _client()
    c.on_event(0.0, {"type": "session.created", "capabilities": {"vad_enabled": True}})
    c.on_event(0.0, _delta("r1", 2.0))
    c.control(0.0)
    c.on_event(0.5, {"type": "response.interrupted", "response_id": "r1", "audio_end_ms": 500})
    assert c.speaker.queue_end == int(0.5 * SR)  # stopped at the event, not at the next tick
    assert c.control(0.51) == [ResponseCancel(), PlaybackStopped()]
    c.on_event(0.52, _delta("r1", 0.2))  # a late delta of the interrupted response is never played
    assert c.speaker.queue_end == int(0.5 * SR)
    assert c.responses["r1"].deltas_after_interrupt == 1
    assert c.responses["r1"].audio_end_ms == 500
    c.on_event(0.6, {"type": "PING"})
    assert c.control(0.63) == [Pong()]


def test_client_options_and_actions() -> None:
    c = _client(
        {
            "client": {"send_playback_events": False, "cancel_on_interrupt": False},
            "actions": [{"type": "text", "text": "hi", "at": 0.05}, {"type": "cancel", "after": "response.created", "delay_s": 0.1}],
        }
    )
    assert c.control(0.03) == []
    assert c.control(0.06) == [TextInput("hi")]
    c.on_event(0.2, {"type": "response.created", "response_id": "r1"})
    c.on_event(0.2, _delta("r1", 1.0))
    assert c.control(0.21) == []  # no playback events
    assert c.control(0.3) == [ResponseCancel()]
    c.on_event(0.4, {"type": "response.interrupted", "response_id": "r1", "audio_end_ms": 170})
    assert c.control(0.42) == []  # cancel_on_interrupt: false


def test_expected_end_anchor_with_negative_delay() -> None:
    c = _client({"utterances": [{"wav": "tone.wav", "after": "playback.expected_end", "delay_s": -0.5}]})
    c.on_event(0.0, _delta("r1", 2.0))
    c.on_event(0.0, {"type": "response.audio.done", "response_id": "r1"})
    assert c.placed[0].start_s == pytest.approx(1.5)


def test_finished_waits_for_turn_silence() -> None:
    c = _client({"utterances": [{"wav": "tone.wav", "at": 0.0}], "tail_s": 0.5}, turn_silence_s=2.0)
    c.control(0.0)
    assert not c.finished(1.0)
    assert not c.finished(3.5)
    assert c.finished(3.91)  # speech ends 0.9 s, + 2.0 s silence + 1.0 s


# -- scenarios ----------------------------------------------------------------


def test_scenario_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nutterances:\n  - wav: a.wav\n    at: 1\n    after: playback.started\n")
    with pytest.raises(ScenarioError, match=r"utterances\[0\].*exactly one of `at`"):
        load_scenario(bad)
    bad.write_text("name: x\nutterances:\n  - wav: a.wav\n    after: playback.begun\n")
    with pytest.raises(ScenarioError, match="unknown event 'playback.begun'"):
        load_scenario(bad)
    bad.write_text("name: x\nechoo: {}\nactions: [{type: cancel, at: 1}]\n")
    with pytest.raises(ScenarioError, match="echoo"):
        load_scenario(bad)
    bad.write_text("name: x\nutterances:\n  - wav: missing.wav\n    at: 0\n")
    with pytest.raises(ScenarioError, match="files not found: .*missing.wav"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")


def test_scenario_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    f = tmp_path / "ok.yaml"
    f.write_text("name: ok\nutterances:\n  - wav: a.wav\n    after: playback.agent_started\n    role: Bob\n    delay_s: 1.5\n")
    sc = load_scenario(f)
    assert sc.utterances[0].wav == (tmp_path / "a.wav").resolve()
    assert sc.utterances[0].describe() == "+1.5 s after playback.agent_started#1 of Bob"
    assert sc.echo.aec_erle_db == 30 and sc.echo.delay_ms == 40 and sc.echo.gain == 0.5


# -- metrics ------------------------------------------------------------------


def _record() -> RunRecord:
    log = [
        LogEntry(0.5, "server", "response.audio.delta", "r1"),
        LogEntry(0.51, "client", "playback.started", "r1"),
        LogEntry(1.2, "server", "response.interrupted", "r0", {"audio_end_ms": 300}),
        LogEntry(2.55, "server", "response.interrupted", "r1", {"audio_end_ms": 2000}),
        LogEntry(5.0, "server", "response.done", "r2", {"status": "completed"}),
    ]
    utts = [PlacedUtterance(0, 0, "u.wav", "stop", 1.8, 2.0, 3.0, None, "at 1.8 s")]
    segs = [PlayedSegment(0.51, 2.55, "r1", "A"), PlayedSegment(3.9, 5.0, "r2", "A")]
    responses = {
        "r1": ResponseTrack("r1", created_t=0.4, first_delta_t=0.5, first_play_t=0.51, playback_started_t=0.51, interrupted_t=2.55, audio_end_ms=2000),
        "r2": ResponseTrack("r2", created_t=3.5, first_delta_t=3.8, first_play_t=3.9),
    }
    return RunRecord(log, utts, segs, responses, VadParams(15, 30, 24, 0.5, 1.0), ["stop"])


def test_metrics_from_a_hand_made_log() -> None:
    m = compute_metrics(_record())
    false_int, real = m.interrupts
    assert false_int.false and false_int.utterance is None and false_int.latency_ms is None
    assert not real.false and real.utterance == 0
    assert real.latency_ms == pytest.approx(550.0)
    # Span labels: frames 67.. (from 2.01 s) are speech; the 15th ends at 2.46 s (lockout ended at 1.01 s).
    assert real.floor_ms == pytest.approx(460.0)
    assert real.overhead_ms == pytest.approx(90.0)
    assert real.played_ms == pytest.approx(2040.0)
    assert real.truncation_error_ms == pytest.approx(-40.0)
    assert real.talk_over_ms == pytest.approx(550.0)
    assert real.audio_after_interrupt_ms == 0
    assert m.false_interrupts == 1 and m.missed_interrupts == 0
    assert m.utterances[0].expected_interrupt and m.utterances[0].voice_to_voice_ms == pytest.approx(900.0)
    assert m.statuses == ["completed"]


def test_metrics_floor_respects_lockout_and_missed_interrupts() -> None:
    rec = _record()
    rec.utterances = [PlacedUtterance(0, 0, "u.wav", "stop", 0.5, 0.52, 2.0, None, "at 0.5 s")]
    rec.log = [e for e in rec.log if e.t != 1.2]
    m = compute_metrics(rec)
    # 15 speech frames by 0.96 s, but the lockout ends at 0.51 + 0.5: the first frame ending after it is at 1.02 s.
    assert m.interrupts[0].floor_ms == pytest.approx((1.02 - 0.52) * 1000)
    rec.log = [e for e in rec.log if e.type != "response.interrupted"]
    m = compute_metrics(rec)
    assert m.missed_interrupts == 1 and m.false_interrupts == 0
    rec.vad = None  # push-to-talk: nothing is expected to interrupt
    assert compute_metrics(rec).missed_interrupts == 0


def test_expectations_pass_and_fail() -> None:
    m = compute_metrics(_record())
    checks = {c.name: c.ok for c in check_expectations(m, Expect(interrupt=True, max_latency_ms=600, transcript_contains=["STOP!"], false_interrupts=0))}
    assert checks == {"interrupt": True, "max_latency_ms": True, "transcript_contains": True, "false_interrupts": False}
    checks = {c.name: c.ok for c in check_expectations(m, Expect(interrupt=False, max_latency_ms=500, transcript_contains=["bonds"]))}
    assert checks == {"interrupt": False, "max_latency_ms": False, "transcript_contains": False}


def test_agent_anchor_counts_only_audio_that_really_plays() -> None:
    c = _client({"utterances": [{"wav": "tone.wav", "after": "playback.agent_started", "role": "B", "delay_s": 0.0}]})
    c.on_event(0.0, _delta("r1", 1.0, role="A"))
    c.on_event(0.0, _delta("r1", 1.0, role="B"))  # B would start at 1.0 s
    c.control(0.0)
    assert c.placed == []
    c.on_event(0.5, {"type": "response.interrupted", "response_id": "r1", "audio_end_ms": 500})
    c.control(1.2)
    assert c.placed == []  # B never played: the anchor never happens
    c2 = _client({"utterances": [{"wav": "tone.wav", "after": "playback.agent_started", "role": "B", "delay_s": 0.0}]})
    c2.on_event(0.0, _delta("r1", 1.0, role="A"))
    c2.on_event(0.0, _delta("r1", 1.0, role="B"))
    c2.control(0.99)
    assert c2.placed == []
    c2.control(1.02)
    assert c2.placed[0].start_s == pytest.approx(1.0)  # seen at the next tick, timed at the exact start


# -- the algorithmic floor ------------------------------------------------------


def _labels(*runs: tuple[int, int]) -> FrameLabels:
    """Labels from (value, frames) runs, e.g. (0, 10), (1, 14): 10 silent frames then 14 speech."""
    return FrameLabels(30, tuple(bool(v) for v, n in runs for _ in range(n)))


ALWAYS = ArmedSpan(0.0, float("inf"), 0.0)


def test_floor_of_continuous_speech_is_onset_plus_threshold_frames() -> None:
    labels = _labels((0, 10), (1, 40))
    t = first_fire(labels, 15, 24, ALWAYS)
    assert t == pytest.approx(0.30 + 15 * 0.030)
    assert first_fire(labels, 30, 48, ALWAYS) == pytest.approx(0.30 + 30 * 0.030)


def test_floor_with_a_pause_inside_is_later() -> None:
    # "Stop," (14 frames), a 0.36 s pause (12 frames), then "tell me about bonds".
    stop_only = _labels((0, 10), (1, 14), (0, 40))
    assert first_fire(stop_only, 15, 24, ALWAYS) is None  # 14 < 15: "Stop," alone never fires
    labels = _labels((0, 10), (1, 14), (0, 12), (1, 30))
    t = first_fire(labels, 15, 24, ALWAYS)
    # While the window still holds part of "Stop," it never reaches 15 (old frames leave as new
    # ones come); once "Stop," has left it, 15 frames of the second phrase are needed.
    assert t == pytest.approx((10 + 14 + 12 + 15) * 0.030)
    assert t > 0.30 + 15 * 0.030 + 0.36  # later than onset + threshold + the pause
    # A pause that fits the window with both parts above threshold: fires inside the second part.
    labels = _labels((0, 10), (1, 10), (0, 4), (1, 20))
    assert first_fire(labels, 15, 24, ALWAYS) == pytest.approx((10 + 10 + 4 + 5) * 0.030)


def test_floor_waits_for_the_lockout_and_the_arming() -> None:
    labels = _labels((0, 10), (1, 60))
    assert first_fire(labels, 15, 24, ArmedSpan(0.0, float("inf"), 1.02)) == pytest.approx(1.02)  # lockout end
    # Frames before the detector arms are not counted. It arms at 0.6 s; the frame ending then
    # arrives after the audio that armed it and counts, so the 15th is 14 frames later.
    assert first_fire(labels, 15, 24, ArmedSpan(0.6, float("inf"), 0.0)) == pytest.approx(0.6 + 14 * 0.030)
    # Disarmed before the window fills: never.
    assert first_fire(labels, 15, 24, ArmedSpan(0.0, 0.7, 0.0)) is None


def test_floor_of_a_later_utterance_does_not_count_an_earlier_firing() -> None:
    labels = _labels((0, 10), (1, 20), (0, 30), (1, 20))
    assert first_fire(labels, 15, 24, ALWAYS) == pytest.approx(25 * 0.030)
    second = first_fire(labels, 15, 24, ALWAYS, not_before=60 * 0.030)
    assert second == pytest.approx((60 + 15) * 0.030)
    with pytest.raises(ValueError, match="threshold"):
        first_fire(labels, 30, 24, ALWAYS)


def test_labels_from_spans_take_frames_at_least_half_inside() -> None:
    lab = labels_from_spans([(0.10, 0.20)], 10, 30)
    # frame 3 [0.09, 0.12) has 0.02 s inside, frame 6 [0.18, 0.21) only 0.02 s: both count; frame 2 not.
    assert lab.speech == (False, False, False, True, True, True, True, False, False, False)


def test_reference_labels_follow_the_clip_on_the_mic_timeline() -> None:
    from simulator.audio import load_clip

    clip = load_clip(Path(__file__).resolve().parents[1] / "fixtures" / "speech" / "backchannel_okay_joe.wav")
    assert not any(reference_labels([], SR, SR, 30).speech)
    at0 = reference_labels([(0, clip.samples)], 2 * SR, SR, 30)
    at03 = reference_labels([(int(0.3 * SR), clip.samples)], 2 * SR, SR, 30)
    assert at03.speech[10:] == at0.speech[: len(at0.speech) - 10]  # 0.3 s later = 10 frames later
    quiet = reference_labels([(0, clip.samples * 0.1)], 2 * SR, SR, 30)
    assert quiet.speech == at0.speech  # 20 dB quieter, same speech: judged against its own loudest frame
    speech_t = [at0.end_t(k) for k, s in enumerate(at0.speech) if s]
    on, off = clip.speech[0]
    # The frames agree with the sidecar's speech span to within a frame.
    assert abs((speech_t[0] - 0.03) - on) <= 0.03 and abs(speech_t[-1] - off) <= 0.03
    with pytest.raises(ValueError, match="frame_ms"):
        reference_labels([], SR, SR, 25)


def test_reference_labels_fill_short_gaps_only() -> None:
    t = np.arange(int(0.3 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    # 0.3 s tone, 60 ms gap, 0.3 s tone, 300 ms gap, 0.3 s tone.
    sig = np.concatenate([tone, np.zeros(int(0.06 * SR), np.float32), tone, np.zeros(int(0.3 * SR), np.float32), tone])
    lab = reference_labels([(0, sig)], len(sig) + SR, SR, 30)
    assert as_runs(lab.speech).strip("0") == "1" * 22 + "0" * 10 + "1" * 10


def test_should_interrupt_is_the_window_rule_on_the_users_speech() -> None:
    rec = _record()
    rec.log = [e for e in rec.log if e.type != "response.interrupted"]
    rec.responses["r1"].interrupted_t = None
    rec.responses["r1"].received_ms = 5000.0
    rec.utterances = [PlacedUtterance(0, 0, "u.wav", "okay", 2.0, 2.01, 2.40, None, "at 2 s")]  # 13 frames
    m = compute_metrics(rec)
    assert not m.utterances[0].expected_interrupt and m.missed_interrupts == 0
    assert m.utterances[0].speech_frames == 13 and m.utterances[0].floor_ms is None
    rec.utterances = [PlacedUtterance(0, 0, "u.wav", "uh-huh", 2.0, 2.01, 2.52, None, "at 2 s")]  # 17 frames
    m = compute_metrics(rec)
    assert m.utterances[0].expected_interrupt and m.missed_interrupts == 1
    assert m.utterances[0].floor_ms == pytest.approx((2.01 + 15 * 0.03 - 2.01) * 1000, abs=0.1)
    rec.vad = VadParams(30, 30, 48, 0.5, 1.0)  # the spec's default knobs: 17 frames are a backchannel
    assert not compute_metrics(rec).utterances[0].expected_interrupt


def test_overhead_expectation() -> None:
    m = compute_metrics(_record())
    checks = {c.name: c for c in check_expectations(m, Expect(max_overhead_ms=90))}
    assert checks["max_overhead_ms"].ok
    checks = {c.name: c for c in check_expectations(m, Expect(max_overhead_ms=60))}
    assert not checks["max_overhead_ms"].ok and "90" in checks["max_overhead_ms"].detail
    rec = _record()
    rec.log = [e for e in rec.log if e.type != "response.interrupted"]
    checks = {c.name: c for c in check_expectations(compute_metrics(rec), Expect(max_overhead_ms=1000))}
    assert not checks["max_overhead_ms"].ok  # nothing to measure is not a pass


def test_speed_line_sums_simulated_over_wall_time() -> None:
    from types import SimpleNamespace as NS

    from simulator.report import speed_line

    def res(name: str, sim: float, wall: float) -> NS:
        return NS(end_s=sim, wall_s=wall, speedup=sim / wall, scenario=NS(name=name))

    line = speed_line([("a", res("a", 10.0, 0.5), ""), ("b", res("b", 30.0, 0.5), ""), ("c", None, "bad")], 2.0)
    assert "40.0 s simulated in 1.0 s wall = x40.0" in line and "slowest a x20.0" in line and "2.0 s not counted" in line
    assert speed_line([]) == "speed: -"


def test_client_drops_an_undecodable_audio_delta_and_says_why() -> None:
    c = _client()
    c.on_event(0.1, {"type": "response.audio.delta", "response_id": "r1", "role": "A", "audio": "not base64!"})
    assert c.speaker.queue_end == 0 and c.responses["r1"].received_ms == 0
    (warning,) = c.warnings
    assert "r1" in warning and "not valid base64" in warning


def test_client_side_armed_estimate_ends_with_each_response() -> None:
    # A live run (no server trace): each response is armed only around its own playback,
    # not until the last response's grace period.
    from simulator.timeline import local_vad_trace
    from simulator.run import RunResult

    c = _client()
    events = {
        1: [{"type": "response.created", "response_id": "r1"}, _delta("r1", 0.5), {"type": "response.audio.done", "response_id": "r1"}],
        100: [{"type": "response.created", "response_id": "r2"}, _delta("r2", 0.5), {"type": "response.audio.done", "response_id": "r2"}],
    }
    for k in range(1, 141):
        t = k * 0.03
        for ev in events.get(k, []):
            c.on_event(t, ev)
        c.control(t)
        c.mic_chunk(t)
    vad = VadParams(15, 30, 24, 0.5, 1.0)
    result = RunResult(c.scenario, "live", Path("x.yaml"), c, vad, 4.2, trace_source="client")
    armed = {round(row[0], 2): row[3] for row in local_vad_trace(result)}
    assert armed[0.3] and armed[3.3]
    assert not armed[2.1]  # between r1's playback (ends 0.54 s) and r2's creation (3.0 s)


# -- sidecars -------------------------------------------------------------------


def _clip_with_sidecar(tmp_path: Path, sidecar: str) -> Path:
    import soundfile as sf

    wav = tmp_path / "clip.wav"
    t = np.arange(SR) / SR
    sf.write(str(wav), (0.3 * np.sin(2 * np.pi * 200 * t) * (t > 0.3)).astype(np.float32), SR)
    (tmp_path / "clip.json").write_text(sidecar)
    return wav


@pytest.mark.parametrize(
    "sidecar, says",
    [
        ('{"text": "hi", "segments": [{"start": 0.3, "end": 0.9}]}', "no `speech`"),  # another tool's format
        ('{"speech": [{"start": 0.3, "end": 0.9}]}', "unknown: ['end', 'start']"),
        ('{"speech": [[0.3, 0.9]]}', "not an object"),
        ('{"speech": [{"onset_s": "0.3", "offset_s": 0.9}]}', "must be numbers"),
        ('{"speech": [{"onset_s": 0.9, "offset_s": 0.3}]}', "empty or outside"),
        ('{"speech": [{"onset_s": 0.3, "offset_s": 8.75}]}', "empty or outside"),
        ('{"speech": [], "duration_s": 18.0}', "a sidecar of another file"),
        ('{"speech": {"onset_s": 0.3}}', "`speech` of type dict"),
        ("[1, 2]", "JSON list"),
        ("{speech: []", "cannot read it as JSON"),
    ],
)
def test_a_sidecar_it_cannot_read_is_an_error_naming_file_and_fields(tmp_path: Path, sidecar: str, says: str) -> None:
    from simulator.audio import ClipError, load_clip

    wav = _clip_with_sidecar(tmp_path, sidecar)
    with pytest.raises(ClipError) as err:
        load_clip(wav)
    message = str(err.value)
    assert str(tmp_path / "clip.json") in message and says in message
    assert "onset_s" in message and "offset_s" in message  # the expected fields


def test_a_valid_sidecar_gives_its_spans_and_extra_top_level_keys_are_fine(tmp_path: Path) -> None:
    from simulator.audio import load_clip

    wav = _clip_with_sidecar(
        tmp_path, '{"text": "hi", "kind": "x", "duration_s": 1.0, "speech": [{"onset_s": 0.3, "offset_s": 1.0, "text": "hi"}]}'
    )
    clip = load_clip(wav)
    assert clip.speech == ((0.3, 1.0),) and clip.text == "hi"


def test_cli_exits_2_on_a_sidecar_it_cannot_read(tmp_path: Path) -> None:
    import subprocess
    import sys

    wav = _clip_with_sidecar(tmp_path, '{"segments": [{"start": 0.3, "end": 0.9}]}')
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "--wav", str(wav), "--no-png", "--out", str(tmp_path / "out")],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "clip.json" in proc.stderr and "onset_s" in proc.stderr
