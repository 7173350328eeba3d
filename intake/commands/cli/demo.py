"""`chikanemail demo`: send a realistic sample report to the running service, for a first run.

The sample is what an employee typically sends: a forwarded harassing mail in Danish, a line
of context, and a screenshot (a small PNG drawn here). It goes in through the configured
SMTP (or LMTP) listener, exactly like a real report, so the whole path can be watched.
"""

from __future__ import annotations

import io
import smtplib
import ssl
import sys
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import click
from PIL import Image, ImageDraw

from intake.commands.cli.context import CliContext, pass_context
from intake.commands.cli.display import Reader, reader_of
from intake.service.config import AppConfig
from notifier.transport import OUTGOING_MAILDIR

_CONNECT_TIMEOUT_SECONDS = 10.0
_HARASSER = "Kasper Jensen <kasper.jensen@eksempel.example>"


def reporter_address(config: AppConfig) -> str:
    """The sample's sender: an employee of a domain the service accepts senders from."""
    intake_domain = config.intake.addresses[0].rpartition("@")[2]
    allowed = [domain.removeprefix("*.") for domain in config.intake.allowed_sender_domains]
    if allowed and intake_domain.casefold() not in {domain.casefold() for domain in allowed}:
        return f"ansat@{allowed[0]}"
    return f"ansat@{intake_domain}"


def screenshot_png() -> bytes:
    """A small phone-style screenshot of a hostile chat message, as PNG bytes."""
    image = Image.new("RGB", (360, 220), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 359, 36), fill=(0, 122, 255))
    draw.text((12, 12), "Kasper Jensen", fill="white")
    draw.rounded_rectangle((12, 56, 330, 150), radius=14, fill=(229, 229, 234))
    for number, line in enumerate(("Du er ikke velkommen her.", "Vi ved hvor du bor.",
                                   "Sig op inden fredag.")):
        draw.text((26, 70 + 24 * number), line, fill="black")
    draw.text((12, 170), "I gaar 21:47", fill=(120, 120, 120))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_demo_report(reporter: str, intake_address: str,
                      now: datetime | None = None) -> EmailMessage:
    """The sample report: a forwarded harassing mail in Danish with a screenshot attached."""
    now = now or datetime.now().astimezone()
    sent = now - timedelta(hours=14)
    mail = EmailMessage()
    mail["From"] = f"Mette Ansat <{reporter}>"
    mail["To"] = intake_address
    mail["Subject"] = "VS: Du er ikke velkommen her"
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = make_msgid(domain=reporter.rpartition("@")[2])
    mail.set_content(
        "Hej\n\n"
        "Jeg videresender en mail, jeg fik i går aftes fra en borger, jeg har haft en sag med.\n"
        "Han har også skrevet til mig på Messenger, se skærmbilledet.\n"
        "Jeg er utryg ved at møde ind i borgerservice i morgen.\n\n"
        "Venlig hilsen\nMette\n\n"
        "-----Oprindelig meddelelse-----\n"
        f"Fra: {_HARASSER}\n"
        f"Sendt: {format_datetime(sent)}\n"
        f"Til: Mette Ansat <{reporter}>\n"
        "Emne: Du er ikke velkommen her\n\n"
        "Du er ikke velkommen her. Vi ved hvor du bor, og vi holder øje med dig.\n"
        "Sig op inden fredag, ellers sørger jeg for at alle får at vide hvem du er.\n"
    )
    mail.add_attachment(screenshot_png(), maintype="image", subtype="png",
                        filename="skaermbillede.png")
    return mail


def _connectable_host(host: str) -> str:
    """Where to connect to reach a listener bound to `host` (a wildcard means this machine)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def send_demo_report(config: AppConfig, mail: EmailMessage) -> None:
    """Hand the sample to the configured listener; raises OSError or SMTPException."""
    smtp = config.smtp
    host = _connectable_host(smtp.host)
    client: smtplib.SMTP
    if smtp.lmtp:
        client = smtplib.LMTP(host, smtp.port, timeout=_CONNECT_TIMEOUT_SECONDS)
    else:
        client = smtplib.SMTP(host, smtp.port, timeout=_CONNECT_TIMEOUT_SECONDS)
    with client:
        if smtp.require_starttls:
            client.ehlo()
            client.starttls(context=ssl.create_default_context())
        client.send_message(mail)


def what_to_look_at(config: AppConfig, reporter: str, reader: Reader) -> list[str]:
    """The lines telling the admin where the demo's effects show up, in their language."""
    _ = reader.gettext
    if config.notify.smtp_host:
        outgoing = _("through the relay %(relay)s") % {
            "relay": f"{config.notify.smtp_host}:{config.notify.smtp_port}"}
    else:
        outgoing = _("to the Maildir %(folder)s") % {
            "folder": config.storage.data_path / OUTGOING_MAILDIR / "new"}
    return [
        _("In a few seconds the worker has stored the evidence and opened a case:"),
        "  chikanemail cases list",
        "  chikanemail cases show " + _("<case number>"),
        _("The receipt to %(reporter)s and the notification to the manager (%(manager)s unless "
          "[routing] says otherwise) go out %(outgoing)s:") % {
            "reporter": reporter, "manager": config.routing.default_manager,
            "outgoing": outgoing},
        "  chikanemail outbox list",
    ]


@click.command("demo")
@click.option("--to", "to_address", metavar="ADDRESS", default=None,
              help="Intake address to send the sample to (default: the first of "
                   "[intake] addresses).")
@pass_context
def demo_command(context: CliContext, to_address: str | None) -> None:
    """Send a sample Danish harassment report to the running service, to see it work.

    The report (a forwarded mail and a screenshot) goes in through the [smtp] listener like
    any real one; then the commands to look at its case and outgoing mail are printed.
    """
    config = context.config
    reader = reader_of(config)
    _ = reader.gettext
    smtp = config.smtp
    kind = "LMTP" if smtp.lmtp else "SMTP"
    if not smtp.enabled:
        click.echo("chikanemail: " + _("the [smtp] listener is disabled (enabled = false); the "
                                       "demo sends its report through it"), err=True)
        sys.exit(1)
    intake_address = to_address or config.intake.addresses[0]
    reporter = reporter_address(config)
    mail = build_demo_report(reporter, intake_address)
    try:
        send_demo_report(config, mail)
    except smtplib.SMTPException as error:
        click.echo("chikanemail: " + _("the listener on %(where)s refused the sample report: "
                                       "%(error)s") % {"where": f"{smtp.host}:{smtp.port}",
                                                       "error": error}, err=True)
        sys.exit(1)
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        click.echo("chikanemail: " + _("nothing answers on %(where)s (%(kind)s): %(reason)s. "
                                       "Start the service first: chikanemail serve") % {
            "where": f"{smtp.host}:{smtp.port}", "kind": kind, "reason": reason}, err=True)
        sys.exit(1)
    click.echo(_("Sent a sample report from %(reporter)s to %(to)s via %(kind)s %(where)s "
                 "(Message-ID %(id)s)") % {
        "reporter": reporter, "to": intake_address, "kind": kind,
        "where": f"{smtp.host}:{smtp.port}", "id": mail["Message-ID"]})
    for line in what_to_look_at(config, reporter, reader):
        click.echo(line)
