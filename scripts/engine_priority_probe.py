"""How late an audio-path loop runs while Whisper decodes in engine threads: the measurement behind ``--engine-nice``.

The server's event loop pushes every listening session's 30 ms frame through
the streaming Silero end-of-turn gate (its main cost, docs/bench.md) while the
engine pool decodes. This reproduces that pair in one process, with the
server's parts: an asyncio loop that every 30 ms pushes one real speech frame
through ``--streams`` Silero gates, and ``--workers`` engine-pool threads
(:class:`server.engine_pool.EnginePool`, lowered by
:func:`server.priority.lower_engine_thread`) running Whisper final decodes
on the speech fixtures back to back; the model is loaded in a pool thread, as
the server's warm-up does, so CTranslate2's threads inherit its nice.

Prints one JSON line: tick lateness (ms the loop's 30 ms tick started after
it was due; this is the server's input lag in miniature) p50/p95/p99, the
loop's busy share, and the decodes' count and wall time p50.

Usage, from the checkout root (vary ``--engine-nice``, ``$OMP_WAIT_POLICY``, ``--switch-interval-ms``)::

    PYTHONPATH=. .venv/bin/python scripts/engine_priority_probe.py --engine-nice 10 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import wave
from pathlib import Path

import server  # noqa: F401  (one BLAS thread, before numpy)
from server import priority, vad
from server.asr import get_asr_engine
from server.engine_pool import EnginePool

ROOT = Path(__file__).resolve().parents[1]
TICK_S = 0.030


def _clips() -> list[tuple[int, bytes]]:
    clips = []
    for path in sorted((ROOT / "fixtures" / "speech").glob("*.wav")):
        with wave.open(str(path)) as w:
            clips.append((w.getframerate(), w.readframes(w.getnframes())))
    return clips


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _probe(args: argparse.Namespace) -> dict:
    pool = EnginePool(workers=args.workers, initializer=priority.lower_engine_thread)
    engine = await pool.run(lambda name: get_asr_engine(name), "whisper", timeout_s=300)
    clips = _clips()
    rate, speech = clips[0]
    frame_bytes = rate * 2 * 30 // 1000
    frames = [speech[i:i + frame_bytes] for i in range(0, len(speech) - frame_bytes, frame_bytes)]
    gates = [vad.get_speech_gate("silero", sample_rate=rate) for _ in range(args.streams)]
    decode_s: list[float] = []
    stop = threading.Event()

    def decode(i: int) -> None:
        r, pcm = clips[i % len(clips)]
        start = time.perf_counter()
        engine.transcribe(f"probe-{i}", pcm, r, final=True)
        decode_s.append(time.perf_counter() - start)

    async def decoder(worker: int) -> None:
        i = worker
        while not stop.is_set():
            await pool.run(decode, i, timeout_s=300)
            i += args.workers

    decoders = [asyncio.create_task(decoder(w)) for w in range(args.workers)]
    await asyncio.sleep(1.0)  # every worker inside a decode
    lateness: list[float] = []
    busy = 0.0
    due = time.perf_counter()
    end = due + args.seconds
    k = 0
    while due < end:
        due += TICK_S
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        started = time.perf_counter()
        lateness.append(max(0.0, started - due))
        frame = frames[k % len(frames)]
        for gate in gates:
            gate.push(frame)
        k += 1
        busy += time.perf_counter() - started
    stop.set()
    count = len(decode_s)
    await asyncio.gather(*decoders)
    return {
        "engine_nice": priority.engine_nice(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "switch_interval_ms": round(sys.getswitchinterval() * 1000, 3),
        "streams": args.streams,
        "workers": args.workers,
        "tick_late_ms": {q: round(_pct(lateness, p) * 1000, 1) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "loop_busy": round(busy / args.seconds, 3),
        "decodes": count,
        "decode_ms_p50": round(_pct(decode_s[:count], 0.5) * 1000),
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine-nice", type=int, default=0, help="engine threads' nice below the loop (0: same)")
    p.add_argument("--switch-interval-ms", type=float, default=None, help="sys.setswitchinterval for this run (default 5)")
    p.add_argument("--streams", type=int, default=60, help="Silero gates pushed per 30 ms tick (listening sessions)")
    p.add_argument("--workers", type=int, default=4, help="engine threads decoding (the server's pool has 4)")
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args(argv)
    priority.set_engine_nice(args.engine_nice)
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    print(json.dumps(asyncio.run(_probe(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
