"""Settings the storage package needs, as one small frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Pydantic reads this when `intake.config` validates the [storage] table;
# a plain dict keeps this package free of a pydantic import.
_FORBID_UNKNOWN_KEYS = {"extra": "forbid", "strict": True}


@dataclass(frozen=True)
class StorageSettings:
    """Where evidence and state live: the data directory and the database URL."""

    __pydantic_config__ = _FORBID_UNKNOWN_KEYS

    data_dir: str = "./chikanemail-data"
    database_url: str = ""

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
