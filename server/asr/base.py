"""The ASR engine interface. Engines register in :mod:`server.asr`."""

from __future__ import annotations

from typing import Protocol


class AsrEngine(Protocol):
    """Speech in, text out, for one utterance that grows over time.

    The session calls :meth:`transcribe` with the *whole* utterance so far each
    time it wants a partial, and once more with ``final=True`` at end of turn.
    An engine that re-decodes (Whisper) uses all of ``pcm``; a truly streaming
    engine (PocketSphinx) keeps per-``utterance_id`` state and feeds only the new
    tail. Calls for one utterance come in order, from a worker thread.

    An engine whose result depends on ``pcm`` alone (no state between calls)
    may say so with a class attribute ``stateless = True``: the server may then
    run its calls in worker processes, each with its own copy
    (:mod:`server.asr_processes`).
    """

    name: str

    def transcribe(self, utterance_id: str, pcm: bytes, sample_rate: int, *, final: bool) -> str:
        ...

    def forget(self, utterance_id: str) -> None:
        """Drop any state kept for an utterance that will not be finished."""
        ...
