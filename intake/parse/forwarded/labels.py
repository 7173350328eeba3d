"""The words mail programs write around an inline forward, per language, and recognising
them on a line: the field labels of the header block ("Fra:", "Sent:", "Objet :") and the
separator lines above it ("---------- Forwarded message ---------", "-----Original
Message-----", "Begin forwarded message:"). Norwegian labels equal Danish ones and count
as da.
"""

from __future__ import annotations

import re
import unicodedata

_FIELD_LABELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (field, language, labels); "sent" is Outlook's word for the date.
    ("from", "en", ("from",)),
    ("from", "da", ("fra",)),
    ("from", "de", ("von",)),
    ("from", "fr", ("de", "expéditeur")),
    ("from", "it", ("da", "mittente")),
    ("from", "sv", ("från",)),
    ("from", "nl", ("van",)),
    ("from", "es", ("de",)),
    ("sent", "en", ("sent",)),
    ("sent", "da", ("sendt",)),
    ("sent", "de", ("gesendet",)),
    ("sent", "fr", ("envoyé",)),
    ("sent", "it", ("inviato",)),
    ("sent", "sv", ("skickat",)),
    ("sent", "nl", ("verzonden",)),
    ("sent", "es", ("enviado",)),
    ("date", "en", ("date",)),
    ("date", "da", ("dato",)),
    ("date", "de", ("datum",)),
    ("date", "fr", ("date",)),
    ("date", "it", ("data",)),
    ("date", "sv", ("datum",)),
    ("date", "nl", ("datum",)),
    ("date", "es", ("fecha",)),
    ("to", "en", ("to",)),
    ("to", "da", ("til",)),
    ("to", "de", ("an",)),
    ("to", "fr", ("à", "pour")),
    ("to", "it", ("a",)),
    ("to", "sv", ("till",)),
    ("to", "nl", ("aan",)),
    ("to", "es", ("para",)),
    ("subject", "en", ("subject",)),
    ("subject", "da", ("emne",)),
    ("subject", "de", ("betreff",)),
    ("subject", "fr", ("objet", "sujet")),
    ("subject", "it", ("oggetto",)),
    ("subject", "sv", ("ämne",)),
    ("subject", "nl", ("onderwerp",)),
    ("subject", "es", ("asunto",)),
)
# Lines that belong to a header block but say nothing about the language or the original.
_OTHER_LABELS: dict[str, str] = {
    "cc": "cc", "kopi": "cc", "kopie": "cc", "kopie (cc)": "cc", "kopia": "cc",
    "copie à": "cc", "bcc": "bcc", "ccn": "bcc", "cci": "bcc", "message-id": "message_id",
    "reply-to": "other", "svar til": "other", "antwort an": "other", "répondre à": "other",
    "rispondi a": "other", "importance": "other", "priority": "other", "prioritet": "other",
    "vigtighed": "other", "wichtigkeit": "other", "priorità": "other", "attachments": "other",
    "vedhæftede filer": "other", "anlagen": "other", "allegati": "other",
    "pièces jointes": "other",
}


def _build_labels() -> dict[str, tuple[str, frozenset[str]]]:
    labels: dict[str, tuple[str, set[str]]] = {}
    for field_name, language, words in _FIELD_LABELS:
        for word in words:
            labels.setdefault(word, (field_name, set()))[1].add(language)
    built = {word: (name, frozenset(langs)) for word, (name, langs) in labels.items()}
    built.update({word: (name, frozenset()) for word, name in _OTHER_LABELS.items()})
    return built


_LABELS = _build_labels()
# Preference when the labels of a block fit several languages equally well.
LANGUAGE_ORDER = ("da", "en", "de", "sv", "nl", "fr", "it", "es")

# "---------- Forwarded message ---------" and friends; Gmail writes 10 dashes, Thunderbird 8.
_DASHED_SEPARATOR = re.compile(r"^(?P<dashes>-{2,})\s*(?P<words>[^\W\d_][^-]{2,40}?)\s*-{2,}$")
_GMAIL_MIN_DASHES = 9
_FORWARDED_WORDS = {
    "forwarded message": "en",
    "videresendt meddelelse": "da",
    "videresendt besked": "da",
    "videresendt melding": "no",
    "weitergeleitete nachricht": "de",
    "message transféré": "fr",
    "messaggio inoltrato": "it",
    "vidarebefordrat meddelande": "sv",
    "doorgestuurd bericht": "nl",
    "mensaje reenviado": "es",
}
_ORIGINAL_WORDS = {
    "original message": "en",
    "oprindelig meddelelse": "da",
    "opprinnelig melding": "no",
    "ursprüngliche nachricht": "de",
    "message d'origine": "fr",
    "messaggio originale": "it",
    "ursprungligt meddelande": "sv",
    "oorspronkelijk bericht": "nl",
    "mensaje original": "es",
}
# Apple Mail's line before the block, e.g. "Begin forwarded message:".
_APPLE_WORDS = {
    "begin forwarded message": "en",
    "start på videresendt besked": "da",
    "videresendt melding": "no",
    "anfang der weitergeleiteten nachricht": "de",
    "début du message réexpédié": "fr",
    "début du message transféré": "fr",
    "inizio messaggio inoltrato": "it",
    "vidarebefordrat mejl": "sv",
    "begin doorgestuurd bericht": "nl",
    "inicio del mensaje reenviado": "es",
}

# The longest field value kept: a header line's limit in RFC 5322.
MAX_VALUE_CHARS = 998
# "From: x", "*From:* x" (Gmail's text part), "Objet : x" (French spacing).
_LABEL_LINE = re.compile(
    r"^\*{0,2}(?P<label>[^\W\d_][^:*]{0,24}?)\s*\*{0,2}\s*:\s*\*{0,2}(?P<value>.*)$"
)
_LABEL_COLON_WITHIN = 32


def marker_rule(line: str) -> str | None:
    """The rule named by a separator line ("gmail-da", "apple-en", ...), if it is one."""
    if line.endswith(":"):
        language = _APPLE_WORDS.get(_words(line[:-1]))
        return f"apple-{language}" if language else None
    match = _DASHED_SEPARATOR.match(line)
    if match is None:
        return None
    words = _words(match.group("words"))
    if words in _ORIGINAL_WORDS:
        return f"original-message-{_ORIGINAL_WORDS[words]}"
    if words in _FORWARDED_WORDS:
        client = "gmail" if len(match.group("dashes")) >= _GMAIL_MIN_DASHES else "thunderbird"
        return f"{client}-{_FORWARDED_WORDS[words]}"
    return None


def _words(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.casefold().split())


def field_label(line: str) -> tuple[str, str, frozenset[str]] | None:
    """(field, value, languages) for a header line such as "Fra: Søren <s@x.dk>"."""
    if ":" not in line[:_LABEL_COLON_WITHIN]:
        return None
    match = _LABEL_LINE.match(line)
    if match is None:
        return None
    known = _LABELS.get(_words(match.group("label")))
    if known is None:
        return None
    return known[0], match.group("value").strip()[:MAX_VALUE_CHARS], known[1]
