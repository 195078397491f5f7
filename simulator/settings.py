"""The barge-in knobs a sweep or a repeat run can set, applied to a project config.

A *setting* is a mapping from knob name to value, e.g. ``{"threshold": 15,
"window_size": 24}``. Knob names are the config's own field names; each maps to
one field of the project YAML. A knob whose block is absent has no effect (a
push-to-talk config has no ``audio_config.vad``: barge-in knobs leave it
push-to-talk), and the run's report shows the config as run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.config import LoadedConfig, load_project_config, load_project_config_file

#: Knob -> (path of the block in the project YAML, field name, type).
KNOBS: dict[str, tuple[tuple[str, ...], type]] = {
    "threshold": (("audio_config", "vad"), int),
    "window_size": (("audio_config", "vad"), int),
    "lockout_seconds": (("audio_config", "vad"), float),
    "grace_period_seconds": (("audio_config", "vad"), float),
    "silence_duration_ms": (("audio_config", "asr"), int),
}

Setting = Mapping[str, float | int]


class SettingError(ValueError):
    """A setting names an unknown knob or a value the config rejects; the message says which."""


def check_knob(name: str) -> None:
    """Raise :class:`SettingError` unless ``name`` is a knob of :data:`KNOBS`."""
    if name not in KNOBS:
        raise SettingError(f"unknown knob {name!r}; use one of: {', '.join(KNOBS)}")


def coerce(name: str, value: float | int | str) -> float | int:
    """``value`` as the knob's type (``threshold=15.0`` -> 15); SettingError when it is not one."""
    check_knob(name)
    kind = KNOBS[name][1]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name}={value!r}: not a number") from None
    if kind is int:
        if number != int(number):
            raise SettingError(f"{name}={value!r}: must be a whole number")
        return int(number)
    return number


def setting_key(setting: Setting) -> str:
    """A stable text key of a setting, e.g. ``threshold=15,window_size=24`` (sorted; ``-`` when empty)."""
    return ",".join(f"{k}={setting[k]:g}" for k in sorted(setting)) or "-"


def apply_setting(config_path: Path, setting: Setting) -> LoadedConfig:
    """The project config at ``config_path`` with the knobs of ``setting`` set.

    Raises :class:`SettingError` when the result is not a valid config (e.g. a
    threshold above the window size), naming the setting and the config.
    """
    from server.config import ConfigError

    base = load_project_config_file(config_path)
    if not setting:
        return base
    doc: dict[str, Any] = copy.deepcopy(dict(base.document))
    for name, value in setting.items():
        check_knob(name)
        path, _ = KNOBS[name]
        node: Any = doc
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):  # absent block: the knob does not apply to this config
            node[name] = value
    try:
        return load_project_config(doc)
    except ConfigError as exc:
        raise SettingError(f"setting {setting_key(setting)} is not valid for {config_path}: {exc}") from None
