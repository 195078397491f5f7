"""How faithful and how cheap the ``silero-skip`` end-of-turn gate is: the measurement behind its defaults.

Runs ``silero-skip`` and the plain ``silero`` gate side by side and reports:

* per setting (hangover, backlog, resume from the stopped state or from a
  fresh one) and floor: frames decided differently, the largest probability
  difference where the model ran, ONNX runs as a share of the plain gate's;
  on what the gate gets in the bench's calls (:func:`bench.costs.call_streams`),
  on utterances with a short pause between them (:func:`pause_calls`) and on
  every sound of ``fixtures/sounds`` (0.5 s of floor before, 2 s after);
* the turn events (``SpeechStarted`` / ``TurnEnded`` frame of a
  :class:`server.turns.TurnDetector`) of an utterance after a pause longer
  than the hangover, against the plain gate's; and, as the yardstick, how far
  the *plain* gate's own events move when that pause is one second longer
  (:func:`pause_shifts`).

Usage, from the checkout root: ``.venv/bin/python -m bench.gate_fidelity``
(a few minutes; nothing asserts its numbers except tests/test_vad_skip_gate.py's
bound on the pause shifts).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.costs import FLOORS, FRAME_BYTES, FRAME_MS, NOISE, SPEECH, SR, call_streams, frames_of, on_floor, read_pcm
from server import vad
from server.turns import SpeechStarted, TurnDetector

SETTINGS: list[dict] = [
    {"hangover_ms": 600, "backlog_ms": 300},
    {"hangover_ms": 1200, "backlog_ms": 300},
    {"hangover_ms": 1800, "backlog_ms": 300},
    {"hangover_ms": 1800, "backlog_ms": 300, "fresh": True},
    {"hangover_ms": 600, "backlog_ms": 1200},
    {"hangover_ms": 1200, "backlog_ms": 600},
    {"hangover_ms": 1800, "backlog_ms": 1200},  # the default
]


class FreshResumeGate(vad.PrefilteredSileroGate):
    """The rejected variant: resume from a fresh model state, the kept frames as pre-roll only."""

    def _resume(self, frame: bytes) -> bool:
        self._gate.stream.reset()
        self._skipped_since_stop = len(self._backlog) + 1  # take the pre-roll path
        return super()._resume(frame)


def skip_gate(setting: dict) -> vad.PrefilteredSileroGate:
    kw = {k: v for k, v in setting.items() if k != "fresh"}
    return (FreshResumeGate if setting.get("fresh") else vad.PrefilteredSileroGate)(SR, **kw)


def compare(frames: list[bytes], setting: dict) -> tuple[int, float, int, float, int]:
    """(frames decided differently, max |p diff| where the model ran, model runs, chunks, late chunks) of one stream."""
    gate, plain = skip_gate(setting), vad.SileroGate(SR)
    differ, max_dp = 0, 0.0
    for f in frames:
        skipped = gate.skipped_frames
        differ += gate.push(f) != plain.push(f)
        if gate.skipped_frames == skipped:
            max_dp = max(max_dp, abs(gate.last_probability - plain.last_probability))
    return differ, max_dp, gate.model_runs, len(frames) * FRAME_BYTES / 2 / plain.stream.chunk, gate.late_chunks


def pause_calls(floor: str | None) -> list[list[bytes]]:
    """One stream per speech fixture: 1 s of floor, the fixture, a 0.6 s pause, the
    fixture three further on, 4 s of floor (a short pause inside a turn, as
    tests/test_vad_skip_gate.py has it)."""
    speech = sorted(SPEECH.glob("*.wav"))
    quiet = lambda s: b"\0" * (int(s * SR) * 2)  # noqa: E731
    return [
        frames_of(on_floor(quiet(1.0) + read_pcm(p) + quiet(0.6) + read_pcm(speech[(i + 3) % len(speech)]) + quiet(4.0), floor))
        for i, p in enumerate(speech)
    ]


def after_pause(before: bytes, pause_s: float, utterance: bytes, floor: str | None) -> tuple[list[bytes], int]:
    """``before``, ``pause_s`` of floor, ``utterance``, 4 s of floor: frames, and the utterance's first frame.

    The floor is laid so that the same noise lies under the utterance whatever
    the pause (it runs from the utterance's start), so two pauses differ only
    in the pause.
    """
    pcm = before + b"\0" * (int(pause_s * SR) * 2) + utterance + b"\0" * (4 * SR * 2)
    start = len(before) // 2 + int(pause_s * SR)
    if floor is not None:
        x = np.frombuffer(pcm, "<i2").astype(np.int32)
        noise = np.frombuffer(read_pcm(NOISE / f"{floor}.wav"), "<i2").astype(np.int32)
        x = x + noise[(np.arange(x.size) - start) % noise.size]
        pcm = np.clip(x, -32768, 32767).astype("<i2").tobytes()
    return frames_of(pcm), start * 2 // FRAME_BYTES


def turn_events(frames: list[bytes], decisions: list[bool], silence_ms: int, first: int) -> list[tuple[str, int]]:
    """(kind, frame index from ``first``) of each turn event a TurnDetector makes at or after frame ``first``."""
    turns = TurnDetector(frame_ms=FRAME_MS, silence_duration_ms=silence_ms, prefix_padding_ms=300)
    events = []
    for k, (f, speech) in enumerate(zip(frames, decisions)):
        event = turns.feed((k + 1) * FRAME_MS / 1000, f, speech)
        if event is not None and k >= first:
            events.append(("SpeechStarted" if isinstance(event, SpeechStarted) else "TurnEnded", k - first))
    return events


def pause_shifts(
    floors: list[str | None], pauses: list[float], silence_ms: int = 700, *, yardstick: bool = False,
    gate: Callable[[], vad.SpeechGate] = lambda: vad.PrefilteredSileroGate(SR),
) -> tuple[collections.Counter, int, int]:
    """Turn-event shifts (frames) of the utterance after a pause: ``gate`` against the plain gate, same input.

    ``yardstick``: instead, the plain gate after ``pause + 1 s`` against the
    plain gate after ``pause``. Each question fixture is followed by every
    speech fixture. Returns (Counter of (kind, shift), events compared,
    utterances whose event kinds differ).
    """
    questions = sorted(SPEECH.glob("question_*.wav"))
    utterances = [read_pcm(p) for p in sorted(SPEECH.glob("*.wav"))]
    shifts: collections.Counter = collections.Counter()
    compared = structural = 0
    for floor in floors:
        for pause in pauses:
            for i, utterance in enumerate(utterances):
                before = read_pcm(questions[i % len(questions)])
                frames, first = after_pause(before, pause, utterance, floor)
                plain = vad.SileroGate(SR)
                want = turn_events(frames, [plain.push(f) for f in frames], silence_ms, first)
                if yardstick:
                    frames, first = after_pause(before, pause + 1.0, utterance, floor)
                    other = vad.SileroGate(SR)
                else:
                    other = gate()
                got = turn_events(frames, [other.push(f) for f in frames], silence_ms, first)
                compared += len(want)
                if [k for k, _ in got] != [k for k, _ in want]:
                    structural += 1
                    continue
                shifts.update((k, g - w) for (k, g), (_, w) in zip(got, want) if g != w)
    return shifts, compared, structural


def main() -> None:
    sounds = [read_pcm(p) for p in sorted(Path(SPEECH.parent / "sounds").glob("*.wav"))]
    for setting in SETTINGS:
        for floor in FLOORS:
            inputs = {
                "calls": call_streams(floor),
                "pauses": pause_calls(floor),
                "sounds": [frames_of(on_floor(b"\0" * SR + s + b"\0" * (2 * SR * 2), floor)) for s in sounds],
            }
            for kind, streams in inputs.items():
                res = np.array([compare(frames, setting) for frames in streams], dtype=float)
                print(
                    f"{setting!s:42} {floor or 'digital silence':18} {kind:6} frames {sum(map(len, streams)):5}  "
                    f"differ {int(res[:, 0].sum()):3}  max |dp| {res[:, 1].max():.3f}  "
                    f"model runs {100 * res[:, 2].sum() / res[:, 3].sum():5.1f} %  late chunks {int(res[:, 4].sum())}",
                    flush=True,
                )
    for label, kw in (("silero-skip vs silero", {}), ("silero, pause + 1 s vs pause", {"yardstick": True})):
        for silence_ms in (700, 3500):
            shifts, n, structural = pause_shifts(FLOORS, [3.0, 5.0, 8.0], silence_ms, **kw)
            print(f"{label:30} silence {silence_ms} ms: {n} events, {sum(shifts.values())} moved, "
                  f"{structural} utterances with other events; shifts {sorted(shifts.items())}", flush=True)


if __name__ == "__main__":
    main()
