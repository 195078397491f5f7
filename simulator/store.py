"""The JSONL file of take summaries: one line per finished take, keyed for resumption.

Each summary is appended and flushed as it arrives, so an interrupted run
(Ctrl-C, a lost worker, a killed CI job) keeps every take it finished; the
same command run again reads the file and runs only the keys not in it. A
truncated last line (killed mid-write) is ignored and that take is run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_done(path: Path) -> dict[str, dict[str, Any]]:
    """Summaries already in ``path`` by key (empty when the file does not exist)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: its take runs again
        if isinstance(row, dict) and "key" in row:
            done[row["key"]] = row
    return done


class Appender:
    """Appends summaries to a JSONL file, one flushed line each."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("a", encoding="utf-8")

    def __call__(self, summary: dict[str, Any]) -> None:
        self._fh.write(json.dumps(summary, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "Appender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
