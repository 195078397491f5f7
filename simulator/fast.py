"""``--fast``: drive the server's session core in-process on a virtual clock.

Each tick of the client (one microphone chunk) advances the virtual session to
the tick's time, hands the client what the server emitted, then delivers the
client's control messages and its microphone chunk. Engine work completes after
the modelled latency of ``server.virtual.JobLatency``, so a run is
deterministic, and it takes no longer than the engines' own compute.

Partial transcripts are off by default here: each costs a Whisper decode of
the audio so far (about 1 s of compute on a small CPU), they only matter to a
client showing live captions, and no metric reads them. ``partials=True``
(``--partials``) turns them back on; the real-time mode always has them.
"""

from __future__ import annotations

import math
from pathlib import Path

from server.config import load_project_config_file
from server.engines import build_engines
from server.virtual import open_virtual_session
from simulator.run import RunResult, client_for, vad_params, warning_texts
from simulator.scenario import Scenario


def warm_up(config_path: Path) -> float:
    """Load and first-run the engines ``config_path`` selects (cached per process); returns seconds taken.

    Lets a caller time runs without the one-time model loading and first
    inferences in them (:meth:`server.engines.EngineSet.warm_up`).
    """
    import time

    t0 = time.perf_counter()
    build_engines(load_project_config_file(Path(config_path)).config).warm_up()
    return time.perf_counter() - t0


def run_fast(
    scenario: Scenario,
    config_path: Path | None = None,
    *,
    latency: object | None = None,
    partials: bool = False,
) -> RunResult:
    """Run ``scenario`` against an in-process session; deterministic.

    ``partials``: send partial transcripts as the real-time server does (each
    is a full ASR decode: slow, and not used by any metric).
    """
    path = Path(config_path or scenario.config_path)
    loaded = load_project_config_file(path)
    cfg = loaded.config
    client = client_for(scenario, cfg)
    kwargs = {"latency": latency} if latency is not None else {}
    vs = open_virtual_session(
        cfg, uuid="sim", project=scenario.name.replace(".", "_"), record_trace=True, partial_transcripts=partials, **kwargs
    )

    def feed(events: list) -> None:
        for ev in events:
            client.on_event(ev.t, ev.event)

    feed(vs.start())
    sr, chunk = client.sr, client.chunk
    last_k = math.ceil(scenario.max_duration_s * sr / chunk)
    t = 0.0
    for k in range(1, last_k + 1):
        t = k * chunk / sr
        feed(vs.advance(t))
        queue = [*client.control(t), client.mic_chunk(t)]
        while queue:
            feed(vs.deliver(t, queue.pop(0)))
            queue.extend(client.control(t))  # reactions at the same instant (cancel, playback.started)
        if client.finished(t):
            break
    trace = [(float(a), bool(b), int(c), bool(d), bool(e)) for a, b, c, d, e in getattr(vs.session, "trace", [])]
    counters = dict(vs.session.inspect().get("counters", {}))
    return RunResult(
        scenario=scenario,
        mode="fast",
        config_path=path,
        client=client,
        vad=vad_params(cfg),
        end_s=t,
        trace=trace,
        trace_source="server",
        config_warnings=warning_texts(loaded),
        server_counters=counters,
        partial_transcripts=partials,
    )
