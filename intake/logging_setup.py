"""Log lines on stdout (journald picks them up); never message bodies."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTENT_LOGGING_LIBRARIES = ("mailparser", "extract_msg", "tnefparse", "RTFDE", "olefile",
                              "PIL", "imapclient", "authlib")


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Send log lines to stdout (or the given stream) at the level; keep aiosmtpd's quiet."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs DATA lines at DEBUG and every command at INFO: bodies must never be logged.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # APScheduler says "Running job … executed successfully" at INFO on every tick; our own
    # scheduler logger says what was queued, and job errors still come through as ERROR.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Parsing libraries log header values and raw stream bytes; our own flags say what failed.
    for name in _CONTENT_LOGGING_LIBRARIES:
        logging.getLogger(name).setLevel(logging.CRITICAL)
