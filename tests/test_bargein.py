"""The barge-in rules of spec/config-and-bargein.md, on a virtual clock.

Frame k (k = 1, 2, ...) of 30 ms ends at t_k = k * 0.030 s. Firing frames are
derived from the rules in the comments and asserted exactly.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import numpy as np
import pytest

from server.bargein import BargeIn, BargeInConfigError, BargeInDetector, BargeInSettings, PlaybackTimeline

RATE = 16000
TUTORIAL = BargeInSettings(frame_ms=30, threshold=15, window_size=24, lockout_seconds=0.5, grace_period_seconds=1.0, silero_min_samples_seconds=1.0)
DEFAULTS = BargeInSettings()  # 30 ms, 30/48, lockout 1.0, grace 3.0, silero min 1.5


def t_of(k: int, frame_ms: int = 30) -> float:
    return k * frame_ms / 1000


def frame(k: int, frame_ms: int = 30) -> bytes:
    """A frame whose every sample is k (so audio slices can be checked exactly)."""
    n = RATE * frame_ms // 1000
    return struct.pack(f"<{n}h", *([k % 32000] * n))


def feed_frames(det: BargeInDetector, speech: Callable[[int], bool], first: int, last: int) -> list[tuple[int, BargeIn]]:
    hits = []
    for k in range(first, last + 1):
        hit = det.feed(t_of(k, det.settings.frame_ms), frame(k, det.settings.frame_ms), speech(k))
        if hit is not None:
            hits.append((k, hit))
    return hits


def first_fire_frame(settings: BargeInSettings, speech: Callable[[int], bool], lockout_end: float, last: int) -> int | None:
    """The rules, restated: first k with t_k >= lockout_end and >= threshold speech in the last window_size frames."""
    for k in range(1, last + 1):
        window = range(max(1, k - settings.window_size + 1), k + 1)
        if sum(speech(j) for j in window) >= settings.threshold and t_of(k) >= lockout_end - 1e-9:
            return k
    return None


def responding(settings: BargeInSettings, audio_s: float = 10.0, started_at: float | None = None) -> BargeInDetector:
    det = BargeInDetector(settings, None, RATE)
    det.new_response()
    det.on_audio_sent(0.0, audio_s, last=True)
    if started_at is not None:
        det.on_playback_started(started_at)
    return det


# ---------------------------------------------------------------- firing frame


def test_tutorial_fires_at_the_frame_the_window_reaches_threshold() -> None:
    # playback.started at 0.1 -> lockout ends 0.6. Speech from frame 30 (t 0.90):
    # 15 speech frames at frame 44 (t 1.32), after the lockout -> fires at 44.
    det = responding(TUTORIAL, started_at=0.1)
    speech = lambda k: k >= 30
    hits = feed_frames(det, speech, 1, 100)
    assert [k for k, _ in hits] == [44] == [first_fire_frame(TUTORIAL, speech, 0.6, 100)]
    assert hits[0][1].t == pytest.approx(1.32)


def test_speech_started_in_lockout_fires_at_first_frame_after_lockout() -> None:
    # Speech from frame 1; the count reaches 15 at frame 15 (t 0.45) inside the
    # lockout (ends 0.1 + 0.5 = 0.6); first frame with t >= 0.6 is frame 20.
    det = responding(TUTORIAL, started_at=0.1)
    hits = feed_frames(det, lambda k: True, 1, 60)
    assert [k for k, _ in hits] == [20]
    assert hits[0][1].speech_frames == 20


def test_never_fires_inside_lockout_even_with_a_full_window() -> None:
    det = responding(DEFAULTS)  # no playback events: lockout from the first delta, ends 1.0
    for k in range(1, 34):  # t 0.03 .. 0.99
        assert det.feed(t_of(k), frame(k), True) is None
    assert det.speech_in_window == 33 >= DEFAULTS.threshold
    hit = det.feed(t_of(34), frame(34), True)  # t 1.02: first frame at/after 1.0
    assert hit is not None and hit.t == pytest.approx(1.02)


def test_window_not_full_enough_at_lockout_end_fires_later() -> None:
    # Defaults, lockout ends 1.0 (frame 34). Speech on 2 frames of 3 from frame 1:
    # the last 48 frames hold 32 speech frames >= 30 once k >= 45; derive exactly.
    speech = lambda k: k % 3 != 0
    expected = first_fire_frame(DEFAULTS, speech, 1.0, 200)
    assert expected is not None and t_of(expected) > 1.0
    det = responding(DEFAULTS)
    assert [k for k, _ in feed_frames(det, speech, 1, 200)] == [expected]


def test_threshold_equal_to_window_size() -> None:
    s = BargeInSettings(frame_ms=30, threshold=24, window_size=24, lockout_seconds=0.0, grace_period_seconds=1.0)
    # One non-speech frame at 30 keeps the window below 24 until frame 54.
    speech = lambda k: k >= 10 and k != 30
    det = responding(s)
    assert [k for k, _ in feed_frames(det, speech, 1, 100)] == [54] == [first_fire_frame(s, speech, 0.0, 100)]


def test_fires_once_per_response_then_rearms_on_new_response() -> None:
    det = responding(TUTORIAL, started_at=0.0)
    assert [k for k, _ in feed_frames(det, lambda k: True, 1, 60)] == [17]  # t 0.51 >= 0.5
    det.new_response()
    det.on_audio_sent(t_of(100), 5.0)
    # Fresh window and lockout from the new delta at 3.0: ends 3.5 = frame 117 (t 3.51).
    assert [k for k, _ in feed_frames(det, lambda k: True, 101, 160)] == [117]


# ------------------------------------------------------------------ arming


def test_flapping_playback_events_change_nothing() -> None:
    det = BargeInDetector(TUTORIAL, None, RATE)
    det.new_response()
    det.on_audio_sent(0.0, 10.0)  # audio still streaming: not the last
    det.on_playback_started(0.1)
    det.on_playback_stopped(0.2)  # buffer ran dry mid-response
    det.on_playback_started(0.4)  # refilled: not a new start
    assert det.timeline.first_started_t == 0.1 and det.timeline.lockout_end() == pytest.approx(0.6)
    assert det.armed(0.5)
    assert [k for k, _ in feed_frames(det, lambda k: True, 1, 60)] == [20]


def test_playback_stopped_after_last_audio_disarms() -> None:
    det = BargeInDetector(TUTORIAL, None, RATE)
    det.new_response()
    det.on_audio_sent(0.0, 1.0)
    det.on_playback_started(0.05)
    det.on_playback_stopped(0.5)  # mid-response: ignored
    det.on_audio_sent(0.1, 1.0, last=True)
    assert det.armed(1.0)
    det.on_playback_stopped(2.06)
    assert not det.armed(2.07)
    # Speech from 2.1 on never fires although the grace deadline (3.05 + 1.0) is later.
    assert feed_frames(det, lambda k: True, 70, 200) == []


def test_grace_deadline_from_deltas_alone() -> None:
    det = BargeInDetector(TUTORIAL, None, RATE)
    det.new_response()
    det.on_audio_sent(0.0, 1.0)
    det.on_audio_sent(0.2, 1.0, last=True)  # sent ahead of real time
    # No playback events: estimated end = 0.0 + 2.0, deadline = 3.0.
    assert det.timeline.estimated_playback_end() == pytest.approx(2.0)
    assert det.disarm_deadline() == pytest.approx(3.0)
    assert det.armed(2.999) and not det.armed(3.0)
    # Speech from frame 87 (t 2.61): 15 frames at frame 101 (3.03) -> too late.
    assert feed_frames(det, lambda k: k >= 87, 1, 200) == []
    # Had it started at frame 86 the 15th frame is 100 (t 3.00) -> still too late;
    # at frame 85 it is frame 99 (2.97) -> fires.
    det2 = BargeInDetector(TUTORIAL, None, RATE)
    det2.new_response()
    det2.on_audio_sent(0.0, 1.0)
    det2.on_audio_sent(0.2, 1.0, last=True)
    assert [k for k, _ in feed_frames(det2, lambda k: k >= 85, 1, 200)] == [99]


def test_playback_started_sets_start_of_estimate_and_audio_end() -> None:
    tl = PlaybackTimeline(lockout_seconds=1.0, grace_period_seconds=3.0)
    tl.on_audio_sent(0.0, 2.0)
    tl.on_audio_sent(0.1, 2.0, last=True)
    tl.on_playback_started(0.5)
    tl.on_playback_started(0.9)  # repeated: ignored
    assert tl.estimated_playback_end() == pytest.approx(4.5)
    assert tl.disarm_deadline() == pytest.approx(7.5)
    assert tl.lockout_end() == pytest.approx(1.5)
    assert tl.audio_end_ms(1.7) == 1200  # since first playback.started
    assert tl.audio_end_ms(60.0) == 4000  # capped by audio sent


def test_audio_end_ms_leaves_out_stalls_the_client_reported() -> None:
    tl = PlaybackTimeline(lockout_seconds=1.0, grace_period_seconds=3.0)
    tl.new_response()
    tl.on_audio_sent(0.5, 2.0)
    tl.on_playback_started(0.5)
    tl.on_playback_stopped(2.5)  # buffer ran dry after 2 s of audio
    assert tl.audio_end_ms(3.0) == 2000  # nothing played while stalled
    tl.on_audio_sent(3.2, 2.0)
    tl.on_playback_started(3.25)
    assert tl.audio_end_ms(4.25) == 3000  # 2 s before the stall + 1 s after it
    assert tl.armed(4.25)  # a stall mid-response does not disarm


def test_late_playback_started_does_not_restart_an_elapsed_lockout() -> None:
    tl = PlaybackTimeline(lockout_seconds=1.0, grace_period_seconds=3.0)
    tl.on_audio_sent(0.0, 5.0)
    assert tl.lockout_over(1.0)
    tl.on_playback_started(1.5)
    assert tl.lockout_over(1.6)
    assert tl.estimated_playback_end() == pytest.approx(6.5)


def test_estimate_adds_waits_when_synthesis_falls_behind() -> None:
    tl = PlaybackTimeline(lockout_seconds=1.0, grace_period_seconds=1.0)
    tl.on_audio_sent(0.0, 1.0)
    tl.on_audio_sent(4.0, 1.0, last=True)  # buffer ran dry at 1.0, resumes at 4.0
    assert tl.estimated_playback_end() == pytest.approx(5.0)  # not 0.0 + 2.0
    assert tl.disarm_deadline() == pytest.approx(6.0)
    assert tl.armed(5.5) and not tl.armed(6.0)


def test_not_armed_before_any_response_audio() -> None:
    det = BargeInDetector(TUTORIAL, None, RATE)
    assert not det.armed(0.0)
    det.on_playback_started(0.0)  # no response open: ignored
    assert feed_frames(det, lambda k: True, 1, 100) == []
    det.new_response()
    assert not det.armed(3.1)


def test_ring_is_cleared_while_disarmed() -> None:
    det = BargeInDetector(TUTORIAL, None, RATE)
    det.new_response()
    det.on_audio_sent(0.0, 0.2)  # estimated end 0.2, deadline 1.2; lockout ends 0.5
    speech = lambda k: k >= 27
    assert feed_frames(det, speech, 1, 39) == []  # 13 speech frames (27..39), below 15
    assert det.speech_in_window == 13
    assert det.feed(t_of(40), frame(40), True) is None  # t 1.2: disarmed -> ring cleared
    assert det.speech_in_window == 0
    # More audio of the same response re-arms (playback resumes at 1.2: deadline 7.2);
    # the lockout is not restarted; the window starts empty: 15 frames 41..55.
    det.on_audio_sent(t_of(40), 5.0)
    assert det.armed(t_of(41))
    assert [k for k, _ in feed_frames(det, speech, 41, 100)] == [55]


# -------------------------------------------------------------- decision content


def test_onset_audio_and_audio_end_ms() -> None:
    s = BargeInSettings(
        frame_ms=30, threshold=15, window_size=24, lockout_seconds=0.5, grace_period_seconds=1.0, prefix_padding_ms=300
    )
    det = BargeInDetector(s, None, RATE)
    feed_frames(det, lambda k: False, 1, 50)  # input before the response
    det.new_response()
    det.on_audio_sent(t_of(50), 10.0)
    det.on_playback_started(t_of(52))
    # A click at 63, then speech from 70 (starts at t_of(69) = 2.07) with one dropout at 75.
    speech = lambda k: k == 63 or (k >= 70 and k != 75)
    hits = feed_frames(det, speech, 51, 200)
    # Window 61..84 holds the click + 14 frames of 70..84 = 15; lockout ended at 2.06.
    assert [k for k, _ in hits] == [84] == [first_fire_frame(s, speech, t_of(52) + 0.5, 200)]
    hit = hits[0][1]
    # The click is a 1-frame run (< 90 ms); the onset is the run 70..74.
    assert hit.onset_t == pytest.approx(t_of(69))
    assert hit.audio_start_t == pytest.approx(t_of(59))  # onset - 300 ms
    samples = np.frombuffer(hit.audio, dtype="<i2")
    per_frame = RATE * 30 // 1000
    assert samples.size == (84 - 59) * per_frame
    assert samples[0] == 60 and samples[-1] == 84  # frames 60..84
    assert hit.audio_end_ms == round((t_of(84) - t_of(52)) * 1000)


def test_onset_reaches_back_over_a_pause_that_left_the_window() -> None:
    # "Stop," (frames 60..73), a 0.36 s pause (74..85), then "tell me about bonds" (86..).
    s = TUTORIAL
    det = responding(s, audio_s=20.0, started_at=0.0)
    speech = lambda k: 60 <= k <= 73 or k >= 86
    hits = feed_frames(det, speech, 1, 200)
    fired = hits[0][0]
    assert fired == first_fire_frame(s, speech, 0.5, 200)
    assert fired - s.window_size + 1 > 73  # "Stop" has left the window when it fires
    hit = hits[0][1]
    assert hit.onset_t == pytest.approx(t_of(59))  # ...but the onset is still where "Stop" starts
    samples = np.frombuffer(hit.audio, dtype="<i2")
    assert samples[0] == 50  # from 300 ms (10 frames) before the onset


def test_onset_does_not_reach_back_over_a_long_gap() -> None:
    s = TUTORIAL
    det = responding(s, audio_s=20.0, started_at=0.0)
    speech = lambda k: 30 <= k <= 35 or k >= 60  # 0.72 s of silence before the real speech
    hit = feed_frames(det, speech, 1, 200)[0][1]
    assert hit.onset_t == pytest.approx(t_of(59))


class _Confirmer:
    name = "scripted"

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.lengths: list[int] = []

    def has_speech(self, pcm: bytes, sample_rate: int) -> bool:
        self.lengths.append(len(pcm))
        return self.answers.pop(0)

    def speech_probabilities(self, pcm: bytes, sample_rate: int) -> list[float]:
        raise NotImplementedError


def test_dropped_candidate_clears_the_ring() -> None:
    confirmer = _Confirmer([False, True])
    det = BargeInDetector(TUTORIAL, confirmer, RATE)
    feed_frames(det, lambda k: False, 1, 60)
    det.new_response()
    det.on_audio_sent(t_of(60), 10.0)
    det.on_playback_started(t_of(60))
    hits = feed_frames(det, lambda k: True, 61, 200)
    # Candidate at 77 (t 2.31 >= 1.8 + 0.5 and 17 speech frames) -> dropped, ring empty;
    # 15 more frames -> candidate at 92 -> confirmed.
    assert det.stats.drop_times == [pytest.approx(t_of(77))]
    assert [k for k, _ in hits] == [92] and hits[0][1].confirmed_by == "scripted"
    # Confirmation looked at max(24 x 30 ms, 1.0 s) = 1.0 s of input.
    assert confirmer.lengths == [2 * RATE] * 2
    assert det.stats.candidates == 2 and det.stats.dropped == 1 and det.stats.fired == 1


def test_settings_validation_names_the_field() -> None:
    with pytest.raises(BargeInConfigError, match="threshold"):
        BargeInSettings(threshold=49, window_size=48)
    with pytest.raises(BargeInConfigError, match="frame_ms"):
        BargeInSettings(frame_ms=25)
    with pytest.raises(BargeInConfigError, match="lockout_seconds"):
        BargeInSettings(lockout_seconds=-1)
    det = BargeInDetector(TUTORIAL, None, RATE)
    with pytest.raises(ValueError, match="960 bytes"):
        det.feed(0.0, b"\0" * 100, True)


def test_from_config_reads_vad_and_asr_fields() -> None:
    class Vad:
        frame_ms, threshold, window_size = 20, 10, 20
        lockout_seconds, grace_period_seconds, silero_min_samples_seconds = 0.5, 1.0, 1.0

    class Asr:
        prefix_padding_ms = 200

    s = BargeInSettings.from_config(Vad(), Asr())
    assert (s.frame_ms, s.threshold, s.window_size, s.prefix_padding_ms) == (20, 10, 20, 200)
    assert s.confirm_window_s == pytest.approx(1.0)
    assert math.isclose(BargeInSettings().confirm_window_s, 1.5)


class _EchoBefore:
    """Frames ending before ``t0`` are echo only."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def near_end(self, frames: list[tuple[float, bytes]]) -> bytes:
        return b"".join(pcm for t, pcm in frames if t >= self.t0)


def test_confirmation_hears_only_frames_echo_does_not_explain() -> None:
    confirmer = _Confirmer([True])
    det = BargeInDetector(TUTORIAL, confirmer, RATE, echo=_EchoBefore(t_of(70)))
    det.new_response()
    det.on_audio_sent(t_of(0), 10.0)
    det.on_playback_started(t_of(0))
    hits = feed_frames(det, lambda k: k >= 60, 1, 200)
    assert [k for k, _ in hits] == [74]
    # The 1.0 s window ends at frame 74; frames 70..74 (5 x 30 ms) are near end.
    assert confirmer.lengths == [5 * 960]
