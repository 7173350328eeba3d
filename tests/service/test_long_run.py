"""Soak: 5,000 small mails into one `chikanemail serve` process leave its memory, its file
descriptors and the SQLite WAL flat, and its log without errors (issue 18).

The run is `bench/long_run.py`'s at a smaller size: 4,500 mails by SMTP (reports,
out-of-office replies and bounces) and 500 by IMAP from a private Dovecot, a sample every
500 mails. The first 1,000 are the warm-up (imports, caches, SQLAlchemy's compiled
statements); RSS at the end must be within 10 % of RSS after them. It takes several minutes:
`pytest -m soak tests/service/test_long_run.py -s` shows the figures as they come.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def long_run() -> Iterator[ModuleType]:
    """bench/long_run.py as a module (its imports of the other bench scripts need bench/
    on the path)."""
    sys.path.insert(0, str(BENCH))
    try:
        import long_run as module

        yield module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.soak
@pytest.mark.integration
def test_five_thousand_mails_leave_memory_descriptors_and_wal_flat(
        long_run: ModuleType) -> None:
    arguments = long_run.parse_arguments(
        ["--mails", "5000", "--imap", "500", "--every", "500", "--warm-up", "1000"])
    outcome = long_run.run_long(arguments)
    print(long_run.report(outcome))
    assert outcome.errors == []
    assert [verdict.name for verdict in outcome.verdicts] == ["RSS", "FDs", "WAL", "log"]
    failed = [f"{verdict.name}: {verdict.detail}" for verdict in outcome.verdicts
              if not verdict.passed]
    assert failed == []
    assert outcome.samples[-1].handed_in == 5000
    assert outcome.drained is not None and outcome.drained.processed == 5000


def _sample(long_run: ModuleType, handed_in: int, rss_mib: float, fds: int, wal_mib: float,
            checkpoints: int) -> object:
    return long_run.Sample(label=str(handed_in), handed_in=handed_in, seconds=handed_in / 20,
                           rss_kib=int(rss_mib * 1024), fds=fds,
                           wal_bytes=int(wal_mib * 1024 * 1024), wal_checkpoints=checkpoints,
                           states={"processed": handed_in})


def test_the_targets_fail_on_growth(long_run: ModuleType) -> None:
    """What the soak run would see of a leak, of descriptors left open, of a WAL that is
    never checkpointed and of an error in the log: each target says FAIL."""
    samples = [_sample(long_run, 0, 130, 17, 0.2, 0),
               _sample(long_run, 1000, 150, 24, 4.0, 0),
               _sample(long_run, 5000, 170, 40, 30.0, 0)]
    verdicts = long_run.judge(samples[1], samples[-1], samples,
                              ["time=… level=ERROR logger=intake.worker msg=boom"],
                              fd_margin=4, wal_limit_bytes=16 * 1024 * 1024)
    assert {verdict.name: verdict.passed for verdict in verdicts} == {
        "RSS": False, "FDs": False, "WAL": False, "log": False}


def test_the_targets_pass_when_flat(long_run: ModuleType) -> None:
    samples = [_sample(long_run, 0, 130, 17, 0.2, 0),
               _sample(long_run, 1000, 150, 24, 4.1, 3),
               _sample(long_run, 5000, 155, 26, 4.3, 9)]
    verdicts = long_run.judge(samples[1], samples[-1], samples, [], fd_margin=4,
                              wal_limit_bytes=16 * 1024 * 1024)
    assert all(verdict.passed for verdict in verdicts), verdicts
