"""Who may talk to a local server: Origin and Host allow-lists, loopback
binding, API keys from the environment or a file, and keys kept out of logs.

Shared by the server and the bridge. A local service is reachable by any web
page the user opens: a page on another origin could open a WebSocket to it
(cross-site WebSocket hijacking: browsers do not apply CORS to WebSockets, but
they always send ``Origin``), and a DNS-rebinding page reaches the HTTP routes
under its own host name (browsers send that name as ``Host``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

# -- Origin ---------------------------------------------------------------------

#: Origins allowed by default: pages served from this machine.
DEFAULT_ALLOWED_ORIGINS: tuple[str, ...] = (
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
)

_ORIGIN = re.compile(r"(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}|\*))?")


def _split_origin(value: str) -> tuple[str, str, str] | None:
    """(scheme, host, port) of ``scheme://host[:port]``, port defaulted; None if malformed."""
    m = _ORIGIN.fullmatch(value.strip().rstrip("/").lower())
    if not m:
        return None
    scheme, host, port = m.groups()
    return scheme, host, port or ("443" if scheme == "https" else "80")


def check_origin_pattern(pattern: str) -> str:
    """Validate one ``--allow-origin`` entry and return it normalised.

    Accepted: ``*`` (any origin), ``scheme://host`` or ``scheme://host:port``,
    with ``*`` as the port to allow any port.
    """
    p = pattern.strip().rstrip("/").lower()
    if p == "*" or _split_origin(p):
        return p
    raise ValueError(
        f"origin pattern {pattern!r} is not valid; use '*', 'http://host', 'http://host:8000' or 'http://host:*'"
    )


def origin_allowed(origin: str | None, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether a WebSocket ``Origin`` header passes the allow-list.

    A missing Origin is allowed: browsers always send one, so its absence means
    a non-browser client (the SDK, a script, the simulator) that cross-site
    rules do not concern.
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    got = _split_origin(origin)
    if got is None:
        return False
    for pattern in allowed:
        want = _split_origin(pattern)
        if want and want[:2] == got[:2] and want[2] in ("*", got[2]):
            return True
    return False


# -- Host and binding -------------------------------------------------------------

#: ``Host`` names accepted by default (loopback): a DNS-rebinding page's own
#: name is refused with 400.
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def binding_problem(host: str, allow_remote: bool) -> str | None:
    """Why binding ``host`` is refused (non-loopback without ``--allow-remote``), or None."""
    if is_loopback(host) or allow_remote:
        return None
    return (f"binding {host} exposes the service to other machines; pass --allow-remote to do so "
            "on purpose, or bind 127.0.0.1")


def remote_warning(host: str) -> str:
    """The warning printed when a non-loopback address is bound on purpose."""
    return (f"WARNING: listening on {host}, reachable from other machines; anyone who can reach it "
            "can use it (set an API key allow-list with --api-key-file)")


# -- API keys -----------------------------------------------------------------------


def read_key_file(path: str | os.PathLike[str]) -> list[str]:
    """Keys of a key file: one per line, blank lines and ``#`` comments ignored.

    Raises ValueError naming the file when it cannot be read or holds no key.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ValueError(f"key file {path} holds no key (one key per line)")
    return keys


def keys_from_env(value: str | None) -> list[str]:
    """Keys of a comma-separated environment variable (empty entries ignored)."""
    return [k.strip() for k in (value or "").split(",") if k.strip()]


# -- keeping keys out of logs -----------------------------------------------------

_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=,]\s*[\"']?(?:bearer|basic)?\s*)[^\s\"',)]+")


class RedactKeys(logging.Filter):
    """Rewrites log records so no API key appears: the value of any
    ``Authorization`` header (libraries log handshake headers at debug) and
    every known key wherever it occurs."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        super().__init__()
        self.keys = sorted({k for k in keys if k}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        text = _AUTH_HEADER.sub(r"\1<redacted>", text)
        for key in self.keys:
            text = text.replace(key, "<redacted>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_redaction(keys: Iterable[str] = ()) -> RedactKeys:
    """Put a :class:`RedactKeys` on every handler configured so far (root's and
    uvicorn's): handler filters see records from every logger that reaches them."""
    redactor = RedactKeys(keys)
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access"))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactKeys) for f in handler.filters):
                handler.addFilter(redactor)
    return redactor
