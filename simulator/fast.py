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
from collections import deque
from pathlib import Path

import numpy as np

from server.config import LoadedConfig, load_project_config_file
from server.virtual import open_virtual_session
from simulator.run import RunResult, client_for, vad_params, warning_texts
from simulator.scenario import Scenario


class Network:
    """Seeded one-way delays of both directions of the WebSocket, on the virtual clock.

    Each message is delayed by ``U(0, jitter_s)`` but never delivered before the
    one sent before it in the same direction (one ordered stream). ``jitter_s=0``
    delivers everything at once, as the run without a network did.
    """

    def __init__(self, jitter_s: float, seed: int) -> None:
        self.jitter_s = jitter_s
        self._rng = np.random.default_rng([seed, 0x6E6574])  # own stream: other seeded parts stay put
        self._last = {"up": 0.0, "down": 0.0}

    def _deliver(self, way: str, t: float) -> float:
        delay = float(self._rng.uniform(0.0, self.jitter_s)) if self.jitter_s > 0 else 0.0
        when = max(t + delay, self._last[way])
        self._last[way] = when
        return when

    def uplink(self, t: float) -> float:
        """When a client message sent at ``t`` (s) reaches the session."""
        return self._deliver("up", t)

    def downlink(self, t: float) -> float:
        """When a server event sent at ``t`` (s) reaches the client."""
        return self._deliver("down", t)


def run_fast(
    scenario: Scenario,
    config_path: Path | None = None,
    *,
    latency: object | None = None,
    partials: bool = False,
    speculative: bool = True,
    loaded: LoadedConfig | None = None,
) -> RunResult:
    """Run ``scenario`` against an in-process session; deterministic.

    ``partials``: send partial transcripts as the real-time server does (each
    is a full ASR decode: slow, and not used by any metric). ``loaded``: the
    config already loaded (and changed, e.g. by a sweep: :mod:`simulator.settings`);
    ``config_path`` then only names it in reports. ``speculative``: speculative
    final decodes, as the real-time server does by default (docs/asr.md).
    """
    path = Path(config_path or scenario.config_path)
    if loaded is None:
        loaded = load_project_config_file(path)
    cfg = loaded.config
    client = client_for(scenario, cfg)
    kwargs = {"latency": latency} if latency is not None else {}
    vs = open_virtual_session(
        cfg, uuid="sim", project=scenario.name.replace(".", "_"), record_trace=True, partial_transcripts=partials,
        speculative_finals=speculative, **kwargs
    )

    net = Network(scenario.network.jitter_ms / 1000.0, scenario.network.seed)
    down: deque[tuple[float, dict]] = deque()  # server events on their way to the client
    up: deque[tuple[float, object]] = deque()  # client messages on their way to the session

    def emit(events: list) -> None:
        for ev in events:
            down.append((net.downlink(ev.t), ev.event))

    def receive(t: float) -> None:
        while down and down[0][0] <= t:
            when, event = down.popleft()
            client.on_event(when, event)

    def send(t: float, msg: object) -> None:
        up.append((net.uplink(t), msg))
        while up and up[0][0] <= t:  # without jitter: at once, as the session's own reactions
            emit(vs.deliver(*up.popleft()))
            receive(t)

    emit(vs.start())
    receive(0.0)
    sr, chunk = client.sr, client.chunk
    last_k = math.ceil(scenario.max_duration_s * sr / chunk)
    t = 0.0
    for k in range(1, last_k + 1):
        t = k * chunk / sr
        while up and up[0][0] <= t:  # messages that were in flight since an earlier tick
            emit(vs.deliver(*up.popleft()))
        emit(vs.advance(t))
        receive(t)
        queue = [*client.control(t), client.mic_chunk(t)]
        while queue:
            send(t, queue.pop(0))
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
