"""The session journal: what happened in a session, to assert on in a test.

Every session gets a :class:`Journal`. Its drivers (:mod:`server.realtime`,
:mod:`server.virtual`) record each event received and sent; the session core
appends its decisions (barge-in detector candidates, confirmations and
rejections, turns, interrupts, what went into the history); the fault injector
(:mod:`server.faults`) records each fault it applied. Recording is a plain
append, no I/O, so the session stays sans-I/O.

An entry is a JSON-ready dict::

    {"seq": 12, "t": 3.41, "type": "response.audio.delta", "dir": "out",
     "response_id": "resp_3", "audio": {"bytes": 6400, "ms": 200.0, "sha256": "..."}}

``t`` is seconds on the session clock (0 = the session opened; monotonic in
the server, virtual in the simulator). ``dir`` is ``"in"`` (from the client) or
``"out"`` (to the client) for protocol events, absent for decisions, whose
types are ``detector.held``, ``detector.candidate``, ``detector.confirmed``,
``detector.rejected``, ``turn``, ``interrupt``, ``history``,
``speculative_final`` (``action`` start, use or drop: docs/asr.md) and ``fault.*``.
Audio payloads are summarised: byte count, duration and a SHA-256 of the PCM.

Bounded: a journal keeps its last :data:`MAX_ENTRIES` entries (``dropped``
counts the ones that fell off); a :class:`JournalStore` keeps every live
session's journal and the last :data:`MAX_ENDED_SESSIONS` ended ones.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import threading
from collections import OrderedDict, deque
from typing import Any, Iterable

from server import protocol as proto

#: Entries kept per session; the oldest fall off first (~2.5 MB of summaries).
MAX_ENTRIES = 10_000
#: Ended sessions whose journals are kept, oldest forgotten first.
MAX_ENDED_SESSIONS = 50

Entry = dict[str, Any]

#: Events whose payload is audio (field holding base64 PCM16, sample rate field or default).
_AUDIO_FIELDS = {"input_audio_buffer.append": "audio", "response.audio.delta": "delta"}


def audio_summary(pcm: bytes, sample_rate: int) -> dict[str, Any]:
    """``{"bytes", "ms", "sha256"}`` of mono PCM16 audio at ``sample_rate`` Hz."""
    return {
        "bytes": len(pcm),
        "ms": round(len(pcm) / 2 / sample_rate * 1000, 3),
        "sha256": hashlib.sha256(pcm).hexdigest(),
    }


def summarise_event(event: dict[str, Any], sample_rate: int) -> dict[str, Any]:
    """A protocol event with its base64 audio replaced by :func:`audio_summary`."""
    field = _AUDIO_FIELDS.get(str(event.get("type")))
    if field is None or not isinstance(event.get(field), str):
        return dict(event)
    # response.audio.delta carries the same base64 twice (``audio`` and ``delta``).
    out = {k: v for k, v in event.items() if v != event[field]}
    try:
        pcm = base64.b64decode(event[field], validate=True)
    except (binascii.Error, ValueError):
        out["audio"] = {"bytes": None, "error": "not valid base64"}
        return out
    out["audio"] = audio_summary(pcm, sample_rate)
    return out


class Journal:
    """One session's journal: a bounded, thread-safe list of entries.

    Written by the session's event loop (or the virtual driver), read from any
    thread (an HTTP handler, a test).
    """

    def __init__(self, session_id: str, project: str, uuid: str, *, max_entries: int = MAX_ENTRIES,
                 input_rate: int = 16000, output_rate: int = 16000) -> None:
        self.session_id = session_id
        self.project = project
        self.uuid = uuid
        self.input_rate = input_rate
        self.output_rate = output_rate
        self.ended = False
        self.dropped = 0
        self._entries: deque[Entry] = deque(maxlen=max_entries)
        self._seq = 0
        self._lock = threading.Lock()

    # -- writing ------------------------------------------------------------

    def record(self, t: float, type: str, **data: Any) -> None:
        """Append one entry at session time ``t`` (seconds)."""
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                self.dropped += 1
            self._seq += 1
            self._entries.append({"seq": self._seq, "t": round(t, 6), "type": type, **data})

    def __call__(self, t: float, type: str, **data: Any) -> None:
        """Same as :meth:`record`: a journal is the session's decision sink."""
        self.record(t, type, **data)

    def received_message(self, t: float, msg: Any) -> None:
        """A parsed client message (:mod:`server.protocol`) arrived at ``t``."""
        if isinstance(msg, proto.BadFrame):
            self.record(t, "bad_frame", dir="in", code=msg.code, message=msg.message)
        elif isinstance(msg, proto.AudioAppend):
            self.record(t, "input_audio_buffer.append", dir="in", audio=audio_summary(msg.pcm, self.input_rate))
        elif isinstance(msg, proto.TextInput):
            self.record(t, "input_text", dir="in", text=msg.text)
        else:
            self.record(t, proto.client_message_type(msg), dir="in")

    def sent(self, t: float, event: dict[str, Any]) -> None:
        """A server event went to the client at ``t``."""
        body = summarise_event(event, self.output_rate)
        kind = str(body.pop("type", "?"))
        self.record(t, kind, dir="out", **body)

    # -- reading ------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """A copy of every kept entry, oldest first."""
        with self._lock:
            return list(self._entries)

    def events(self, type: str | None = None, *, since: float | None = None, until: float | None = None,
               dir: str | None = None) -> list[Entry]:
        """Entries filtered by ``type`` (exact, or a glob such as ``"detector.*"``),
        session time ``since <= t <= until`` (seconds) and direction ``"in"``/``"out"``."""
        return filter_entries(self.entries(), type=type, since=since, until=until, dir=dir)

    def interrupts(self) -> list[Entry]:
        """The ``interrupt`` decisions: ``response_id``, ``onset_t``, ``latency_ms``
        (firing - speech onset), ``floor_ms``, ``audio_end_ms``, ``confirmed_by``."""
        return self.events("interrupt")

    def transcripts(self) -> list[str]:
        """The user's final transcripts (spoken turns), in order."""
        return [e["text"] for e in self.events("turn") if e.get("source") == "speech"]

    def responses(self) -> list[dict[str, Any]]:
        """One summary per response sent: ``id``, ``status`` (None while open),
        ``text`` (agent texts joined), ``audio_ms`` sent, ``audio_deltas``."""
        by_id: dict[str, dict[str, Any]] = {}
        for e in self.events(dir="out"):
            rid = e.get("response_id")
            if rid is None:
                continue
            resp = by_id.setdefault(rid, {"id": rid, "status": None, "text": "", "audio_ms": 0.0, "audio_deltas": 0})
            if e["type"] == "response.text.done":
                resp["text"] = (resp["text"] + " " + str(e.get("text", ""))).strip()
            elif e["type"] == "response.audio.delta":
                resp["audio_deltas"] += 1
                resp["audio_ms"] = round(resp["audio_ms"] + (e.get("audio") or {}).get("ms", 0.0), 3)
            elif e["type"] == "response.done":
                resp["status"] = e.get("status")
        return list(by_id.values())

    def assert_no_audio_after_interrupt(self) -> None:
        """Raise AssertionError if a ``response.audio.delta`` of a response went
        out after that response's ``response.interrupted``."""
        cut: dict[str, Entry] = {}
        for e in self.events(dir="out"):
            rid = e.get("response_id")
            if e["type"] == "response.interrupted" and rid is not None:
                cut.setdefault(rid, e)
            elif e["type"] == "response.audio.delta" and rid in cut:
                first = cut[rid]
                raise AssertionError(
                    f"session {self.session_id}: response {rid} sent audio at t={e['t']:.3f}s (seq {e['seq']}) "
                    f"after its response.interrupted at t={first['t']:.3f}s (seq {first['seq']})"
                )

    def as_json(self, **filters: Any) -> dict[str, Any]:
        """The journal as the admin API returns it."""
        return {**self.header(), "entries": self.events(**filters)}

    def header(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "project": self.project, "uuid": self.uuid,
                "ended": self.ended, "dropped": self.dropped}


def filter_entries(entries: Iterable[Entry], *, type: str | None = None, since: float | None = None,
                   until: float | None = None, dir: str | None = None) -> list[Entry]:
    """Entries matching every filter given (see :meth:`Journal.events`)."""
    out = []
    for e in entries:
        if type is not None and e["type"] != type and not fnmatch.fnmatchcase(e["type"], type):
            continue
        if since is not None and e["t"] < since:
            continue
        if until is not None and e["t"] > until:
            continue
        if dir is not None and e.get("dir") != dir:
            continue
        out.append(e)
    return out


class JournalStore:
    """The journals of a server: every live session's, plus the last
    :data:`MAX_ENDED_SESSIONS` ended ones, in the order sessions opened."""

    def __init__(self, max_ended: int = MAX_ENDED_SESSIONS, max_entries: int = MAX_ENTRIES) -> None:
        self.max_ended = max_ended
        self.max_entries = max_entries
        self._journals: OrderedDict[str, Journal] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, session_id: str, project: str, uuid: str, *, input_rate: int = 16000, output_rate: int = 16000) -> Journal:
        """A new journal for a session that opens now."""
        journal = Journal(session_id, project, uuid, max_entries=self.max_entries,
                          input_rate=input_rate, output_rate=output_rate)
        with self._lock:
            self._journals[session_id] = journal
        return journal

    def end(self, journal: Journal) -> None:
        """The session ended: keep its journal among the last ended ones."""
        journal.ended = True
        with self._lock:
            ended = [sid for sid, j in self._journals.items() if j.ended]
            for sid in ended[: max(0, len(ended) - self.max_ended)]:
                del self._journals[sid]

    def get(self, session_id: str) -> Journal | None:
        with self._lock:
            return self._journals.get(session_id)

    def sessions(self, project: str | None = None) -> list[Journal]:
        """Journals kept, oldest session first, optionally of one project."""
        with self._lock:
            journals = list(self._journals.values())
        return [j for j in journals if project is None or j.project == project]

    def reset(self) -> None:
        """Forget every journal (live sessions keep writing to theirs, unlisted)."""
        with self._lock:
            self._journals.clear()
