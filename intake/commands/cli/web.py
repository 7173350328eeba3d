"""`chikanemail web link ADDRESS`: a login link for the web view, printed at the terminal.

For an admin who cannot wait for mail, or sets the web view up before mail goes out. The
link is the one the login page would mail: single use, valid for `[web] login_link_minutes`.
"""

from __future__ import annotations

import sys

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context


@click.group("web")
def web_group() -> None:
    """The web view for managers and admins."""


@web_group.command("link")
@click.argument("address")
@click.option("--next", "next_path", default="",
              help="A path on the web view to go to after logging in, e.g. /cases/2026-0042.")
@pass_context
def link_command(context: CliContext, address: str, next_path: str) -> None:
    """Print a single-use login link for ADDRESS (a manager, a deputy or one of [plan]
    admins)."""
    from intake.web.login_links import (
        login_url,
        looks_like_address,
        may_log_in,
        record_request,
        safe_next_path,
    )
    from storage.models import utc_now

    config = context.config
    if not looks_like_address(address):
        click.echo(f"chikanemail: {address!r} is not a mail address", err=True)
        sys.exit(2)
    if next_path and safe_next_path(next_path) is None:
        click.echo(f"chikanemail: --next must be a path on the web view such as /cases "
                   f"(got {next_path!r})", err=True)
        sys.exit(2)
    database = open_database(context)
    try:
        with database.write() as session:
            if not may_log_in(session, config, address):
                click.echo(f"chikanemail: {address} is not a manager or deputy of any case, "
                           "not named by [routing] and not one of [plan] admins: no link",
                           err=True)
                sys.exit(1)
            token = record_request(session, address=address, client=cli_actor(),
                                   now=utc_now(), web=config.web, with_link=True,
                                   next_path=next_path or None)
    finally:
        database.dispose()
    assert token is not None
    click.echo(login_url(config.web.effective_base_url, token))
    minutes = round(config.web.login_link_minutes)
    click.echo(f"Open it in a browser and press the button: it logs {address.strip()} in "
               f"once, within {minutes} minutes.", err=True)
