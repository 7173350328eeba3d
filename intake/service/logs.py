"""Log lines on stdout for journald: `key=value` (or JSON by config), one line each, with the
message SHA-256 and case number where they apply; never message bodies."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from storage.log_context import current_log_fields

_CONTENT_LOGGING_LIBRARIES = ("mailparser", "extract_msg", "tnefparse", "RTFDE", "olefile",
                              "PIL", "imapclient", "authlib")
# A value is written bare when it has nothing a key=value reader would trip on.
_BARE_VALUE = re.compile(r"[^\s\"=\\]+")
LOG_FORMATS = ("text", "json")


def _fields_of(record: logging.LogRecord,
               process_fields: dict[str, str] | None = None) -> dict[str, str]:
    """The process's fields (which worker process), the context's, then any given with
    `extra=` under the same names."""
    fields = {**(process_fields or {}), **current_log_fields()}
    for name in ("sha256", "case", "mailbox"):
        value = record.__dict__.get(name)
        if value is not None:
            fields[name] = str(value)
    return fields


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def quote_value(value: str) -> str:
    """A value as key=value lines write it: bare, or in double quotes with escapes."""
    if _BARE_VALUE.fullmatch(value):
        return value
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


class _Formatter(logging.Formatter):
    """A formatter that writes the same fields on every line of this process."""

    def __init__(self, process_fields: dict[str, str] | None = None) -> None:
        super().__init__()
        self.process_fields = dict(process_fields or {})


class KeyValueFormatter(_Formatter):
    """`time=… level=… logger=… sha256=… case=… msg="…"` on one line; a traceback goes into
    `exc=` with its line breaks escaped, so a line is always one record."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = [("time", _time(record)), ("level", record.levelname),
                 ("logger", record.name), *_fields_of(record, self.process_fields).items(),
                 ("msg", record.getMessage())]
        if record.exc_info:
            pairs.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{key}={quote_value(value)}" for key, value in pairs)


class JsonFormatter(_Formatter):
    """One JSON object per line: time, level, logger, the context's fields, msg, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                                "logger": record.name,
                                **_fields_of(record, self.process_fields),
                                "msg": record.getMessage()}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, stream: TextIO | None = None, *,
                      log_format: str = "text",
                      process_fields: dict[str, str] | None = None) -> None:
    """Send log lines to stdout (or the given stream) at the level, as `key=value` text or
    JSON, each with `process_fields` (a worker process's number); keep the libraries that
    would log content quiet."""
    handler = logging.StreamHandler(stream or sys.stdout)
    formatter = JsonFormatter if log_format == "json" else KeyValueFormatter
    handler.setFormatter(formatter(process_fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs DATA lines at DEBUG and every command at INFO: bodies must never be logged.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # APScheduler says "Running job … executed successfully" at INFO on every tick; our own
    # scheduler logger says what was queued, and job errors still come through as ERROR.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic says "setup plugin alembic.autogenerate…" seven times and names its context at
    # INFO on every start, noise to an admin reading the journal; its warnings still show.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Parsing libraries log header values and raw stream bytes; our own flags say what failed.
    for name in _CONTENT_LOGGING_LIBRARIES:
        logging.getLogger(name).setLevel(logging.CRITICAL)
