"""The bench's own logic (no timing is asserted anywhere: figures only)."""

from __future__ import annotations

import math

import psutil
import pytest

from bench import promstats
from bench.caller import INTERRUPTS, QUESTIONS, caller_scenario
from bench.report import full_report
from bench.percentiles import spread


def test_histogram_quantile_interpolates_inside_the_bucket():
    # 10 observations: 4 under 10 ms, 4 in (10, 20], 2 in (20, 50].
    rows = [(0.01, 4.0), (0.02, 8.0), (0.05, 10.0), (math.inf, 10.0)]
    assert promstats.quantile(rows, 0.5) == pytest.approx(0.0125)
    assert promstats.quantile(rows, 0.9) == pytest.approx(0.035)
    assert promstats.quantile([(0.01, 0.0), (math.inf, 0.0)], 0.5) is None
    # Beyond the last finite bound the estimate stops there.
    assert promstats.quantile([(0.01, 1.0), (math.inf, 3.0)], 0.99) == 0.01


def test_buckets_are_the_difference_between_two_scrapes():
    page = """# TYPE x histogram
x_bucket{le="0.1"} %d
x_bucket{le="+Inf"} %d
x_count %d
x_sum 1.0
"""
    before = promstats.parse(page % (1, 2, 2))
    after = promstats.parse(page % (4, 7, 7))
    assert promstats.buckets(before, after, "x") == [(0.1, 3.0), (math.inf, 5.0)]
    assert promstats.delta(before, after, "x_count") == 5.0


def test_callers_rotate_fixtures_and_barge_in_two_seconds_into_the_answer():
    a, b = caller_scenario(0), caller_scenario(1)
    assert a.utterances[0].wav == QUESTIONS[0] and b.utterances[0].wav == QUESTIONS[1]
    assert a.utterances[1].wav == INTERRUPTS[0] and b.utterances[1].wav == INTERRUPTS[1]
    cut = a.utterances[1]
    assert (cut.after, cut.delay_s, cut.expect_interrupt) == ("playback.started", 2.0, True)


def test_report_renders_missing_figures_as_dashes():
    empty = {"p50": None, "p95": None, "p99": None, "n": 0}
    level = {
        "n": 1, "calls_ok": 0, "interrupt_latency_ms": empty, "interrupt_overhead_ms": empty, "decision_overhead_ms": empty,
        "voice_to_voice_ms": empty, "voice_to_voice_overhead_ms": empty, "missed_interrupts": 0, "bytes_after_interrupt": 0,
        "input_lag_ms": empty, "asr_queue_wait_ms": empty, "agent_queue_wait_ms": empty, "server_cpu_pct_per_caller": 1.0,
        "server_cpu_pct": 1.0, "bench_cpu_pct": 1.0, "rss_mb_per_caller": 1.0, "client_send_lag_p95_ms": None, "realtime": False,
    }
    text = full_report({"machine": "m", "command": "c", "scale": {"levels": [level], "realtime_lost_at_n": 1}})
    assert "-/-/-" in text and "first lost at N = 1" in text
    assert spread([None, 1.0, 3.0]) == {"p50": 1.0, "p95": 3.0, "p99": 3.0, "n": 2}


def test_a_caller_hangs_up_two_seconds_into_the_answer_to_its_interruption(monkeypatch):
    # On the virtual clock (the in-process session): the caller's call ends
    # HANG_UP_AFTER_S after the second answer starts playing, not when it was heard out.
    import simulator.fast
    from bench.caller import HANG_UP_AFTER_S, BenchClient

    def bench_client(scenario, config):
        return BenchClient(
            scenario, output_rate=config.audio_config.tts.sample_rate,
            turn_silence_s=config.audio_config.asr.silence_duration_ms / 1000,
        )

    scenario = caller_scenario(0)
    heard_out = simulator.fast.run_fast(scenario)
    monkeypatch.setattr(simulator.fast, "client_for", bench_client)
    hung_up = simulator.fast.run_fast(scenario)

    tracks = list(hung_up.client.responses.values())
    assert tracks[0].interrupted_t is not None, "the caller's barge-in did not interrupt the first answer"
    second_play = tracks[1].first_play_t
    assert second_play is not None
    chunk_s = hung_up.client.chunk / hung_up.client.sr
    assert second_play + HANG_UP_AFTER_S <= hung_up.end_s < second_play + HANG_UP_AFTER_S + chunk_s + 1e-9
    assert heard_out.end_s > hung_up.end_s + 5.0  # the plain client hears the second answer out


def test_frame_costs_measure_every_stage_on_a_few_frames():
    # The part once failed on an import of a class that had gone (EchoGate): run it,
    # on 3 s of frames, and check each stage gave figures (their values are not asserted).
    from bench import costs

    out = costs.frame_costs(costs.speech_frames(3.0))
    stages = {"frame_vad", "turn_gate", "echo_gate", "echo_gate_idle", "near_talker", "parse_audio_message",
              "journal_audio_message", "detector", "session_listening"}
    assert stages <= set(out)
    assert all(out[name]["mean_us"] > 0 for name in stages)


def test_the_simulator_bench_reads_the_phases_the_simulator_prints():
    from bench.report import simulator_table
    from bench.simspeed import waited_phases
    from simulator.timings import Timings

    t = Timings(origin=0.0)
    with t.span("engines"):
        pass
    with t.span("png"):
        pass
    printed = "scenario x ...\nwrote out/x.png\n" + t.line() + "\n"
    phases = waited_phases(printed)
    assert set(phases) == {"start-up", "engines", "png", "other", "total"}
    assert phases["start-up"] == pytest.approx(t.as_dict()["start-up"], abs=0.01)
    assert waited_phases("no such line") == {}
    row = {"command": "python -m simulator --wav w.wav", "simulated_s": 65.2, "wall_s": 3.0, "cpu_s": 4.1,
           "x_real_time_as_waited": 21.7, "x_real_time_runs_only": 46.6, "phases_s": phases}
    table = simulator_table({"headline": row})
    assert "engines s" in table and "python -m simulator --wav w.wav" in table


def test_the_server_probe_counts_its_child_processes_cpu():
    # The server's ASR decodes run in child processes: a probe of the server
    # alone would leave them out. The child burns 0.3 s of its own CPU time.
    import subprocess
    import sys

    from bench.scale import ProcessProbe

    probe = ProcessProbe(psutil.Process().pid, children=True)
    probe.start()
    burn = "import sys, time\nwhile time.process_time() < 0.3: pass\nprint('done', flush=True)\nsys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "done\n"
        probe.sample()
        assert probe.children_cpu_s() >= 0.25  # psutil reads whole clock ticks
        assert probe.cpu_s() >= probe.children_cpu_s()
    finally:
        child.communicate("")
