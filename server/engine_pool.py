"""Worker threads for engine calls (ASR, agent brain, TTS), with a timeout per
call that a hung engine cannot turn into a stalled server.

A Python thread cannot be killed, so a call past its timeout keeps its thread
until the engine returns. The pool writes such threads off: once half of an
executor's workers are held by timed-out calls, new calls go to a fresh
executor, and the old one's threads end as their calls return. Engine work of
healthy sessions therefore never queues behind a hung call for long.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


class EnginePool:
    """``await pool.run(fn, arg, timeout_s=...)``: ``fn(arg)`` in a worker thread.

    Raises TimeoutError when the call takes longer than ``timeout_s`` (time
    waiting for a free worker included); the call's result is then dropped.
    """

    def __init__(self, workers: int = 4, name: str = "refinery-engine",
                 initializer: Callable[[], None] | None = None) -> None:
        """``initializer``: run first in each worker thread (e.g. :func:`server.priority.lower_engine_thread`)."""
        self.workers = workers
        self.name = name
        self.initializer = initializer
        self._lock = threading.RLock()  # a done callback may run at once, under the lock
        self._executor = self._new_executor()
        self._stuck = 0  # timed-out calls still running on the current executor
        self.replaced = 0  # executors written off (for /health and tests)

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=self.name, initializer=self.initializer)

    def _submit(self, fn: Callable[[T], object], arg: T) -> tuple[Future, ThreadPoolExecutor]:
        with self._lock:
            executor = self._executor
            return executor.submit(fn, arg), executor

    def _written_off(self, executor: ThreadPoolExecutor, future: Future) -> None:
        with self._lock:
            if executor is not self._executor:
                return
            self._stuck += 1
            if self._stuck * 2 < self.workers:
                future.add_done_callback(lambda _f: self._released(executor))
                return
            self._executor = self._new_executor()
            self._stuck = 0
            self.replaced += 1
        # Queued calls of the old executor are dropped; running ones end on their own.
        executor.shutdown(wait=False, cancel_futures=True)

    def _released(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if executor is self._executor and self._stuck > 0:
                self._stuck -= 1

    async def run(self, fn: Callable[[T], object], arg: T, *, timeout_s: float) -> object:
        future, executor = self._submit(fn, arg)
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            if not future.cancel() and not future.done():  # running: its thread is held
                self._written_off(executor, future)
            raise
