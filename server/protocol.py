"""Wire shapes of the service protocol (protocol.md section 2), free of I/O.

One source of truth for event names and field layouts, shared by the server,
the bridge and the simulator. Parsing turns a client text frame into a typed
message or a :class:`BadFrame`; builders turn server events into the dicts the
SDK expects. The SDK's pydantic model treats ``role``, ``content``, ``status``
and ``kwargs`` as non-null strings/objects, so builders never emit ``None``:
a field without a value is left out.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from server.bounded import json_depth
from server.limits import DEFAULT_LIMITS, Limits

#: Largest client text frame we accept by default (bytes). The SDK's own
#: microphone sends 300 ms chunks (~13 kB as base64 JSON); 1 MiB leaves room
#: for typed text and tools that push several seconds at once, and keeps one
#: client from making the server parse megabytes of JSON. The server's own
#: value is ``Limits.max_frame_bytes``.
MAX_CLIENT_FRAME_BYTES = DEFAULT_LIMITS.max_frame_bytes

# -- client -> server -------------------------------------------------------


@dataclass(frozen=True)
class AudioAppend:
    """``input_audio_buffer.append``: PCM16 little-endian mono samples."""

    pcm: bytes


@dataclass(frozen=True)
class AudioCommit:
    """``input_audio_buffer.commit``: a hint only, never an end of turn."""


@dataclass(frozen=True)
class AudioClear:
    """``input_audio_buffer.clear``: drop input not yet recognised."""


@dataclass(frozen=True)
class TextInput:
    """``input_text``: a typed query."""

    text: str


@dataclass(frozen=True)
class SessionUpdate:
    """``session.update``: sent when recording starts; carries no settings."""


@dataclass(frozen=True)
class PlaybackStarted:
    """``playback.started``: the client began playing response audio."""


@dataclass(frozen=True)
class PlaybackStopped:
    """``playback.stopped``: the client's playback buffer ran dry."""


@dataclass(frozen=True)
class ResponseCancel:
    """``response.cancel``: stop the current response."""


@dataclass(frozen=True)
class Pong:
    """``PONG``: answer to our keep-alive."""


ClientMessage = (
    AudioAppend
    | AudioCommit
    | AudioClear
    | TextInput
    | SessionUpdate
    | PlaybackStarted
    | PlaybackStopped
    | ResponseCancel
    | Pong
)


@dataclass(frozen=True)
class BadFrame:
    """A client frame we could not use. The session answers with a warning
    event and keeps going (protocol.md: non-fatal bad input)."""

    code: str
    message: str


_SIMPLE: dict[str, ClientMessage] = {
    "input_audio_buffer.commit": AudioCommit(),
    "input_audio_buffer.clear": AudioClear(),
    "session.update": SessionUpdate(),
    "playback.started": PlaybackStarted(),
    "playback.stopped": PlaybackStopped(),
    "response.cancel": ResponseCancel(),
    "PONG": Pong(),
}

CLIENT_TYPES = frozenset(_SIMPLE) | {"input_audio_buffer.append", "input_text"}


def decode_pcm16(b64: Any, *, field: str = "audio") -> bytes | BadFrame:
    """Decode a base64 PCM16 payload, checking type, alphabet and sample size."""
    if not isinstance(b64, str):
        return BadFrame("bad_audio", f"'{field}' must be a base64 string, got {type(b64).__name__}")
    try:
        pcm = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        return BadFrame("bad_base64", f"'{field}' is not valid base64 ({exc}); send standard base64 with padding")
    if len(pcm) % 2:
        return BadFrame(
            "bad_audio_length",
            f"'{field}' decodes to {len(pcm)} bytes, an odd count; PCM16 needs whole 2-byte samples",
        )
    return pcm


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: for quoting client input back."""
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} characters)"


def check_text(text: object, limits: Limits = DEFAULT_LIMITS) -> str | BadFrame:
    """Check a typed query: a non-empty string of at most ``max_input_text_chars``
    characters that is valid Unicode (no lone surrogates, which no engine can encode)."""
    if not isinstance(text, str) or not text.strip():
        return BadFrame("bad_text", "'input_text' needs a non-empty string 'text'")
    if len(text) > limits.max_input_text_chars:
        return BadFrame(
            "text_too_long",
            f"'input_text' has {len(text)} characters; at most {limits.max_input_text_chars} "
            "(limit max_input_text_chars): split the query or send it as speech",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return BadFrame("bad_text", f"'text' holds a lone UTF-16 surrogate at character {exc.start}; send valid Unicode")
    return text


def parse_client_message(frame: str | bytes, limits: Limits = DEFAULT_LIMITS) -> ClientMessage | BadFrame:
    """Parse one client text frame of the service protocol within ``limits``
    (frame size, JSON depth, text length; unknown types are quoted clipped)."""
    if isinstance(frame, bytes):
        return BadFrame("binary_frame", "binary frames are not part of the protocol; send JSON text frames")
    if len(frame) > limits.max_frame_bytes:
        return BadFrame(
            "frame_too_large",
            f"frame of {len(frame)} bytes exceeds the {limits.max_frame_bytes}-byte limit (max_frame_bytes); "
            "send audio in smaller chunks",
        )
    try:
        obj = json.loads(frame)
        too_deep = json_depth(obj) > limits.max_json_depth
    except RecursionError:
        too_deep = True
    except json.JSONDecodeError as exc:
        return BadFrame("malformed_json", f"frame is not valid JSON: {exc}")
    if too_deep:
        return BadFrame("too_deep", f"frame nested deeper than {limits.max_json_depth} levels (limit max_json_depth)")
    if not isinstance(obj, dict):
        return BadFrame("malformed_message", "a message must be a JSON object with a 'type' field")
    kind = obj.get("type")
    if not isinstance(kind, str):
        return BadFrame("missing_type", "message has no string 'type' field")
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "input_audio_buffer.append":
        pcm = decode_pcm16(obj.get("audio"))
        return pcm if isinstance(pcm, BadFrame) else AudioAppend(pcm)
    if kind == "input_text":
        text = check_text(obj.get("text"), limits)
        return text if isinstance(text, BadFrame) else TextInput(text)
    return BadFrame(
        "unknown_type",
        f"unknown message type {clip(kind, limits.max_echo_chars)!r}; known: {', '.join(sorted(CLIENT_TYPES))}",
    )


def client_message_type(msg: ClientMessage) -> str:
    """The wire ``type`` of a client message."""
    if isinstance(msg, AudioAppend):
        return "input_audio_buffer.append"
    if isinstance(msg, TextInput):
        return "input_text"
    return next(k for k, v in _SIMPLE.items() if v == msg)


def encode_client_message(msg: ClientMessage) -> str:
    """The compact JSON frame a client (SDK, simulator) sends for ``msg``."""
    obj: dict[str, Any] = {"type": client_message_type(msg)}
    if isinstance(msg, AudioAppend):
        obj["audio"] = base64.b64encode(msg.pcm).decode()
    elif isinstance(msg, TextInput):
        obj["text"] = msg.text
    return json.dumps(obj, separators=(",", ":"))


# -- server -> client -------------------------------------------------------


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    # Never emit null: the SDK's receive loop dies on a null role/content/status.
    return {"type": kind, **{k: v for k, v in fields.items() if v is not None}}


def session_created(session: dict[str, Any], *, vad_enabled: bool) -> dict[str, Any]:
    return _event("session.created", session=session, capabilities={"vad_enabled": vad_enabled})


def transcript_delta(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    return _event("response.audio_transcript.delta", delta=text, text=text, item_id=item_id)


def transcript_done(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    return _event("response.audio_transcript.done", text=text, item_id=item_id)


def response_created(response_id: str) -> dict[str, Any]:
    return _event("response.created", response_id=response_id)


def text_delta(response_id: str, role: str, text: str) -> dict[str, Any]:
    return _event("response.text.delta", response_id=response_id, role=role, content=text, delta=text, text=text)


def text_done(response_id: str, role: str, text: str) -> dict[str, Any]:
    return _event("response.text.done", response_id=response_id, role=role, text=text)


def audio_delta(response_id: str, role: str, pcm: bytes) -> dict[str, Any]:
    b64 = base64.b64encode(pcm).decode()
    return _event("response.audio.delta", response_id=response_id, role=role, audio=b64, delta=b64)


def audio_done(response_id: str) -> dict[str, Any]:
    return _event("response.audio.done", response_id=response_id)


def response_done(response_id: str, status: str) -> dict[str, Any]:
    assert status in ("completed", "cancelled", "interrupted"), status
    return _event("response.done", response_id=response_id, status=status)


def response_interrupted(
    response_id: str, audio_end_ms: int, *, decision_latency_ms: float | None = None, decision_floor_ms: float | None = None
) -> dict[str, Any]:
    """``response.interrupted``; ours adds the detector's decision latency and its floor (ms) when known.

    ``decision_latency_ms``: speech onset -> decision, on the session's clock.
    ``decision_floor_ms``: the earliest the window rule could have decided for
    that onset (``threshold`` frames of unbroken speech, not before the lockout
    ends). Extra fields: the SDK passes them through (``extra="allow"``).
    """
    extra: dict[str, Any] = {}
    if decision_latency_ms is not None:
        extra["decision_latency_ms"] = round(float(decision_latency_ms), 1)
    if decision_floor_ms is not None:
        extra["decision_floor_ms"] = round(float(decision_floor_ms), 1)
    return _event("response.interrupted", response_id=response_id, audio_end_ms=int(audio_end_ms), **extra)


def ping() -> dict[str, Any]:
    return {"type": "PING"}


def warning(code: str, message: str) -> dict[str, Any]:
    return _event("warning", code=code, message=message)


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error_detail": {"code": code, "message": message}}
