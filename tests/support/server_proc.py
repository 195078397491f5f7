"""Run ``python -m server`` as a subprocess for end-to-end tests.

The server binds port 0 and announces the real address on stdout with the line
``refinery-mock listening on http://127.0.0.1:PORT``; we wait for that line
instead of probing a port. All output goes to a log file whose tail is put in
every failure message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from server import LISTENING_PREFIX
from tests.support.sdk_venv import REPO_ROOT

READY_RE = re.compile(re.escape(LISTENING_PREFIX) + r"(http://127\.0\.0\.1:\d+)")
DEFAULT_STARTUP_TIMEOUT_S = 120.0  # model loading on a shared 2-core box is slow
STOP_TIMEOUT_S = 10.0


class ServerStartError(RuntimeError):
    """The server exited or never announced its address; the message holds its log tail."""


def log_tail(log_path: Path, lines: int = 60) -> str:
    """Last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ServerHandle:
    """A running server: its base URL (no trailing slash), process and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws_url(self) -> str:
        """Base URL with the WebSocket scheme."""
        return "ws" + self.url.removeprefix("http")

    def log_tail(self, lines: int = 60) -> str:
        """Last ``lines`` lines the server wrote (stdout and stderr)."""
        return log_tail(self.log_path, lines)


def _pump(proc: subprocess.Popen[bytes], log_path: Path, found: dict[str, str], ready: threading.Event) -> None:
    # Keep draining stdout for the server's whole life: a full pipe would block it.
    assert proc.stdout is not None
    with open(log_path, "ab") as log:
        for raw in proc.stdout:
            log.write(raw)
            log.flush()
            if not ready.is_set():
                match = READY_RE.search(raw.decode(errors="replace"))
                if match:
                    found["url"] = match.group(1)
                    ready.set()
    ready.set()  # EOF: the process is gone; the waiter finds no url.


@contextmanager
def running_server(
    data_dir: Path | str,
    *extra_args: str,
    log_path: Path | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> Iterator[ServerHandle]:
    """Start ``python -m server --host 127.0.0.1 --port 0 --data-dir DIR *extra_args``.

    Yields a :class:`ServerHandle` once the server printed its address; stops it
    (SIGTERM, then SIGKILL) on exit. ``env`` entries are added to the current
    environment. Raises :class:`ServerStartError` with the log tail when the
    server exits early or stays silent for ``startup_timeout_s``.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path else data_dir / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "server", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir), *extra_args]
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
    proc_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    found: dict[str, str] = {}
    ready = threading.Event()
    pump = threading.Thread(target=_pump, args=(proc, log_path, found, ready), daemon=True)
    pump.start()
    try:
        ready.wait(startup_timeout_s)
        if "url" not in found:
            state = f"exited with code {proc.poll()}" if proc.poll() is not None else (
                f"did not print 'refinery-mock listening on http://127.0.0.1:PORT' within {startup_timeout_s:.0f} s"
            )
            raise ServerStartError(f"server {state}: {' '.join(cmd)}\n--- {log_path} (tail) ---\n{log_tail(log_path)}")
        yield ServerHandle(url=found["url"], process=proc, log_path=log_path)
    finally:
        _stop(proc)
        pump.join(timeout=STOP_TIMEOUT_S)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)
