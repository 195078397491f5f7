"""Fixtures for the real-browser tests: Debian Chromium driven by Python
playwright (never ``playwright install``), a fake microphone fed from a WAV
we compose per test, and the bridge run through its real CLI on a free port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.harness import ARTIFACTS, CHROMIUM, REPO_ROOT

BRIDGE_READY = re.compile(r"refinery-mock bridge listening on (http://\S+)")


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
    url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture()
def start_bridge(artifacts: Path) -> Iterator[object]:
    """Start ``python -m bridge --port 0`` (the real CLI); returns a starter
    ``(server_url, project, config) -> BridgeProc``. Stopped at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(server_url: str, project: str, config: Path) -> BridgeProc:
        log_path = artifacts / "bridge.log"
        cmd = [sys.executable, "-m", "bridge", "--port", "0", "--server", server_url, "--project", project,
               "--config", str(config), "--api-key", "test-key", "--log-level", "info"]
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        procs.append(proc)
        found: dict[str, str] = {}
        ready = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            with open(log_path, "a") as log:
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    m = BRIDGE_READY.search(line)
                    if m and not ready.is_set():
                        found["url"] = m.group(1)
                        ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(60)
        if "url" not in found:
            pytest.fail(f"bridge did not start: {' '.join(cmd)}\n{log_path.read_text(errors='replace')}", pytrace=False)
        return BridgeProc(found["url"], log_path)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
