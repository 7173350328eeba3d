"""Short explanations of the codes the evidence carries, in the reader's language.

Flags on an evidence item (`depth-limit-reached`, `image-truncated`, `container:zip`), OCR
statuses (`unavailable`), the rules that recognised a forwarded original
(`original-message-da`) and parser defects (`CloseBoundaryNotFoundDefect`) stay codes in the
database and in `--json`; a person reads the explanation here, with the code beside it in a
smaller element. An unknown code is shown as it is.
"""

from __future__ import annotations

from collections.abc import Mapping

from storage.i18n.catalogs import N_, translations

FLAGS: Mapping[str, str] = {
    "charset-unknown": N_("the text names a character set that is not known; read as UTF-8"),
    "charset-guessed": N_("the text names no character set; it was guessed"),
    "nested-bytes-regenerated": N_("the forwarded mail's bytes were rebuilt from its parts"),
    "depth-limit-reached": N_("nested too deep; the inner parts were kept whole, not opened"),
    "decode-failed": N_("the part could not be decoded; it is kept as received"),
    "transfer-encoding-broken": N_("the part's transfer encoding is broken"),
    "attached-outlook-msg": N_("an Outlook mail (.msg) attached"),
    "attached-tnef": N_("an Outlook attachment file (winmail.dat) attached"),
    "container-checksum-mismatch": N_("a file in the archive does not match its checksum"),
    "container-item-unreadable": N_("a file in the archive could not be read"),
    "container-partly-read": N_("the archive could be read only in part"),
    "container-too-deep": N_("archives nested too deep; the inner ones were not opened"),
    "container-trailing-data": N_("the archive has data after its end"),
    "container-unreadable": N_("the archive could not be read"),
    "embedded-message-not-exported": N_("a mail inside the Outlook file could not be taken out"),
    "exif-text-shortened": N_("the picture's EXIF text was shortened"),
    "exif-unreadable": N_("the picture's EXIF data could not be read"),
    "image-corrupt": N_("the picture is damaged"),
    "image-decoder-warning": N_("the picture decoder warned about the file"),
    "image-decompression-bomb": N_("the picture is far too large when unpacked; not opened"),
    "image-format-not-allowed": N_("a picture format that is not opened here"),
    "image-too-large": N_("the picture is too large to open"),
    "image-truncated": N_("the picture file is cut short"),
    "thumbnail-failed": N_("no thumbnail could be made"),
}

OCR_STATUSES: Mapping[str, str] = {
    "ok": N_("text read"),
    "unavailable": N_("not read: text recognition (OCR) is not installed"),
    "timeout": N_("not read: text recognition took too long"),
    "failed": N_("not read: text recognition failed"),
    "skipped": N_("not read: not a picture text recognition reads"),
    "pending": N_("not read yet: the text is read just after the case is opened"),
}

# How a forwarded original was recognised: the attached mail, or a separator line as a mail
# program writes it (`<program>-<language>`).
FINDERS: Mapping[str, str] = {
    "attached-message": N_("the forwarded mail was attached whole"),
    "original-message": N_("an “Original Message” line (Outlook and others)"),
    "gmail": N_("a forwarding line as Gmail writes it"),
    "thunderbird": N_("a forwarding line as Thunderbird writes it"),
    "apple": N_("a forwarding line as Apple Mail writes it"),
}
LANGUAGE_NAMES: Mapping[str, str] = {"da": N_("Danish"), "en": N_("English")}

# How a mail's From was checked (`message.sender_check`, the audit events' `reason`).
SENDER_CHECKS: Mapping[str, str] = {
    "authserv-fail": N_("the workplace's own mail server found no valid DKIM signature"),
    "dkim-pass": N_("the mail's DKIM signature is valid and belongs to the sender address's "
                    "domain"),
    "authserv-pass": N_("authenticated by the workplace's own mail server"),
    "dkim-fail": N_("the mail's DKIM signature is invalid (the mail may have been altered or "
                    "forged)"),
    "no-signature": N_("the mail has no DKIM signature"),
    "not-aligned": N_("the mail is signed by a domain other than the sender address's"),
    "several-from": N_("the mail names more than one sender"),
    "no-from": N_("the mail names no sender"),
    "dns-temporary": N_("could not be checked because a DNS lookup failed for the time being"),
    "not-checked": N_("not checked"),
    "unreadable": N_("the sender address could not be read"),
}

# Why a mail's commands were not carried out (`command-refused`, `unverified-mail`).
REFUSAL_REASONS: Mapping[str, str] = {
    "no-token": N_("the mail did not come to a secret reply address"),
    "token-retired": N_("the reply address is no longer valid"),
    "token-for-another-case": N_("the reply address belongs to another case"),
    "token-for-another-person": N_("the reply address was issued to another person"),
    "not-authenticated": N_("the sender is not authenticated"),
}

DEFECTS: Mapping[str, str] = {
    "CloseBoundaryNotFoundDefect": N_("a multipart without its closing boundary"),
    "StartBoundaryNotFoundDefect": N_("a multipart whose first boundary is missing"),
    "MultipartInvariantViolationDefect": N_("a part says it is multipart but has no parts"),
    "MissingHeaderBodySeparatorDefect": N_("no empty line between the headers and the text"),
    "InvalidBase64PaddingDefect": N_("base64 with wrong padding"),
    "InvalidBase64CharactersDefect": N_("base64 with characters that do not belong"),
    "InvalidBase64LengthDefect": N_("base64 of a wrong length"),
    "InvalidHeaderDefect": N_("a header that cannot be read"),
    "HeaderMissingRequiredValue": N_("a header without its value"),
    "NonASCIILocalPartDefect": N_("an address with letters outside ASCII"),
    "ObsoleteHeaderDefect": N_("a header in an obsolete form"),
    "PartLimitReached": N_("too many parts; the rest were kept in the raw mail only"),
}


def _explained(words: Mapping[str, str], code: str, language: str) -> str:
    msgid = words.get(code)
    return translations(language).gettext(msgid) if msgid is not None else code


def flag_words(flag: str, language: str) -> str:
    """An evidence flag explained in `language` (an unknown flag as it is)."""
    kind, colon, name = flag.partition(":")
    if colon and kind == "container":
        return translations(language).gettext("opened as %(kind)s") % {"kind": name}
    return _explained(FLAGS, flag, language)


def ocr_words(status: str, language: str) -> str:
    """An OCR status explained in `language`."""
    return _explained(OCR_STATUSES, status, language)


def defect_words(name: str, language: str) -> str:
    """A parser defect explained in `language`."""
    return _explained(DEFECTS, name, language)


def sender_check_words(code: str | None, language: str) -> str:
    """How a mail's From was checked, in `language` ("not recorded" when it was not)."""
    gettext = translations(language).gettext
    if code is None:
        return gettext("not recorded")
    msgid = SENDER_CHECKS.get(code)
    return gettext(msgid) if msgid is not None else gettext("unknown result")


def refusal_words(reason: str | None, language: str) -> str:
    """Why a mail's commands were refused or its sender not trusted, in `language`."""
    gettext = translations(language).gettext
    msgid = REFUSAL_REASONS.get(reason or "") or SENDER_CHECKS.get(reason or "")
    return gettext(msgid) if msgid is not None else gettext("another reason")


def finder_words(rule: str | None, language: str) -> str:
    """How a forwarded original was recognised, in `language`."""
    if not rule:
        return "—"
    if rule in FINDERS:
        return _explained(FINDERS, rule, language)
    program, _, written_in = rule.rpartition("-")
    if program not in FINDERS:
        return rule
    gettext = translations(language).gettext
    named = LANGUAGE_NAMES.get(written_in)
    return gettext("%(how)s, in %(language)s") % {
        "how": gettext(FINDERS[program]), "language": gettext(named) if named else written_in}
