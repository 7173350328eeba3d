"""The one scheduler of a daemon (APScheduler 3.x): the plan's job and the housekeeping jobs
(verify, retention, time-stamps) on timers.

The jobs are defined in code and registered at every start; nothing is kept in an
APScheduler job store (which must not be shared between daemons, and drops jobs whose
function moved). What is due is decided from our own tables by `PlanRunner`, so the first
run at start sends whatever fell due while the daemon was down; APScheduler's misfire
handling never gets to drop a run (misfire_grace_time is None, missed runs coalesce).

Several daemons may share one PostgreSQL database; only the one holding the scheduler lock
(`storage.leader.LeaderLock`) runs the jobs. Every daemon tries to take it every
`LEADER_RETRY_SECONDS`, and each job run first checks that the lock is still held and is
skipped when it is not. The daemon that takes the lock runs every job at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier.plan.runner import PlanRunner
from storage.leader import LeaderLock

log = logging.getLogger("chikanemail.notifier.scheduler")

PLAN_JOB = "response-plan"
LEADER_JOB = "scheduler-lock"
# How often a daemon that is not the leader tries to take the scheduler lock: after the
# leader dies another daemon runs the jobs within this time.
LEADER_RETRY_SECONDS = 3.0


@dataclass(frozen=True)
class ScheduledJob:
    """Another job of the daemon: a callable that decides from the tables what is due, run
    every `every_seconds` (the first time at start). It must not raise for a bad run: the
    scheduler logs an exception and the next run tries again."""

    id: str
    name: str
    run: Callable[[], object]
    every_seconds: float
    # False: every daemon runs it, leader or not (work only this daemon can see to).
    leader_only: bool = True


class PlanScheduler:
    """Runs reminders, escalations and the weekly digest every `tick_seconds`, and the
    housekeeping jobs on their own intervals; each the first time at start.

    With a `leader` lock the jobs run only while this daemon holds it (the lock is given
    back at stop); without one they always run.
    """

    def __init__(self, runner: PlanRunner, *, tick_seconds: float,
                 jobs: Sequence[ScheduledJob] = (), leader: LeaderLock | None = None,
                 leader_retry_seconds: float = LEADER_RETRY_SECONDS) -> None:
        self.runner = runner
        self.tick_seconds = tick_seconds
        self.jobs = tuple(jobs)
        self.leader = leader
        self.leader_retry_seconds = leader_retry_seconds
        self._leading = False
        self._leading_lock = threading.Lock()
        self._scheduler = BackgroundScheduler(
            timezone=runner.calendar.zone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    @property
    def leading(self) -> bool:
        """Whether this daemon ran as the leader at the last check."""
        return self._leading

    def start(self) -> None:
        """Register the job and start the scheduler's thread; the first run is at once."""
        if self.leader is not None:
            if not self._leadership_changed(self.leader.try_acquire(), reschedule=False):
                log.info("scheduler lock held by another daemon: this one runs no scheduled "
                         "jobs; trying to take it every %.0f s", self.leader_retry_seconds)
            self._scheduler.add_job(self._try_to_lead,
                                    IntervalTrigger(seconds=self.leader_retry_seconds),
                                    id=LEADER_JOB, name="take the scheduler lock when free")
        else:
            self._leading = True
        self._scheduler.add_job(self._led(self._run),
                                IntervalTrigger(seconds=self.tick_seconds),
                                id=PLAN_JOB, name="reminders, escalations, weekly digest",
                                next_run_time=datetime.now(self.runner.calendar.zone))
        for job in self.jobs:
            self._scheduler.add_job(self._led(_logged(job)) if job.leader_only else _logged(job),
                                    IntervalTrigger(seconds=job.every_seconds),
                                    id=job.id, name=job.name,
                                    next_run_time=datetime.now(self.runner.calendar.zone))
        self._scheduler.start()
        log.info("scheduler started: response plan checked every %.0f s", self.tick_seconds)

    def stop(self) -> None:
        """Stop the scheduler, waiting for a run in progress, and give the lock back."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self.leader is not None:
            self.leader.release()
            if self._leading:
                log.info("scheduler lock released")
            self._leading = False

    def _run(self) -> None:
        try:
            self.runner.run_due()
        except Exception:  # the next tick tries again; nothing is lost (it is all in tables)
            log.exception("response plan run failed; will try again")

    def _led(self, run: Callable[[], None]) -> Callable[[], None]:
        """The job run only while this daemon holds the scheduler lock."""
        def run_if_leader() -> None:
            if self.leader is not None and not self._leadership_changed(self.leader.held()):
                return
            run()
        return run_if_leader

    def _try_to_lead(self) -> None:
        assert self.leader is not None
        try:
            self._leadership_changed(self.leader.try_acquire())
        except Exception:  # the next try comes in a few seconds
            log.exception("trying to take the scheduler lock failed; will try again")

    def _leadership_changed(self, held: bool, *, reschedule: bool = True) -> bool:
        """Note whether the lock is held, log a change, and run every job at once when the
        lock was just taken; return `held`."""
        with self._leading_lock:
            was, self._leading = self._leading, held
        if held and not was:
            log.info("scheduler lock taken: this daemon runs the scheduled jobs")
            if reschedule:
                now = datetime.now(self.runner.calendar.zone)
                for job_id in (PLAN_JOB, *(job.id for job in self.jobs)):
                    self._scheduler.modify_job(job_id, next_run_time=now)
        elif was and not held:
            log.info("scheduler lock lost: another daemon runs the scheduled jobs; "
                     "trying again every %.0f s", self.leader_retry_seconds)
        return held


def _logged(job: ScheduledJob) -> Callable[[], None]:
    def run() -> None:
        try:
            job.run()
        except Exception:  # what is due lives in tables: the next run picks it up
            log.exception("scheduled job %s failed; will try again", job.id)
    return run
