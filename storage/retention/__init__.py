"""Retention: delete what has been kept long enough, with its files; legal holds win.

What has expired at `now`:

- a closed case whose `closed_at + closed_case_days <= now`, unless it is on legal hold
  (`storage.holds`); open cases are never deleted;
- a processed message without a case that is `not-a-report` or automatic, whose
  `received_at + not_a_report_days <= now`.

Quarantined messages are never touched: an admin decides about them. A case with a
quarantined message, or with one still in the pipeline, is kept and the plan says why.

Each expired item (a case with everything of it, or one message) is deleted in one
transaction: its rows go, a `BlobDeletion` row is written for every blob of either store
that no remaining row references, and a `deleted-by-retention` event (the tombstone) records
the rule, dates, counts and hashes. A blob another case still references is kept. The files
are deleted after the commit, under the store's exclusive lock (writers hold its shared lock
from putting a blob until their row is committed) and only if nothing references them by
then; rows a crash left behind are finished by the next run. The audit log is never touched.

The modules, by job:

- `items`: what a run finds and reports (an item to delete, one kept and why, a plan, a result);
- `expiry`: what has expired, what of it is kept, and the dry-run plan;
- `blob_refs`: which blobs rows name, and which are still referenced by other rows;
- `deletion`: the run, deleting each item's rows with its tombstone in one transaction;
- `files`: deleting the files of pending `BlobDeletion` rows after the commit.
"""
