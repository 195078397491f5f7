"""Command line: ``python -m simulator --wav FILE | --scenario FILE | --suite DIR``."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.scenario import ANCHORS, DEFAULT_CONFIG, Scenario, ScenarioError, load_scenario, load_suite, scenario_from_dict
from simulator.timings import Timings

if TYPE_CHECKING:
    from simulator.run import RunResult
    from simulator.timeline import Renderer

EPILOG = """\
examples:
  python -m simulator --wav fixtures/interrupt.wav
  python -m simulator --wav fixtures/speech/interrupt_bonds_joe.wav --question "How do I hedge currency risk?" \\
      --after playback.started --delay-s 1.5
  python -m simulator --scenario fixtures/scenarios/bargein_mid.yaml --no-aec
  python -m simulator --suite fixtures/scenarios
  python -m simulator --wav fixtures/interrupt.wav --server http://127.0.0.1:8080
  python -m simulator --suite fixtures/scenarios --repeat 20 --assertions fixtures/assertions.yaml
  python -m simulator sweep --suite fixtures/scenarios --grid threshold=10:30:5 window_size=24,48 --repeat 5
  python -m simulator --replay recordings/sess_3_demo_alice

Writes out/<scenario>.json and out/<scenario>.png and prints a table; a suite or
repeat run also writes out/report.html. Exit status: 0 all expectations (with
--repeat and --assertions: all assertions) met, 1 one failed, 2 bad input (the
message says what to fix). `python -m simulator sweep --help` for sweeps.
See docs/simulator.md for the scenario format and how to tune a config.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Simulate a voice client against refinery-mock and measure barge-in.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--wav", type=Path, help="a WAV to stream as the microphone (its JSON sidecar marks the speech)")
    what.add_argument("--scenario", type=Path, help="a scenario YAML file")
    what.add_argument("--suite", type=Path, help="a directory of scenario YAML files; exits 1 if any expectation fails")
    what.add_argument("--replay", type=Path, metavar="DIR",
                      help="a session recorded with `python -m server --record`: rerun it on the virtual clock; "
                           "exits 1 if its decisions differ from the recorded ones")
    clock = p.add_mutually_exclusive_group()
    clock.add_argument("--fast", action="store_true", help="in-process session on a virtual clock (default; deterministic)")
    clock.add_argument("--server", metavar="URL", help="real time over WebSocket against a running server, e.g. http://127.0.0.1:8080")
    p.add_argument(
        "--partials",
        action="store_true",
        help="with --fast: send partial transcripts as the real-time server does (each is an ASR decode: "
        "runs with spoken turns take about 1.7x as long; no metric needs them)",
    )
    p.add_argument(
        "--no-speculative-finals",
        dest="speculative_finals",
        action="store_false",
        help="with --fast: decode the final transcript only when the turn ends, not speculatively during the "
        "end-of-turn silence (the server's --no-speculative-finals; for before/after figures)",
    )
    p.add_argument("--config", type=Path, help=f"project config YAML (default: the scenario's, else {DEFAULT_CONFIG.name})")
    p.add_argument("--out", type=Path, default=Path("out"), help="directory for <name>.json and <name>.png (default: out)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG timeline")
    g = p.add_argument_group("with --wav")
    g.add_argument("--name", help="run name (default: the WAV's stem)")
    g.add_argument("--question", help="a typed first turn (input_text) sent at 0.2 s, before the WAV plays")
    g.add_argument("--at", type=float, default=None, help="start the WAV at this time in seconds (default 0)")
    g.add_argument("--after", choices=ANCHORS, help="start the WAV relative to this event instead of --at")
    g.add_argument("--delay-s", type=float, default=0.0, help="seconds after --after (negative: before, for playback.expected_end)")
    g.add_argument("--expect-interrupt", action=argparse.BooleanOptionalAction, default=None, help="check that an interrupt does (not) happen")
    g.add_argument("--max-latency-ms", type=float, help="check the barge-in latency bound")
    a = p.add_argument_group("acoustics (override the scenario's)")
    a.add_argument("--echo-delay-ms", type=float, help="speaker-to-mic delay (default 40)")
    a.add_argument("--echo-gain", type=float, help="speaker-to-mic gain before AEC (default 0.5)")
    a.add_argument("--aec-erle-db", type=float, help="echo canceller attenuation in dB (default 30)")
    a.add_argument("--no-aec", action="store_true", help="no echo canceller (all of the echo reaches the server)")
    a.add_argument("--room-rt60-ms", type=float, help="add a short synthetic room response with this decay time")
    a.add_argument("--noise-db", type=float, help="background noise level in dBFS RMS, e.g. -50")
    a.add_argument("--noise-file", type=Path, help="WAV of background noise to loop (default: synthetic pink noise)")
    p.add_argument("--max-duration-s", type=float, help="stop the run after this long (default 120)")
    p.add_argument("--api-key", default="simulator", help="API key for --server (default: simulator)")
    add_take_options(p)
    p.add_argument("--assertions", type=Path, help="with --repeat: YAML of bounds on pooled figures (the exit status follows them)")
    return p


def add_take_options(p: argparse.ArgumentParser) -> None:
    """Options of runs made of many takes (``--repeat`` and ``sweep``)."""
    r = p.add_argument_group("repeats (many takes, pooled; --fast only)")
    r.add_argument("--repeat", type=int, metavar="N", help="run each scenario N times, each take varied (seeded)")
    r.add_argument("--seed", type=int, help="base seed of the takes (default 0: the same takes every time)")
    r.add_argument("--no-vary", action="store_true", help="takes as written: no variation, no jitter")
    r.add_argument("--jitter-ms", type=float, help="network jitter per message, both ways (default 20 when varied)")
    r.add_argument("--jobs", type=int, help="local worker processes (default: all cores; 1: in this process); "
                   "without --repeat: 1 draws a suite's PNGs in this process instead of beside the runs")
    r.add_argument("--scheduler", metavar="ADDRESS", help="run the takes on a Dask cluster, e.g. tcp://10.0.0.5:8786")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def variation_of(args: argparse.Namespace) -> Any:
    """The :class:`simulator.variation.Variation` the options ask for."""
    from simulator.variation import Variation

    return Variation(jitter_ms=args.jitter_ms) if args.jitter_ms is not None else Variation()


def check_take_options(args: argparse.Namespace) -> str | None:
    """An error message for take options that cannot work together, else None."""
    if args.repeat is not None and args.repeat < 1:
        return f"--repeat must be at least 1, got {args.repeat}"
    if args.jobs is not None and args.jobs < 1:
        return f"--jobs must be at least 1, got {args.jobs}"
    if getattr(args, "server", None) and args.repeat:
        return "--repeat runs on the virtual clock; drop --server (real time is one take at a time)"
    return None


def _overrides(args: argparse.Namespace, sc: Scenario) -> Scenario:
    echo: dict[str, Any] = {}
    if args.echo_delay_ms is not None:
        echo["delay_ms"] = args.echo_delay_ms
    if args.echo_gain is not None:
        echo["gain"] = args.echo_gain
    if args.aec_erle_db is not None:
        echo["aec_erle_db"] = args.aec_erle_db
    if args.no_aec:
        echo["aec_erle_db"] = None
    if args.room_rt60_ms is not None:
        echo["room_rt60_ms"] = args.room_rt60_ms
    noise: dict[str, Any] = {}
    if args.noise_db is not None:
        noise["db"] = args.noise_db
    if args.noise_file is not None:
        noise["file"] = args.noise_file.resolve()
        noise.setdefault("db", sc.noise.db if sc.noise.db is not None else -50.0)
    data = sc.model_dump()
    data["echo"].update(echo)
    data["noise"].update(noise)
    if args.config is not None:
        data["config"] = args.config.resolve()
    if args.max_duration_s is not None:
        data["max_duration_s"] = args.max_duration_s
    return scenario_from_dict(data, source="command line options")


def wav_scenario(args: argparse.Namespace) -> Scenario:
    """The ad-hoc scenario of ``--wav``: the WAV as the microphone, optionally after a typed question."""
    utt: dict[str, Any] = {"wav": args.wav.resolve()}
    if args.after:
        utt.update(after=args.after, delay_s=args.delay_s)
    else:
        utt["at"] = args.at if args.at is not None else 0.0
    data: dict[str, Any] = {"name": args.name or args.wav.stem, "utterances": [utt], "expect": {}}
    if args.question:
        data["actions"] = [{"type": "text", "text": args.question, "at": 0.2}]
    if args.expect_interrupt is not None:
        data["expect"]["interrupt"] = args.expect_interrupt
    if args.max_latency_ms is not None:
        data["expect"]["max_latency_ms"] = args.max_latency_ms
    return scenario_from_dict(data, source=f"--wav {args.wav}")


def run_one(sc: Scenario, args: argparse.Namespace) -> RunResult:
    """Run one scenario with the chosen driver, timed on the wall clock (``wall_s``)."""
    t0 = time.perf_counter()
    if args.server:
        from simulator.live import run_live

        result = run_live(sc, args.server, api_key=args.api_key)
    else:
        from simulator.fast import run_fast

        result = run_fast(sc, partials=args.partials, speculative=args.speculative_finals)
    result.wall_s = time.perf_counter() - t0
    return result


def write_outputs(result: RunResult, out: Path, png: bool, timings: Timings | None = None,
                  renderer: Renderer | None = None) -> list[Path]:
    """Write ``out/<name>.json`` (and ``.png`` when ``png``); returns the paths written.

    ``timings``: add the time taken to its ``json`` and ``png`` phases.
    ``renderer``: draw the PNG there (written once the renderer is closed).
    """
    from simulator.report import write_json

    span = timings.span if timings is not None else (lambda _phase: nullcontext())
    with span("json"):
        paths = [write_json(result, out / f"{result.scenario.name}.json")]
    if png:
        from simulator.timeline import write_png

        with span("png"):
            path = out / f"{result.scenario.name}.png"
            paths.append(renderer.submit(result, path) if renderer is not None else write_png(result, path))
    return paths


def _collector_on(as_program: bool) -> None:
    """Freeze what is alive and turn the cyclic GC back on (``python -m simulator`` starts with it
    off, :mod:`simulator.__main__`): modules and engines live to the end, and a full collection
    walking them cost ~0.15 s of a headline run. Only for the program: a caller's GC is its own."""
    if as_program:
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    """The command line; ``argv`` None: this process's own (timed from the process's start)."""
    as_program = argv is None
    timings = Timings() if as_program else Timings(origin=time.perf_counter())
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sweep"]:
        from simulator.sweep_cli import sweep_main

        _collector_on(as_program)
        return sweep_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.replay is not None:
        from simulator import replay

        _collector_on(as_program)
        return replay.main(args.replay)
    problem = check_take_options(args)
    if problem is None and args.assertions is not None and args.repeat is None:
        problem = "--assertions bound pooled figures: add --repeat N"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from server.config import ConfigError
    from simulator.audio import ClipError

    bad_input: tuple[type[Exception], ...] = (ScenarioError, ClipError, ConfigError, FileNotFoundError)
    if args.server:
        from simulator.live import LiveError

        # LiveError: the server refused a step (bad URL, key or config); its message names the step.
        bad_input += (LiveError,)
    try:
        if args.wav is not None:
            scenarios = [(args.wav, _overrides(args, wav_scenario(args)))]
        elif args.scenario is not None:
            scenarios = [(args.scenario, _overrides(args, load_scenario(args.scenario)))]
        else:
            scenarios = [(f, _overrides(args, sc)) for f, sc in load_suite(args.suite)]
    except bad_input as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.repeat is not None:
        _collector_on(as_program)
        return repeat_main(args, [sc for _, sc in scenarios], argv)

    renderer = None
    if args.suite is not None and not args.no_png and len(scenarios) > 1 and (args.jobs or os.cpu_count() or 1) > 1:
        from simulator.timeline import Renderer

        renderer = Renderer()  # its process starts now and imports matplotlib while the engines load
    configs = sorted({str(sc.config_path) for _, sc in scenarios})
    wait_for_engines = None
    if not args.server:
        from simulator.engines import start_loading

        wait_for_engines = start_loading(Path(p) for p in configs)
        # While the models load on their threads: what the rest of the command needs.
        import simulator.fast  # noqa: F401 - the driver and the session code
    from simulator.report import Progress, format_table, speed_line, summary_table

    if not args.no_png and renderer is None:
        from simulator.timeline import import_matplotlib

        import_matplotlib()

    load_s = 0.0
    if wait_for_engines is not None:
        # Model loading happens once per process: keep it out of the speed figures.
        from simulator.engines import warm_up

        with timings.span("engines"):
            wait_for_engines()
            try:
                for path in configs:
                    warm_up(Path(path))
            except bad_input as exc:
                print(f"error: {exc}", file=sys.stderr)
                if renderer is not None:
                    renderer.close()
                return 2
        load_s = timings.phases["engines"]
    _collector_on(as_program)

    if args.suite is None:
        _, sc = scenarios[0]
        try:
            with timings.span("runs"):
                result = run_one(sc, args)
        except bad_input as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(format_table(result))
        for path in write_outputs(result, args.out, not args.no_png, timings):
            print(f"wrote {path}")
        print(timings.line())
        return 0 if result.passed else 1

    rows = []
    progress = Progress(len(scenarios))
    for f, sc in scenarios:
        progress.update(sc.name)
        try:
            with timings.span("runs"):
                result = run_one(sc, args)
            write_outputs(result, args.out, not args.no_png, timings, renderer)
            rows.append((sc.name, result, ""))
        except bad_input as exc:
            rows.append((sc.name, None, str(exc).splitlines()[0]))
        progress.step(sc.name)
    if renderer is not None:
        with timings.span("png"):
            renderer.close()  # the HTML inlines the pictures
    print(summary_table(rows))
    print(speed_line(rows, load_s))
    failed = [name for name, res, _ in rows if res is None or not res.passed]
    from simulator.html_report import suite_html

    with timings.span("html"):
        html = suite_html(rows, args.out, png=not args.no_png, command="python -m simulator " + " ".join(argv))
    print(timings.line())
    print(f"\n{len(rows) - len(failed)}/{len(rows)} scenarios passed; reports in {args.out}/ ({html.name})")
    return 1 if failed else 0


def repeat_main(args: argparse.Namespace, scenarios: list[Scenario], argv: list[str]) -> int:
    """``--repeat N``: N varied takes of each scenario, pooled; exit 1 when an assertion
    (or, without ``--assertions``, a take's own expectation) fails."""
    from simulator.assertions import AssertionsError, load_assertions
    from simulator.campaign import execute, format_pooled, make_tasks, repeat_report, verdict_lines
    from simulator.pooled import pool, pool_by

    try:
        assertions = load_assertions(args.assertions) if args.assertions else []
    except AssertionsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    variation = variation_of(args)
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = make_tasks(scenarios, [{}], args.repeat, seed=args.seed or 0, variation=variation, varied=not args.no_vary,
                       png_dir=None if args.no_png else args.out)
    summaries, resumed = execute(tasks, args.out / "repeats.jsonl", jobs=args.jobs, scheduler=args.scheduler,
                                 progress=not args.no_progress)
    data, verdicts = repeat_report(summaries, assertions, args.out, command="python -m simulator " + " ".join(argv),
                                   repeats=args.repeat, variation=variation, varied=not args.no_vary)
    print(format_pooled({**pool_by(summaries, "scenario"), "SUITE": pool(summaries)}))
    if resumed:
        print(f"({resumed} take(s) read back from {args.out / 'repeats.jsonl'}, not run again)")
    for line in verdict_lines(verdicts):
        print(line)
    errors = [s for s in summaries if s["error"]]
    for s in errors[:5]:
        print(f"error in {s['scenario']} take {s['repeat']}: {s['error']}")
    if assertions:
        failed = [v for v in verdicts if not v.ok]
        print(f"\n{len(verdicts) - len(failed)}/{len(verdicts)} assertions met; reports in {args.out}/ (report.html, repeats.json)")
        return 1 if failed or errors else 0
    bad = [s for s in summaries if s["error"] or not s["passed"]]
    print(f"\n{len(summaries) - len(bad)}/{len(summaries)} takes met their expectations; reports in {args.out}/ (report.html, repeats.json)")
    return 1 if bad else 0
