"""`chikanemail verify` and `chikanemail health` (stub: filled in by the verify work)."""

from __future__ import annotations

import click


@click.command("verify")
def verify_command() -> None:
    """Re-hash every blob and walk the audit chain."""
    raise click.ClickException("not built yet")


@click.command("health")
def health_command() -> None:
    """Whether the service is healthy."""
    raise click.ClickException("not built yet")
