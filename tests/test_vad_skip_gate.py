"""The ``silero-skip`` end-of-turn gate decides every frame as continuous Silero does.

Frame by frame against the plain ``silero`` gate, on real audio: calls made of
the speech fixtures on every noise floor of ``fixtures/noise`` (and digital
silence), every sound of ``fixtures/sounds`` on those floors, and the frames the
session itself pushes to its gate in the scenarios (``--fast``, virtual clock).
And the point of it: the model does not run over silence (counted runs, no
timing). Measurements behind the design: docs/bench.md, "The end-of-turn gate".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.costs import FLOORS, FRAME_BYTES, SR, frames_of, on_floor, read_pcm
from bench.gate_fidelity import pause_calls, pause_shifts
from server import vad
from simulator.fast import run_fast
from simulator.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
RATE = SR
FRAME = FRAME_BYTES


def load(path: Path) -> bytes:
    return read_pcm(path)


def silence(s: float) -> bytes:
    return b"\0" * (int(s * RATE) * 2)


def mismatches(frames: list[bytes]) -> tuple[list[int], vad.PrefilteredSileroGate]:
    """Indices of frames where silero-skip and continuous silero decide differently."""
    plain = vad.SileroGate(RATE)
    skip = vad.PrefilteredSileroGate(RATE)
    bad = [k for k, f in enumerate(frames) if plain.push(f) != skip.push(f)]
    assert skip.late_chunks == 0 or bad, "a skipped frame held speech, yet no decision differs"
    return bad, skip


SPEECH = sorted((FIXTURES / "speech").glob("*.wav"))
SOUNDS = sorted((FIXTURES / "sounds").glob("*.wav"))


@pytest.mark.parametrize("floor", FLOORS, ids=lambda f: f or "digital_silence")
def test_same_decisions_on_calls_over_each_noise_floor(floor: str | None) -> None:
    """A stream per speech fixture: a second of floor, the fixture, a 0.6 s pause,
    another utterance, then 4 s of end-of-turn silence (bench.gate_fidelity.pause_calls)."""
    skipped = 0
    for path, frames in zip(SPEECH, pause_calls(floor)):
        bad, gate = mismatches(frames)
        assert not bad, f"{path.stem} on {floor}: decisions differ at frames {bad}"
        skipped += gate.skipped_frames
    assert skipped > 0, "the model was never skipped: this compared the plain gate with itself"


@pytest.mark.parametrize("floor", FLOORS, ids=lambda f: f or "digital_silence")
def test_same_decisions_on_every_sound_over_each_noise_floor(floor: str | None) -> None:
    assert len(SOUNDS) >= 8, "fixtures/sounds is incomplete: run `make sounds`"
    for path in SOUNDS:
        bad, _ = mismatches(frames_of(on_floor(silence(0.5) + load(path) + silence(2.0), floor)))
        assert not bad, f"{path.stem} on {floor}: decisions differ at frames {bad}"


class _Twin:
    """The session's turn gate (silero-skip), checked against continuous Silero on every frame it gets."""

    name = "silero-skip"

    def __init__(self, rate: int, frame_ms: int, mode: int, log: list, twins: list) -> None:
        self.gate = vad.PrefilteredSileroGate(rate, frame_ms, mode)
        self.plain = vad.SileroGate(rate)
        self.log = log
        twins.append(self)

    def push(self, frame: bytes) -> bool:
        got, want = self.gate.push(frame), self.plain.push(frame)
        self.log.append((got, want, self.gate.skipped_frames))
        return got

    def reset(self) -> None:
        self.gate.reset()
        self.plain.reset()


NONSPEECH = sorted(
    p for p in (FIXTURES / "scenarios" / "nonspeech").glob("*.yaml") if "_answer_" not in p.stem  # 9 gate frames each
)


@pytest.mark.parametrize("path", sorted((FIXTURES / "scenarios").glob("*.yaml")) + NONSPEECH, ids=lambda p: p.stem)
def test_same_decisions_on_the_frames_the_session_gives_its_gate(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenario runs with silero-skip as its gate (the default); every frame the
    session pushes (none while an answer plays) is decided as continuous Silero decides
    it, so the session's SpeechStarted / TurnEnded are those of the plain gate."""
    log: list[tuple[bool, bool, int]] = []
    twins: list[_Twin] = []
    monkeypatch.setenv("REFINERY_TURN_GATE", "auto")
    monkeypatch.setitem(vad._GATES, "silero-skip", lambda rate, frame_ms, mode: _Twin(rate, frame_ms, mode, log, twins))
    result = run_fast(load_scenario(path))
    assert log, f"{path.stem}: the session pushed no frame to its gate"
    bad = [k for k, (got, want, _) in enumerate(log) if got != want]
    assert not bad, f"{path.stem}: decisions differ at gate frames {bad}"
    assert all(twin.gate.late_chunks == 0 for twin in twins)
    assert all(c.ok for c in result.checks()), f"{path.stem}: its expectations no longer hold"


def test_a_pause_within_hangover_plus_backlog_resumes_exactly_the_continuous_model() -> None:
    """2.5 s of silence: 1.8 s run, 0.7 s skipped and kept; the resumed model hears those
    0.7 s first, so its probabilities are the continuous model's, to the bit."""
    question = load(FIXTURES / "speech" / "question_currency_heart.wav")
    answer = load(FIXTURES / "speech" / "interrupt_bonds_joe.wav")
    gate, plain = vad.PrefilteredSileroGate(RATE), vad.SileroGate(RATE)
    resumed = []  # (gate's, plain's) probability of each frame the model ran on after a skip
    for f in frames_of(on_floor(question + silence(2.5) + answer, "room_tone_-55dBFS")):
        skipped = gate.skipped_frames
        assert gate.push(f) == plain.push(f)
        if skipped and gate.skipped_frames == skipped:
            resumed.append((gate.last_probability, plain.last_probability))
    assert gate.skipped_frames > 0 and len(resumed) > 30
    assert all(a == b for a, b in resumed)
    assert gate.late_chunks == 0


def test_after_a_pause_longer_than_the_hangover_turns_move_less_than_a_second_more_pause_moves_them() -> None:
    """Not equal there, and why that is bounded: past hangover + backlog (3 s) the
    resumed model has heard less of the pause, so it behaves as after a shorter pause. The plain gate's own
    events move as much when the pause is 1 s longer (Silero's state never settles in
    silence: docs/bench.md, "The end-of-turn gate"). Same events in order; no event
    moves further than the largest move of the plain gate between the two pauses."""
    floors = [None, "room_tone_-55dBFS"]
    shifts, compared, structural = pause_shifts(floors, [3.0, 8.0])
    yard, _, _ = pause_shifts(floors, [3.0, 8.0], yardstick=True)
    assert compared > 0 and structural == 0
    assert shifts, "no event moved: the pauses were not skipped, this tested nothing"
    assert max(abs(d) for _, d in shifts) <= max(abs(d) for _, d in yard), (shifts, yard)


def test_the_model_does_not_run_over_silence_and_resumes_on_speech() -> None:
    question = load(FIXTURES / "speech" / "question_currency_heart.wav")
    gate = vad.PrefilteredSileroGate(RATE)
    plain = vad.SileroGate(RATE)
    for f in frames_of(silence(0.3) + question):
        assert gate.push(f) == plain.push(f)
    assert gate.model_running
    runs = gate.model_runs
    quiet = frames_of(silence(6.0))
    assert not any(gate.push(f) for f in quiet)
    # Runs only through the 1.8 s hangover, then stops: 56 of the 187 chunks.
    assert gate.model_runs - runs <= round(1.8 / vad.SILERO_CHUNK_S) + 1
    assert gate.skipped_frames >= len(quiet) - round(1.8 / 0.03) - 1
    assert not gate.model_running
    for f in quiet:
        plain.push(f)
    decisions = [(gate.push(f), plain.push(f)) for f in frames_of(question)]
    assert gate.model_running
    assert all(a == b for a, b in decisions) and any(a for a, _ in decisions)


def test_the_model_keeps_running_while_frames_are_voiced_and_after_a_reset() -> None:
    """Every chunk of speech runs the model; reset() starts a stream (the model running)."""
    question = frames_of(load(FIXTURES / "speech" / "question_currency_heart.wav"))
    gate = vad.PrefilteredSileroGate(RATE)
    for f in question:
        gate.push(f)
    assert gate.model_runs == len(question) * FRAME // 2 // 512
    for f in frames_of(silence(3.0)):
        gate.push(f)
    assert not gate.model_running
    gate.reset()
    assert gate.model_running


def test_bad_input_is_named() -> None:
    with pytest.raises(vad.VadError, match="8000 or 16000 Hz"):
        vad.PrefilteredSileroGate(44100)
    with pytest.raises(vad.VadError, match="960 bytes"):
        vad.PrefilteredSileroGate(RATE).push(b"\0" * 100)
