"""Golden per-frame outputs of the server's audio path, to prove a speed-up changes no decision.

Two levels, both deterministic (no wall time):

* :func:`component_traces`: the echo estimator (:class:`server.echo.EchoEstimator`)
  and the near talker (:class:`server.neartalk.NearTalker`) fed frame by frame
  with mixes of the fixtures: an answer's echo (with and without a client
  echo canceller), speech over it, hums, music, a TV, digital silence, idle
  stretches before, between and after two answers. Per frame: explained by
  echo or not, near or not, the near envelope; the measured path whenever it
  changes; what :meth:`~server.echo.EchoEstimator.near_end` keeps of the last
  second, every second while an answer plays.
* :func:`session_traces`: scenarios of ``fixtures/scenarios`` through the whole
  session core on the virtual clock (:func:`simulator.fast.run_fast`): the
  detector trace per frame, the server counters, the client's events and a
  digest of the audio it received.

``tests/golden/audio_path.json`` holds their output recorded from the code
before the audio path was optimised (issue #11); ``tests/test_audio_path_golden.py``
compares. Regenerate only for an intended change of decisions::

    .venv/bin/python -m tests.support.audio_path_golden tests/golden/audio_path.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from server.echo import EchoEstimator, FarEndLevels
from server.neartalk import NearTalker
from simulator.audio import read_wav

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "fixtures"
RATE = 16000
FRAME = 480  # 30 ms

#: name -> (answer fixture, [(mic fixture, start s, gain dB)], echo delay s, echo coupling dB or None, answers' start s)
COMPONENT_SCENARIOS: dict[str, tuple[str, list[tuple[str, float, float]], float, float | None, list[float]]] = {
    "aec30_speech_over": ("speech/question_currency_heart.wav", [("speech/interrupt_bonds_joe.wav", 3.0, 0.0)], 0.04, -36.0, [1.0]),
    "no_aec_hum_from_start": ("speech/question_diversify_joe.wav", [("sounds/hum.wav", 0.0, 0.0)], 0.1, -10.0, [1.5]),
    "aec30_hum_late": ("speech/question_stocks_joe.wav", [("sounds/hum.wav", 3.5, 0.0)], 0.3, -30.0, [0.6]),
    "aec30_music": ("speech/question_inflation_espeak_gb.wav", [("sounds/music.wav", 2.0, -6.0)], 0.0, -30.0, [1.0]),
    "tv_then_user": ("speech/question_dividends_espeak_us.wav",
                     [("sounds/tv_babble.wav", 0.0, -20.0), ("speech/interrupt_gold_heart.wav", 4.0, 0.0)], -0.1, -20.0, [1.0]),
    "two_answers_claps": ("speech/question_currency_heart.wav",
                          [("sounds/claps.wav", 2.0, 0.0), ("speech/backchannel_okay_joe.wav", 9.0, 0.0)], 0.2, -6.0, [0.5, 7.0]),
    "headphones_speech": ("speech/question_diversify_joe.wav", [("speech/interrupt_rates_joe.wav", 2.5, 0.0)], 0.0, None, [0.3]),
    "noise_bursts_typing": ("speech/question_stocks_joe.wav",
                            [("sounds/noise_bursts.wav", 1.0, -10.0), ("sounds/typing.wav", 5.0, 0.0)], 0.05, -24.0, [2.0]),
}

#: Scenarios (under fixtures/scenarios) run through the session core.
SESSION_SCENARIOS = (
    "echo_only_aec.yaml",
    "echo_only_no_aec.yaml",
    "bargein_mid.yaml",
    "backchannel.yaml",
    "spoken_session.yaml",
    "noise_only.yaml",
    "nonspeech/hum_answer_aec30.yaml",
    "nonspeech/hum_speech_aec30.yaml",
    "nonspeech/music_answer_aec30.yaml",
    "nonspeech/far_tv_bargein.yaml",
)


def _mix(answer: str, parts: list[tuple[str, float, float]], delay_s: float, coupling_db: float | None,
         starts: list[float]) -> tuple[np.ndarray, np.ndarray, float]:
    """(far-end PCM16, mic PCM16, answer length s): each answer's echo plus the other sounds."""
    far = read_wav(FIX / answer, RATE)
    length = len(far) / RATE
    total = max([s + length + 1.5 for s in starts] + [s + len(read_wav(FIX / p, RATE)) / RATE + 0.5 for p, s, _ in parts])
    mic = np.zeros(int(total * RATE))
    if coupling_db is not None:
        for start in starts:
            a = int(round((start + delay_s) * RATE))
            src = far[max(0, -a):]
            a = max(0, a)
            n = min(len(src), len(mic) - a)
            mic[a : a + n] += src[:n] * 10 ** (coupling_db / 20)
    for path, start, gain_db in parts:
        x = read_wav(FIX / path, RATE) * 10 ** (gain_db / 20)
        a = int(start * RATE)
        n = min(len(x), len(mic) - a)
        mic[a : a + n] += x[:n]
    pcm = lambda s: (np.clip(s, -1.0, 1.0) * 32767).astype("<i2")  # noqa: E731
    return pcm(far), pcm(mic), length


def component_trace(name: str) -> dict[str, Any]:
    """Per-frame outputs of the echo estimator and the near talker on one scenario of :data:`COMPONENT_SCENARIOS`."""
    answer, parts, delay_s, coupling_db, starts = COMPONENT_SCENARIOS[name]
    far_pcm, mic, length = _mix(answer, parts, delay_s, coupling_db, starts)
    far = FarEndLevels(RATE)
    echo = EchoEstimator(far, RATE)
    near = NearTalker(30)
    explained, near_flags, envelope, paths, near_end = [], [], [], [], []
    answer_i, frames = -1, []
    last_path = None
    for k in range(len(mic) // FRAME):
        t = (k + 1) * FRAME / RATE
        pcm = mic[k * FRAME : (k + 1) * FRAME].tobytes()
        frames.append((t, pcm))
        started = [i for i, s in enumerate(starts) if s <= t]
        if started and started[-1] != answer_i:  # a new answer: its audio goes out at once, as the session sends ahead
            answer_i = started[-1]
            far.reset()
            echo.new_reference()
            far.append(far_pcm.tobytes())
        position = t - starts[answer_i] if answer_i >= 0 and t - starts[answer_i] <= length + 0.3 else None
        explained.append(echo.push(t, pcm, position))
        near_flags.append(near.push(pcm))
        envelope.append(round(near.envelope_dbfs, 6))
        if echo.path != last_path:
            last_path = echo.path
            p = echo.path
            paths.append(None if p is None else [k, round(p.delay_s, 6), round(p.coupling_db, 6), round(p.correlation, 6), p.blocks])
        if position is not None and k % 33 == 32:
            kept = echo.near_end(frames[-33:])
            near_end.append([k, len(kept), hashlib.sha256(kept).hexdigest()[:16]])
    return {
        "explained": "".join("1" if e else "0" for e in explained),
        "near": "".join("1" if e else "0" for e in near_flags),
        "envelope": envelope,
        "paths": paths,
        "near_end": near_end,
    }


def component_traces() -> dict[str, Any]:
    return {name: component_trace(name) for name in COMPONENT_SCENARIOS}


def session_trace(scenario_file: str) -> dict[str, Any]:
    """The session core's per-frame detector trace and outcome on one scenario (virtual clock)."""
    from simulator.fast import run_fast
    from simulator.scenario import load_scenario

    result = run_fast(load_scenario(FIX / "scenarios" / scenario_file))
    trace = result.trace
    return {
        "t": [round(row[0], 6) for row in trace],
        "speech": "".join("1" if row[1] else "0" for row in trace),
        "window": [row[2] for row in trace],
        "armed": "".join("1" if row[3] else "0" for row in trace),
        "counters": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in sorted(result.server_counters.items())},
        "events": [[round(e.t, 4), e.type, e.response_id] for e in result.client.log if e.type != "response.audio.delta"],
        "received_sha256": result.client.received_digest.hexdigest(),
    }


def session_traces() -> dict[str, Any]:
    return {name: session_trace(name) for name in SESSION_SCENARIOS}


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else ROOT / "tests" / "golden" / "audio_path.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"components": component_traces(), "sessions": session_traces()}
    out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
