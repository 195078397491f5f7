"""The bench's tables (``tabulate``, GitHub markdown so the README can carry them as printed)."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def _f(x: Any, nd: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _three(d: dict[str, Any], nd: int = 0) -> str:
    return "/".join(_f(d.get(k), nd) for k in ("p50", "p95", "p99"))


def _speculative(d: dict[str, float] | None) -> str:
    """``used/wasted`` speculative final decodes (docs/asr.md); ``-`` for results from before they existed."""
    return "-" if d is None else f"{d['used']:.0f}/{d['wasted']:.0f}"


def scale_tables(scale: dict[str, Any]) -> str:
    """Latency per N and load per N."""
    lat, load = [], []
    for d in scale["levels"]:
        r = d.get("ratio_to_n1", {})
        lat.append([
            d["n"], f"{d['calls_ok']}/{d.get('calls', d['n'])}", _three(d["interrupt_latency_ms"]), _three(d["interrupt_overhead_ms"]),
            _f(r.get("interrupt_overhead_ms_p95"), 2), _three(d["decision_overhead_ms"]), _three(d["voice_to_voice_ms"]),
            _f(d["voice_to_voice_overhead_ms"]["p50"]) + "/" + _f(d["voice_to_voice_overhead_ms"]["p95"]),
            d["missed_interrupts"], d["bytes_after_interrupt"],
        ])
        load.append([
            d["n"], _three(d["input_lag_ms"], 1), _f(d["asr_queue_wait_ms"]["p50"]) + "/" + _f(d["asr_queue_wait_ms"]["p95"]),
            _f(d["agent_queue_wait_ms"]["p50"]) + "/" + _f(d["agent_queue_wait_ms"]["p95"]),
            _speculative(d.get("speculative_finals")),
            _f(d["server_cpu_pct_per_caller"], 2), _f(d["server_cpu_pct"], 0), _f(d["bench_cpu_pct"], 0),
            _f(d["rss_mb_per_caller"], 1), _f(d["client_send_lag_p95_ms"], 0), "yes" if d["realtime"] else "NO",
        ])
    t1 = tabulate(lat, headers=[
        "N", "calls ok", "interrupt ms p50/95/99", "overhead over floor ms p50/95/99", "overhead p95 / N=1",
        "server decision - floor ms p50/95/99", "voice-to-voice ms p50/95/99", "v2v - silence ms p50/95", "missed", "bytes after interrupt",
    ], tablefmt="github")
    t2 = tabulate(load, headers=[
        "N", "input lag ms p50/95/99", "ASR wait ms p50/95", "agent wait ms p50/95", "speculative finals used/wasted",
        "server CPU %/caller", "server CPU %",
        "bench CPU %", "RSS MB/caller", "caller send lag p95 ms", "real time",
    ], tablefmt="github")
    lost = scale.get("realtime_lost_at_n")
    tail = f"real time (input lag p95 <= 30 ms, all calls ok) first lost at N = {lost if lost is not None else 'never (within the levels run)'}"
    if scale.get("collapsed_at_n") is not None:
        tail += f"; collapsed (input lag p95 >= 1 s or failed calls) at N = {scale['collapsed_at_n']}"
    if scale.get("skipped"):
        tail += f"; not run (time budget or collapse): N = {scale['skipped']}"
    return f"{t1}\n\n{t2}\n\n{tail}"


def costs_table(costs: dict[str, Any]) -> str:
    rows = []
    for name, d in costs.items():
        if "mean_us" in d:
            rows.append([name, _f(d["p50_us"], 1), _f(d["mean_us"], 1), _f(d["p99_us"], 1), _f(d["share_of_frame_pct"], 3),
                         _f(d.get("cpu_mean_us"), 1), _f(d.get("model_runs_pct"), 1)])
        elif "mean_ms" in d:
            rows.append([name + " (per candidate)", "-", _f(d["mean_ms"] * 1000, 0), "-", _f(d["share_of_frame_pct"], 1), "-", "-"])
    return tabulate(rows, headers=["per 30 ms frame", "p50 µs", "mean µs", "p99 µs", "mean % of frame", "CPU mean µs", "Silero runs %"],
                    tablefmt="github")


def engines_table(asr: dict[str, Any] | None, tts: dict[str, Any] | None) -> str:
    rows = []
    if asr:
        rows.append([f"ASR {asr['engine']}", _f(asr["rtf"], 3), f"WER {asr['wer']:.3f}", f"{asr['decodes_per_s_one_thread']} decodes/s (1 thread)"])
    for name, d in (tts or {}).items():
        if "error" in d:
            rows.append([f"TTS {name}", "-", "-", d["error"]])
        else:
            rows.append([f"TTS {name}", _f(d["rtf"], 3), f"first audio {d['first_audio_ms']:.0f} ms", d["voice"]])
    return tabulate(rows, headers=["engine", "RTF", "quality / latency", "note"], tablefmt="github")


def simulator_table(sim: dict[str, Any]) -> str:
    """One row per command: the run with the median wall time of its repeats, and its phases."""
    rows = []
    for d in sim.values():
        ph = d.get("phases_s", {})
        rows.append([
            d["command"], d["simulated_s"], d["wall_s"], f"x{d['x_real_time_as_waited']}", f"x{d['x_real_time_runs_only']}",
            ph.get("start-up", "-"), ph.get("engines", "-"), ph.get("runs", "-"),
            round(ph.get("png", 0.0) + ph.get("html", 0.0) + ph.get("json", 0.0), 2) if ph else "-",
            d.get("cpu_s", "-"),
        ])
    return tabulate(rows, headers=["command", "simulated s", "wall s", "as waited", "runs only", "start-up s",
                                   "engines s", "runs s", "outputs s", "CPU s"], tablefmt="github")


def full_report(results: dict[str, Any]) -> str:
    """Every table of a results dict, with the machine line."""
    parts = [f"machine: {results['machine']}", f"command: {results['command']}"]
    failed = {k: v["error"] for k, v in results.items() if isinstance(v, dict) and "error" in v}
    ok = {k: v for k, v in results.items() if k not in failed}
    if "scale" in ok:
        parts.append(scale_tables(ok["scale"]))
    if "frame_costs" in ok:
        parts.append(costs_table(ok["frame_costs"]))
    if "asr" in ok or "tts" in ok:
        parts.append(engines_table(ok.get("asr"), ok.get("tts")))
    if "simulator" in ok:
        parts.append(simulator_table(ok["simulator"]))
    parts.extend(f"{k} FAILED: {msg}" for k, msg in failed.items())
    return "\n\n".join(parts)
