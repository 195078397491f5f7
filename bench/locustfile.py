"""The bench caller as a Locust user: the same ask / listen / barge-in call,
run by Locust so that callers can come from several machines.

Each task is one whole call (:func:`bench.caller.call`: a spoken question, the
answer played, an interrupt 2 s into it, the next answer). It reports, with
``request_type`` "call", a request per figure so Locust's tables show them
as response times in ms:

- ``session.created``: socket open -> first event, reported as it arrives;
- ``call``: the whole call (fails when it failed, with the reason);
- ``voice-to-voice``: end of the question -> the answer starts playing;
- ``interrupt``: interrupt onset -> ``response.interrupted`` (fails when the
  interrupt was missed or audio came after it);
- ``interrupt overhead``: the same minus its floor.

Run (the server's URL as ``--host``; see docs/bench.md):

    locust -f bench/locustfile.py --headless -u 50 -r 5 -t 5m --host http://127.0.0.1:8080
    # distributed: one master, any number of workers (other machines: --master-host)
    locust -f bench/locustfile.py --master --headless -u 200 -r 10 -t 10m --expect-workers 2 --host http://SERVER:8080
    locust -f bench/locustfile.py --worker --master-host MASTER

Each user streams with blocking sockets and a receiver thread
(:func:`simulator.live.stream_client_blocking`): under Locust's gevent
monkey-patching those are green threads, so users run side by side (an
asyncio loop inside a greenlet would block all the others).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import yaml
from locust import User, constant, task

from bench.caller import CONFIG, CallFigures, call_blocking, load_clips
from simulator.live import realtime_url, setup_project

API_KEY = "locust"
PROJECT = "locust_bench"
_callers = itertools.count()
_shared: dict[str, object] = {}


_setup_lock = threading.Lock()  # a green lock under Locust: one user sets up, the others wait


def _shared_setup(host: str) -> tuple[str, object, dict]:
    """Project, loaded config and clips, made once per worker process."""
    with _setup_lock:
        if "account" in _shared:
            return _shared["account"], _shared["config"], _shared["clips"]  # type: ignore[return-value]
        from server.config import load_project_config_file

        raw = yaml.safe_load(CONFIG.read_text())
        # asyncio.run is fine here: the lock keeps every other user out of asyncio meanwhile.
        _shared["config"] = load_project_config_file(CONFIG).config
        _shared["clips"] = load_clips()
        _shared["account"] = asyncio.run(setup_project(host.rstrip("/"), API_KEY, PROJECT, raw))
        return _shared["account"], _shared["config"], _shared["clips"]  # type: ignore[return-value]


class RefineryCaller(User):
    """One simulated caller; every task is a whole call."""

    wait_time = constant(1)
    host = "http://127.0.0.1:8080"

    def on_start(self) -> None:
        self.index = next(_callers)

    def _report(self, name: str, ms: float | None, started: float, error: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type="call",
            name=name,
            response_time=ms if ms is not None else (time.perf_counter() - started) * 1000,
            response_length=0,
            exception=RuntimeError(error) if error else None,
            context={"caller": self.index},
        )

    @task
    def ask_listen_barge_in(self) -> None:
        account, config, clips = _shared_setup(self.host)
        base = self.host.rstrip("/")
        started = time.perf_counter()

        def on_event(t: float, event: dict) -> None:
            if event.get("type") == "session.created":
                self._report("session.created", t * 1000, started)

        fig: CallFigures = call_blocking(self.index, realtime_url(base, account, PROJECT), API_KEY, clips, config, on_event=on_event)
        self._report("call", fig.wall_s * 1000, started, None if fig.ok else (fig.error or "call failed"))
        if not fig.ok:
            return
        self._report("voice-to-voice", fig.voice_to_voice_ms, started,
                     None if fig.voice_to_voice_ms is not None else "the answer never played")
        problem = None
        if fig.interrupt_latency_ms is None:
            problem = "missed interrupt" if fig.missed_interrupts else "no answer to barge into"
        elif fig.bytes_after_interrupt:
            problem = f"{fig.bytes_after_interrupt} bytes of audio after response.interrupted"
        self._report("interrupt", fig.interrupt_latency_ms, started, problem)
        if fig.overhead_ms is not None:
            self._report("interrupt overhead", fig.overhead_ms, started)
