"""The stress suite's sizes, its figures, and what it reads of the server process.

``--stress-scale smoke`` (the default, part of ``make test``) runs every
scenario small; ``--stress-scale full`` (``make test-stress``) at the sizes of
issue #12. Every test records figures with ``figures.add(...)``; they are
printed at the end of the run (and written to ``out/stress-figures.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Scale:
    name: str
    frames: int  # generated frames over the socket
    drops: int  # sessions dropped at random points
    drop_concurrency: int
    soak_turns: int
    soak_warmup_turns: int
    concurrent: int  # sessions at once, checked for cross-talk


SCALES = {
    "smoke": Scale("smoke", frames=600, drops=60, drop_concurrency=20, soak_turns=60, soak_warmup_turns=20, concurrent=20),
    "full": Scale("full", frames=10_000, drops=1_000, drop_concurrency=40, soak_turns=500, soak_warmup_turns=50,
                  concurrent=100),
}

_FIGURES: dict[str, Any] = {}


class Figures:
    """Figures of the run, keyed ``test: name``."""

    def add(self, test: str, **values: Any) -> None:
        _FIGURES.setdefault(test, {}).update(values)


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    return SCALES[request.config.getoption("--stress-scale")]


@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    terminalreporter.section(f"stress figures ({config.getoption('--stress-scale')} scale)")
    for test, values in _FIGURES.items():
        terminalreporter.write_line(f"{test}:")
        for name, value in values.items():
            terminalreporter.write_line(f"    {name}: {value}")
    out = REPO_ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "stress-figures.json").write_text(json.dumps(_FIGURES, indent=1))


def proc_stats(pid: int) -> dict[str, int]:
    """RSS (kB), threads and open fds of a process (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kb": int(fields["VmRSS"].split()[0]),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }
