"""Replay a recorded session on the virtual clock and say where its decisions differ.

A recording (:mod:`server.recording`) holds the client's messages with their
arrival times, the microphone audio as received, the config and the journal.
:func:`replay` feeds the same messages at the same session times to a fresh
session on the virtual clock, its engine jobs completing after the durations
they took in the recorded session (the journal's ``job`` entries; the default
:class:`~server.virtual.JobLatency` for jobs the recording does not know), so
a barge-in seen once in the browser reruns deterministically in CI.

:func:`compare` lines up the decisions that matter (interrupts, the user's
turns, how each response ended) and reports each difference. An interrupt
counts as the same when it fires within one frame (``frame_ms``) and its
``audio_end_ms`` is within one frame too.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server import protocol as proto
from server.config import load_project_config
from server.recording import CONFIG_FILE, EVENTS_FILE, JOURNAL_FILE, MIC_FILE
from server.virtual import JobLatency, open_virtual_session
from server.work import Job

#: Without a recorded journal: virtual time run after the last message, for the jobs and timers it started.
TAIL_S = 10.0


class RecordingError(ValueError):
    """A recording directory that cannot be replayed; the message says what is missing."""


@dataclass(frozen=True)
class RecordedLatency(JobLatency):
    """Job latencies as recorded: ``by_job`` maps a job id to seconds."""

    by_job: dict[int, float] = field(default_factory=dict, hash=False, compare=False)

    def of(self, job: Job) -> float:
        return self.by_job.get(job.job_id, super().of(job))


@dataclass
class Recording:
    project: str
    uuid: str
    config: dict[str, Any]
    messages: list[tuple[float, proto.ClientMessage | proto.BadFrame]]
    journal: list[dict[str, Any]]


@dataclass
class Difference:
    """One decision that differs: ``what`` (e.g. ``interrupt 1``), recorded and replayed values."""

    what: str
    recorded: Any
    replayed: Any


@dataclass
class ReplayResult:
    recorded: list[dict[str, Any]]
    replayed: list[dict[str, Any]]
    differences: list[Difference]
    frame_ms: int


def load_recording(path: Path) -> Recording:
    """Read a recording directory; RecordingError naming the missing or bad file."""
    path = Path(path)
    for name in (CONFIG_FILE, MIC_FILE, EVENTS_FILE):
        if not (path / name).is_file():
            raise RecordingError(f"{path} is not a recording: {name} is missing (record with python -m server --record DIR)")
    meta = json.loads((path / CONFIG_FILE).read_text())
    with wave.open(str(path / MIC_FILE), "rb") as mic:
        pcm = mic.readframes(mic.getnframes())
    messages: list[tuple[float, proto.ClientMessage | proto.BadFrame]] = []
    for number, line in enumerate((path / EVENTS_FILE).read_text().splitlines(), 1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordingError(f"{path / EVENTS_FILE} line {number} is not JSON ({exc}); the recording is damaged") from None
        if item.get("type") == "input_audio_buffer.append":
            start = item["offset"] * 2
            messages.append((item["t"], proto.AudioAppend(pcm[start : start + item["samples"] * 2])))
        elif item.get("type") == "bad_frame":
            messages.append((item["t"], proto.BadFrame(item["code"], "recorded bad frame")))
        else:
            messages.append((item["t"], proto.parse_client_message(json.dumps(item["message"]))))
    journal_path = path / JOURNAL_FILE
    journal = json.loads(journal_path.read_text())["entries"] if journal_path.is_file() else []
    return Recording(meta["project"], meta["uuid"], meta["config"], messages, journal)


def replay(recording: Recording) -> ReplayResult:
    """Rerun ``recording`` on the virtual clock; compare with what was recorded."""
    document = {k: v for k, v in recording.config.items() if k != "faults"}  # the recorded timings already hold them
    config = load_project_config(document).config
    latency = RecordedLatency(by_job={e["job_id"]: e["ms"] / 1000 for e in recording.journal if e["type"] == "job"})
    vs = open_virtual_session(config, uuid=recording.uuid, project=recording.project, latency=latency)
    vs.start()
    for t, msg in recording.messages:
        vs.deliver(max(t, vs.now), msg)
    # The recorded session ended with its last journal entry (the client left):
    # work still pending then was dropped there, and is not run here either.
    vs.advance(max([vs.now, *(e["t"] for e in recording.journal)]) if recording.journal else vs.now + TAIL_S)
    frame_ms = config.barge_in.frame_ms if config.barge_in is not None else 30
    replayed = vs.journal.entries()
    return ReplayResult(recording.journal, replayed, compare(recording.journal, replayed, frame_ms), frame_ms)


def decisions(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """What a comparison looks at: interrupts ``(t, audio_end_ms)``, the user's
    turns, and each response's ending status, in order."""
    return {
        "interrupt": [(e["t"], e["audio_end_ms"]) for e in entries if e["type"] == "interrupt"],
        "turn": [e["text"] for e in entries if e["type"] == "turn"],
        "response.done": [e.get("status") for e in entries if e["type"] == "response.done" and e.get("dir") == "out"],
    }


def compare(recorded: list[dict[str, Any]], replayed: list[dict[str, Any]], frame_ms: int) -> list[Difference]:
    """Every decision that differs (see the module docstring for the tolerance)."""
    before, after = decisions(recorded), decisions(replayed)
    out: list[Difference] = []
    for kind in before:
        a, b = before[kind], after[kind]
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if kind == "interrupt" and x is not None and y is not None:
                same = abs(x[0] - y[0]) * 1000 <= frame_ms + 1e-6 and abs(x[1] - y[1]) <= frame_ms
            else:
                same = x == y
            if not same:
                out.append(Difference(f"{kind} {i + 1}", x, y))
    return out


def format_report(result: ReplayResult, name: str) -> str:
    """A short text report: the decisions side by side, then the differences."""
    before, after = decisions(result.recorded), decisions(result.replayed)
    lines = [f"replay of {name}"]
    for kind in before:
        lines.append(f"  {kind}: recorded {before[kind]}")
        lines.append(f"  {' ' * len(kind)}  replayed {after[kind]}")
    if result.differences:
        lines.append(f"{len(result.differences)} decision(s) differ (interrupts: tolerance one frame, {result.frame_ms} ms):")
        lines += [f"  {d.what}: recorded {d.recorded}, replayed {d.replayed}" for d in result.differences]
    else:
        lines.append(f"same decisions (interrupts within one frame, {result.frame_ms} ms)")
    return "\n".join(lines)


def main(path: Path) -> int:
    """``python -m simulator --replay DIR``: 0 same decisions, 1 some differ, 2 not a recording."""
    try:
        recording = load_recording(path)
    except RecordingError as exc:
        print(exc)
        return 2
    result = replay(recording)
    print(format_report(result, Path(path).name))
    return 1 if result.differences else 0
