"""Helpers shared by the SDK scripts. Runs under the SDK's Python 3.12 venv.

Scripts use only the SDK's public API (``AsyncAIRefinery``,
``realtime_distiller.create_project``, ``realtime_distiller(project=, uuid=)``,
``send_text_query``, ``send_audio_chunk``, ``cancel_response``, ``recv``,
``get_responses``, ``send``) and print ONE JSON object as the last stdout line:
``{"ok": bool, "events": [...], ...}``. Events are the server messages in
arrival order (PINGs dropped, audio replaced by its decoded size) interleaved
with ``client:*`` markers for what the script did, so a failing test can show
the exact trace.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from air import AsyncAIRefinery

DEFAULT_API_KEY = "test-key"

# Server fields copied verbatim into the trace (audio is summarized instead).
_COPIED = (
    "role",
    "status",
    "response_id",
    "content",
    "text",
    "delta",
    "audio_end_ms",
    "session",
    "capabilities",
    "code",
    "message",
    "error_detail",
)


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base-url", required=True, help="server base URL, e.g. http://127.0.0.1:8123")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--project", default="sdk_test")
    parser.add_argument("--uuid", default="sdk_user")
    parser.add_argument("--config", help="project YAML to register with create_project")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="give up (failure bound, not a measurement)")
    return parser


def make_client(args: argparse.Namespace) -> AsyncAIRefinery:
    """The client exactly as a user builds it: only the base URL differs from the cloud."""
    return AsyncAIRefinery(api_key=args.api_key, base_url=args.base_url)


def record(msg: Any) -> dict[str, Any]:
    """A JSON-able summary of one message yielded by ``recv()``/``get_responses()``.

    The SDK yields ``DistillerIncomingMessage`` models whose ``.get()`` sees only
    declared fields; extras (``response_id``, ``session`` ...) need
    ``model_dump``. ``exclude_unset`` keeps SDK defaults (role "assistant")
    from masquerading as server fields.
    """
    raw = msg.model_dump(exclude_unset=True) if hasattr(msg, "model_dump") else dict(msg)
    ev: dict[str, Any] = {"type": raw.get("type")}
    for key in _COPIED:
        if key in raw and key != "delta":
            ev[key] = raw[key]
    audio_b64 = raw.get("audio")
    if raw.get("type") == "response.audio.delta":
        audio_b64 = audio_b64 or raw.get("delta")
        ev["delta_equals_audio"] = raw.get("delta") == raw.get("audio")
    elif "delta" in raw:
        ev["delta"] = raw["delta"]
    if isinstance(audio_b64, str):
        ev.update(audio_summary(audio_b64))
    return ev


def audio_summary(audio_b64: str) -> dict[str, Any]:
    """Decoded byte count and peak amplitude of a base64 PCM16 chunk."""
    try:
        pcm = base64.b64decode(audio_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        return {"audio_bytes": -1, "audio_error": f"bad base64: {exc}"}
    usable = pcm[: len(pcm) - len(pcm) % 2]
    peak = int(np.abs(np.frombuffer(usable, dtype="<i2").astype(np.int32)).max()) if usable else 0
    return {"audio_bytes": len(pcm), "audio_peak": peak}


def exception_info(exc: BaseException) -> dict[str, Any]:
    """Type, text and (for the SDK's DistillerClientError) ``extra`` of an exception."""
    info: dict[str, Any] = {"type": type(exc).__name__, "module": type(exc).__module__, "text": str(exc)}
    extra = getattr(exc, "extra", None)
    if isinstance(extra, dict):
        info["extra"] = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)) for k, v in extra.items()}
    return info


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last stdout line."""
    sys.stdout.flush()
    print(json.dumps(result, default=repr), flush=True)


def run(main: Callable[[argparse.Namespace, dict[str, Any]], Awaitable[None]], args: argparse.Namespace) -> None:
    """Run ``main(args, result)`` under a failure timeout; always print ``result``.

    ``main`` appends to ``result["events"]`` as it goes and sets fields, so a
    timeout or crash still reports the trace so far. Exit code 0 when ``main``
    returned, 1 on an unexpected exception or timeout (the harness then shows
    stderr and this partial result).
    """
    result: dict[str, Any] = {"ok": False, "events": []}
    try:
        asyncio.run(asyncio.wait_for(main(args, result), timeout=args.timeout_s))
    except BaseException as exc:  # noqa: BLE001 - reported, then re-signalled via exit code
        traceback.print_exc()
        result["error"] = exception_info(exc)
        emit(result)
        sys.exit(1)
    result["ok"] = True
    emit(result)
