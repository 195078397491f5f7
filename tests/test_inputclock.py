"""server/inputclock.py: the input audio's own clock (issue 10)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.inputclock import MIN_RATE, WINDOW_S, InputClock

RATE = 16000
FRAME = 480  # 30 ms


def stamps_of(clock: InputClock, arrival_t: float, n_samples: int) -> list[float]:
    """Add a chunk and stamp the end of each whole 30 ms frame it completes."""
    before = round(clock.position_s * RATE)
    clock.add_chunk(arrival_t, n_samples)
    first = -(-(before + 1) // FRAME) * FRAME
    return [clock.stamp(p / RATE) for p in range(first, before + n_samples + 1, FRAME)]


def test_paced_input_is_stamped_at_capture_plus_the_constant_delay() -> None:
    clock = InputClock(RATE)
    stamps = []
    for k in range(200):  # 300 ms chunks, each arriving 40 ms after its last sample was captured
        stamps += stamps_of(clock, 0.3 * (k + 1) + 0.04, 4800)
    assert stamps == pytest.approx([0.03 * (i + 1) + 0.04 for i in range(2000)], abs=1e-9)


def test_a_start_up_burst_then_real_time_maps_onto_arrival() -> None:
    clock = InputClock(RATE)
    burst = [s for _ in range(160) for s in stamps_of(clock, 0.0, FRAME)]  # 4.8 s at once at t = 0
    assert burst[0] == pytest.approx(0.0) and all(s == 0.0 for s in burst[1:])  # no later than it arrived
    live = [s for k in range(1, 300) for s in stamps_of(clock, 0.03 * k, FRAME)]
    assert live == pytest.approx([0.03 * k for k in range(1, 300)], abs=1e-9)
    assert clock.offset == pytest.approx(-4.8)


def test_a_stall_shorter_than_the_window_is_stamped_at_capture_times() -> None:
    clock = InputClock(RATE)
    stamps = [s for k in range(1, 100) for s in stamps_of(clock, 0.03 * k, FRAME)]  # 0.03 .. 2.97
    # Nothing arrives from 2.97 until 4.97; the ~2 s held back come at once, then real time.
    stamps += [s for k in range(100, 166) for s in stamps_of(clock, 4.97, FRAME)]
    stamps += [s for k in range(166, 300) for s in stamps_of(clock, 0.03 * k, FRAME)]
    assert stamps == pytest.approx([0.03 * k for k in range(1, 300)], abs=1e-9)


def test_a_gap_longer_than_the_window_re_anchors_at_resumption() -> None:
    clock = InputClock(RATE)
    stamps = [s for k in range(1, 101) for s in stamps_of(clock, 0.03 * k, FRAME)]  # up to 3.0
    gap = WINDOW_S + 2.0  # the client sent nothing: its mic was off
    after = [s for k in range(101, 201) for s in stamps_of(clock, gap + 0.03 * k, FRAME)]
    assert after == pytest.approx([gap + 0.03 * k for k in range(101, 201)], abs=1e-9)
    assert stamps[-1] < after[0]


def test_a_gap_shorter_than_the_window_counts_as_a_stall_until_the_window_passes() -> None:
    clock = InputClock(RATE)
    for k in range(1, 101):
        stamps_of(clock, 0.03 * k, FRAME)  # the last arrives at 3.0
    after = {k: stamps_of(clock, 2.0 + 0.03 * k, FRAME)[0] for k in range(101, 301)}
    # Until the chunks from before the gap leave the window (3.0 + WINDOW_S), the
    # resumed audio is taken as held back: stamped right after the old audio...
    assert after[110] == pytest.approx(0.03 * 110)  # arrived at 5.3
    # ...then the clock jumps forward to the new delay.
    assert after[300] == pytest.approx(2.0 + 0.03 * 300)


def test_a_dropping_offset_slews_instead_of_jumping_back() -> None:
    clock = InputClock(RATE)
    first = stamps_of(clock, 1.0, 10 * FRAME)  # 300 ms arriving at 1.0: offset 0.7
    # The next 300 ms arrive only 0.1 s later: the offset drops to 0.5.
    second = stamps_of(clock, 1.1, 10 * FRAME)
    steps = [b - a for a, b in zip(first[-1:] + second, second)]
    assert all(step >= MIN_RATE * 0.03 - 1e-12 or s == 1.1 for step, s in zip(steps, second))
    assert second[-1] == pytest.approx(1.1)  # never after arrival


def test_bad_calls_say_what_is_wrong() -> None:
    clock = InputClock(RATE)
    with pytest.raises(ValueError, match="before any audio"):
        clock.stamp(0.0)
    clock.add_chunk(1.0, FRAME)
    with pytest.raises(ValueError, match="go back"):
        clock.add_chunk(0.5, FRAME)
    with pytest.raises(ValueError, match="beyond the audio received"):
        clock.stamp(1.0)
    clock.stamp(0.03)
    with pytest.raises(ValueError, match="go back"):
        clock.stamp(0.01)
    with pytest.raises(ValueError, match="window_s"):
        InputClock(RATE, window_s=0)


chunk_sizes = st.sampled_from([160, 480, 960, 1234, 4800, 9600])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(chunk_sizes, st.floats(0.0, 0.5), st.floats(0.0, 8.0)), min_size=1, max_size=80),
    st.floats(-10.0, 10.0),
    st.booleans(),
)
def test_stamps_never_go_back_never_follow_arrival_and_without_gaps_never_precede_capture(chunks, c0, gaps) -> None:
    """Any causal delivery: audio captured in real time (position p at c0 + p,
    later if the mic was off for a while), each chunk sent after a delay of
    0-0.5 s, delivered in order."""
    clock = InputClock(RATE)
    position = 0
    last_arrival = float("-inf")
    off = 0.0
    stamps: list[float] = []
    for n, delay, pause in chunks:
        if gaps and pause > 6.0:
            off += pause - 6.0  # the mic was off for up to 2 s
        position += n
        arrival = max(last_arrival, c0 + off + position / RATE + delay)
        last_arrival = arrival
        clock.add_chunk(arrival, n)
        for p in (position - n // 2, position):
            stamp = clock.stamp(p / RATE)
            assert stamp <= arrival + 1e-9
            if not gaps:
                assert stamp >= c0 + p / RATE - 1e-9
            stamps.append(stamp)
    assert all(b >= a for a, b in zip(stamps, stamps[1:]))


@settings(max_examples=100, deadline=None)
@given(st.lists(chunk_sizes, min_size=1, max_size=60), st.floats(-5.0, 5.0), st.floats(0.0, 1.0))
def test_paced_delivery_is_exact_for_any_chunking(sizes, c0, delay) -> None:
    clock = InputClock(RATE)
    position = 0
    for n in sizes:
        position += n
        clock.add_chunk(c0 + delay + position / RATE, n)
        for p in (position - n + 1, position - n // 2, position):
            assert clock.stamp(p / RATE) == pytest.approx(c0 + delay + p / RATE, abs=1e-9)
