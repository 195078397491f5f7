"""The realtime driver's own duties (server/realtime.py): its tasks end when
cancelled, whatever step the cancel lands in; a closing session frees its slot
first; the jobs of a session whose client has gone are not run."""

from __future__ import annotations

import asyncio
import time

from server.realtime import SessionConnection


class _PendingTimer:
    """The part of a Session the timer task reads: a deadline far ahead, as
    after an interrupt (the session's cancel timeout is armed)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def next_deadline(self) -> float:
        return time.monotonic() - self.t0 + 100.0

    def tick(self, t: float) -> list:
        return []


def test_timer_task_ends_when_cancelled_in_the_step_it_wakes_up():
    # The cancel and the wake-up in one loop step: Python 3.11's wait_for
    # returned the wake-up and swallowed the cancel, so the task never ended
    # and the session's cleanup waited on it for ever (issue #12).
    async def scenario() -> bool:
        conn = SessionConnection(None, _PendingTimer(), histories=None)
        task = asyncio.create_task(conn._timers())
        await asyncio.sleep(0.01)
        conn.wake.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:
            task.cancel()
        return task in done

    assert asyncio.run(scenario())


def test_speculative_lead_follows_the_longest_recent_final_decode():
    # docs/asr.md: at least SPECULATIVE_LEAD_S; 1.5 x the longest recent final decode
    # (a loaded machine took 2 s: the decode then starts 3 s before the turn would end).
    from server.realtime import SPECULATIVE_LEAD_FACTOR, speculative_lead_s
    from server.session import SPECULATIVE_LEAD_S

    assert speculative_lead_s([]) == SPECULATIVE_LEAD_S
    assert speculative_lead_s([0.2, 0.3]) == SPECULATIVE_LEAD_S
    assert speculative_lead_s([0.3, 2.0, 0.4]) == SPECULATIVE_LEAD_FACTOR * 2.0
