"""Backup and restore of a whole installation: the database, both blob stores, and the files
the configuration names, with a manifest written last.

The modules, by job:

- `manifest`: what a snapshot holds (every blob with its hash, size and kind, the audit head,
  the database file), read and written as `manifest.json`;
- `copying`: copying one file into a snapshot or a data directory, re-hashed on the way,
  through a work file that is fsync'd and renamed;
- `database_dump`: the database part, SQLite's online backup API or `pg_dump`/`pg_restore`,
  and what the snapshot's own rows say (blobs and audit head);
- `snapshot`: `take_snapshot`, the backup while the daemon runs;
- `restore`: `restore_snapshot`, a working installation from a snapshot.
"""
