"""`chikanemail export` (stub: filled in by the export work)."""

from __future__ import annotations

import click


@click.command("export")
def export_command() -> None:
    """Write a case's evidence bundle."""
    raise click.ClickException("not built yet")
