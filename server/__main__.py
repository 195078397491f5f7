"""``python -m server``: run the refinery-mock service."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import uvicorn

from server import LISTENING_PREFIX, logcontext, warmup
from server.app import ServerSettings, create_app
from server.protocol import MAX_CLIENT_FRAME_BYTES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Offline stand-in for the AI Refinery realtime voice service. "
        "Point the SDK at it with AIR_BASE_URL=http://HOST:PORT or AsyncAIRefinery(base_url=...).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default: 8080)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("REFINERY_DATA_DIR", "data")),
                        help="where projects and saved histories live (default: ./data)")
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accept only this API key (repeatable); default: any non-empty key")
    parser.add_argument("--max-sessions", type=int, default=200, help="concurrent realtime sessions allowed (default: 200)")
    parser.add_argument("--brain", default=None, help="agent brain: scripted (default) or openai (needs REFINERY_LLM_URL)")
    parser.add_argument("--no-admin", dest="admin", action="store_false",
                        help="leave out the admin API (/_admin: session journals, faults, reset)")
    parser.add_argument("--admin-remote", action="store_true",
                        help="let the admin API answer clients other than 127.0.0.1 (it shows all traffic and can reset the server)")
    parser.add_argument("--record", type=Path, default=None, metavar="DIR",
                        help="save each session (mic audio as received, client events, config, journal) under DIR "
                             "for `python -m simulator --replay DIR/<session>`")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--ws-deflate", action="store_true",
                        help="negotiate permessage-deflate on the WebSocket when a client offers it (default off: "
                        "base64 PCM barely compresses and deflate costs the event loop ~0.4 ms per audio delta)")
    parser.add_argument("--warm-up-config", type=Path, default=warmup.DEFAULT_CONFIG,
                        help="load and run the engines of this project config at start, in the background, so the "
                        "first caller does not wait for model loading (default: the tutorial config)")
    parser.add_argument("--no-warm-up", action="store_true", help="do not warm engines at start")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logcontext.install(args.log_level)
    settings = ServerSettings(
        data_dir=args.data_dir,
        api_keys=frozenset(args.api_keys) if args.api_keys else None,
        max_sessions=args.max_sessions,
        brain=args.brain,
        admin=args.admin,
        admin_remote=args.admin_remote,
        record_dir=args.record,
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"cannot bind {args.host}:{args.port}: {exc}; choose another --port (0 picks a free one)", file=sys.stderr)
        return 2
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        ws_max_size=4 * MAX_CLIENT_FRAME_BYTES,
        ws_ping_interval=None,
        ws_per_message_deflate=args.ws_deflate,
    )
    if not args.no_warm_up:
        warmup.start_in_background(args.warm_up_config, brain=args.brain)
    server = uvicorn.Server(config)
    print(f"{LISTENING_PREFIX}http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
