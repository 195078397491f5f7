"""``python -m server``: run the refinery-mock service."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn

from server import LISTENING_PREFIX
from server.app import ServerSettings, create_app
from server.limits import ENV_PREFIX, limits_from


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
    parser.add_argument("--max-sessions", type=int, default=None,
                        help="concurrent realtime sessions allowed (default: 200; short for --limit max_sessions=N)")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="override one limit (repeatable), e.g. --limit max_input_text_chars=4000; "
                        f"also {ENV_PREFIX}NAME in the environment; names and defaults: README 'Limits'")
    parser.add_argument("--brain", default=None, help="agent brain: scripted (default) or openai (needs REFINERY_LLM_URL)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = [*args.limit, *([f"max_sessions={args.max_sessions}"] if args.max_sessions is not None else [])]
    try:
        limits = limits_from(overrides)
    except ValueError as exc:
        print(f"python -m server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings(
        data_dir=args.data_dir,
        api_keys=frozenset(args.api_keys) if args.api_keys else None,
        limits=limits,
        brain=args.brain,
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
    # On SIGTERM uvicorn closes every WebSocket (1012) and waits for the
    # handlers; a handler that still runs after 1 s is cancelled, so shutdown
    # is bounded whatever the sessions are doing.
    config = uvicorn.Config(app, log_level=args.log_level, ws_max_size=4 * limits.max_frame_bytes, ws_ping_interval=None,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    print(f"{LISTENING_PREFIX}http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
