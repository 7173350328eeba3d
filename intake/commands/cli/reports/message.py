"""What `chikanemail messages show` prints: one message, its original and its evidence tree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from rich.tree import Tree

from storage.blobstore import BlobStore, BlobStoreError
from storage.defects import read_defects
from storage.models import Evidence, Message

if TYPE_CHECKING:
    from intake.commands.cli.display import Reader

OCR_EXCERPT_CHARS = 160
# What a mail that claims a role on its case but could not prove it is, in the terminal.
UNVERIFIED_MARK = "UNVERIFIED SENDER (kept as evidence, changed nothing)"
# How the From of a mail was checked (a SenderCheck code), in words for the terminal.
SENDER_CHECK_TEXT = {
    "dkim-pass": "DKIM signature verifies and is aligned with the From domain",
    "authserv-pass": "authenticated by the workplace's own mail server",
    "authserv-fail": "the workplace's own mail server found no valid DKIM signature",
    "dkim-fail": "DKIM signature does not verify",
    "no-signature": "no DKIM signature",
    "not-aligned": "signed by a domain other than the From address's",
    "several-from": "more than one From address",
    "no-from": "no From address",
    "dns-temporary": "not checked: a DNS lookup failed for now",
    "not-checked": "not checked",
    "unreadable": "the From header could not be read",
}


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


def defects_text(defects: list[dict[str, Any]]) -> str:
    """The defects of a report on one line, each with the parsers that reported it."""
    return ", ".join(
        f"{entry['defect']} ({', '.join(entry['parsers']) or 'parser not recorded'})"
        for entry in defects)


def sender_check_text(code: str | None) -> str:
    """A sender check code with its meaning, e.g. `dkim-fail (DKIM signature does not verify)`."""
    if code is None:
        return "not recorded"
    meaning = SENDER_CHECK_TEXT.get(code)
    return f"{code} ({meaning})" if meaning else code


def sender_json(message: Message) -> dict[str, Any]:
    """Whether the message's sender could be verified: the fields every view of it shows."""
    return {
        "unverified": bool(message.unverified),
        "sender_check": message.sender_check,
        "sender_authenticated": bool(message.sender_authenticated),
        "reply_token_id": message.reply_token_id,
    }


def sender_label(report: dict[str, Any]) -> str:
    """One line on the sender check of a message report (or a case report's message)."""
    line = f"sender check: {sender_check_text(report['sender_check'])}"
    if report["reply_token_id"] is not None:
        line += "; came to a secret reply address"
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
    raw = original.get("date_raw")
    if not original.get("date"):
        return f'"{raw}" (as written; not read as an exact time)' if raw else "?"
    shown = reader.long_iso(original["date"])
    if original.get("date_zone_assumed"):
        return (f"{shown}, zone assumed (the mail names none; read as Danish time), "
                f'as written: "{raw}"')
    return f'{shown}, as written: "{raw}"' if raw else shown


def render_message_report(report: dict[str, Any], reader: Reader) -> Tree:
    """A readable tree of the report for the terminal, times in the reader's zone."""
    title = (f"message {report['id']}  {report['state']}  {report['size']} bytes  "
             f"sha256 {report['sha256']}")
    tree = Tree(title)
    if report["unverified"]:
        tree.add(Text(UNVERIFIED_MARK, style="bold red"))
    tree.add(f"subject: {report['subject'] or '(none)'}")
    tree.add(f"from: {report['from'] or '?'}   kind: {report['kind'] or '-'}")
    tree.add(sender_label(report))
    original = report["original"]
    if original:
        who = " ".join(part for part in (original["from_name"], original["from"] and
                                         f"<{original['from']}>") if part)
        tree.add(f"forwarded original ({original['rule']}): from {who or '?'}, "
                 f"date {original_date_text(original, reader)}, "
                 f"subject {original['subject'] or '?'}")
    else:
        tree.add("forwarded original: none found")
    if report["defects"]:
        tree.add("defects (reported by): " + defects_text(report["defects"]))
    nodes: dict[str, Tree] = {}
    for item in report["evidence"]:
        label = (f"[{item['path']}] {item['role']}  {item['filename'] or '(no name)'}  "
                 f"{item['content_type']} / {item['sniffed_type']}  {item['size']} B  "
                 f"{item['sha256'][:16]}…")
        if item["flags"]:
            label += "  flags: " + ", ".join(item["flags"])
        if item["defects"]:
            label += "  defects: " + defects_text(item["defects"])
        image = item["image"]
        if image:
            label += f"  image {image.get('width')}x{image.get('height')} {image.get('format')}"
        if item["ocr_text"]:
            excerpt = " ".join(item["ocr_text"].split())[:OCR_EXCERPT_CHARS]
            label += f"  OCR: {excerpt}"
        parent = nodes.get(item["parent_path"] or "", tree)
        nodes[item["path"]] = parent.add(label)
    return tree
