"""The receipt to the reporter and the notification to the manager, rendered to raw bytes.

Each mail is three templates, `<kind>.subject.j2`, `.txt.j2` and `.html.j2` (kind:
`receipt` or `notification`), rendered in the reader's language through the catalogs.
They see: `case_number`, `case_tag`, `reporter`,
`reporter_name`, `reporter_display`, `manager`, `manager_name`, `manager_display`, `deputy`,
`received`, `report_subject`, `raw_sha256`, `raw_size`, `items` (each: `number`, `name`,
`content_type`, `size`, `sha256`, `role`, `is_image`), `item_count`, `image_count`,
`original` (`sender`, `date`, `subject`, `date_raw`, and the flags `zone_assumed`: the date
line named no zone and was read in Danish time, `as_written`: `date` is the raw text, not
read as a time; or None), `plan_steps` (each: `number`, `title`,
`description`, `owner`, `due`, `after_absence`), `acknowledge_within`, `related` (each:
`number` or None, `reasons_text`), `commands` (each: `syntax`, `explanation`),
`routing_reason`, `reply_address`, `evidence_attached`, and `view` (the CaseMailView).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from notifier.durations import PlanDuration, describe_duration
from notifier.outgoing import OutgoingMail
from notifier.plan.settings import PlanText
from notifier.settings import NotifySettings
from notifier.templating import (
    LANGUAGES,
    clip,
    human_size,
    local_time,
    make_environment,
    old_style_overrides,
    old_style_problem,
    one_line,
)
from storage.forwarded_original import ForwardedOriginal
from storage.i18n.catalogs import translations
from storage.routing_words import routing_words
from storage.ui_settings import UiSettings

SENDER_NAME = "Chikanemail"
SUBJECT_MAX_CHARS = 200
FILENAME_MAX_CHARS = 150

# refold_source="none": the In-Reply-To/References values set raw below are left as they
# are. Folded by the header registry, a Message-ID longer than a line (Gmail's often are)
# comes out as an RFC 2047 encoded word, and the reporter's program no longer threads.
_POLICY = policy.SMTP.clone(refold_source="none")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,900}>")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")

@dataclass(frozen=True)
class EvidenceLine:
    """One received item, as the receipt and the notification list it."""

    filename: str | None
    content_type: str | None
    size: int
    sha256: str
    role: str
    is_image: bool


@dataclass(frozen=True)
class PlanStepLine:
    """One step of the case's checklist as the notification shows it."""

    number: int
    title: PlanText
    description: PlanText
    owner: str
    due_at: datetime | None
    # Set for a step whose deadline counts from the first day of absence (not known yet).
    after_absence: PlanDuration | None = None


@dataclass(frozen=True)
class RelatedLine:
    """Another case this one resembles: its number only when the same manager has it."""

    number: str | None
    reasons: tuple[str, ...]  # sender, domain, image


@dataclass(frozen=True)
class CaseMailView:
    """Everything the receipt and the notification of a new case may show."""

    case_number: str
    reporter: str
    reporter_name: str | None
    manager: str
    manager_name: str | None
    deputy: str | None
    received_at: datetime
    report_subject: str | None
    report_message_id: str | None
    raw_sha256: str
    raw_size: int
    items: tuple[EvidenceLine, ...]
    original: ForwardedOriginal | None  # as the message row keeps it (original_of)
    plan_steps: tuple[PlanStepLine, ...]
    routing_reason: str
    acknowledge_within: PlanDuration | None = None
    related: tuple[RelatedLine, ...] = ()
    # The report's From could not be vouched for: no receipt went out.
    sender_unverified: bool = False
    # What routing_words reads (the case's routing_source and routing_params); without
    # them the mail shows routing_reason as stored.
    routing_source: str | None = None
    routing_params: Mapping[str, Any] | None = None


def case_tag(case_number: str, language: str) -> str:
    """The tag every subject starts with: `[Sag 2026-0042]` (da), `[Case 2026-0042]` (en)."""
    _ = translations(language).gettext
    return _("[Case %(number)s]") % {"number": case_number}


class MailComposer:
    """Renders the mails of a case into OutgoingMail, ready for the outbox."""

    def __init__(self, settings: NotifySettings, *, intake_address: str, hostname: str,
                 command_help: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                 recipient_delimiter: str = "+", zone: tzinfo | None = None,
                 web_base_url: str = "") -> None:
        self.settings = settings
        # Where the web view is reached ([web] base_url); empty: mails carry no case link.
        self.web_base_url = web_base_url.rstrip("/")
        # The workplace's zone ([ui] timezone): every time a mail shows is written in it.
        self.zone: tzinfo = zone if zone is not None else UiSettings().zone
        self.recipient_delimiter = recipient_delimiter
        self.command_help = dict(command_help or {})
        self.from_address = settings.from_address or intake_address
        self.reply_to = settings.reply_to or intake_address
        self.hostname = hostname
        _checked_address(self.from_address, "notify.from_address (or the intake address)")
        _checked_address(self.reply_to, "notify.reply_to (or the intake address)")
        _checked_language(settings.language, "ui.language")
        self._languages: dict[str, str] = {}
        for address, language in settings.manager_languages.items():
            _checked_language(language, f"notify.manager_languages[{address!r}]")
            self._languages[address.strip().lower()] = language
        if settings.template_dir and not Path(settings.template_dir).is_dir():
            raise ValueError(f"notify.template_dir: {settings.template_dir!r} is not a folder")
        old = old_style_overrides(settings.template_dir)
        if old:
            raise ValueError(f"notify.template_dir: {old_style_problem(old)}")
        self._envs = {language: make_environment(settings.template_dir, language)
                      for language in LANGUAGES}

    def token_address(self, token: str) -> str:
        """The secret reply address that carries a token: `chikanemail+<token>@domain`."""
        local, _, domain = self.reply_to.rpartition("@")
        return f"{local}{self.recipient_delimiter}{token}@{domain}"

    def case_url(self, case_number: str | None) -> str:
        """The case page in the web view (through the login when needed), or "" when the
        web view is off. Put only in mails to the case's manager, whom we vouch for."""
        if not self.web_base_url or not case_number:
            return ""
        return f"{self.web_base_url}/cases/{case_number}"

    def registration_url(self, case_number: str | None) -> str:
        """The case's registration form in the web view (saving it completes the plan's
        `registration` step), or "" when the web view is off. Like `case_url`, only for
        mails to people we vouch for."""
        case_page = self.case_url(case_number)
        return f"{case_page}/registration" if case_page else ""

    def language_for(self, address: str) -> str:
        """The language of mail to this address: its manager_languages entry, else the default."""
        return self._languages.get(address.strip().lower(), self.settings.language)

    def contexts(self, view: CaseMailView) -> CaseContexts:
        """The template context of the case's mails, to share between its receipt and its
        notification (pass it to both)."""
        return CaseContexts(self, view)

    def receipt(self, view: CaseMailView, *, reply_to: str | None = None,
                status_url: str | None = None,
                contexts: CaseContexts | None = None) -> OutgoingMail:
        """The reporter's receipt: case number, what was received with hashes, what happens.

        `reply_to` is the reporter's secret reply address (a token address); the To header
        names the bare address only: a display name is the sender's word. `status_url` is
        the reporter's status page, when the web view is on. `contexts` (of this view) is
        what the case's other mails computed already.
        """
        language = self.settings.language
        shared = (contexts or self.contexts(view)).of(language)
        context = {**shared, "evidence_attached": False, "status_url": status_url}
        message, subject = self._message(
            "receipt", language, context, to=_address(None, view.reporter),
            auto_submitted="auto-replied", in_reply_to=_message_id_in(view.report_message_id),
            reply_to=reply_to)
        return self._outgoing("receipt", message, subject, view.reporter, language)

    def notification(self, view: CaseMailView,
                     evidence: Sequence[tuple[EvidenceLine, bytes]] = (), *,
                     reply_to: str | None = None, kind: str = "notification",
                     extra: Mapping[str, object] | None = None,
                     contexts: CaseContexts | None = None) -> OutgoingMail:
        """The manager's notification: who, when, what, the plan's first steps, how to reply.

        Carries no evidence content; the evidence bytes are attached only when the settings
        say `include_evidence`. `reply_to` is the manager's secret reply address; `extra`
        adds to what the templates see; `contexts` (of this view) is what the case's other
        mails computed already.
        """
        language = self.language_for(view.manager)
        attach = self.settings.include_evidence and bool(evidence)
        shared = (contexts or self.contexts(view)).of(language)
        context = {**shared, "evidence_attached": attach, **(extra or {})}
        message, subject = self._message(
            "notification", language, context, to=_address(view.manager_name, view.manager),
            auto_submitted="auto-generated", in_reply_to=None, reply_to=reply_to)
        if attach:
            for number, (line, data) in enumerate(evidence, start=1):
                _attach(message, line, data, number, language)
        return self._outgoing(kind, message, subject, view.manager, language)

    def compose(self, kind: str, *, recipient: str, recipient_name: str | None,
                context: dict[str, object], language: str | None = None,
                auto_submitted: str = "auto-generated",
                in_reply_to: str | None = None, reply_to: str | None = None) -> OutgoingMail:
        """Any other mail of a case (or a digest) from `<language>/<kind>.*.j2`.

        The templates see `context` plus `language`, `recipient`, `recipient_name`,
        `recipient_display`, `reply_address`, and `case_tag` when `case_number` is given.
        `reply_to` is the recipient's secret reply address (never shown in the body).
        """
        language = language or self.language_for(recipient)
        full: dict[str, object] = {
            "language": language, "recipient": recipient, "recipient_name": recipient_name,
            "recipient_display": _display(recipient_name, recipient),
            "reply_address": self.reply_to, **context,
        }
        case_number = context.get("case_number")
        full["case_tag"] = case_tag(str(case_number), language) if case_number else ""
        full.setdefault("case_url", self.case_url(str(case_number) if case_number else None))
        message, subject = self._message(
            kind, language, full, to=_address(recipient_name, recipient),
            auto_submitted=auto_submitted, in_reply_to=_message_id_in(in_reply_to),
            reply_to=reply_to)
        return self._outgoing(kind, message, subject, recipient, language)

    def case_context(self, view: CaseMailView, language: str) -> dict[str, object]:
        """What the templates of a new case's mails see in the language, but for
        `evidence_attached` and each mail's own additions (use `contexts` to share it)."""
        original: dict[str, object] | None = None
        if view.original is not None:
            found = view.original
            date = found.date_raw
            if found.date is not None and found.date.tzinfo is not None:
                date = local_time(found.date, language, self.zone)
            original = {"sender": _display(found.from_name, found.from_address),
                        "date": date, "subject": found.subject, "date_raw": found.date_raw,
                        "zone_assumed": found.date_zone_assumed and found.date is not None,
                        "as_written": found.date is None and bool(found.date_raw)}
        items = [
            {"number": number, "name": item.filename, "content_type": item.content_type,
             "size": human_size(item.size, language), "sha256": item.sha256,
             "role": item.role, "is_image": item.is_image}
            for number, item in enumerate(view.items, start=1)
        ]
        return {
            "language": language, "view": view,
            "case_number": view.case_number, "case_tag": case_tag(view.case_number, language),
            "case_url": self.case_url(view.case_number),
            "reporter": view.reporter, "reporter_name": view.reporter_name,
            "reporter_display": _display(view.reporter_name, view.reporter),
            "manager": view.manager, "manager_name": view.manager_name,
            "manager_display": _display(view.manager_name, view.manager),
            "deputy": view.deputy,
            "received": local_time(view.received_at, language, self.zone),
            "report_subject": view.report_subject,
            "raw_sha256": view.raw_sha256, "raw_size": human_size(view.raw_size, language),
            "items": items, "item_count": len(items),
            "image_count": sum(1 for item in view.items if item.is_image),
            "original": original,
            "plan_steps": _plan_steps(view.plan_steps, language, self.zone),
            "routing_reason": routing_words(view.routing_source, view.routing_params,
                                            view.routing_reason, language),
            "reply_address": self.reply_to,
            "sender_unverified": view.sender_unverified,
            "acknowledge_within": (describe_duration(view.acknowledge_within, language)
                                   if view.acknowledge_within else ""),
            "related": [{"number": line.number,
                         "reasons_text": _reasons_text(line.reasons, language)}
                        for line in view.related],
            "commands": [{"syntax": syntax, "explanation": explanation}
                         for syntax, explanation in self.command_help.get(language, ())],
        }

    def _message(self, kind: str, language: str, context: dict[str, object], *,
                 to: Address, auto_submitted: str, in_reply_to: str | None,
                 reply_to: str | None) -> tuple[EmailMessage, str]:
        tag = str(context["case_tag"])
        subject = clip(one_line(self._render(language, f"{kind}.subject.j2", context)),
                       SUBJECT_MAX_CHARS)
        if not subject.startswith(tag):  # an admin's subject template must not break threading
            subject = f"{tag} {subject}".strip()
        message = EmailMessage(policy=_POLICY)
        message["Date"] = format_datetime(datetime.now(self.zone))
        message["From"] = Address(SENDER_NAME, addr_spec=self.from_address)
        message["To"] = to
        # The secret reply address when the caller issued one; the plain intake address else.
        message["Reply-To"] = Address(addr_spec=reply_to or self.reply_to)
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self._domain())
        if in_reply_to is not None:  # so the reporter's program threads the receipt
            message.set_raw("In-Reply-To", in_reply_to)
            message.set_raw("References", in_reply_to)
        message["Auto-Submitted"] = auto_submitted
        # Auto-Submitted (RFC 3834) and X-Auto-Response-Suppress (Exchange) keep vacation
        # replies away. No `Precedence: bulk`: RFC 3834 advises against Precedence, and
        # `bulk` marks a personal mail about a harassment case as mass mail, which filters
        # send to spam or a low-priority folder, where a receipt or a manager's call to act
        # must not end up.
        message["X-Auto-Response-Suppress"] = "All"
        message.set_content(self._render(language, f"{kind}.txt.j2", context),
                            subtype="plain", charset="utf-8", cte="quoted-printable")
        message.add_alternative(self._render(language, f"{kind}.html.j2", context),
                                subtype="html", charset="utf-8", cte="quoted-printable")
        return message, subject

    def _render(self, language: str, name: str, context: dict[str, object]) -> str:
        return self._envs[language].get_template(name).render(context)

    def _domain(self) -> str:
        return self.from_address.rpartition("@")[2] or self.hostname

    def _outgoing(self, kind: str, message: EmailMessage, subject: str, recipient: str,
                  language: str) -> OutgoingMail:
        # Last: set_content() and add_attachment() move Content-* headers into sub-parts.
        message["Content-Language"] = language
        return OutgoingMail(kind=kind, mail_from=self.from_address, rcpt_tos=(recipient,),
                            message_id=str(message["Message-ID"]), subject=subject,
                            raw=message.as_bytes())


class CaseContexts:
    """The shared template context of one case's mails, computed once per language: the
    receipt and the notification of a new case show the same facts, and computing them
    (times, sizes, the plan's steps, the routing words) is a good part of composing a mail.
    """

    def __init__(self, composer: MailComposer, view: CaseMailView) -> None:
        self.composer = composer
        self.view = view
        self._by_language: dict[str, dict[str, object]] = {}

    def of(self, language: str) -> dict[str, object]:
        """The context in the language (each mail copies it before adding its own keys)."""
        found = self._by_language.get(language)
        if found is None:
            found = self._by_language[language] = self.composer.case_context(self.view,
                                                                             language)
        return found


def _reasons_text(reasons: Sequence[str], language: str) -> str:
    _ = translations(language).gettext
    words = {"sender": _("the same sender"), "domain": _("the same sender domain"),
             "image": _("the same screenshot")}
    return ", ".join(words.get(reason, reason) for reason in reasons)


def _plan_steps(steps: Sequence[PlanStepLine], language: str,
                zone: tzinfo) -> list[dict[str, object]]:
    return [
        {"number": step.number, "title": step.title.in_language(language),
         "description": step.description.in_language(language), "owner": step.owner,
         "due": local_time(step.due_at, language, zone) if step.due_at else None,
         "after_absence": (describe_duration(step.after_absence, language)
                           if step.after_absence and not step.due_at else None)}
        for step in steps
    ]


def _checked_address(address: str, setting: str) -> None:
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError) as error:
        raise ValueError(f"{setting}: {address!r} is not a mail address ({error})") from None
    if "@" not in address:
        raise ValueError(f"{setting}: {address!r} is not a mail address (no @)")


def _checked_language(language: str, setting: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"{setting}: {language!r} is not one of {', '.join(LANGUAGES)}")


def _address(name: str | None, address: str) -> Address:
    return Address(display_name=clip(one_line(name or ""), 100), addr_spec=address.strip())


def _display(name: str | None, address: str | None) -> str | None:
    name = one_line(name or "")
    if name and address:
        return f"{name} <{address}>"
    return name or address or None


def _message_id_in(value: str | None) -> str | None:
    """The first well-formed `<id>` in the value; None if there is none."""
    if not value:
        return None
    match = _MESSAGE_ID.search(value)
    if match is None and "@" in value and not value.strip().startswith("<"):
        match = _MESSAGE_ID.fullmatch(f"<{value.strip()}>")
    return match.group(0) if match else None


def _attach(message: EmailMessage, line: EvidenceLine, data: bytes, number: int,
            language: str) -> None:
    media_type = (line.content_type or "").strip().lower()
    if not _MEDIA_TYPE.fullmatch(media_type) or media_type.split("/")[0] in (
            "multipart", "message"):
        # A message/* or multipart/* part must not be base64 (RFC 2046): send the bytes as
        # they are, as an opaque file, so they stay exactly the evidence that was hashed.
        media_type = "application/octet-stream"
    maintype, subtype = media_type.split("/")
    name = clip(one_line(line.filename or "").replace("/", "_").replace("\\", "_"),
                FILENAME_MAX_CHARS)
    if not name:
        extension = mimetypes.guess_extension(line.content_type or "") or ".bin"
        _ = translations(language).gettext
        name = _("evidence-%(number)s%(extension)s") % {"number": number,
                                                         "extension": extension}
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
