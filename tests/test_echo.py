"""The echo gate in front of the barge-in frame VAD (server/echo.py): the far-end
reference, the echo-path estimator and which frames echo explains."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest

from server.echo import BLOCK_S, EchoEstimator, FarEndLevels, StationaryFloor, level_dbfs

RATE = 16000


def tone(db: float, seconds: float) -> np.ndarray:
    n = int(RATE * seconds)
    amp = 32768 * 10 ** (db / 20) * math.sqrt(2)  # RMS of a sine is amp / sqrt(2)
    return (amp * np.sin(2 * np.pi * 440 * np.arange(n) / RATE)).astype(np.int16)


def test_level_of_a_sine_and_of_silence():
    assert level_dbfs(tone(-20, 0.03).tobytes()) == pytest.approx(-20, abs=0.1)
    assert level_dbfs(np.zeros(480, dtype=np.int16).tobytes()) == -math.inf


def test_far_end_levels_do_not_depend_on_chunking():
    audio = np.concatenate([tone(-12, 0.5), np.zeros(RATE // 2, dtype=np.int16), tone(-30, 0.5)])
    whole, pieces = FarEndLevels(RATE), FarEndLevels(RATE)
    whole.append(audio.tobytes())
    for start in range(0, len(audio), 777):
        pieces.append(audio[start : start + 777].tobytes())
    assert whole.levels == pieces.levels and len(whole.levels) == round(1.5 / BLOCK_S)
    assert whole.peak_db(0.0, 0.5) == pytest.approx(-12, abs=0.2)
    assert whole.peak_db(0.55, 0.95) == -math.inf
    assert whole.peak_db(1.0, 1.5) == pytest.approx(-30, abs=0.2)



FRAME = 480  # 30 ms at 16 kHz


def far_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like far-end audio: noise bursts of random length and level with pauses (PCM16)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(RATE * seconds))
    i = 0
    while i < len(out):
        n = int(RATE * rng.uniform(0.05, 0.25))
        if rng.random() < 0.7:
            out[i : i + n] = rng.standard_normal(len(out[i : i + n])) * 32768 * 10 ** (rng.uniform(-30, -12) / 20)
        i += n
    return out


def run(far: np.ndarray, mic: np.ndarray, *, start_s: float = 0.0) -> tuple[EchoEstimator, list[bool]]:
    """Stream ``mic`` frame by frame against ``far`` played from ``start_s``; explained flags per frame."""
    ref = FarEndLevels(RATE)
    ref.append(np.clip(far, -32768, 32767).astype(np.int16).tobytes())
    est = EchoEstimator(ref, RATE)
    flags = []
    pcm = np.clip(mic, -32768, 32767).astype(np.int16)
    for k in range(len(pcm) // FRAME):
        t = (k + 1) * FRAME / RATE
        position = t - start_s if t >= start_s else None
        flags.append(est.push(t, pcm[k * FRAME : (k + 1) * FRAME].tobytes(), position))
    return est, flags


def echo_of(far: np.ndarray, delay_s: float, coupling_db: float, n: int) -> np.ndarray:
    d = int(round(delay_s * RATE))
    out = np.zeros(n)
    src = far[: max(0, n - d)] if d >= 0 else far[-d : -d + n]
    out[max(0, d) : max(0, d) + len(src)] = src * 10 ** (coupling_db / 20)
    return out


@pytest.mark.parametrize("delay_s, coupling_db", [(0.0, -6.0), (0.04, -36.0), (0.3, -20.0), (-0.1, -30.0), (0.55, -10.0)])
def test_estimator_finds_delay_and_coupling_of_a_synthetic_echo(delay_s: float, coupling_db: float) -> None:
    far = far_speech(6.0)
    est, flags = run(far, echo_of(far, delay_s, coupling_db, len(far)))
    path = est.path
    assert path is not None
    assert abs(path.delay_s - delay_s) <= 0.03 + 1e-9  # within a frame
    assert path.coupling_db == pytest.approx(coupling_db, abs=2.0)
    assert path.correlation > 0.9
    assert all(flags[len(flags) // 2 :])  # echo alone: every frame explained once measured


def test_no_echo_gives_no_coupling_and_explains_nothing() -> None:
    far = far_speech(6.0)
    user = far_speech(6.0, seed=5)  # someone else talking, nothing of the far end in it
    for mic in (np.zeros(len(far)), user, np.random.default_rng(3).standard_normal(len(far)) * 100):
        est, flags = run(far, mic)
        assert est.path is None and not any(flags)
        assert not est.explains(3.0)


def test_double_talk_does_not_corrupt_the_estimate_and_is_not_explained() -> None:
    far = far_speech(8.0)
    echo = echo_of(far, 0.04, -36.0, len(far))
    user = np.zeros(len(far))
    talk = far_speech(3.0, seed=9)
    user[int(4 * RATE) : int(4 * RATE) + len(talk)] = talk  # the user talks over seconds 4..7
    est, flags = run(far, echo + user)
    path = est.path
    assert path is not None and abs(path.delay_s - 0.04) <= 0.03 + 1e-9
    assert path.coupling_db == pytest.approx(-36.0, abs=2.0)
    frames = [(k, np.sqrt(np.mean(user[k * FRAME : (k + 1) * FRAME] ** 2))) for k in range(len(flags))]
    loud_user = [k for k, rms in frames if rms > 32768 * 10 ** (-40 / 20)]
    assert loud_user and not any(flags[k] for k in loud_user)  # the user's frames always count


def test_explains_rejudges_earlier_frames_and_near_end_drops_them() -> None:
    far = far_speech(4.0)
    echo = echo_of(far, 0.04, -36.0, len(far))
    ref = FarEndLevels(RATE)
    ref.append(far.astype(np.int16).tobytes())
    est = EchoEstimator(ref, RATE, update_every=10_000)  # never re-estimates by itself
    frames = []
    pcm = echo.astype(np.int16)
    for k in range(len(pcm) // FRAME):
        t = (k + 1) * FRAME / RATE
        frame = pcm[k * FRAME : (k + 1) * FRAME].tobytes()
        frames.append((t, frame))
        assert not est.push(t, frame, t)  # no path yet: nothing explained
    assert est.near_end(frames[-10:]) == b""  # measures the path now; all of it is echo
    assert est.path is not None and est.explains(frames[-5][0])
    assert not est.explains(99.0)  # a frame it never saw


def test_estimator_cost_is_in_budget() -> None:
    # Not a timing assertion (that would flip with load): the work per frame is bounded by
    # construction; this checks the history is bounded so the cost cannot grow with the session.
    far = far_speech(2.0)
    est, _ = run(np.tile(far, 3), echo_of(np.tile(far, 3), 0.04, -20.0, 3 * len(far)))
    assert len(est._frames) <= round(est.history_s / 0.03) + 1 and est._n <= len(est._mic_ring)


def test_old_echo_knob_keeps_old_configs_loading() -> None:
    from pathlib import Path

    from server.config import load_project_config

    base = (Path(__file__).resolve().parents[1] / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text()
    default = load_project_config(base)
    assert default.config.barge_in.echo_gate_margin == 6.0
    off = load_project_config(base + "    echo_gate_margin_db: none\n")
    assert off.config.barge_in.echo_gate_margin is None and not off.warnings
    old = load_project_config(base + "    echo_gate_margin_db: 30\n")
    assert old.config.barge_in.echo_gate_margin == 6.0
    assert any("echo_gate_margin_db" in w.path and "echo_margin_db" in w.expected for w in old.warnings)
    assert load_project_config(base + "    echo_margin_db: 3\n").config.barge_in.echo_gate_margin == 3.0
    assert load_project_config(base + "    echo_margin_db: off\n").config.barge_in.echo_gate_margin is None


def test_stationary_floor_removes_a_hum_and_a_siren_but_not_speech():
    """The non-stationary part of a steady hum (after the floor window) and of
    a sweeping pure tone is >= 25 dB below their power; speech keeps most of its own."""
    rate, n = 16000, 480
    t = np.arange(3 * rate) / rate
    hum = 0.5 * sum(np.sin(2 * np.pi * 60 * k * t) / k for k in range(1, 8)) / 2.6
    siren = 0.2 * np.sin(2 * np.pi * (1000 * t - 400 / np.pi * np.cos(np.pi * t)))
    for name, x in (("hum", hum), ("siren", siren)):
        floor = StationaryFloor()
        parts = [floor.push(x[i : i + n]) / np.mean(x[i : i + n] ** 2) for i in range(0, len(x) - n + 1, n)]
        worst = 10 * math.log10(max(max(parts[30:]), 1e-30))
        assert worst < -25, f"{name}: non-stationary part {worst:.1f} dB of its power"
    path = Path(__file__).resolve().parents[1] / "fixtures/speech/interrupt_gold_heart.wav"
    with wave.open(str(path), "rb") as w:
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    floor = StationaryFloor()
    kept = []
    for i in range(0, len(speech) - n + 1, n):
        frame = speech[i : i + n]
        power = float(np.mean(frame**2))
        part = floor.push(frame)
        if power > 10 ** (-40 / 10):
            kept.append(part / power)
    assert len(kept) > 20
    assert 10 * math.log10(np.median(kept)) > -3


@pytest.mark.parametrize("seed", range(4))
def test_floor_skipping_frames_gives_the_same_results_to_the_bit(seed: int) -> None:
    """Frames skipped while nothing plays are analysed late, or only those that still matter:
    every pushed frame's result equals that of a floor that analysed every frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(40 * RATE) / RATE
    hum = 0.3 * np.sin(2 * np.pi * 100 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.1 * t))
    x = (np.clip(hum + far_speech(40.0, seed) / 32768 * (rng.random(len(t)) < 0.999), -1, 1) * 32767).astype(np.int16)
    every, lazy = StationaryFloor(), StationaryFloor()
    k, pushed = 0, 0
    while k + FRAME <= len(x):
        run = int(rng.choice([0, 1, 3, 4, 5, 14, 15, 16, 19, 20, 21, 37, 80]))  # around sub-window multiples (5)
        for _ in range(run):
            if k + FRAME > len(x):
                break
            frame = x[k : k + FRAME]
            every.push(frame.astype(np.float64) / 32768.0)
            lazy.skip(frame)
            k += FRAME
        for _ in range(int(rng.integers(1, 8))):
            if k + FRAME > len(x):
                break
            frame = x[k : k + FRAME]
            assert lazy.push(frame) == every.push(frame.astype(np.float64) / 32768.0), f"frame {k // FRAME}"
            pushed += 1
            k += FRAME
    assert pushed > 100


def test_quartile_and_median_are_numpys_to_the_bit() -> None:
    from server.echo import _quartile_and_median

    rng = np.random.default_rng(3)
    for n in [*range(1, 40), 99, 100, 101, 102, 299, 300]:
        for _ in range(5):
            d = np.round(rng.normal(-30, 8, n), int(rng.integers(0, 4)))  # ties too
            assert _quartile_and_median(d) == tuple(np.percentile(d, [25, 50]).tolist()), n


def test_floor_skipping_across_a_change_of_frame_length() -> None:
    # A new frame length restarts the analysis window: skipped frames before and after it
    # must still give what analysing every frame gives.
    x = (far_speech(6.0, 7) * 0.5).astype(np.int16)
    cuts, k = [], 0
    for length in [480] * 40 + [320] * 60 + [480] * 40:
        cuts.append(x[k : k + length])
        k += length
    every, lazy = StationaryFloor(), StationaryFloor()
    for i, frame in enumerate(cuts):
        want = every.push(frame.astype(np.float64) / 32768.0)
        if i % 23 < 17:  # runs of 17 skipped frames, then 6 pushed
            lazy.skip(frame)
        else:
            assert lazy.push(frame) == want, f"frame {i}"
