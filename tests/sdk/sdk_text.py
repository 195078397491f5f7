"""Typed turns through the real SDK (issue 2). Runs under the SDK's Python 3.12 venv.

Modes:
  turn             create_project, connect, send_text_query, read one response.
  cancel           as turn, but call cancel_response() at the first audio delta;
                   then send a follow-up query to prove the session still works
                   and that nothing of the cancelled response arrives late.
  bad-config       create_project with --config (expected to be rejected).
  unknown-project  connect to --project without creating it.

Prints one JSON line (see sdk_common).
"""

from __future__ import annotations

import argparse
from typing import Any

from sdk_common import base_parser, exception_info, make_client, record, run


def _marker(result: dict[str, Any], kind: str, **fields: Any) -> None:
    result["events"].append({"type": f"client:{kind}", **fields})


async def _read_response(session: Any, result: dict[str, Any], *, cancel_at_first_audio: bool = False) -> None:
    """Append every message up to and including ``response.done`` (get_responses stops there)."""
    cancelled = False
    async for msg in session.get_responses():
        ev = record(msg)
        if ev["type"] == "PING":
            continue
        result["events"].append(ev)
        if cancel_at_first_audio and not cancelled and ev["type"] == "response.audio.delta":
            await session.cancel_response()
            cancelled = True
            _marker(result, "cancel_response")


async def main(args: argparse.Namespace, result: dict[str, Any]) -> None:
    client = make_client(args)
    rd = client.realtime_distiller
    if args.mode == "unknown-project":
        try:
            async with rd(project=args.project, uuid=args.uuid):
                _marker(result, "connected")
        except Exception as exc:  # noqa: BLE001 - the exception is the observation
            result["exception"] = exception_info(exc)
        return

    try:
        # create_project is synchronous in the SDK (requests.post): not awaited.
        result["created"] = rd.create_project(config_path=args.config, project=args.project)
    except Exception as exc:  # noqa: BLE001
        result["exception"] = exception_info(exc)
        return
    if args.mode == "bad-config":
        return

    async with rd(project=args.project, uuid=args.uuid) as session:
        _marker(result, "send_text_query", text=args.query)
        await session.send_text_query(args.query)
        await _read_response(session, result, cancel_at_first_audio=args.mode == "cancel")
        if args.mode == "cancel":
            _marker(result, "send_text_query", text=args.followup)
            await session.send_text_query(args.followup)
            await _read_response(session, result)


if __name__ == "__main__":
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["turn", "cancel", "bad-config", "unknown-project"], default="turn")
    parser.add_argument("--query", default="How should I hedge my portfolio against stock and currency risk?")
    parser.add_argument("--followup", default="Give me one more idea to reduce currency risk.")
    run(main, parser.parse_args())
