"""Reading the event traces the SDK scripts print (tests/sdk/sdk_common.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Event = dict[str, Any]
OUTPUT_RATE = 16_000  # protocol.md section 4: PCM16 mono 16 kHz unless configured otherwise
BYTES_PER_SECOND = OUTPUT_RATE * 2


def server_events(result: dict[str, Any]) -> list[Event]:
    """The server's messages only (no ``client:*`` markers)."""
    return [e for e in result["events"] if not str(e.get("type", "")).startswith("client:")]


def format_trace(events: list[Event], limit: int = 200) -> str:
    """One line per event, runs of audio deltas of one role collapsed."""
    lines: list[str] = []
    i = 0
    while i < len(events) and len(lines) < limit:
        ev = events[i]
        if ev["type"] == "response.audio.delta":
            j, total = i, 0
            while j < len(events) and events[j]["type"] == ev["type"] and events[j].get("role") == ev.get("role"):
                total += events[j].get("audio_bytes", 0)
                j += 1
            lines.append(f"  response.audio.delta x{j - i} role={ev.get('role')!r} {total} B ({total / BYTES_PER_SECOND:.2f} s)")
            i = j
            continue
        extras = {k: v for k, v in ev.items() if k not in ("type", "delta_equals_audio", "session", "capabilities")}
        for key in ("content", "text", "delta"):
            if isinstance(extras.get(key), str) and len(extras[key]) > 60:
                extras[key] = extras[key][:57] + "..."
        lines.append(f"  {ev['type']} {extras if extras else ''}".rstrip())
        i += 1
    return "\n".join(lines)


@dataclass
class AgentSegment:
    """One agent's part of a response: text.delta, its audio, text.done."""

    role: str
    content: str = ""
    done_text: str | None = None
    audio_bytes: int = 0
    audio_chunks: int = 0
    audio_peak: int = 0
    odd_chunks: int = 0
    text_deltas: int = 1


@dataclass
class ParsedResponse:
    """A response's events in the order protocol.md 'Order of a turn' requires."""

    response_ids: set[str] = field(default_factory=set)
    segments: list[AgentSegment] = field(default_factory=list)
    status: str | None = None
    problems: list[str] = field(default_factory=list)


def parse_response(events: list[Event]) -> ParsedResponse:
    """Check ``response.created (text.delta audio.delta* text.done)* response.audio.done
    response.done`` over ``events`` (one response, starting at response.created) and
    collect per-agent segments. Order violations go to ``problems``."""
    out = ParsedResponse()
    if not events or events[0]["type"] != "response.created":
        out.problems.append(f"first event is {events[0]['type'] if events else 'nothing'}, expected response.created")
        return out
    current: AgentSegment | None = None
    audio_done = False
    open_agent = ""
    for n, ev in enumerate(events):
        kind = ev["type"]
        if "response_id" in ev:
            out.response_ids.add(ev["response_id"])
        where = f"event {n} ({kind}, role={ev.get('role')!r})"
        if out.status is not None:
            out.problems.append(f"{where} after response.done")
        elif kind == "response.created":
            if n:
                out.problems.append(f"{where}: a second response.created")
        elif kind == "response.text.delta":
            if audio_done:
                out.problems.append(f"{where} after response.audio.done")
            if current is not None and current.done_text is None and current.role == ev.get("role"):
                current.text_deltas += 1
                current.content += ev.get("content", "")
                continue
            if current is not None and current.done_text is None:
                out.problems.append(f"{where}: agent {current.role!r} got no response.text.done")
            current = AgentSegment(role=ev.get("role", ""), content=ev.get("content", ""))
            out.segments.append(current)
            if ev.get("delta") != ev.get("content") or ev.get("text") != ev.get("content"):
                out.problems.append(f"{where}: content, delta and text differ")
        elif kind == "response.audio.delta":
            if current is None or current.done_text is not None:
                out.problems.append(f"{where}: audio outside an agent's text.delta..text.done")
                continue
            if ev.get("role") != current.role:
                out.problems.append(f"{where}: audio role differs from current agent {current.role!r}")
            if not ev.get("delta_equals_audio", False):
                out.problems.append(f"{where}: 'delta' does not carry the same base64 as 'audio'")
            current.audio_bytes += ev.get("audio_bytes", 0)
            current.audio_chunks += 1
            current.audio_peak = max(current.audio_peak, ev.get("audio_peak", 0))
            current.odd_chunks += ev.get("audio_bytes", 0) % 2
        elif kind == "response.text.done":
            if current is None or current.role != ev.get("role") or current.done_text is not None:
                out.problems.append(f"{where}: text.done without a matching open text.delta")
                continue
            current.done_text = ev.get("text", "")
        elif kind == "response.audio.done":
            if current is not None and current.done_text is None:
                # Allowed only when the response is cut short (protocol.md:
                # interrupted/cancelled responses end audio.done, done).
                open_agent = f"{where}: agent {current.role!r} still open"
            audio_done = True
        elif kind == "response.done":
            if not audio_done:
                out.problems.append(f"{where}: no response.audio.done before response.done")
            out.status = ev.get("status")
        elif kind in ("response.audio_transcript.delta", "response.audio_transcript.done"):
            out.problems.append(f"{where}: transcript event inside a response")
    if out.status is None:
        out.problems.append("no response.done")
    elif open_agent and out.status == "completed":
        out.problems.append(open_agent + " in a completed response")
    return out


def split_responses(events: list[Event]) -> list[list[Event]]:
    """Cut a trace at each response.created; each slice runs to its response.done
    (events before the first response.created are dropped)."""
    slices: list[list[Event]] = []
    for ev in events:
        if ev["type"] == "response.created":
            slices.append([])
        if slices:
            slices[-1].append(ev)
    return slices


@dataclass(frozen=True)
class AgentSpeech:
    """What the project config says about an agent's voice output."""

    name: str
    speaks: bool
    summarizes: bool


def agents_of(config_path: Path) -> dict[str, AgentSpeech]:
    """Utility and super agents of a project YAML with their speech flags (own settings only)."""
    cfg = yaml.safe_load(config_path.read_text())
    agents: dict[str, AgentSpeech] = {}
    for entry in [*(cfg.get("utility_agents") or []), *(cfg.get("super_agents") or [])]:
        speech = entry.get("speech_config") or {}
        summary = entry.get("summarize_config") or {}
        agents[entry["agent_name"]] = AgentSpeech(
            name=entry["agent_name"],
            speaks=bool(speech.get("enable_speech", True)),
            summarizes=bool(summary.get("enable_summarize", False)),
        )
    return agents


def flow_agents(config_path: Path) -> list[str]:
    """Agent names of the first FlowSuperAgent's agent_list, in file order."""
    cfg = yaml.safe_load(config_path.read_text())
    return [a["agent_name"] for a in cfg["super_agents"][0]["config"]["agent_list"]]


def vad_block(config_path: Path) -> dict[str, Any] | None:
    """``audio_config.vad`` of a project YAML, or None (push-to-talk)."""
    cfg = yaml.safe_load(config_path.read_text())
    return (cfg.get("audio_config") or {}).get("vad")
