"""The session id on every log record written while a session runs.

The realtime driver enters :func:`session_context` for the life of a
connection; asyncio tasks it starts inherit the context (``contextvars``), and
engine jobs run in a copy of it, so lines from the detector, the engines and
the driver all name their session. :class:`SessionLogFilter` puts it on each
record as ``record.session_id`` ("-" outside a session) for the log format.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

SESSION_ID: contextvars.ContextVar[str] = contextvars.ContextVar("refinery_session_id", default="-")

#: The server's log line: time, level, logger, session, message.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s session=%(session_id)s: %(message)s"


@contextmanager
def session_context(session_id: str) -> Iterator[None]:
    """Log records made inside (this task and tasks it starts) carry ``session_id``."""
    token = SESSION_ID.set(session_id)
    try:
        yield
    finally:
        SESSION_ID.reset(token)


class SessionLogFilter(logging.Filter):
    """Adds ``record.session_id``; never drops a record. Attach it to handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session_id"):
            record.session_id = SESSION_ID.get()
        return True


def install(level: str = "INFO") -> None:
    """Configure the root logger with :data:`LOG_FORMAT` and the filter on its handlers."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(SessionLogFilter())
