"""The scenario suite as a CI gate, run end to end against the real session core.

``--fast`` runs are deterministic (virtual clock, modelled engine latency), so
each scenario's expectations either hold or not: no flakiness, no retries.
One scenario also runs in real time over WebSocket against a started server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.fast import run_fast
from simulator.report import format_table, result_dict
from simulator.scenario import load_scenario, scenario_from_dict

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "fixtures" / "scenarios").glob("*.yaml"))


def test_the_suite_covers_the_required_cases() -> None:
    names = {p.stem for p in SCENARIOS}
    assert len(names) >= 12
    for needed in ("bargein_early", "bargein_mid", "bargein_late", "bargein_in_lockout", "echo_only_aec",
                   "echo_only_no_aec", "noise_only", "backchannel", "two_agents_second", "push_to_talk",
                   "client_cancel", "after_playback_inside_grace", "after_grace", "spoken_session"):
        assert needed in names
    for path in SCENARIOS:
        sc = load_scenario(path)
        assert len(sc.description.split()) >= 8, f"{path.name}: say what the scenario demonstrates"
        assert sc.expect != type(sc.expect)(), f"{path.name}: a scenario with no expectation checks nothing"


def test_the_docs_list_every_scenario_of_the_suite() -> None:
    """README gives the suite's size and docs/simulator.md has a row per scenario:
    a scenario added without them leaves the docs describing another suite."""
    readme = (REPO / "README.md").read_text()
    assert f"the {len(SCENARIOS)}-scenario gate" in readme
    table = (REPO / "docs" / "simulator.md").read_text()
    missing = [p.stem for p in SCENARIOS if f"`{p.stem}`" not in table]
    assert not missing, f"docs/simulator.md's suite table lacks {missing}"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_meets_its_expectations(path: Path) -> None:
    result = run_fast(load_scenario(path))
    failed = [c for c in result.checks() if not c.ok]
    assert not failed, "\n" + format_table(result)


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_fast_runs_are_deterministic(tmp_path: Path) -> None:
    # Two fresh processes, as CI runs them (engines keep state within a process).
    scenario = str(REPO / "fixtures" / "scenarios" / "two_agents_second.yaml")
    outs = []
    for name in ("a", "b"):
        proc = _cli("--scenario", scenario, "--out", str(tmp_path / name), "--no-png")
        assert proc.returncode in (0, 1), proc.stderr
        outs.append((tmp_path / name / "two_agents_second.json").read_text())
    assert outs[0] == outs[1]
    assert '"response.interrupted"' in outs[0]  # the run did something worth comparing


def test_cli_wav_prints_metrics_and_writes_json_and_png(tmp_path: Path) -> None:
    proc = _cli(
        "--wav", "fixtures/speech/interrupt_gold_heart.wav",
        "--config", "fixtures/configs/two_agents_bargein.yaml",
        "--question", "Plan a weekend trip to Lisbon for me.",
        "--after", "playback.started", "--delay-s", "2.0",
        "--expect-interrupt", "--out", str(tmp_path),
        "--echo-gain", "0",  # the CLI's plumbing is under test here; echo has its own scenarios
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "latency" in proc.stdout and "[PASS] interrupt" in proc.stdout
    report = json.loads((tmp_path / "interrupt_gold_heart.json").read_text())
    (real,) = [i for i in report["metrics"]["interrupts"] if not i["false"]]
    assert real["latency_ms"] > 0 and real["floor_ms"] == pytest.approx(240.0, abs=30)
    assert (tmp_path / "interrupt_gold_heart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_suite_exits_nonzero_on_an_unmet_expectation(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "wrong.yaml").write_text(
        f"name: wrong\nconfig: {REPO / 'fixtures/configs/two_agents_bargein.yaml'}\n"
        "actions:\n  - {type: text, text: Plan a trip., at: 0.2}\n"
        "expect:\n  transcript_contains: [zebra]\n"  # nobody speaks: this cannot hold
    )
    proc = _cli("--suite", str(suite), "--out", str(tmp_path / "out"), "--no-png")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL transcript_contains" in proc.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Scenario suite" in html and "transcript_contains" in html  # the person's view of the same verdict


def test_cli_bad_input_says_what_to_fix(tmp_path: Path) -> None:
    proc = _cli("--wav", str(tmp_path / "nothing.wav"), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "nothing.wav" in proc.stderr and "not found" in proc.stderr


def _echo_prone_config(tmp_path: Path) -> Path:
    """The tutorial config with no echo gate and a 2 s lockout: its replies interrupt themselves 2 s in."""
    tutorial = REPO / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml"
    text = tutorial.read_text().replace("lockout_seconds: 0.5", "lockout_seconds: 2.0")
    assert "lockout_seconds: 2.0" in text
    path = tmp_path / "echo_prone.yaml"
    path.write_text(text + "    echo_margin_db: none\n")
    return path


def _later_reply(config: Path, max_duration_s: float) -> Any:
    # The first answer is skipped inside its lockout; the user's spoken question at 2 s
    # gets a reply (created ~9.0 s, playing 9.09 s) whose echo, with no AEC and no gate,
    # interrupts it when its lockout ends: a false interrupt 2 s into a later reply.
    return run_fast(scenario_from_dict({
        "name": "false_interrupt_late_in_a_later_reply",
        "config": str(config),
        "max_duration_s": max_duration_s,
        "echo": {"aec_erle_db": None},
        "actions": [{"type": "text", "text": "How should I hedge my portfolio against currency risk?", "at": 0.2},
                    {"type": "cancel", "at": 1.0}],
        "utterances": [{"wav": str(REPO / "fixtures" / "speech" / "question_stocks_joe.wav"), "at": 2.0}],
    }))


def test_a_run_hears_a_later_reply_out_and_sees_its_false_interrupt(tmp_path: Path) -> None:
    """A run used to end 1 s into the reply to the user's last words: `false_interrupts: 0`
    said nothing about the rest of that reply."""
    result = _later_reply(_echo_prone_config(tmp_path), 12.0)
    m = result.metrics()
    assert m.false_interrupts == 1, format_table(result)
    (false,) = [i for i in m.interrupts if i.false]
    reply = result.client.responses[false.response_id]
    assert reply.first_play_t is not None and reply.created_t is not None and reply.created_t > 2.0
    assert false.t - reply.first_play_t >= 1.5, (false.t, reply.first_play_t)
    assert not any("max_duration_s" in w for w in result.client.warnings), result.client.warnings


def test_a_run_cut_by_max_duration_says_what_it_did_not_hear(tmp_path: Path) -> None:
    result = _later_reply(_echo_prone_config(tmp_path), 10.5)
    assert result.end_s == pytest.approx(10.5, abs=0.03)
    assert result.metrics().false_interrupts == 0  # the interrupt comes at ~11.1 s
    (warning,) = [w for w in result.client.warnings if "max_duration_s" in w]
    assert "10.5 s" in warning and "not observed" in warning, warning


def test_one_scenario_in_real_time_over_websocket(tmp_path: Path) -> None:
    from simulator.live import run_live
    from tests.support.server_proc import running_server

    sc = load_scenario(REPO / "fixtures" / "scenarios" / "two_agents_second.yaml")
    # Real-time runs check the wire path; echo robustness is the fast suite's job.
    # 30 s: the interrupt and the reply's start; hearing that reply out would take 86 s of real time.
    sc = sc.model_copy(update={"echo": sc.echo.model_copy(update={"gain": 0.0}), "max_duration_s": 30.0})
    with running_server(tmp_path / "data") as server:
        result = run_live(sc, server.url)
    failed = [c for c in result.checks() if not c.ok]
    assert not failed, "\n" + format_table(result) + "\n" + server.log_tail()
    assert result.mode == "live" and result.client.audio_chunks_sent > 100
