"""``python -m bridge``: serve the page and the browser WebSocket on one port.

Example::

    python -m bridge --port 8000 --server http://127.0.0.1:8080 --project example \\
        --config fixtures/configs/bargein_flow_superagent_realtime.yaml

Prints ``refinery-mock bridge listening on http://HOST:PORT`` once bound
(``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

import httpx
import uvicorn

from bridge.app import BridgeSettings, create_app
from bridge.translate import DEFAULT_ALLOWED_ORIGINS, check_origin_pattern, check_session_id
from bridge.upstream import ServiceTarget, UpstreamError, create_project, load_config_file, validate_key
from server.security import (
    DEFAULT_ALLOWED_HOSTS,
    binding_problem,
    install_redaction,
    is_loopback,
    read_key_file,
    remote_warning,
)

#: The line tests and ``bridge.stack`` wait for.
LISTENING_PREFIX = "refinery-mock bridge listening on "


def build_parser() -> argparse.ArgumentParser:
    """The bridge's command line (``python -m bridge --help``)."""
    p = argparse.ArgumentParser(
        prog="python -m bridge",
        description="Browser bridge for refinery-mock: serves the voice page and relays each browser "
        "to its own realtime session on the service.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow --host to be a non-loopback address (other machines can then use the bridge)")
    p.add_argument("--port", type=int, default=8000, help="port for HTTP and WebSocket; 0 picks a free one (default 8000)")
    p.add_argument("--server", default="http://127.0.0.1:8080", help="base URL of the service (default http://127.0.0.1:8080)")
    p.add_argument("--project", default="example", help="project name to open sessions on (default example)")
    p.add_argument("--project-version", default=None, help="pin a project version (default: latest)")
    p.add_argument("--config", type=Path, default=None, help="project YAML to register with the service at start-up")
    p.add_argument(
        "--api-key",
        default=os.environ.get("AIR_API_KEY") or os.environ.get("API_KEY") or "local-dev-key",
        help="API key sent to the service (default: $AIR_API_KEY, else $API_KEY, else 'local-dev-key'); "
        "visible to other users in `ps`: prefer the environment or --api-key-file",
    )
    p.add_argument("--api-key-file", type=Path, default=None, help="read the API key from this file (first line)")
    p.add_argument("--uuid", default=None, help="one session uuid for every browser (default: a new one per connection)")
    p.add_argument(
        "--allow-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="allowed page origin, repeatable; 'http://host:*' for any port, '*' for any origin "
        "(default: localhost, 127.0.0.1 and [::1] on any port)",
    )
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def settings_from_args(args: argparse.Namespace) -> BridgeSettings:
    """Validate the command line into settings; ``ValueError`` names the bad option."""
    if problem := binding_problem(args.host, args.allow_remote):
        raise ValueError(problem)
    target = ServiceTarget(
        base_url=args.server,
        project=check_session_id(args.project, what="--project"),
        api_key=read_key_file(args.api_key_file)[0] if args.api_key_file else args.api_key,
        project_version=args.project_version,
    )
    origins = tuple(check_origin_pattern(o) for o in args.allow_origin) if args.allow_origin else DEFAULT_ALLOWED_ORIGINS
    fixed = check_session_id(args.uuid, what="--uuid") if args.uuid else None
    hosts = DEFAULT_ALLOWED_HOSTS if is_loopback(args.host) else None
    return BridgeSettings(target=target, allowed_origins=origins, fixed_uuid=fixed, allowed_hosts=hosts)


async def register(target: ServiceTarget, config_path: Path) -> object:
    """Register ``config_path`` as the bridge's project; returns its version."""
    config = load_config_file(config_path)
    async with httpx.AsyncClient(timeout=30) as client:
        account = await validate_key(client, target)
        return await create_project(client, target, account, config)


class _AnnouncingServer(uvicorn.Server):
    # uvicorn binds in startup(); announce only once the socket listens, so a
    # reader of our stdout can connect right away.
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            print(f"{LISTENING_PREFIX}http://{shown}:{port}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until stopped; returns the exit code (2: bad option,
    1: the project could not be registered)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    if args.config is not None:
        try:
            version = asyncio.run(register(settings.target, args.config))
        except UpstreamError as exc:
            print(f"bridge: could not register {args.config}: {exc}", file=sys.stderr)
            return 1
        print(f"registered project {settings.target.project!r} version {version} from {args.config}", flush=True)

    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        log_level=args.log_level,
        lifespan="off",
    )
    # After uvicorn configured its log handlers: the key reaches no log, at any level.
    install_redaction([settings.target.api_key])
    if not is_loopback(args.host):
        print(remote_warning(args.host), file=sys.stderr, flush=True)
    _AnnouncingServer(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
