"""The one scheduler of a daemon (APScheduler 3.x): it runs the plan's job on a timer.

The job is defined here in code and registered at every start; nothing is kept in an
APScheduler job store (which must not be shared between daemons, and drops jobs whose
function moved). What is due is decided from our own tables by `PlanRunner`, so the first
run at start sends whatever fell due while the daemon was down; APScheduler's misfire
handling never gets to drop a run (misfire_grace_time is None, missed runs coalesce).
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier.plan_runner import PlanRunner
from notifier.templating import workplace_zone

log = logging.getLogger("chikanemail.notifier.scheduler")

PLAN_JOB = "response-plan"


class PlanScheduler:
    """Runs reminders, escalations and the weekly digest every `tick_seconds`, the first
    time at start."""

    def __init__(self, runner: PlanRunner, *, tick_seconds: float) -> None:
        self.runner = runner
        self.tick_seconds = tick_seconds
        self._scheduler = BackgroundScheduler(
            timezone=workplace_zone(),
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        """Register the job and start the scheduler's thread; the first run is at once."""
        self._scheduler.add_job(self._run, IntervalTrigger(seconds=self.tick_seconds),
                                id=PLAN_JOB, name="reminders, escalations, weekly digest",
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
