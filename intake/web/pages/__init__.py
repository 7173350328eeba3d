"""The pages behind the login: case list, case page, evidence, downloads (issue 20).

`routes()` is what `intake.web.app` mounts.
"""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """The pages' routes (none yet)."""
    return []
