"""Conversation history of a session, and its store for ``auto_load``.

The session (sans-I/O) owns a :class:`ConversationHistory`; the driver saves
it through :class:`HistoryStore` when the session asks (``PersistHistory``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from server.agents.brain import PriorTurn


class ConversationHistory:
    """The turns so far: user turns and one assistant turn per agent that spoke."""

    def __init__(self, turns: list[PriorTurn] | None = None) -> None:
        self.turns: list[PriorTurn] = list(turns or [])

    def add(self, turn: PriorTurn) -> None:
        self.turns.append(turn)

    def snapshot(self) -> tuple[PriorTurn, ...]:
        return tuple(self.turns)

    def to_json(self) -> list[dict]:
        return [asdict(t) for t in self.turns]

    @classmethod
    def from_json(cls, data: object) -> "ConversationHistory":
        if not isinstance(data, list):
            raise ValueError("history must be a JSON list of turns")
        turns = []
        for item in data:
            if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
                raise ValueError(f"bad history turn: {item!r:.80}")
            turns.append(
                PriorTurn(item["role"], str(item.get("text", "")), item.get("agent"), bool(item.get("interrupted", False)))
            )
        return cls(turns)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class HistoryStore:
    """Histories on disk: ``DATA/history/{project}/{uuid}.json``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "history"

    def _path(self, project: str, uuid: str) -> Path:
        return self.root / project / f"{uuid}.json"

    def load(self, project: str, uuid: str) -> ConversationHistory:
        path = self._path(project, uuid)
        if not path.exists():
            return ConversationHistory()
        try:
            return ConversationHistory.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, OSError) as exc:
            raise ValueError(f"saved history {path} is unreadable ({exc}); delete it to start fresh") from exc

    def save(self, project: str, uuid: str, history: ConversationHistory) -> None:
        atomic_write_text(self._path(project, uuid), json.dumps(history.to_json(), indent=1))
