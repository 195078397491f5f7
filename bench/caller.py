"""One simulated caller of the load generator: ask, listen, barge in.

A caller is the simulator's protocol client (:class:`simulator.client.SimClient`,
the tutorial page's behaviour: plays the answer, reports playback, stops and
cancels on ``response.interrupted``) streaming over a real WebSocket in real
time (:func:`simulator.live.stream_client`). Its scenario: a spoken question
from ``fixtures/speech`` at 0.2 s, then ``interrupt_*.wav`` 2 s after the
answer starts playing. Caller ``i`` takes question ``i mod 6`` and interrupt
``i mod 3`` so that sessions do not run in lockstep on identical audio.
A caller hangs up :data:`HANG_UP_AFTER_S` after the answer to its
interruption starts playing (:class:`BenchClient`): the figures come from the
first answer and the interrupt, and hearing the second answer out would make
every level last a minute longer without measuring anything more.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from bench.percentiles import pct
from simulator.audio import Clip, load_clip
from simulator.client import SimClient
from simulator.live import stream_client, stream_client_blocking
from simulator.scenario import Scenario, scenario_from_dict

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO / "fixtures" / "speech"
CONFIG = REPO / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml"
QUESTIONS = sorted(SPEECH.glob("question_*.wav"))
INTERRUPTS = sorted(SPEECH.glob("interrupt_*.wav"))
#: Barge in this long after the answer starts playing (the issue's "~2 s into the answer").
BARGE_IN_AFTER_S = 2.0
MAX_CALL_S = 90.0
#: Hang up this long after the answer to the interruption starts playing.
HANG_UP_AFTER_S = 2.0


@dataclass
class CallFigures:
    """What one call measured (ms unless named otherwise; None = did not happen).

    ``interrupt_latency_ms``: onset of the interrupting speech in the mic ->
    ``response.interrupted`` received; ``floor_ms`` / ``overhead_ms`` as in
    docs/simulator.md. ``decision_*``: the server's own fields on that event.
    ``voice_to_voice_ms``: end of the question -> the answer starts playing.
    ``send_lag_*``: how late this caller itself sent its chunks (load-generator health).
    """

    caller: int
    ok: bool
    error: str | None = None
    interrupt_latency_ms: float | None = None
    floor_ms: float | None = None
    overhead_ms: float | None = None
    decision_latency_ms: float | None = None
    decision_floor_ms: float | None = None
    voice_to_voice_ms: float | None = None
    missed_interrupts: int = 0
    false_interrupts: int = 0
    bytes_after_interrupt: int = 0
    send_lag_p95_ms: float | None = None
    send_lag_max_ms: float | None = None
    session_created_ms: float | None = None  # WebSocket open -> session.created
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def caller_scenario(i: int) -> Scenario:
    """The scenario of caller ``i`` (see the module docstring)."""
    return scenario_from_dict(
        {
            "name": f"bench_caller_{i}",
            "config": str(CONFIG),
            "utterances": [
                {"wav": str(QUESTIONS[i % len(QUESTIONS)]), "at": 0.2},
                {
                    "wav": str(INTERRUPTS[i % len(INTERRUPTS)]),
                    "after": "playback.started",
                    "delay_s": BARGE_IN_AFTER_S,
                    "expect_interrupt": True,
                },
            ],
            "max_duration_s": MAX_CALL_S,
        },
        source=f"bench caller {i}",
    )


def load_clips() -> dict[str, Clip]:
    """Every question and interrupt clip, loaded once and shared by all callers."""
    return {str(p): load_clip(p, None, 16000) for p in [*QUESTIONS, *INTERRUPTS]}


class BenchClient(SimClient):
    """The simulator's client, hanging up once the answer to its interruption has
    played :data:`HANG_UP_AFTER_S` seconds (or when the scenario played out)."""

    def finished(self, t: float) -> bool:
        if super().finished(t):
            return True
        tracks = list(self.responses.values())  # in the order the responses were created
        cut = next((k for k, tr in enumerate(tracks) if tr.interrupted_t is not None), None)
        if cut is None:
            return False
        later = [tr.first_play_t for tr in tracks[cut + 1 :] if tr.first_play_t is not None]
        return bool(later) and t >= later[0] + HANG_UP_AFTER_S


def new_client(i: int, clips: dict[str, Clip], *, output_rate: int, turn_silence_s: float) -> SimClient:
    """Caller ``i``'s protocol client, set to the project's TTS rate and end-of-turn silence."""
    return BenchClient(caller_scenario(i), output_rate=output_rate, turn_silence_s=turn_silence_s, clips=clips)


def figures_of(i: int, client: SimClient, vad: Any, send_lag_s: list[float], wall_s: float) -> CallFigures:
    """Reduce a finished call to its figures (``vad``: :class:`simulator.metrics.VadParams`)."""
    from simulator.metrics import compute_metrics
    from simulator.run import RunResult

    result = RunResult(scenario=client.scenario, mode="live", config_path=CONFIG, client=client, vad=vad, end_s=0.0)
    m = compute_metrics(result.record())
    fig = CallFigures(caller=i, ok=True, wall_s=wall_s, missed_interrupts=m.missed_interrupts, false_interrupts=m.false_interrupts)
    question = next((u for u in m.utterances if u.utterance == 0), None)
    if question is not None:
        fig.voice_to_voice_ms = question.voice_to_voice_ms
    cut = next((x for x in m.interrupts if not x.false and x.utterance == 1), None)
    if cut is not None:
        fig.interrupt_latency_ms, fig.floor_ms, fig.overhead_ms = cut.latency_ms, cut.floor_ms, cut.overhead_ms
    created = next((e for e in client.log if e.type == "session.created"), None)
    fig.session_created_ms = None if created is None else created.t * 1000
    event = next((e for e in client.log if e.type == "response.interrupted"), None)
    if event is not None:
        fig.decision_latency_ms = event.fields.get("decision_latency_ms")
        fig.decision_floor_ms = event.fields.get("decision_floor_ms")
    fig.bytes_after_interrupt = sum(tr.bytes_after_interrupt for tr in client.responses.values())
    lag_p95 = pct(send_lag_s, 95)
    fig.send_lag_p95_ms = None if lag_p95 is None else lag_p95 * 1000
    fig.send_lag_max_ms = max(send_lag_s) * 1000 if send_lag_s else None
    return fig


def _client_for(i: int, clips: dict[str, Clip], project: Any) -> SimClient:
    return new_client(
        i, clips, output_rate=project.audio_config.tts.sample_rate,
        turn_silence_s=project.audio_config.asr.silence_duration_ms / 1000,
    )


def _failed(i: int, exc: BaseException, start: float) -> CallFigures:
    return CallFigures(caller=i, ok=False, error=f"{type(exc).__name__}: {exc}"[:300], wall_s=time.perf_counter() - start)


async def call(
    i: int, ws_url: str, api_key: str, clips: dict[str, Clip], project: Any,
    on_event: Callable[[float, dict[str, Any]], None] | None = None,
) -> CallFigures:
    """Run caller ``i`` against the realtime URL ``ws_url`` of a project whose
    loaded config is ``project`` (:class:`server.config.ProjectConfig`);
    ``on_event(t_s, event)`` sees server events as they come.
    Never raises for a failed call: the figures say ``ok=False`` and why."""
    from simulator.run import vad_params

    client = _client_for(i, clips, project)
    start = time.perf_counter()
    try:
        streamed = await stream_client(ws_url, api_key, client, MAX_CALL_S, on_event=on_event)
    except Exception as exc:  # noqa: BLE001 - a failed call (LiveError, a refused or dropped socket) is a figure, not a crash
        return _failed(i, exc, start)
    return figures_of(i, client, vad_params(project), streamed.send_lag_s, time.perf_counter() - start)


def call_blocking(
    i: int, ws_url: str, api_key: str, clips: dict[str, Clip], project: Any,
    on_event: Callable[[float, dict[str, Any]], None] | None = None,
) -> CallFigures:
    """:func:`call` on blocking sockets (:func:`simulator.live.stream_client_blocking`), for Locust's green threads."""
    from simulator.run import vad_params

    client = _client_for(i, clips, project)
    start = time.perf_counter()
    try:
        streamed = stream_client_blocking(ws_url, api_key, client, MAX_CALL_S, on_event=on_event)
    except Exception as exc:  # noqa: BLE001 - a failed call is a figure, not a crash
        return _failed(i, exc, start)
    return figures_of(i, client, vad_params(project), streamed.send_lag_s, time.perf_counter() - start)
