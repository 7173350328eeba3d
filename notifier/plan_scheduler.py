"""The one scheduler of a daemon (APScheduler 3.x): the plan's job and the housekeeping jobs
(verify, retention, time-stamps) on timers.

The jobs are defined in code and registered at every start; nothing is kept in an
APScheduler job store (which must not be shared between daemons, and drops jobs whose
function moved). What is due is decided from our own tables by `PlanRunner`, so the first
run at start sends whatever fell due while the daemon was down; APScheduler's misfire
handling never gets to drop a run (misfire_grace_time is None, missed runs coalesce).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier.plan_runner import PlanRunner
from storage.local_time import workplace_zone

log = logging.getLogger("chikanemail.notifier.scheduler")

PLAN_JOB = "response-plan"


@dataclass(frozen=True)
class ScheduledJob:
    """Another job of the daemon: a callable that decides from the tables what is due, run
    every `every_seconds` (the first time at start). It must not raise for a bad run: the
    scheduler logs an exception and the next run tries again."""

    id: str
    name: str
    run: Callable[[], object]
    every_seconds: float


class PlanScheduler:
    """Runs reminders, escalations and the weekly digest every `tick_seconds`, and the
    housekeeping jobs on their own intervals; each the first time at start."""

    def __init__(self, runner: PlanRunner, *, tick_seconds: float,
                 jobs: Sequence[ScheduledJob] = ()) -> None:
        self.runner = runner
        self.tick_seconds = tick_seconds
        self.jobs = tuple(jobs)
        self._scheduler = BackgroundScheduler(
            timezone=workplace_zone(),
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        """Register the job and start the scheduler's thread; the first run is at once."""
        self._scheduler.add_job(self._run, IntervalTrigger(seconds=self.tick_seconds),
                                id=PLAN_JOB, name="reminders, escalations, weekly digest",
                                next_run_time=datetime.now(workplace_zone()))
        for job in self.jobs:
            self._scheduler.add_job(_logged(job), IntervalTrigger(seconds=job.every_seconds),
                                    id=job.id, name=job.name,
                                    next_run_time=datetime.now(workplace_zone()))
        self._scheduler.start()
        log.info("scheduler started: response plan checked every %.0f s", self.tick_seconds)

    def stop(self) -> None:
        """Stop the scheduler, waiting for a run in progress."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def _run(self) -> None:
        try:
            self.runner.run_due()
        except Exception:  # the next tick tries again; nothing is lost (it is all in tables)
            log.exception("response plan run failed; will try again")


def _logged(job: ScheduledJob) -> Callable[[], None]:
    def run() -> None:
        try:
            job.run()
        except Exception:  # what is due lives in tables: the next run picks it up
            log.exception("scheduled job %s failed; will try again", job.id)
    return run
