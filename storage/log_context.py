"""Fields every log line carries while a piece of work runs: the message's SHA-256, the
case number, the mailbox. Set where the work starts, read by the log formatter, so each line
says what it is about without every call having to repeat it.

Context variables: each thread and each asyncio task sees its own fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

_FIELDS: ContextVar[dict[str, str]] = ContextVar("chikanemail_log_fields")


@contextmanager
def log_fields(**fields: object) -> Iterator[None]:
    """Add fields to every log line within the block (None values are left out)."""
    token = _FIELDS.set({**current_log_fields(), **_clean(fields)})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def add_log_fields(**fields: object) -> None:
    """Add fields for the rest of the current `log_fields` block (e.g. the case number once
    the case is known); outside any block, for the rest of the thread or task."""
    _FIELDS.set({**current_log_fields(), **_clean(fields)})


def current_log_fields() -> Mapping[str, str]:
    """The fields in force here."""
    return _FIELDS.get({})


def _clean(fields: Mapping[str, object]) -> dict[str, str]:
    return {name: str(value) for name, value in fields.items() if value is not None}
