"""Recording sessions for replay (``python -m server --record DIR``).

Each session becomes a directory ``DIR/<session id>_<project>_<uuid>/``:

- ``config.json``: ``{"project", "project_version", "uuid", "config"}``, the
  project config document exactly as stored;
- ``mic.wav``: the microphone audio exactly as received, PCM16 mono at the
  session's input rate, chunks back to back;
- ``events.jsonl``: one line per client message in arrival order, ``t`` on the
  session clock: ``{"t", "type": "input_audio_buffer.append", "offset",
  "samples"}`` (where its audio is in ``mic.wav``), ``{"t", "message": {...}}``
  for every other message as the client sent it, ``{"t", "type": "bad_frame",
  "code"}`` for a frame the server could not use;
- ``journal.json``: the session's journal when it ended (its decisions, and the
  ``job`` entries with each engine call's real duration, which the replay uses
  as its job latencies).

``python -m simulator --replay DIR/<session>`` reruns it on the virtual clock
(:mod:`simulator.replay`). Writes are small, buffered and synchronous on the
session's event loop: recording is a debugging aid, not for production load.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

from server import protocol as proto
from server.journal import Journal

CONFIG_FILE = "config.json"
MIC_FILE = "mic.wav"
EVENTS_FILE = "events.jsonl"
JOURNAL_FILE = "journal.json"


class SessionRecorder:
    """Writes one session's recording under ``root``."""

    def __init__(self, root: Path, *, session_id: str, project: str, project_version: int, uuid: str,
                 config: dict[str, Any], sample_rate: int) -> None:
        self.dir = Path(root) / f"{session_id}_{project}_{uuid}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / CONFIG_FILE).write_text(json.dumps(
            {"project": project, "project_version": project_version, "uuid": uuid, "config": config}, indent=1))
        self._mic = wave.open(str(self.dir / MIC_FILE), "wb")
        self._mic.setnchannels(1)
        self._mic.setsampwidth(2)
        self._mic.setframerate(sample_rate)
        self._events = (self.dir / EVENTS_FILE).open("w", encoding="utf-8")
        self._samples = 0

    def received(self, t: float, msg: proto.ClientMessage | proto.BadFrame) -> None:
        """A client message arrived at ``t`` (session seconds)."""
        if isinstance(msg, proto.AudioAppend):
            samples = len(msg.pcm) // 2
            line: dict[str, Any] = {"t": t, "type": "input_audio_buffer.append", "offset": self._samples, "samples": samples}
            self._mic.writeframes(msg.pcm[: samples * 2])
            self._samples += samples
        elif isinstance(msg, proto.BadFrame):
            line = {"t": t, "type": "bad_frame", "code": msg.code}
        else:
            line = {"t": t, "message": json.loads(proto.encode_client_message(msg))}
        self._events.write(json.dumps(line) + "\n")

    def close(self, journal: Journal | None) -> None:
        """The session ended: write its journal, close the files."""
        self._mic.close()
        self._events.close()
        if journal is not None:
            (self.dir / JOURNAL_FILE).write_text(json.dumps(journal.as_json()))
