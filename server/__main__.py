"""``python -m server``: run the refinery-mock service."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import uvicorn

from server import LISTENING_PREFIX, asr_processes, logcontext, priority, warmup
from server.app import ServerSettings, create_app
from server.limits import ENV_PREFIX, limits_from
from server.security import (
    DEFAULT_ALLOWED_HOSTS,
    DEFAULT_ALLOWED_ORIGINS,
    binding_problem,
    check_origin_pattern,
    install_redaction,
    is_loopback,
    keys_from_env,
    read_key_file,
    remote_warning,
)

#: Environment variable with comma-separated API keys (an allow-list, like --api-key-file).
KEYS_ENV = "REFINERY_API_KEYS"
#: ``--asr-processes`` default, measured on 2 cores (docs/bench.md).
DEFAULT_ASR_PROCESSES = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Offline stand-in for the AI Refinery realtime voice service. "
        "Point the SDK at it with AIR_BASE_URL=http://HOST:PORT or AsyncAIRefinery(base_url=...).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow --host to be a non-loopback address (other machines can then reach the service)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default: 8080)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("REFINERY_DATA_DIR", "data")),
                        help="where projects and saved histories live (default: ./data)")
    parser.add_argument("--api-key-file", type=Path, default=None,
                        help=f"accept only the keys in this file, one per line; also ${KEYS_ENV} (comma-separated). "
                        "Default: any non-empty key")
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accept only this API key (repeatable); visible to other users in `ps`: "
                        "prefer --api-key-file or $" + KEYS_ENV)
    parser.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                        help="page origin allowed to open the realtime WebSocket, repeatable; 'http://host:*' "
                        "for any port, '*' for any (default: localhost, 127.0.0.1, [::1] on any port; "
                        "clients that send no Origin, like the SDK, are always allowed)")
    parser.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                        help="Host header name served, repeatable, '*' for any (default: localhost, 127.0.0.1, "
                        "[::1]; any with --allow-remote)")
    parser.add_argument("--max-sessions", type=int, default=None,
                        help="concurrent realtime sessions allowed (default: 200; short for --limit max_sessions=N)")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="override one limit (repeatable), e.g. --limit max_input_text_chars=4000; "
                        f"also {ENV_PREFIX}NAME in the environment; names and defaults: README 'Limits'")
    parser.add_argument("--brain", default=None, help="agent brain: scripted (default) or openai (needs REFINERY_LLM_URL)")
    parser.add_argument("--no-admin", dest="admin", action="store_false",
                        help="leave out the admin API (/_admin: session journals, faults, reset)")
    parser.add_argument("--admin-remote", action="store_true",
                        help="let the admin API answer clients other than 127.0.0.1 (it shows all traffic and can reset the server)")
    parser.add_argument("--record", type=Path, default=None, metavar="DIR",
                        help="save each session (mic audio as received, client events, config, journal) under DIR "
                             "for `python -m simulator --replay DIR/<session>`")
    parser.add_argument("--no-speculative-finals", dest="speculative_finals", action="store_false",
                        help="decode a turn's final transcript only when the turn ends (default: speculatively, "
                        "during the end-of-turn silence once the turn's audio is fixed; exact, and ~0.1-0.3 s "
                        "sooner; see docs/asr.md)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--ws-deflate", action="store_true",
                        help="negotiate permessage-deflate on the WebSocket when a client offers it (default off: "
                        "base64 PCM barely compresses and deflate costs the event loop ~0.4 ms per audio delta)")
    parser.add_argument("--warm-up-config", type=Path, default=warmup.DEFAULT_CONFIG,
                        help="load and run the engines of this project config at start, in the background, so the "
                        "first caller does not wait for model loading (default: the tutorial config)")
    parser.add_argument("--no-warm-up", action="store_true", help="do not warm engines at start")
    parser.add_argument("--asr-processes", type=int, default=DEFAULT_ASR_PROCESSES, metavar="N",
                        help="decode speech (Whisper) in N worker processes, so decodes use every core and never "
                        "hold up the audio path; 0 decodes in threads of the server process "
                        f"(default: {DEFAULT_ASR_PROCESSES}; measured in docs/bench.md)")
    parser.add_argument("--asr-process-nice", type=int, default=asr_processes.DEFAULT_NICE, metavar="N",
                        help="run those workers N nice steps below the server, 0-19, so the audio path wins "
                        f"the cores (default: {asr_processes.DEFAULT_NICE})")
    parser.add_argument("--engine-nice", type=int, default=priority.DEFAULT_ENGINE_NICE, metavar="N",
                        help="run engine threads (ASR, agent, TTS, model loading) N nice steps below the event loop's "
                        "audio path, 0-19 (0: same priority); Linux only, ignored elsewhere "
                        f"(default: {priority.DEFAULT_ENGINE_NICE})")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Validate the command line and environment into settings; ValueError names the bad option."""
    overrides = [*args.limit, *([f"max_sessions={args.max_sessions}"] if args.max_sessions is not None else [])]
    keys = [*(args.api_keys or []), *keys_from_env(os.environ.get(KEYS_ENV))]
    if args.api_key_file is not None:
        keys.extend(read_key_file(args.api_key_file))
    try:
        priority.check_engine_nice(args.engine_nice)
    except ValueError as exc:
        raise ValueError(f"--engine-nice: {exc}") from None
    if problem := binding_problem(args.host, args.allow_remote):
        raise ValueError(problem)
    if args.asr_processes < 0:
        raise ValueError(f"--asr-processes {args.asr_processes}: use 0 (decode in threads) or more")
    if not 0 <= args.asr_process_nice <= 19:
        raise ValueError(f"--asr-process-nice {args.asr_process_nice} is out of range: use 0 to 19")
    if args.allow_host:
        hosts: tuple[str, ...] | None = None if "*" in args.allow_host else tuple(h.lower() for h in args.allow_host)
    else:
        hosts = DEFAULT_ALLOWED_HOSTS if is_loopback(args.host) else None
    origins = tuple(check_origin_pattern(o) for o in args.allow_origin) if args.allow_origin else DEFAULT_ALLOWED_ORIGINS
    return ServerSettings(
        data_dir=args.data_dir,
        api_keys=frozenset(keys) if keys else None,
        limits=limits_from(overrides),
        brain=args.brain,
        allowed_origins=origins,
        allowed_hosts=hosts,
        admin=args.admin,
        admin_remote=args.admin_remote,
        record_dir=args.record,
        speculative_finals=args.speculative_finals,
        asr_processes=args.asr_processes,
        asr_process_nice=args.asr_process_nice,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"python -m server: {exc}", file=sys.stderr)
        return 2
    logcontext.install(args.log_level)
    # Before any engine thread exists (warm-up, sessions): they are lowered as
    # they start, and OpenMP, loaded with the first model, does not spin.
    priority.set_engine_nice(args.engine_nice)
    priority.passive_openmp()
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
    if not is_loopback(args.host):
        print(remote_warning(args.host), file=sys.stderr, flush=True)
    # On SIGTERM uvicorn closes every WebSocket (1012) and waits for the
    # handlers; a handler that still runs after 1 s is cancelled, so shutdown
    # is bounded whatever the sessions are doing.
    config = uvicorn.Config(app, log_level=args.log_level, ws_max_size=4 * settings.limits.max_frame_bytes,
                            ws_ping_interval=None, ws_per_message_deflate=args.ws_deflate, timeout_graceful_shutdown=1)
    if not args.no_warm_up:
        warmup.start_in_background(args.warm_up_config, brain=args.brain)
    # After uvicorn configured its log handlers: no key reaches a log, at any level.
    install_redaction(settings.api_keys or ())
    server = uvicorn.Server(config)
    print(f"{LISTENING_PREFIX}http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
