"""The project store: versioned project configs in the data directory.

``DATA/projects/{name}/{version}.json`` holds the config object exactly as the
SDK sent it (the YAML as a JSON object). Creating a name again makes the next
version (protocol.md section 1). Writes are atomic, so a restart keeps every
project that was acknowledged with 201.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.history import atomic_write_text

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class UnknownProject(LookupError):
    """No such project (or version)."""


@dataclass(frozen=True)
class StoredProject:
    name: str
    version: int
    config: dict[str, Any]


class ProjectStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "projects"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def create(self, name: str, config: dict[str, Any]) -> StoredProject:
        """Store ``config`` as the next version of ``name``."""
        if not NAME_RE.match(name):
            raise ValueError(f"project name {name!r} must match ^[A-Za-z0-9_-]+$")
        with self._lock:
            versions = self._versions(name)
            version = versions[-1] + 1 if versions else 0
            atomic_write_text(self.root / name / f"{version}.json", json.dumps(config))
        return StoredProject(name, version, config)

    def get(self, name: str, version: int | None = None) -> StoredProject:
        """The given version of ``name``, or its latest."""
        if not NAME_RE.match(name):
            raise UnknownProject(f"project name {name!r} is not valid (allowed: letters, digits, '_' and '-')")
        versions = self._versions(name)
        if not versions:
            raise UnknownProject(f"project {name!r} does not exist; create it first with create_project")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise UnknownProject(f"project {name!r} has no version {version}; versions: {versions}")
        data = json.loads((self.root / name / f"{version}.json").read_text(encoding="utf-8"))
        return StoredProject(name, version, data)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p.name))
