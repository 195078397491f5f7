"""The Locust user class, distributed: a local master and one worker, headless
for 12 s (less than a call), against a real server on port 0; the master must have
collected the callers' reports from the worker. No timing is asserted."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.server_proc import running_server

REPO = Path(__file__).resolve().parents[1]
LOCUST = [sys.executable, "-m", "locust", "-f", str(REPO / "bench" / "locustfile.py")]


def _free_port() -> int:
    # Locust's master needs a port the worker is told in advance.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_master_and_worker_report_a_whole_call(tmp_path: Path) -> None:
    with running_server(tmp_path / "server") as server:
        port = _free_port()
        master = subprocess.Popen(
            [*LOCUST, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--headless",
             "-u", "2", "-r", "2", "-t", "12s", "--expect-workers", "1",
             "--host", server.url, "--csv", str(tmp_path / "stats"), "--only-summary"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        worker = subprocess.Popen(
            [*LOCUST, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            master_out, _ = master.communicate(timeout=300)
            worker_out, _ = worker.communicate(timeout=60)
        finally:
            for p in (master, worker):
                if p.poll() is None:
                    p.kill()
        logs = f"--- master ---\n{master_out[-3000:]}\n--- worker ---\n{worker_out[-3000:]}\n--- server ---\n{server.log_tail()}"
    assert master.returncode == 0, logs
    with open(tmp_path / "stats_stats.csv", newline="") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    # A whole call may outlast the run; its first figure is reported as it happens.
    # Both users got a session: they run side by side (green threads), not one after the other.
    created = rows.get("session.created")
    assert created is not None and int(created["Request Count"]) >= 2, logs
    assert int(created["Failure Count"]) == 0, logs
