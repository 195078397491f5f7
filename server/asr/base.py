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

    Optional: ``prime(pcm, sample_rate)``, a cheaper one-time warm-up than a
    whole final decode (``EngineSet.warm_up(light_asr=True)`` uses it where an
    engine has it; Whisper does).

    A ``stateless`` engine (below) may also have its calls run in worker
    processes, each with its own copy (:mod:`server.asr_processes`).
    """

    name: str
    #: True when :meth:`transcribe` keeps no per-utterance state: its text is a
    #: function of ``(pcm, sample_rate, final)`` alone (Whisper). The session
    #: then decodes a turn's final audio ahead of the turn's end, once that
    #: audio is fixed (a speculative final, docs/asr.md). A streaming engine
    #: (state per ``utterance_id``, finished by ``final=True``) says False, and
    #: so does an engine without the attribute.
    stateless: bool

    def transcribe(self, utterance_id: str, pcm: bytes, sample_rate: int, *, final: bool) -> str:
        ...

    def forget(self, utterance_id: str) -> None:
        """Drop any state kept for an utterance that will not be finished."""
        ...
