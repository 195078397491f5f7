"""Repeats, assertions, sweeps, executors, resumption and reports of the simulator.

Pure parts (variation, pooled figures, grid, Pareto front, assertions, store,
settings) are tested on hand-made data; the end-to-end tests run real takes on
the virtual clock, kept tiny: the 3 s ``echo_only_no_aec`` scenario and the
8 s ``bargein_in_lockout``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.assertions import AssertionsError, evaluate, parse_assertions
from simulator.fast import Network
from simulator.pooled import percentiles, pool, wilson
from simulator.scenario import load_scenario
from simulator.settings import SettingError, apply_setting, setting_key
from simulator.store import Appender, load_done
from simulator.sweep import parse_grid, pareto_front, recommend, settings_of
from simulator.takes import Task, run_take
from simulator.variation import NONE, Variation, pin_intent, take_seed, vary

REPO = Path(__file__).resolve().parents[1]
SCEN = REPO / "fixtures" / "scenarios"
TUTORIAL = REPO / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml"


# -- variation ----------------------------------------------------------------


def test_takes_are_seeded_reproducible_and_within_ranges() -> None:
    sc = load_scenario(SCEN / "noise_only.yaml")
    mid = load_scenario(SCEN / "bargein_early.yaml")
    v = Variation()
    assert vary(mid, 5, v) == vary(mid, 5, v)
    assert vary(mid, 5, v) != vary(mid, 6, v)
    for seed in range(30):
        t = vary(mid, seed, v)
        (u,) = t.utterances
        assert abs(u.delay_s - mid.utterances[0].delay_s) <= v.onset_s
        assert abs(u.gain_db) <= v.level_db
        assert mid.echo.delay_ms <= t.echo.delay_ms <= mid.echo.delay_ms + v.echo_delay_ms
        assert abs(20 * np.log10(t.echo.gain / mid.echo.gain)) <= v.echo_gain_db + 1e-9
        assert t.network.jitter_ms == v.jitter_ms
        n = vary(sc, seed, v).noise
        assert abs(n.db - sc.noise.db) <= v.noise_db and n.seed is not None
    assert mid.noise.db is None and vary(mid, 1, v).noise == mid.noise  # no noise stays no noise
    same = vary(mid, 3, NONE)
    assert same.utterances == mid.utterances and same.echo == mid.echo and same.network.jitter_ms == 0


def test_take_seed_depends_on_scenario_and_repeat_not_on_setting() -> None:
    a = take_seed(0, "bargein_mid", 0)
    assert a == take_seed(0, "bargein_mid", 0)
    assert len({a, take_seed(0, "bargein_mid", 1), take_seed(0, "backchannel", 0), take_seed(1, "bargein_mid", 0)}) == 4
    t1 = Task(load_scenario(SCEN / "bargein_mid.yaml"), {"threshold": 10}, 0, a)
    t2 = Task(load_scenario(SCEN / "bargein_mid.yaml"), {"threshold": 20}, 0, a)
    assert t1.key != t2.key and t1.key.endswith(f"|bargein_mid|{a}")


def test_pin_intent_keeps_the_users_intent_across_settings() -> None:
    sc = pin_intent(load_scenario(SCEN / "backchannel.yaml"))
    assert sc.utterances[0].expect_interrupt is False
    assert pin_intent(load_scenario(SCEN / "bargein_early.yaml")).utterances[0].expect_interrupt is True
    session = load_scenario(SCEN / "spoken_session.yaml")
    assert pin_intent(session) == session  # one recording, several utterances: left to the metrics


def test_network_jitter_is_seeded_ordered_and_bounded() -> None:
    assert [Network(0.0, 1).uplink(t) for t in (0.03, 0.06)] == [0.03, 0.06]
    net, again = Network(0.05, 7), Network(0.05, 7)
    sent = [k * 0.01 for k in range(200)]
    got = [net.downlink(t) for t in sent]
    assert got == [again.downlink(t) for t in sent]
    assert all(b >= a for a, b in zip(got, got[1:])), "a message overtook an earlier one"
    assert all(t <= g <= t + 0.05 + 0.05 for t, g in zip(sent, got))
    assert max(g - t for t, g in zip(sent, got)) > 0.02


# -- pooled figures, assertions -------------------------------------------------


def test_wilson_interval_matches_published_values() -> None:
    # Brown, Cai & DasGupta (2001) / any table: 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634].
    r = wilson(0, 10)
    assert (r.rate, r.low) == (0.0, 0.0) and r.high == pytest.approx(0.2775, abs=1e-4)
    r = wilson(5, 10)
    assert (r.low, r.high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(0, 0).rate is None
    with pytest.raises(ValueError):
        wilson(3, 2)
    assert percentiles([100.0, 200.0, 300.0, 400.0]) == {"n": 4, "p50": 250.0, "p90": 370.0, "p99": 397.0, "max": 400.0}


def _take(false: int = 0, latency: float | None = 400.0, should: bool = True, hit: bool = True, passed: bool = True) -> dict:
    ints = [{"false": True, "latency_ms": None, "overhead_ms": None, "truncation_error_ms": 5.0}] * false
    if hit and latency is not None:
        ints.append({"false": False, "latency_ms": latency, "overhead_ms": latency - 380, "truncation_error_ms": -12.0})
    return {"error": None, "passed": passed, "interrupts": ints, "false_interrupts": false, "missed_interrupts": int(should and not hit),
            "utterances": [{"expected_interrupt": should, "interrupted": hit, "voice_to_voice_ms": 900.0}]}


def test_pool_counts_takes_utterances_and_interrupts() -> None:
    p = pool([_take(latency=400), _take(latency=500), _take(false=2, latency=600), _take(hit=False), {"error": "bad"}])
    assert (p["takes"], p["errors"]) == (5, 1)
    assert p["latency_ms"]["n"] == 3 and p["latency_ms"]["p50"] == 500.0 and p["latency_ms"]["max"] == 600.0
    assert (p["false_interrupt_rate"]["k"], p["false_interrupt_rate"]["n"]) == (1, 4)  # per take, not per interrupt
    assert (p["missed_rate"]["k"], p["missed_rate"]["n"]) == (1, 4)
    assert p["interrupt_rate"]["rate"] == 0.75 and p["max_truncation_error_ms"] == 12.0


def test_assertions_gate_pooled_figures_and_fail_without_data() -> None:
    rules = parse_assertions({"suite": {"p90_latency_ms": 600, "max_false_interrupt_rate": 0.2},
                              "scenarios": {"quiet": {"p90_latency_ms": 1000}, "nowhere": {"min_pass_rate": 0.5}}})
    suite = pool([_take(latency=400), _take(latency=500), _take(false=1, latency=550)])
    quiet = pool([_take(should=False, hit=False)])
    verdicts = {(v.assertion.scope, v.assertion.key): v for v in evaluate(rules, suite, {"quiet": quiet})}
    assert verdicts[("suite", "p90_latency_ms")].ok
    assert not verdicts[("suite", "max_false_interrupt_rate")].ok  # 1/3 > 0.2
    assert not verdicts[("quiet", "p90_latency_ms")].ok and "no data" in verdicts[("quiet", "p90_latency_ms")].detail
    assert not verdicts[("nowhere", "min_pass_rate")].ok
    with pytest.raises(AssertionsError, match="unknown assertion 'p95_latency'"):
        parse_assertions({"suite": {"p95_latency": 3}})
    with pytest.raises(AssertionsError, match="must be a number"):
        parse_assertions({"suite": {"p90_latency_ms": "fast"}})


def test_the_committed_gate_and_sweep_plan_are_valid() -> None:
    from simulator.assertions import load_assertions
    from simulator.sweep_cli import _plan

    gate = load_assertions(REPO / "fixtures" / "assertions.yaml")
    names = {p.stem for p in SCEN.glob("*.yaml")}
    assert gate and {a.scope for a in gate} <= names | {"suite"}
    plan = _plan(REPO / "fixtures" / "sweeps" / "tutorial.yaml")
    assert all(p.is_file() for p in plan["scenarios"]) and len(settings_of(parse_grid(plan["grid"]))[0]) == 28


# -- grid, settings, Pareto front, recommendation ---------------------------------


def test_grid_ranges_lists_and_errors() -> None:
    grid = parse_grid(["threshold=10:30:5", "window_size=24,48", "lockout_seconds=0.3"])
    assert grid == {"threshold": [10, 15, 20, 25, 30], "window_size": [24, 48], "lockout_seconds": [0.3]}
    assert parse_grid({"grace_period_seconds": [0.5, 1], "silence_duration_ms": "700"}) == {
        "grace_period_seconds": [0.5, 1.0], "silence_duration_ms": [700]}
    settings, skipped = settings_of(grid)
    assert len(settings) == 5 * 2 - 2 and len(skipped) == 2
    assert skipped[1] == "lockout_seconds=0.3,threshold=30,window_size=24: threshold above window_size"
    for bad, msg in (("treshold=3", "unknown knob 'treshold'"), ("threshold=1.5", "whole number"),
                     ("threshold=30:10:5", "stop >= start"), ("threshold", "knob=values")):
        with pytest.raises(SettingError, match=msg):
            parse_grid([bad])


def test_apply_setting_changes_only_the_named_knobs() -> None:
    loaded = apply_setting(TUTORIAL, {"threshold": 9, "window_size": 48, "silence_duration_ms": 900})
    vad = loaded.config.barge_in
    assert (vad.threshold, vad.window_size, vad.lockout_seconds) == (9, 48, 0.5)
    assert loaded.config.audio_config.asr.silence_duration_ms == 900
    with pytest.raises(SettingError, match="threshold=30,window_size=24 is not valid"):
        apply_setting(TUTORIAL, {"threshold": 30, "window_size": 24})
    ptt = REPO / "fixtures" / "configs" / "push_to_talk.yaml"
    if ptt.is_file():  # no vad block: barge-in knobs do not turn barge-in on
        assert apply_setting(ptt, {"threshold": 5}).config.barge_in is None


def _pooled(false: float, p90: float | None, missed: float) -> dict:
    return {"false_interrupt_rate": {"rate": false, "k": 0, "n": 100, "low": 0.0, "high": false + 0.03},
            "missed_rate": {"rate": missed, "k": 0, "n": 100, "low": 0.0, "high": missed + 0.03},
            "latency_ms": {"p90": p90, "p99": p90}}


def test_pareto_front_and_recommendation() -> None:
    by = {"a": _pooled(0.00, 900, 0.10), "b": _pooled(0.00, 700, 0.10), "c": _pooled(0.05, 500, 0.00),
          "d": _pooled(0.10, 600, 0.05), "e": _pooled(0.00, None, 0.90)}
    assert pareto_front(by) == ["b", "c"]  # b beats a and e (never fired: latency unknown = worst), c beats d
    rec = recommend(by, 0.01)
    assert rec["setting"] == "b" and rec["candidates"] == 3 and "lowest missed rate" in rec["reason"]
    assert recommend(by, 0.05)["setting"] == "c"
    assert recommend({"d": by["d"]}, 0.01)["setting"] is None


def test_store_resumes_and_ignores_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with Appender(path) as add:
        add({"key": "k1", "x": 1})
        add({"key": "k2", "x": 2})
    with path.open("a") as fh:
        fh.write('{"key": "k3", "x"')  # killed mid-write
    assert set(load_done(path)) == {"k1", "k2"}
    assert load_done(tmp_path / "none.jsonl") == {}
    assert setting_key({"window_size": 24, "threshold": 10.0}) == "threshold=10,window_size=24"


# -- real takes ---------------------------------------------------------------------


def test_jitter_changes_delivery_deterministically() -> None:
    from simulator.fast import run_fast

    sc = load_scenario(SCEN / "bargein_in_lockout.yaml")
    jittered = sc.model_copy(update={"network": sc.network.model_copy(update={"jitter_ms": 40.0, "seed": 3})})

    def times(result: object) -> list[tuple[str, float]]:
        return [(e.type, round(e.t, 6)) for e in result.client.log if e.source == "server" and e.type != "response.audio.delta"]

    plain, a, b = run_fast(sc), run_fast(jittered), run_fast(jittered)
    assert times(a) == times(b)
    assert [k for k, _ in times(a)][:3] == [k for k, _ in times(plain)][:3]
    assert times(a) != times(plain)
    assert a.metrics().interrupts and not a.metrics().false_interrupts


def test_take_of_a_wav_without_sidecar_uses_the_neural_vad(tmp_path: Path) -> None:
    """A 44.1 kHz 24-bit stereo WAV without sidecar: read, resampled, speech found by Silero, and said so."""
    import soundfile as sf
    import soxr

    from simulator.audio import load_clip, read_wav

    mono = read_wav(REPO / "fixtures" / "speech" / "interrupt_gold_heart.wav")
    wav = tmp_path / "gold.wav"
    hi = soxr.resample(mono, 16000, 44100)
    sf.write(wav, np.stack([hi, 0.5 * hi], axis=1), 44100, subtype="PCM_24")
    clip = load_clip(wav)
    side = json.loads((REPO / "fixtures" / "speech" / "interrupt_gold_heart.json").read_text())["speech"][0]
    assert clip.speech_source == "silero" and len(clip.speech) == 1
    assert clip.speech[0][0] == pytest.approx(side["onset_s"], abs=0.05)
    assert clip.speech[0][1] == pytest.approx(side["offset_s"], abs=0.1)
    sc = load_scenario(SCEN / "bargein_in_lockout.yaml")
    sc = sc.model_copy(update={"utterances": [sc.utterances[0].model_copy(update={"wav": wav})]})
    summary = run_take(Task(sc, {}, 0, 1, varied=False))
    assert summary["error"] is None and any("neural VAD (Silero)" in w for w in summary["warnings"])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _self_interrupting_scenario(tmp_path: Path) -> Path:
    """``echo_only_no_aec`` with the echo gate off: the assistant's own voice
    (no client AEC) interrupts it, so every take has a false interrupt."""
    config = yaml.safe_load((REPO / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml").read_text())
    config["audio_config"]["vad"]["echo_margin_db"] = "none"
    (tmp_path / "gate_off.yaml").write_text(yaml.safe_dump(config))
    scenario = yaml.safe_load((SCEN / "echo_only_no_aec.yaml").read_text())
    scenario.update(name="echo_only_no_aec", config=str(tmp_path / "gate_off.yaml"), expect={"interrupt": True})
    path = tmp_path / "echo_only_no_aec.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def test_repeat_with_assertions_sets_the_exit_status(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("suite:\n  max_false_interrupt_rate: 1.0\n  min_pass_rate: 1.0\n")
    scen = str(_self_interrupting_scenario(tmp_path))
    ok = _cli("--scenario", scen, "--repeat", "2", "--jobs", "1", "--assertions", str(rules), "--out", str(tmp_path / "a"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2/2 assertions met" in ok.stdout
    report = json.loads((tmp_path / "a" / "repeats.json").read_text())
    assert report["suite"]["takes"] == 2 and report["suite"]["false_interrupt_rate"]["rate"] == 1.0
    html = (tmp_path / "a" / "report.html").read_text()
    assert "data:image/png;base64," in html and "echo_only_no_aec" in html and "max_false_interrupt_rate" in html
    # Nobody speaks: there is no latency to bound, and an assertion with no data fails.
    rules.write_text("suite:\n  p90_latency_ms: 5000\n")
    bad = _cli("--scenario", scen, "--repeat", "2", "--jobs", "1", "--no-png", "--assertions", str(rules), "--out", str(tmp_path / "a"))
    assert bad.returncode == 1 and "no data" in bad.stdout, bad.stdout + bad.stderr
    assert "2 take(s) read back" in bad.stdout  # same takes: resumed, not run again
    wrong = _cli("--scenario", scen, "--assertions", str(rules))
    assert wrong.returncode == 2 and "add --repeat" in wrong.stderr


def test_sweep_resumes_and_local_processes_equal_a_dask_cluster(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", "--scenario", str(SCEN / "echo_only_no_aec.yaml"), "--grid", "threshold=10,20",
            "lockout_seconds=0.5", "--repeat", "2", "--out", str(out), "--no-progress"]
    first = _cli(*args, "--jobs", "2")
    assert first.returncode in (0, 1), first.stdout + first.stderr
    lines = (out / "sweep.jsonl").read_text().splitlines()
    assert len(lines) == 4
    data = json.loads((out / "sweep.json").read_text())
    assert set(data["settings"]) == {"lockout_seconds=0.5,threshold=10", "lockout_seconds=0.5,threshold=20"}
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG" and (out / "sweep_runs.csv").is_file()
    assert "Pareto front" in (out / "report.html").read_text()
    # Interrupted after 3 runs: the same command runs only the missing one.
    (out / "sweep.jsonl").write_text("\n".join(lines[:3]) + "\n")
    again = _cli(*args, "--jobs", "1", "--no-png")
    assert again.returncode == first.returncode and "3 run(s) read back" in again.stdout, again.stdout + again.stderr
    local = {json.loads(x)["key"]: json.loads(x) for x in (out / "sweep.jsonl").read_text().splitlines()}
    assert len(local) == 4

    from dask.distributed import Client, LocalCluster

    from simulator.campaign import make_tasks
    from simulator.executor import run_tasks
    from simulator.sweep import parse_grid

    settings, _ = settings_of(parse_grid(["threshold=10,20", "lockout_seconds=0.5"]))
    tasks = make_tasks([load_scenario(SCEN / "echo_only_no_aec.yaml")], settings, 2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = {s["key"]: s for s in run_tasks(tasks, scheduler=client, progress=False)}
    assert remote == local
