"""Who holds a claim on a row (a message being processed, a mail being sent).

A claimer is named `host:pid:token.n`: the token is one per process run, `n` one per
claimer in it. A restarted daemon can then tell claims of a dead process on this host
(resume them at once) from live ones (leave them), and claims of another machine (its
lease decides).
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket

_PROCESS_TOKEN = secrets.token_hex(4)
_instances = itertools.count(1)


def process_is_alive(pid: int) -> bool:
    """Tell whether a process with this id runs on this machine (other than this one)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClaimerIdentity:
    """The name a worker or sender writes on the rows it claims."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.token = f"{_PROCESS_TOKEN}.{next(_instances)}"

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    def is_abandoned(self, claimed_by: str) -> bool:
        """Tell whether a claim belongs to a claimer on this host that no longer runs."""
        parts = claimed_by.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        host, pid_text, token = parts
        if host != self.host:
            return False  # another machine's claimer: its lease decides
        pid = int(pid_text)
        if pid == self.pid:
            # An earlier run that had our pid (a container restart), not one of this run.
            return token.split(".", 1)[0] != _PROCESS_TOKEN
        return not process_is_alive(pid)
