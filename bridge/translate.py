"""Browser protocol <-> service protocol translation, free of I/O.

The bridge speaks the browser protocol of protocol.md section 3 to a web page
and the service protocol (section 2) upstream. Everything that decides *what*
to send lives here as pure functions so it can be tested without sockets;
``bridge/app.py`` only moves the resulting frames.

Browser -> service: :func:`browser_to_actions` turns one browser frame into a
list of :data:`Action` values (frames to forward upstream, replies to the
browser, recording on/off). Bad frames become a non-fatal ``error`` reply and
never end the connection.

Service -> browser: :func:`service_to_browser` keeps every field of the
server's message and adds the aliases the tutorial page and the SDK's own
``RealtimeVoiceBridge`` rely on (``text`` on text deltas, ``delta`` on audio
deltas, a top-level ``message`` on errors).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from server.limits import DEFAULT_LIMITS
from server.protocol import (
    MAX_CLIENT_FRAME_BYTES,
    AudioAppend,
    AudioClear,
    AudioCommit,
    ClientMessage,
    PlaybackStarted,
    PlaybackStopped,
    Pong,
    ResponseCancel,
    SessionUpdate,
    TextInput,
    clip,
    decode_pcm16,
    encode_client_message,
)

# The origin policy is shared with the server; bridge code imports it from here.
from server.security import DEFAULT_ALLOWED_ORIGINS, check_origin_pattern, origin_allowed  # noqa: F401

# -- actions -----------------------------------------------------------------


@dataclass(frozen=True)
class Forward:
    """Send ``frame`` (a compact JSON text frame) to the service."""

    frame: str


@dataclass(frozen=True)
class Reply:
    """Send ``message`` to the browser."""

    message: dict[str, Any]


@dataclass(frozen=True)
class SetRecording:
    """Start (``True``) or stop (``False``) the periodic commit hints that the
    SDK's bridge sends every 0.3 s while a browser records."""

    on: bool


Action = Forward | Reply | SetRecording

#: Browser kinds forwarded as the bare service message of the same type.
_PASS_THROUGH: dict[str, ClientMessage] = {
    "input_audio_buffer.commit": AudioCommit(),
    "input_audio_buffer.clear": AudioClear(),
    "playback.started": PlaybackStarted(),
    "playback.stopped": PlaybackStopped(),
    "response.cancel": ResponseCancel(),
}

#: Browser message types the bridge understands (``type`` or ``command``).
BROWSER_TYPES = frozenset(_PASS_THROUGH) | {"input_audio_buffer.append", "input_text", "start_recording", "stop_recording"}

#: Seconds between commit hints while recording (the SDK's bridge uses 0.3 s).
COMMIT_INTERVAL_S = 0.3


def bridge_error(message: str, *, code: str, fatal: bool) -> dict[str, Any]:
    """An ``error`` message for the browser in the shape the tutorial page reads
    (``message`` at top level). ``fatal`` tells our page whether the bridge is
    about to close the connection."""
    return {"type": "error", "message": message, "code": code, "fatal": fatal}


def _forward(msg: ClientMessage) -> Forward:
    return Forward(encode_client_message(msg))


def browser_to_actions(frame: str | bytes) -> list[Action]:
    """Translate one browser frame into what the bridge must do.

    Accepts the tutorial page's shapes: the kind in ``type`` or ``command``,
    audio in ``data.chunk`` or ``audio``. Anything unusable yields a single
    non-fatal error reply that says what to send instead.
    """
    if isinstance(frame, bytes):
        return [_bad("binary_frame", "binary frames are not supported; send JSON text frames")]
    if len(frame) > MAX_CLIENT_FRAME_BYTES:
        return [
            _bad(
                "frame_too_large",
                f"frame of {len(frame)} bytes exceeds {MAX_CLIENT_FRAME_BYTES} bytes; send audio in 30 ms chunks",
            )
        ]
    try:
        obj = json.loads(frame)
    except (json.JSONDecodeError, RecursionError) as exc:
        return [_bad("malformed_json", f"frame is not valid JSON ({exc}); send a JSON object with a 'type'")]
    if not isinstance(obj, dict):
        return [_bad("malformed_message", "a frame must be a JSON object with a 'type' (or 'command') field")]
    kind = obj.get("type") or obj.get("command")
    if not isinstance(kind, str):
        return [_bad("missing_type", "frame has no string 'type' or 'command' field")]

    if kind in _PASS_THROUGH:
        return [_forward(_PASS_THROUGH[kind])]
    if kind == "input_audio_buffer.append":
        return _append(obj)
    if kind == "input_text":
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            return [_bad("bad_text", "'input_text' needs a non-empty string 'text'")]
        return [_forward(TextInput(text))]
    if kind == "start_recording":
        # Same as the SDK's start_external_recording(): a session.update, then
        # periodic commit hints until stop.
        return [_forward(SessionUpdate()), SetRecording(True), Reply({"type": "recording_started"})]
    if kind == "stop_recording":
        return [SetRecording(False), _forward(AudioCommit()), Reply({"type": "recording_stopped"})]
    return [_bad("unknown_type", f"unknown frame type {clip(kind, DEFAULT_LIMITS.max_echo_chars)!r}; known: {', '.join(sorted(BROWSER_TYPES))}")]


def _append(obj: dict[str, Any]) -> list[Action]:
    data = obj.get("data")
    if isinstance(data, dict) and "chunk" in data:
        b64, field = data["chunk"], "data.chunk"
    elif "audio" in obj:
        b64, field = obj["audio"], "audio"
    else:
        return [
            _bad(
                "missing_audio",
                "'input_audio_buffer.append' needs base64 PCM16 in 'data.chunk' or 'audio'",
            )
        ]
    pcm = decode_pcm16(b64, field=field)
    if not isinstance(pcm, bytes):
        return [_bad(pcm.code, pcm.message)]
    if not pcm:
        # The SDK refuses empty chunks; dropping them silently is harmless.
        return []
    return [_forward(AudioAppend(pcm))]


def _bad(code: str, message: str) -> Reply:
    return Reply(bridge_error(message, code=code, fatal=False))


# -- service -> browser ------------------------------------------------------


@dataclass(frozen=True)
class Relay:
    """What to do with one service frame.

    ``to_browser`` is the message for the page (``None``: nothing to send),
    ``to_service`` a frame to answer upstream with (``PONG`` to a ``PING``),
    and ``fatal`` means the service reported a fatal error: the bridge relays
    it and then closes both sides.
    """

    to_browser: dict[str, Any] | None
    to_service: str | None = None
    fatal: bool = False


_TEXTUAL_DELTAS = ("response.audio_transcript.delta", "response.text.delta")
_PONG = encode_client_message(Pong())


def service_to_browser(frame: str | bytes) -> Relay:
    """Translate one service frame for the browser, keeping every field."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode()
        except UnicodeDecodeError:
            return Relay(bridge_error("the service sent a binary frame; ignored", code="bad_upstream_frame", fatal=False))
    try:
        msg = json.loads(frame)
    except json.JSONDecodeError:
        return Relay(bridge_error("the service sent a frame that is not JSON; ignored", code="bad_upstream_frame", fatal=False))
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return Relay(bridge_error("the service sent a message without a 'type'; ignored", code="bad_upstream_frame", fatal=False))

    kind = msg["type"]
    out = dict(msg)
    if kind == "PING":
        return Relay(out, to_service=_PONG)
    if kind in _TEXTUAL_DELTAS and not isinstance(out.get("text"), str):
        out["text"] = _first_str(msg, "delta", "content")
    elif kind in ("response.audio_transcript.done", "response.text.done") and not isinstance(out.get("text"), str):
        out["text"] = _first_str(msg, "content", "delta")
    elif kind == "response.audio.delta" and not isinstance(out.get("delta"), str):
        out["delta"] = _first_str(msg, "audio", "data")
    elif kind == "error":
        detail = msg.get("error_detail")
        text = detail.get("message") if isinstance(detail, dict) else None
        if not isinstance(out.get("message"), str):
            out["message"] = text if isinstance(text, str) and text else _first_str(msg, "error") or "the service reported an error"
        out["fatal"] = True
        return Relay(out, fatal=True)
    return Relay(out)


def _first_str(msg: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = msg.get(key)
        if isinstance(value, str):
            return value
    return ""


def upstream_closed_error(code: int | None, reason: str) -> dict[str, Any]:
    """The error the browser gets when the service closes without an ``error``."""
    why = f" ({reason})" if reason else ""
    return bridge_error(
        f"the service closed the session with code {code}{why}; reload the page to start a new session",
        code="upstream_closed",
        fatal=True,
    )


# -- origin policy ------------------------------------------------------------
# One policy for the server and the bridge: server.security (re-exported here).

# -- session ids ----------------------------------------------------------------

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_session_id(value: str, *, what: str = "uuid") -> str:
    """Return ``value`` if it is a valid project name / session uuid, else raise
    ``ValueError`` naming the rule."""
    if not _ID.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not valid: use 1-128 letters, digits, '_' or '-'")
    return value
