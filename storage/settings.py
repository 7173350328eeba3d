"""Settings the storage package needs: the [storage] and [retention] tables, one small frozen
dataclass each; and the pydantic config every package's settings carry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Every package's settings dataclasses carry this as `__pydantic_config__`: pydantic reads it
# when `intake.service.config` validates a table, and unknown keys and wrong types fail. A
# plain dict keeps the packages free of a pydantic import.
FORBID_UNKNOWN_KEYS = {"extra": "forbid", "strict": True}


@dataclass(frozen=True)
class StorageSettings:
    """Where evidence and state live: the data directory and the database URL."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    data_dir: str = "./chikanemail-data"
    database_url: str = ""
    # The daemon refuses a data directory others can read, unless this says it is meant.
    allow_shared_permissions: bool = False
    # The scheduler re-hashes every blob and walks the audit chain this often.
    verify_every_days: float = 7.0

    @property
    def data_path(self) -> Path:
        """The data directory as an absolute path."""
        return Path(self.data_dir).expanduser().resolve()

    @property
    def blob_root(self) -> Path:
        """The directory holding the content-addressed blobs."""
        return self.data_path / "blobs"

    @property
    def derived_root(self) -> Path:
        """The store of derived things (text, thumbnails, OCR), apart from the evidence."""
        return self.data_path / "derived"

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'chikanemail.sqlite3'}"


@dataclass(frozen=True)
class RetentionSettings:
    """How long cases and kept-out mail stay before the scheduler deletes them."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # Days after a case closed (5 years: the municipal rule); a legal hold overrides it.
    closed_case_days: int = 1825
    # Days a mail that opened no case (an auto-reply, a reply to a digest) is kept.
    not_a_report_days: int = 90
    # Whether the daemon's scheduler deletes what is due (off: only `chikanemail retention`).
    enabled: bool = True
