"""What `chikanemail messages show` prints: one message, its original and its evidence tree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from rich.tree import Tree

from intake.commands.cli.words import EVIDENCE_ROLES, MESSAGE_STATES
from storage.audit_words import MESSAGE_KINDS
from storage.blobstore import BlobStore, BlobStoreError
from storage.code_words import SENDER_CHECKS, defect_words, finder_words, flag_words, ocr_words
from storage.defects import read_defects
from storage.models import Evidence, Message

if TYPE_CHECKING:
    from intake.commands.cli.display import Reader

OCR_EXCERPT_CHARS = 160
# How the From of a mail was checked (a SenderCheck code): storage's words, which the
# report and the web pages use too (msgids; translated where they are printed).
SENDER_CHECK_TEXT = SENDER_CHECKS


def unverified_mark(reader: Reader) -> str:
    """What a mail that claims a role on its case but could not prove it is, in words."""
    return reader.gettext("UNVERIFIED SENDER (kept as evidence, changed nothing)")


def _derived_text(derived: BlobStore, sha256: str | None) -> str | None:
    if not sha256:
        return None
    try:
        return derived.read_bytes(sha256).decode("utf-8", errors="replace")
    except BlobStoreError:
        return None


def defects_report(stored: object) -> list[dict[str, Any]]:
    """A stored defect list as `{"defect": name, "parsers": [...]}` entries; `parsers` is
    empty for a row written before the parsers were recorded."""
    return [{"defect": defect.name, "parsers": list(defect.parsers)}
            for defect in read_defects(stored)]


def defects_text(defects: list[dict[str, Any]], reader: Reader) -> str:
    """The defects of a report on one line: each explained, with its code and the parsers
    that reported it in parentheses."""
    unrecorded = reader.gettext("parser not recorded")
    return "; ".join(
        f"{defect_words(entry['defect'], reader.language)} "
        f"({entry['defect']}: {', '.join(entry['parsers']) or unrecorded})"
        for entry in defects)


def sender_check_text(code: str | None, reader: Reader) -> str:
    """A sender check code's meaning with the code after it, e.g. "DKIM signature does not
    verify (dkim-fail)"."""
    if code is None:
        return reader.gettext("not recorded")
    meaning = SENDER_CHECK_TEXT.get(code)
    return f"{reader.gettext(meaning)} ({code})" if meaning else code


def sender_json(message: Message) -> dict[str, Any]:
    """Whether the message's sender could be verified: the fields every view of it shows."""
    return {
        "unverified": bool(message.unverified),
        "sender_check": message.sender_check,
        "sender_authenticated": bool(message.sender_authenticated),
        "reply_token_id": message.reply_token_id,
    }


def sender_label(report: dict[str, Any], reader: Reader) -> str:
    """One line on the sender check of a message report (or a case report's message)."""
    line = reader.gettext("Sender check: %(check)s") % {
        "check": sender_check_text(report["sender_check"], reader)}
    if report["reply_token_id"] is not None:
        line += "; " + reader.gettext("came to a secret reply address")
    return line


def message_report(message: Message, evidence: list[Evidence],
                   derived: BlobStore) -> dict[str, Any]:
    """The message as a JSON-ready dict: keys `sha256`, `original`, `evidence`, `defects`, …"""
    by_id = {row.id: row for row in evidence}
    original = None
    if message.original_rule:
        original = {
            "rule": message.original_rule,
            "from": message.original_from_address,
            "from_name": message.original_from_name,
            "date": message.original_date.isoformat() if message.original_date else None,
            "date_zone_assumed": bool(message.original_date_zone_assumed),
            "date_raw": message.original_date_raw,
            "subject": message.original_subject,
            "to": message.original_to,
            "message_id": message.original_message_id,
        }
    items = []
    for row in evidence:
        parent = by_id.get(row.parent_id) if row.parent_id else None
        items.append({
            "id": row.id,
            "path": row.part_path,
            "sha256": row.sha256,
            "filename": row.filename,
            "content_type": row.declared_type,
            "sniffed_type": row.sniffed_type,
            "size": row.size,
            "role": row.role,
            "parent": parent.sha256 if parent else None,
            "parent_path": parent.part_path if parent else None,
            "content_id": row.content_id,
            "disposition": row.disposition,
            "flags": row.flags,
            "defects": defects_report(row.defects),
            "image": row.image,
            "thumbnail_sha256": row.thumbnail_sha256,
            "dhash": row.dhash,
            "ocr_status": row.ocr_status,
            "ocr_text": _derived_text(derived, row.ocr_sha256),
            "original": row.original,
        })
    return {
        "id": message.id,
        "sha256": message.sha256,
        "size": message.size,
        "subject": message.subject,
        "message_id": message.message_id,
        "from": message.from_address,
        "kind": message.kind,
        **sender_json(message),
        "received_at": message.received_at.isoformat(),
        "source": message.source,
        "state": message.state,
        "extracted_at": message.extracted_at.isoformat() if message.extracted_at else None,
        "sender_ip": message.sender_ip,
        "received_chain": message.received_chain or [],
        "original": original,
        "defects": defects_report(message.defects),
        "evidence": items,
    }


def original_date_text(original: dict[str, Any], reader: Reader) -> str:
    """The forwarded original's date for the terminal: in the workplace's zone, saying when
    its zone was assumed, with the text the mail has; the raw text alone when it names no
    instant."""
    _ = reader.gettext
    raw = original.get("date_raw")
    if not original.get("date"):
        return _('"%(raw)s" (as written; not read as an exact time)') % {"raw": raw} \
            if raw else "?"
    shown = reader.long_iso(original["date"])
    if original.get("date_zone_assumed"):
        return _('%(date)s, zone assumed (the mail names none; read as Danish time), as '
                 'written: "%(raw)s"') % {"date": shown, "raw": raw}
    return _('%(date)s, as written: "%(raw)s"') % {"date": shown, "raw": raw} if raw else shown


def _evidence_label(item: dict[str, Any], reader: Reader) -> str:
    """One evidence item on one line: what it is, its types, size and hash, then its flags
    and defects explained (codes in parentheses), picture and OCR."""
    _ = reader.gettext
    label = (f"[{item['path']}] {reader.word(EVIDENCE_ROLES, item['role'])}  "
             f"{item['filename'] or _('(no name)')}  "
             f"{item['content_type']} / {item['sniffed_type']}  {item['size']} B  "
             f"{item['sha256'][:16]}…")
    if item["flags"]:
        label += "  " + _("Flags: %(flags)s") % {"flags": "; ".join(
            f"{flag_words(flag, reader.language)} ({flag})" for flag in item["flags"])}
    if item["defects"]:
        label += "  " + _("Defects: %(defects)s") % {
            "defects": defects_text(item["defects"], reader)}
    image = item["image"]
    if image:
        label += "  " + _("picture %(width)sx%(height)s %(format)s") % {
            "width": image.get("width"), "height": image.get("height"),
            "format": image.get("format")}
    if item["ocr_status"] and item["ocr_status"] != "ok":
        label += "  " + _("OCR: %(status)s") % {
            "status": ocr_words(item["ocr_status"], reader.language)}
    if item["ocr_text"]:
        excerpt = " ".join(item["ocr_text"].split())[:OCR_EXCERPT_CHARS]
        label += "  " + _("OCR text: %(text)s") % {"text": excerpt}
    return label


def render_message_report(report: dict[str, Any], reader: Reader) -> Tree:
    """A readable tree of the report for the terminal, in the reader's language, times in
    their zone."""
    _ = reader.gettext
    title = _("Message %(id)s  %(state)s  %(size)s bytes  SHA-256 %(sha256)s") % {
        "id": report["id"], "state": reader.word(MESSAGE_STATES, report["state"]),
        "size": report["size"], "sha256": report["sha256"]}
    tree = Tree(title)
    if report["unverified"]:
        tree.add(Text(unverified_mark(reader), style="bold red"))
    # A context of its own: the mails' "Subject:" is padded to line up with other fields.
    tree.add(reader.pgettext("terminal", "Subject: %(subject)s") % {
        "subject": report["subject"] or _("(none)")})
    tree.add(_("From: %(sender)s   Kind: %(kind)s") % {
        "sender": report["from"] or "?", "kind": reader.word(MESSAGE_KINDS, report["kind"])})
    tree.add(sender_label(report, reader))
    original = report["original"]
    if original:
        who = " ".join(part for part in (original["from_name"], original["from"] and
                                         f"<{original['from']}>") if part)
        tree.add(_("Forwarded original (%(found)s): from %(sender)s, date %(date)s, subject "
                   "%(subject)s") % {
            "found": finder_words(original["rule"], reader.language), "sender": who or "?",
            "date": original_date_text(original, reader),
            "subject": original["subject"] or "?"})
    else:
        tree.add(_("Forwarded original: none found"))
    if report["defects"]:
        tree.add(_("Defects (reported by): %(defects)s") % {
            "defects": defects_text(report["defects"], reader)})
    nodes: dict[str, Tree] = {}
    for item in report["evidence"]:
        parent = nodes.get(item["parent_path"] or "", tree)
        nodes[item["path"]] = parent.add(_evidence_label(item, reader))
    return tree
