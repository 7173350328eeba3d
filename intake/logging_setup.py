"""Log lines on stdout (journald picks them up); never message bodies."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send our log lines to stdout at the given level; keep aiosmtpd's session log quiet."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs DATA lines at DEBUG and every command at INFO: bodies must never be logged.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
