"""Structured JSON logs and the correlation id that follows a request into its events."""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

import orjson

_correlation_id: ContextVar[str | None] = ContextVar("smartid_correlation_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
MAX_CORRELATION_ID_LENGTH = 128


def current_correlation_id() -> str | None:
    """The correlation id of the request or message being handled, if any."""
    return _correlation_id.get()


# A random prefix per process and a counter: unique ids with no system call per request.
# uuid4() reads os.urandom, which releases the GIL on the event loop and so hands it to the
# group committer's thread for as long as a whole switch interval.
_id_prefix = ""
_id_counter = itertools.count()


def _reseed_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = itertools.count()


_reseed_ids()
os.register_at_fork(after_in_child=_reseed_ids)


def new_correlation_id() -> str:
    """32 hex digits, like a uuid4's hex: 64 random bits for the process, then a counter."""
    return f"{_id_prefix}{next(_id_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


_CORRELATION_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_CORRELATION_ID_LENGTH}}}")


def is_valid_correlation_id(value: str) -> bool:
    """Accept what a client may reasonably send; anything else is replaced, not logged verbatim.

    ASCII letters, digits and `-_.:`, 1 to `MAX_CORRELATION_ID_LENGTH` characters.
    """
    return _CORRELATION_ID.fullmatch(value) is not None


def enter_correlation(correlation_id: str) -> Token[str | None]:
    """Set the correlation id; hand the token to `leave_correlation` afterwards.

    What `correlation_scope` does, without a generator, for the per-request middleware.
    """
    return _correlation_id.set(correlation_id)


def leave_correlation(token: Token[str | None]) -> None:
    _correlation_id.reset(token)


@contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Set the correlation id for the code inside (a new one when None) and restore it after."""
    value = correlation_id or new_correlation_id()
    token = _correlation_id.set(value)
    try:
        yield value
    finally:
        _correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, service, correlation id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        correlation_id = current_correlation_id()
        if correlation_id is not None:
            entry["correlation_id"] = correlation_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record (ours, uvicorn's, libraries') to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Our middleware logs each request with its correlation id; uvicorn's access line repeats it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
