"""Filing step: who is told of a new report (directory, rules, default manager)."""

from __future__ import annotations

from typing import Self

from intake.cases.routing import Router
from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts


class RouteReport:
    """Decide the manager and deputy of the case a report opens."""

    name = "route_report"
    in_transaction = True

    def __init__(self, router: Router) -> None:
        self.router = router

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: its [routing] settings, the directory loaded
        (raises `DirectoryError`)."""
        return cls(Router.from_settings(parts.routing))

    def file(self, filing: Filing) -> None:
        """Keep the routing decision in the filing, unless the message's kind is decided."""
        if not filing.decided:
            filing.routing = self.router.route(filing.sender.reporter)
