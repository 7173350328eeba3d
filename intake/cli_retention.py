"""`chikanemail retention`, `cases hold` and `cases unhold` (stub: filled in by the
retention work)."""

from __future__ import annotations

import click


@click.command("retention")
def retention_command() -> None:
    """Delete what has expired."""
    raise click.ClickException("not built yet")


@click.command("hold")
def hold_command() -> None:
    """Put a case on legal hold."""
    raise click.ClickException("not built yet")


@click.command("unhold")
def unhold_command() -> None:
    """Lift a case's legal hold."""
    raise click.ClickException("not built yet")
