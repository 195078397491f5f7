"""Fixtures for the real-browser tests: Debian Chromium driven by Python
playwright (never ``playwright install``), a fake microphone fed from a WAV
we compose per test, and the bridge run through its real CLI on a free port.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.stack import BRIDGE_READY, BRIDGE_STARTUP_TIMEOUT_S, Child
from tests.browser.harness import ARTIFACTS, CHROMIUM, REPO_ROOT
from tests.support.server_proc import log_tail


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed on demand by scripts/ensure_chromium.sh."""
    if not CHROMIUM.exists():
        proc = subprocess.run(["sh", str(REPO_ROOT / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True)
        if proc.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(f"Chromium is missing and could not be installed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return CHROMIUM


@pytest.fixture()
def artifacts(request: pytest.FixtureRequest) -> Path:
    """This test's folder under test-output/browser/ (screenshots, logs, the mic WAV)."""
    path = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class BridgeProc:
    """A running bridge: its page URL and the log of its output."""

    url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        """Last ``lines`` lines the bridge wrote."""
        return log_tail(self.log_path, lines)


@pytest.fixture()
def start_bridge(artifacts: Path) -> Iterator[object]:
    """Start ``python -m bridge --port 0`` (the real CLI) the way ``make
    run-stack`` does; returns a starter ``(server_url, project, config) ->
    BridgeProc``. Stopped at teardown."""
    children: list[Child] = []

    def start(server_url: str, project: str, config: Path) -> BridgeProc:
        log_path = artifacts / "bridge.log"
        cmd = [sys.executable, "-m", "bridge", "--port", "0", "--server", server_url, "--project", project,
               "--config", str(config), "--api-key", "test-key", "--log-level", "info"]
        child = Child("bridge", cmd, BRIDGE_READY)
        children.append(child)

        def echo(line: str) -> None:
            # Opened per line: the reader thread may still write after teardown.
            with open(log_path, "a") as log:
                log.write(line + "\n")

        child.start(echo)
        try:
            url = child.wait_ready(BRIDGE_STARTUP_TIMEOUT_S)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{log_tail(log_path)}", pytrace=False)
        return BridgeProc(url, log_path)

    yield start
    for child in children:
        child.stop()
