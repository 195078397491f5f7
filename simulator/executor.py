"""Where takes run: this process, local worker processes, or a Dask cluster.

Takes are independent, so they are mapped over workers and their summaries
come back in completion order; callers sort by key, so the order of completion
never shows in results. Engines load once per worker process: the local pool's
initializer and, on Dask, ``Client.run`` warm every worker up before the first
take (:func:`warm_worker`: the engines, then one run of each scenario as
written, in a fixed order). A take's figures depend only on its task (virtual
clock, seeded variation, primed speech synthesis), so a local run and a Dask
run with the same seeds give equal summaries.

Libraries: ``concurrent.futures.ProcessPoolExecutor`` (standard library) for
local cores, started with ``spawn`` (forking a process that already runs
ONNX Runtime / CTranslate2 threads can deadlock); ``dask.distributed`` for a
cluster (a well-kept scheduler with workers started anywhere by one command,
see docs/simulator.md); ``tqdm`` for the progress bar and its ETA.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from simulator.scenario import Scenario
from simulator.takes import Task, run_take

Summary = dict[str, Any]


def warm_worker(config_paths: Sequence[str], prime: Sequence[Scenario] = ()) -> None:
    """Make this process ready for takes (pool initializer / ``Client.run``).

    Loads and first-runs the engines of each config, then runs each scenario of
    ``prime`` once as written, in name order. Why the second step: eSpeak
    carries a little state from one utterance to the next that its API cannot
    reset (docs/tts.md), and the sentence cache keeps the first synthesis of a
    sentence; so a reply's audio, hence its echo, would depend on which takes a
    worker happened to run before. Priming synthesises the scenarios' replies in
    one fixed order in every worker, so every worker plays the same audio and a
    take's figures do not depend on where or after what it ran.
    """
    from simulator.engines import warm_up
    from simulator.fast import run_fast

    for path in config_paths:
        try:
            warm_up(Path(path))
        except Exception:  # noqa: BLE001 - a bad config is reported by the take that uses it
            pass
    for sc in sorted(prime, key=lambda s: s.name):
        try:
            run_fast(sc)
        except Exception:  # noqa: BLE001 - as above: the take reports it
            pass
    _exit_with_parent()


def _exit_with_parent() -> None:
    # A pool worker whose parent was killed (SIGTERM, OOM) would wait forever for work.
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if multiprocessing.parent_process() is not None:
        threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _configs(tasks: Sequence[Task]) -> tuple[list[str], list[Scenario]]:
    scenarios = {t.scenario.name: t.scenario for t in tasks}
    return sorted({str(t.scenario.config_path) for t in tasks}), list(scenarios.values())


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)


def run_tasks(
    tasks: Iterable[Task],
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    on_result: Callable[[Summary], None] | None = None,
    progress: bool = True,
    desc: str = "runs",
) -> list[Summary]:
    """Run every task and return the summaries (in completion order).

    ``scheduler``: a Dask scheduler address (``tcp://host:8786``) or a
    ``dask.distributed.Client``; else local: ``jobs`` worker processes
    (default: all cores; 1 = in this process). ``on_result`` is called with each
    summary as it arrives (e.g. to append it to the resumption file).
    """
    todo = list(tasks)
    out: list[Summary] = []
    if not todo:
        return out
    bar = _progress(len(todo), progress, desc)

    def done(summary: Summary) -> None:
        out.append(summary)
        if on_result is not None:
            on_result(summary)
        bar.update(1)

    try:
        if scheduler is not None:
            _run_dask(todo, scheduler, done)
        else:
            n = min(jobs or os.cpu_count() or 1, len(todo))
            if n <= 1:
                warm_worker(*_configs(todo))
                for task in todo:
                    done(run_take(task))
            else:
                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(n, mp_context=ctx, initializer=warm_worker, initargs=_configs(todo)) as pool:
                    for fut in as_completed([pool.submit(run_take, t) for t in todo]):
                        done(fut.result())
    finally:
        bar.close()
    return out


def _run_dask(todo: list[Task], scheduler: Any, done: Callable[[Summary], None]) -> None:
    from dask.distributed import Client, as_completed as dask_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        client.run(warm_worker, *_configs(todo))
        # pure=False: two equal tasks are still two takes; each summary comes back once.
        futures = client.map(run_take, todo, pure=False)
        for fut in dask_completed(futures):
            done(fut.result())
    finally:
        if client is not scheduler:
            client.close()
