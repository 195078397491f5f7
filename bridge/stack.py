"""``python -m bridge.stack``: run the server and the bridge together.

Starts ``python -m server`` and ``python -m bridge`` as child processes, waits
until both listen, registers the tutorial config (the bridge does it with
``--config``), prints the URL to open, and stops both cleanly on Ctrl-C or
SIGTERM. ``make run-stack`` calls this.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.__main__ import LISTENING_PREFIX
from server import LISTENING_PREFIX as SERVER_LISTENING_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml"

SERVER_READY = re.compile(re.escape(SERVER_LISTENING_PREFIX) + r"(https?://\S+)")
BRIDGE_READY = re.compile(re.escape(LISTENING_PREFIX) + r"(https?://\S+)")
STARTUP_TIMEOUT_S = 180.0  # the server loads ASR/TTS models; a busy machine is slow
BRIDGE_STARTUP_TIMEOUT_S = 60.0  # the bridge loads no models, but registers the project
STOP_TIMEOUT_S = 10.0


def parse_ready_line(line: str, pattern: re.Pattern[str]) -> str | None:
    """The URL announced on ``line``, or ``None`` when it is not the ready line."""
    m = pattern.search(line)
    return m.group(1).rstrip("/") if m else None


def browser_url(bridge_url: str) -> str:
    """The URL a user should open: ``localhost`` rather than ``127.0.0.1`` reads
    better and is a secure context for the microphone just the same."""
    return re.sub(r"^http://127\.0\.0\.1(?=[:/]|$)", "http://localhost", bridge_url.rstrip("/")) + "/"


@dataclass
class Child:
    """One child process whose output we prefix and watch for its ready line."""

    name: str
    cmd: list[str]
    ready: re.Pattern[str]
    #: Extra environment (secrets go here, not in ``cmd``, where ``ps`` shows them).
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    url: str | None = None
    _event: threading.Event = field(default_factory=threading.Event)

    def start(self, echo: Callable[[str], None]) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            # Own process group: Ctrl-C reaches us only, and we stop children in order.
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(echo,), daemon=True).start()

    def _pump(self, echo: Callable[[str], None]) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            echo(f"[{self.name}] {line.rstrip()}")
            if self.url is None:
                self.url = parse_ready_line(line, self.ready)
                if self.url:
                    self._event.set()
        self._event.set()  # EOF: the process died; the waiter sees url None

    def wait_ready(self, timeout: float) -> str:
        self._event.wait(timeout)
        if self.url:
            return self.url
        code = self.proc.poll() if self.proc else None
        why = f"exited with code {code}" if code is not None else f"did not start within {timeout:.0f} s"
        raise RuntimeError(f"{self.name} {why}; see its output above ({' '.join(self.cmd)})")

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def build_parser() -> argparse.ArgumentParser:
    """The stack's command line (``python -m bridge.stack --help``)."""
    p = argparse.ArgumentParser(
        prog="python -m bridge.stack",
        description="Run the refinery-mock server and the browser bridge together, with the tutorial config registered.",
    )
    p.add_argument("--server-port", type=int, default=8080, help="server port (default 8080; 0 = any free port)")
    p.add_argument("--bridge-port", type=int, default=8000, help="bridge/page port (default 8000; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="interface both bind to (default 127.0.0.1)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (passed to both)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"project YAML (default {DEFAULT_CONFIG.relative_to(REPO_ROOT)})")
    p.add_argument("--project", default="example", help="project name (default example)")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("REFINERY_DATA_DIR", REPO_ROOT / "data")),
                   help="server data directory (default ./data)")
    # No default of our own: the bridge's (AIR_API_KEY, API_KEY, local-dev-key) applies.
    p.add_argument("--api-key", default=None,
                   help="API key the bridge uses, handed over in its environment (default: the bridge's own default)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run server and bridge until Ctrl-C, SIGTERM or a child's exit; returns
    0 on a clean stop, 1 when a child failed, 2 on a missing config."""
    args = build_parser().parse_args(argv)
    if not args.config.is_file():
        print(f"stack: config file {args.config} not found; pass --config FILE.yaml", file=sys.stderr)
        return 2
    py = sys.executable
    remote = ["--allow-remote"] if args.allow_remote else []
    lock = threading.Lock()

    def echo(line: str) -> None:
        with lock:
            print(line, flush=True)

    server = Child(
        "server",
        [py, "-m", "server", "--host", args.host, "--port", str(args.server_port), "--data-dir", str(args.data_dir),
         *remote],
        SERVER_READY,
    )
    children = [server]
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start(echo)
        server_url = server.wait_ready(STARTUP_TIMEOUT_S)
        bridge = Child(
            "bridge",
            [py, "-m", "bridge", "--host", args.host, "--port", str(args.bridge_port), "--server", server_url,
             "--project", args.project, "--config", str(args.config), *remote],
            BRIDGE_READY,
            env={"AIR_API_KEY": args.api_key} if args.api_key else {},
        )
        children.append(bridge)
        bridge.start(echo)
        bridge_url = bridge.wait_ready(BRIDGE_STARTUP_TIMEOUT_S)
        echo("")
        echo(f"  refinery-mock is running: server {server_url}, bridge {bridge_url}")
        echo(f"  project {args.project!r} registered from {args.config}")
        echo(f"  Open {browser_url(bridge_url)} in Chrome, click Connect, then Start recording.")
        echo("  Press Ctrl-C to stop.")
        echo("")
        while not stopping.is_set():
            for c in children:
                if c.proc and c.proc.poll() is not None:
                    echo(f"stack: {c.name} exited with code {c.proc.returncode}; stopping")
                    stopping.set()
            stopping.wait(0.5)
        return 0 if all(c.proc and c.proc.poll() is None for c in children) else 1
    except RuntimeError as exc:
        echo(f"stack: {exc}")
        return 1
    finally:
        for c in reversed(children):
            c.stop()
        echo("stack: stopped")


if __name__ == "__main__":
    sys.exit(main())
