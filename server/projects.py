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
from server.limits import DEFAULT_LIMITS, LimitExceeded, Limits

#: Project names and session uuids (used as file names): always ``fullmatch``,
#: so a final newline does not slip through as it would with ``$``.
NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


def name_problem(value: object, what: str, max_chars: int, limit: str) -> str | None:
    """Why ``value`` is not a valid name (``what``: "project name", "session uuid"), or None.

    ``max_chars`` is the length cap and ``limit`` the :class:`Limits` field it comes from.
    """
    if isinstance(value, str) and len(value) > max_chars:
        return f"{what} has {len(value)} characters; at most {max_chars} are allowed (limit {limit})"
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return f"{what} {shown} must be 1-{max_chars} letters, digits, '_' or '-' (^[A-Za-z0-9_-]+$)"
    return None


class UnknownProject(LookupError):
    """No such project (or version)."""


@dataclass(frozen=True)
class StoredProject:
    name: str
    version: int
    config: dict[str, Any]


class ProjectStore:
    """Versioned projects on disk, within ``limits`` (name length, projects, versions)."""

    def __init__(self, data_dir: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.root = Path(data_dir) / "projects"
        self.root.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self._lock = threading.Lock()

    def check_name(self, name: object) -> str | None:
        """Why ``name`` is not a valid project name, or None."""
        return name_problem(name, "project name", self.limits.max_name_chars, "max_name_chars")

    def _versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def create(self, name: str, config: dict[str, Any]) -> StoredProject:
        """Store ``config`` as the next version of ``name``.

        Raises ValueError for a bad name and LimitExceeded when the store holds
        ``max_projects`` projects (a new name) or ``max_versions_per_project``.
        """
        if problem := self.check_name(name):
            raise ValueError(problem)
        with self._lock:
            versions = self._versions(name)
            if not versions and len(self.names()) >= self.limits.max_projects:
                raise LimitExceeded(
                    "max_projects", f"the store holds {self.limits.max_projects} projects (limit max_projects); "
                    "reuse a project name or raise the limit")
            if len(versions) >= self.limits.max_versions_per_project:
                raise LimitExceeded(
                    "max_versions_per_project", f"project {name!r} has {len(versions)} versions "
                    f"(limit max_versions_per_project); use another name or raise the limit")
            version = versions[-1] + 1 if versions else 0
            atomic_write_text(self.root / name / f"{version}.json", json.dumps(config))
        return StoredProject(name, version, config)

    def get(self, name: str, version: int | None = None) -> StoredProject:
        """The given version of ``name``, or its latest."""
        if problem := self.check_name(name):
            raise UnknownProject(problem)
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
