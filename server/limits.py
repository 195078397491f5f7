"""Every limit on what a client controls, in one place.

A :class:`Limits` is frozen and handed to the app, the realtime endpoint and
the parsers. Each field has a safe default; ``python -m server --limit
NAME=VALUE`` (repeatable) or the environment variable
``REFINERY_LIMIT_<NAME>`` (upper case) overrides it, the command line winning.
The README's "Limits" table lists them with their defaults; a refusal always
names the field, so an operator knows which setting to raise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace

ENV_PREFIX = "REFINERY_LIMIT_"


@dataclass(frozen=True)
class Limits:
    """Limits on client-controlled sizes, rates and counts (units in the names)."""

    #: HTTP request body (JSON) in bytes; larger gets 413.
    max_body_bytes: int = 1 << 20
    #: Nesting depth of any JSON body or frame (objects and arrays); deeper gets 422.
    max_json_depth: int = 64
    #: A project config given as YAML text, in bytes; larger gets 413.
    max_config_bytes: int = 256 << 10
    #: YAML nodes after expanding aliases ("billion laughs" guard); more gets 422.
    max_yaml_nodes: int = 20_000
    #: YAML alias uses (``*name``) in one document; more gets 422.
    max_yaml_aliases: int = 200
    #: Project names: ``[A-Za-z0-9_-]``, at most this many characters.
    max_name_chars: int = 64
    #: Session uuids: same alphabet, at most this many characters.
    max_uuid_chars: int = 128
    #: One client WebSocket text frame, in bytes (warning ``frame_too_large``).
    max_frame_bytes: int = 1 << 20
    #: A typed ``input_text``, in characters (warning ``text_too_long``).
    max_input_text_chars: int = 2000
    #: How much of an unknown ``type`` a warning quotes back, in characters.
    max_echo_chars: int = 64
    #: Concurrent realtime sessions on the server (HTTP 503 beyond).
    max_sessions: int = 200
    #: Concurrent realtime sessions on one project (HTTP 503 beyond).
    max_sessions_per_project: int = 50
    #: Projects in the store (HTTP 507 beyond).
    max_projects: int = 1000
    #: Versions of one project in the store (HTTP 507 beyond).
    max_versions_per_project: int = 100
    #: Bytes of events queued for one client that is not reading; beyond, the
    #: session is closed with code 1008 and a reason naming this limit.
    max_send_queue_bytes: int = 16 << 20
    #: Seconds one send to a client may block before the session is closed (1008).
    max_send_stall_s: float = 30.0
    #: Input audio accepted ahead of real time, in seconds of audio; beyond it,
    #: appended audio is dropped with warning ``audio_too_fast``.
    max_audio_ahead_s: float = 10.0
    #: Seconds one engine call (ASR, agent brain, TTS) may take before it is
    #: abandoned and the session gets an ``engine_timeout`` error.
    engine_timeout_s: float = 60.0

    def as_dict(self) -> dict[str, int | float]:
        """The limits as a plain mapping (for ``/health`` and the docs)."""
        return asdict(self)


DEFAULT_LIMITS = Limits()


class LimitExceeded(ValueError):
    """Client input went over a limit. ``limit`` names the :class:`Limits` field."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def _coerce(name: str, value: str) -> int | float:
    kind = type(getattr(DEFAULT_LIMITS, name))
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"limit {name} needs {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"limit {name} must be positive, got {value!r}")
    return number


def limits_from(overrides: Iterable[str] = (), env: Mapping[str, str] | None = None) -> Limits:
    """Defaults, then ``REFINERY_LIMIT_*`` from ``env``, then ``NAME=VALUE`` overrides.

    Raises ValueError naming the bad entry (unknown name, not a positive number).
    """
    env = os.environ if env is None else env
    names = {f.name for f in fields(Limits)}
    values: dict[str, int | float] = {}
    for name in names:
        if (raw := env.get(ENV_PREFIX + name.upper())) is not None:
            try:
                values[name] = _coerce(name, raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX + name.upper()}: {exc}") from None
    for item in overrides:
        name, sep, raw = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names:
            raise ValueError(f"--limit {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(names))}")
        values[name] = _coerce(name, raw.strip())
    return replace(DEFAULT_LIMITS, **values)
