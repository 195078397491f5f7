"""The audio path decides as it did before it was optimised (issue #11).

``tests/golden/audio_path.json`` was recorded from the code before the
per-frame work was cut (tests/support/audio_path_golden.py says how): every
frame's echo and near-talker decisions on fixture mixes, and whole sessions on
the virtual clock. Decisions must match exactly, levels to 1e-6 dB.

The session goldens pin the whole session (the turn gate, the engines' output
on this machine too): a change meant to alter decisions regenerates them with
``python -m tests.support.audio_path_golden`` and says so in its commit.

The sessions run in a fresh interpreter, in the recorder's order: eSpeak
carries a little state from one utterance to the next inside a process, so
the audio a session sends (and with it a frame of the echo) depends on what
the process synthesised before; inside pytest that would be whichever tests
ran first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.audio_path_golden import COMPONENT_SCENARIOS, SESSION_SCENARIOS, component_trace

GOLDEN = json.loads((Path(__file__).parent / "golden" / "audio_path.json").read_text())
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh_sessions() -> dict:
    """Every session trace, computed as the recorder does: a new process, components first."""
    code = (
        "import json; from tests.support import audio_path_golden as g; "
        "g.component_traces(); print(json.dumps(g.session_traces()))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_difference(a: str, b: str) -> str:
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"first difference at frame {k} (of {len(a)} / {len(b)})"


@pytest.mark.parametrize("name", sorted(COMPONENT_SCENARIOS))
def test_echo_and_near_talker_decide_frame_by_frame_as_recorded(name: str) -> None:
    want, got = GOLDEN["components"][name], component_trace(name)
    assert got["explained"] == want["explained"], "explained by echo: " + first_difference(got["explained"], want["explained"])
    assert got["near"] == want["near"], "near talker: " + first_difference(got["near"], want["near"])
    assert got["envelope"] == pytest.approx(want["envelope"], abs=1e-6)
    assert [p is None for p in got["paths"]] == [p is None for p in want["paths"]], "measured echo paths"
    for g, w in zip(got["paths"], want["paths"]):
        assert g is None or g == pytest.approx(w, abs=1e-6), "measured echo path"
    assert got["near_end"] == want["near_end"]


@pytest.mark.parametrize("name", SESSION_SCENARIOS)
def test_sessions_decide_frame_by_frame_as_recorded(name: str, fresh_sessions: dict) -> None:
    want, got = GOLDEN["sessions"][name], fresh_sessions[name]
    assert got["t"] == pytest.approx(want["t"], abs=1e-6)
    assert got["speech"] == want["speech"], "detector speech: " + first_difference(got["speech"], want["speech"])
    assert got["window"] == want["window"]
    assert got["armed"] == want["armed"]
    assert got["counters"] == want["counters"]
    assert got["events"] == want["events"]
    assert got["received_sha256"] == want["received_sha256"]
