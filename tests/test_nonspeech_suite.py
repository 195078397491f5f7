"""The non-speech scenario suite (``fixtures/scenarios/nonspeech``) as a CI gate.

Every sound of ``fixtures/sounds`` over the spoken answer and while idle, with
the echo path and with headphones: no interrupt, no user turn; real speech over
each sound still interrupts; a TV across the room neither interrupts, nor keeps
a turn open, nor ends up in a transcript. ``--fast`` runs are deterministic
(virtual clock), so each expectation either holds or not. The scenarios are
written by scripts/make_nonspeech_scenarios.py (docs/simulator.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.fast import run_fast
from simulator.report import format_table
from simulator.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "fixtures" / "scenarios" / "nonspeech").glob("*.yaml"))


def test_every_sound_is_heard_over_the_answer_and_idle_with_and_without_echo():
    names = {p.stem for p in SCENARIOS}
    sounds = {p.stem for p in (REPO / "fixtures" / "sounds").glob("*.wav")}
    assert len(sounds) >= 8
    for sound in sounds:
        for kind in ("answer_aec30", "answer_headphones", "idle_aec30", "idle_headphones", "speech_aec30"):
            assert f"{sound}_{kind}" in names
    assert {"far_tv_question", "far_tv_idle", "far_tv_bargein"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_nonspeech_scenario_meets_its_expectations(path: Path) -> None:
    sc = load_scenario(path)
    result = run_fast(sc)
    failed = [c for c in result.checks() if not c.ok]
    assert not failed, "\n" + format_table(result)
