"""The audit log's actions and details in the reader's words.

The log itself keeps its codes (`mail-queued`, `{"kind": "receipt", …}`): they are hashed
into the chain and read by `--json`. A person reads them through `label()` ("Mail queued")
and `describe()` (one short sentence built from the details' known keys, the keys it does
not know listed apart as `key: value`). Used by the export report's timeline; the CLI may
use it too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage.code_words import SENDER_CHECKS, refusal_words, sender_check_words
from storage.i18n.catalogs import N_, translations
from storage.time_text import stored_day_words

# Every action the service records, as a person reads it (msgids; translated in label()).
ACTIONS: Mapping[str, str] = {
    "received": N_("Mail received"),
    "seen-again": N_("Mail received again"),
    "evidence-extracted": N_("Evidence extracted"),
    "reprocessed": N_("Evidence extracted again"),
    "filed": N_("Mail filed"),
    "processed": N_("Mail processed"),
    "quarantined": N_("Mail kept out"),
    "quarantine-retried": N_("Kept-out mail tried again"),
    "case-opened": N_("Case opened"),
    "routed": N_("Manager chosen"),
    "case-linked": N_("Related case found"),
    "sender-unverified": N_("Sender not verified"),
    "unverified-mail": N_("Unverified mail"),
    "command-refused": N_("Command refused"),
    "receipt-skipped": N_("No receipt sent"),
    "mail-queued": N_("Mail queued"),
    "mail-sent": N_("Mail sent"),
    "mail-failed": N_("Mail could not be sent"),
    "mail-retried": N_("Failed mail queued again"),
    "reminder-queued": N_("Reminder queued"),
    "reminder-skipped": N_("Reminder skipped"),
    "escalation-queued": N_("Escalation queued"),
    "escalation-skipped": N_("Escalation skipped"),
    "digest-queued": N_("Weekly overview queued"),
    "digest-skipped": N_("Weekly overview skipped"),
    "sender-warning-queued": N_("Warning about a sender queued"),
    "sender-warning-skipped": N_("Warning about a sender skipped"),
    "note": N_("Note written"),
    "acknowledged": N_("Case acknowledged"),
    "step-done": N_("Step done"),
    "absence-recorded": N_("First day of absence recorded"),
    "relation-set": N_("Harasser's relation recorded"),
    "medium-set": N_("Medium recorded"),
    "witness-added": N_("Witness added"),
    "registration-saved": N_("Registration saved"),
    "easy-reported": N_("EASY report recorded"),
    "closed": N_("Case closed"),
    "assigned": N_("Case reassigned"),
    "hold-set": N_("Legal hold set"),
    "hold-lifted": N_("Legal hold lifted"),
    "timestamped": N_("Trusted time-stamp received"),
    "verified": N_("Evidence verified"),
    "exported": N_("Evidence bundle exported"),
    "viewed": N_("Viewed"),
    "downloaded": N_("Downloaded"),
    "deleted-by-retention": N_("Deleted after the retention period"),
    "status-link-created": N_("Status page link created for the employee"),
    "status-link-retired": N_("Status page link retired"),
}

# Mails the outbox sends, by kind (the `kind` of mail-queued, -sent and -failed).
MAIL_KINDS: Mapping[str, str] = {
    "receipt": N_("receipt"),
    "notification": N_("notification of the case"),
    "confirmation": N_("confirmation of a reply"),
    "reminder": N_("reminder"),
    "escalation": N_("escalation"),
    "digest": N_("weekly overview"),
    "reassigned": N_("hand-over notice"),
    "sender_warning": N_("warning about a sender"),
    "login_link": N_("login link for the web view"),
}

# What a received mail is (`kind` of filed and processed).
MESSAGE_KINDS: Mapping[str, str] = {
    "report": N_("report"), "follow-up": N_("follow-up"), "note": N_("note from the manager"),
    "automatic": N_("automatic mail"), "not-a-report": N_("not a report"),
}

# How a related case was found (`reason` of case-linked).
LINK_REASONS: Mapping[str, str] = {
    "sender": N_("the same sender"), "domain": N_("the same sender domain"),
    "image": N_("the same screenshot"),
}

# Why the employee's status page link was retired (`reason` of status-link-retired).
STATUS_LINK_REASONS: Mapping[str, str] = {
    "manager": N_("from the case page"),
    "case-closed": N_("30 days after the case was closed"),
}

# Who the harasser is (`relation` of relation-set) and where it happened (medium-set).
RELATIONS: Mapping[str, str] = {
    "external": N_("external (a citizen, a parent, …)"), "colleague": N_("a colleague"),
    "unknown": N_("not known"),
}
MEDIUMS: Mapping[str, str] = {
    "mail": N_("mail"), "sms": N_("SMS"), "social-media": N_("social media"),
    "other": N_("other"),
}

# How a mail came in (`source` of received and seen-again).
SOURCES: Mapping[str, str] = {
    "smtp": "SMTP", "lmtp": "LMTP", "imap": "IMAP", "ingest": N_("file import"),
}

# Keys every note action carries; the note itself is shown beside the event.
_NOTE_KEYS = ("note", "text_sha256")


@dataclass(frozen=True)
class EventWords:
    """An audit event's details in words: a sentence, and the keys it did not use."""

    sentence: str
    rest: tuple[tuple[str, str], ...]


def _number(value: Any) -> int:
    """A count from the details (0 when the key is missing or not a number)."""
    return value if isinstance(value, int) else 0


def source_words(source: str | None, language: str) -> str:
    """How a mail came in, in `language` ("SMTP", "filimport"); an unknown way as coded."""
    msgid = SOURCES.get(source or "")
    return translations(language).gettext(msgid) if msgid is not None else (source or "—")


class _Words:
    """The translation functions of one language and the shapes of values in it."""

    def __init__(self, language: str) -> None:
        catalog = translations(language)
        self.language = language
        self.gettext = catalog.gettext
        self._ngettext = catalog.ngettext

    def ngettext(self, singular: str, plural: str, number: Any) -> str:
        """The text for this count, with the count put in for `%(count)s`."""
        return self._ngettext(singular, plural, _number(number)) % {"count": number}

    def coded(self, words: Mapping[str, str], code: Any) -> str:
        return self.gettext(words[code]) if isinstance(code, str) and code in words \
            else str(code)

    def recipients(self, value: Any) -> str:
        names = value if isinstance(value, list) else [value]
        shown = [self.gettext("the employee") if name == "(reporter)" else str(name)
                 for name in names if name]
        return ", ".join(shown) or "—"


def label(action: str, language: str) -> str:
    """The action as a person reads it in `language`; an unknown action as readable words."""
    msgid = ACTIONS.get(action)
    if msgid is not None:
        return translations(language).gettext(msgid)
    words = action.replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else "—"


def _mail(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.gettext("%(kind)s to %(to)s") % {
        "kind": words.coded(MAIL_KINDS, d.get("kind")), "to": words.recipients(d.get("to"))}
    if d.get("refused"):
        text += "; " + words.gettext("some recipients refused it")
    return text, ("kind", "to", "message_id", "refused")


def _received(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.ngettext("%(count)s byte", "%(count)s bytes", d.get("size"))
    text = (words.gettext("by %(source)s, encrypted, %(size)s") if d.get("tls")
            else words.gettext("by %(source)s, not encrypted, %(size)s")) % {
        "source": words.coded(SOURCES, d.get("source")), "size": text}
    if d.get("quarantine"):
        text += "; " + words.gettext("kept out of the cases: %(reason)s") % {
            "reason": d["quarantine"]}
    return text, ("source", "size", "tls", "message", "quarantine")


def _extracted(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.ngettext("%(count)s item", "%(count)s items", d.get("items")) + ", " + \
        words.ngettext("%(count)s defect in the mail", "%(count)s defects in the mail",
                       d.get("defects"))
    return text + _defect_changes(words, d), ("items", "defects", "parts",
                                              "defects_added", "defects_removed")


def _defect_changes(words: _Words, d: Mapping[str, Any]) -> str:
    parts = []
    for key, msgid in (("defects_added", N_("found now: %(names)s")),
                       ("defects_removed", N_("no longer found: %(names)s"))):
        names = [str(item.get("defect")) for item in d.get(key) or [] if isinstance(item, dict)]
        if names:
            parts.append(words.gettext(msgid) % {"names": ", ".join(names)})
    return "; " + "; ".join(parts) if parts else ""


def _reprocessed(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = _defect_changes(words, d).removeprefix("; ")
    return text or words.gettext("no defect changed"), ("defects_added", "defects_removed")


def _filed(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.gettext("as %(kind)s") % {"kind": words.coded(MESSAGE_KINDS, d.get("kind"))}
    if d.get("sender_check"):
        check = d["sender_check"]
        # A caller may have put the code into words already (with the code beside them).
        text += "; " + words.gettext("sender check: %(check)s") % {
            "check": sender_check_words(check, words.language) if check in SENDER_CHECKS
            else check}
    return text, ("kind", "automatic", "sender_check", "unverified")


def _opened(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    language = {"da": words.gettext("Danish"), "en": words.gettext("English")}.get(
        str(d.get("language")), str(d.get("language")))
    text = words.ngettext("with %(count)s step in its plan", "with %(count)s steps in its plan",
                          d.get("steps"))
    return text + "; " + words.gettext("language: %(language)s") % {"language": language}, \
        ("steps", "language")


def _routed(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    source = {"directory": words.gettext("by the employee list"),
              "rule": words.gettext("by a routing rule"),
              "default": words.gettext("as the default manager")}.get(
        str(d.get("source")), str(d.get("source")))
    text = words.gettext("%(manager)s, %(source)s") % {"manager": d.get("manager"),
                                                       "source": source}
    if d.get("deputy"):
        text += "; " + words.gettext("deputy: %(deputy)s") % {"deputy": d["deputy"]}
    return text, ("manager", "deputy", "source")


def _notice(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.gettext("to %(to)s") % {"to": words.recipients(d.get("to"))}, ("key", "to")


def _reason(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return refusal_words(d.get("reason"), words.language), ("reason",)


def _refused(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.gettext("from %(who)s") % {"who": d.get("claimed") or "—"}, \
        ("reason", "claimed", "commands")


def _quarantined(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.ngettext("after %(count)s attempt", "after %(count)s attempts",
                          d.get("attempts"))
    if d.get("worker_died"):
        text += "; " + words.gettext("the worker stopped while processing it")
    return text, ("reason", "attempts", "worker_died", "message")


def _step(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.gettext("step %(step)s") % {"step": d.get("step")}, ("step", "key", *_NOTE_KEYS)


def _closed(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    steps = [str(step) for step in d.get("open_steps") or []]
    text = (words.gettext("steps not done: %(steps)s") % {"steps": ", ".join(steps)} if steps
            else words.gettext("every step done"))
    return text, ("open_steps", "tokens_retired", *_NOTE_KEYS)


def _assigned(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.gettext("to %(manager)s (was %(previous)s)") % {
        "manager": d.get("manager"), "previous": d.get("previous")}
    return text, ("manager", "previous", "deputy", "previous_deputy", *_NOTE_KEYS)


def _note(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.gettext("the note is shown in the timeline"), _NOTE_KEYS


def _absence(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = str(stored_day_words(d.get("day"), words.language))
    if d.get("previous"):
        text += " " + words.gettext("(was %(previous)s)") % {
            "previous": stored_day_words(d["previous"], words.language)}
    return text, ("day", "previous", *_NOTE_KEYS)



def _registration(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.gettext("version %(version)s, SHA-256 %(sha256)s") % {
        "version": d.get("version"), "sha256": d.get("fields_sha256")}
    return text, ("version", "fields_sha256", *_NOTE_KEYS)


def _easy(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return str(stored_day_words(d.get("day"), words.language)), ("day", *_NOTE_KEYS)


def _coded_field(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    if "relation" in d:
        return words.coded(RELATIONS, d["relation"]), ("relation", *_NOTE_KEYS)
    return words.coded(MEDIUMS, d.get("medium")), ("medium", *_NOTE_KEYS)


def _verified(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    text = words.ngettext("%(count)s file checked", "%(count)s files checked",
                          d.get("blobs"))
    text += ", " + words.ngettext("%(count)s problem", "%(count)s problems",
                          d.get("problems"))
    return text, ("ok", "blobs", "bytes", "problems")


def _exported(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.ngettext("%(count)s file", "%(count)s files",
                          d.get("files")), \
        ("bundle", "files", "manifest_sha256")


def _linked(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.gettext("case %(other)s: %(reason)s") % {
        "other": d.get("other"), "reason": words.coded(LINK_REASONS, d.get("reason"))}, \
        ("other", "reason")


def _timestamped(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.gettext("by %(tsa)s") % {"tsa": d.get("tsa_url")}, \
        ("tsa_url", "token_sha256", "gen_time")


def _viewed(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    what = {"case": words.gettext("the case"), "audit": words.gettext("the audit trail"),
            "message": words.gettext("a mail"),
            "quarantine": words.gettext("a kept-out mail"),
            "evidence": words.gettext("an evidence item"),
            "registration": words.gettext("the registration"),
            "easy": words.gettext("the EASY summary")}.get(str(d.get("what")), d.get("what"))
    if d.get("via") == "web":
        return words.gettext("%(what)s, on the web pages") % {"what": what}, \
            ("what", "via", "evidence")
    return words.gettext("%(what)s, on the command line") % {"what": what}, ("what",)


def _status_link_retired(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.coded(STATUS_LINK_REASONS, d.get("reason")), ("reason",)


def _deleted(words: _Words, d: Mapping[str, Any]) -> tuple[str, Sequence[str]]:
    return words.ngettext("after %(count)s day", "after %(count)s days",
                          d.get("retention_days")), \
        ("rule", "retention_days", "closed_at", "received_at")


_SENTENCES: Mapping[str, Callable[[_Words, Mapping[str, Any]], tuple[str, Sequence[str]]]] = {
    "received": _received, "seen-again": _received, "evidence-extracted": _extracted,
    "reprocessed": _reprocessed, "filed": _filed, "processed": _filed,
    "quarantined": _quarantined, "quarantine-retried": _quarantined,
    "case-opened": _opened, "routed": _routed, "case-linked": _linked,
    "sender-unverified": _reason, "unverified-mail": _reason, "command-refused": _refused,
    "receipt-skipped": _reason, "mail-queued": _mail, "mail-sent": _mail, "mail-failed": _mail,
    "mail-retried": _mail,
    "note": _note, "acknowledged": _note, "step-done": _step, "absence-recorded": _absence,
    "relation-set": _coded_field, "medium-set": _coded_field, "witness-added": _note,
    "registration-saved": _registration, "easy-reported": _easy,
    "closed": _closed,
    "assigned": _assigned, "hold-set": _reason, "hold-lifted": _reason,
    "timestamped": _timestamped, "verified": _verified, "exported": _exported,
    "deleted-by-retention": _deleted, "viewed": _viewed, "downloaded": _viewed,
    "status-link-retired": _status_link_retired,
}


def describe(action: str, details: Mapping[str, Any] | None,
             language: str) -> EventWords:
    """The event's details as one short sentence in `language`, and the keys it left out.

    Codes inside the details that other words already explain (a sender check, a refusal
    reason) may be replaced by the caller before; values are never shown as JSON.
    """
    details = details or {}
    words = _Words(language)
    sentence_of = _SENTENCES.get(action)
    if sentence_of is None and action.endswith(("-queued", "-skipped")):
        sentence_of = _notice
    sentence, used = sentence_of(words, details) if sentence_of else ("", ())
    rest = tuple((key, _plain(value)) for key, value in sorted(details.items())
                 if key not in used and key not in _NOTE_KEYS)
    return EventWords(sentence, rest)


def _plain(value: Any) -> str:
    """A detail's value as plain text (lists joined, mappings as `key value` pairs)."""
    if value is None:
        return "—"
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {_plain(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(item) for item in value)
    return str(value)
