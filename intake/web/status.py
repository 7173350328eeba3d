"""The web listener's status file: where the daemon's web view listens, or why it does not.

Read by `chikanemail health`, which runs as another process (and must not load the web
framework to do so)."""

from __future__ import annotations

import json
import os
from pathlib import Path

STATUS_FILE_NAME = "web-listener.json"
# What GET /healthz answers: `chikanemail health` checks for it, so another program on the
# port does not pass for the web view.
HEALTH_PATH = "/healthz"
HEALTH_TEXT = "chikanemail web ok"


def status_file(status_dir: Path) -> Path:
    """Where the daemon says whether its web listener runs (beside smtp-answers.json)."""
    return status_dir / STATUS_FILE_NAME


def write_status(path: Path, *, address: tuple[str, int] | None, error: str | None) -> None:
    """Record where the web view listens, or why it does not."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = path.with_name(f".{path.name}.{os.getpid()}")
    work.write_text(json.dumps({"address": list(address) if address else None,
                                "error": error, "pid": os.getpid()}), encoding="utf-8")
    os.replace(work, path)


def read_status(path: Path) -> dict[str, object] | None:
    """What the last daemon wrote, or None when no daemon has written the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return data if isinstance(data, dict) else None
