"""An evidence item: its viewer page, its thumbnail, and its download. Nothing of the
original is ever shown inline: pictures are our own JPEG, text is text."""

from __future__ import annotations

import base64
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response

from intake.web.pages import evidence_content, hostile
from intake.web.pages.case_view import case_by_number, evidence_of_case, message_of_case
from intake.web.pages.viewing import (
    DOWNLOADED,
    VIEWED,
    not_found,
    record_view,
    viewer_of,
    visible,
    web_context,
)
from intake.web.rendering import render
from storage.blobstore import BlobStore
from storage.code_words import flag_words, ocr_words
from storage.models import Case, Evidence

_CHUNK = 256 * 1024


def _case_and_item(request: Request) -> tuple[Case, Evidence] | None:
    """The case and the evidence item the path names, if the viewer may see them."""
    try:
        evidence_id = int(request.path_params["evidence_id"])
    except ValueError:
        return None
    with web_context(request).database.read() as session:
        case = case_by_number(session, visible(request), request.path_params["number"])
        if case is None:
            return None
        item = evidence_of_case(session, case, evidence_id)
        if item is None:
            return None
        session.expunge_all()
    return case, item


def evidence_page(request: Request) -> Response:
    """GET /cases/{number}/evidence/{id}: the item's facts, our picture of it, its text
    and OCR text, in a sandboxed page that runs nothing."""
    found = _case_and_item(request)
    if found is None:
        raise not_found()
    case, item = found
    context = web_context(request)
    language = viewer_of(request).language
    picture = evidence_content.rendered_picture(context.evidence, item)
    source = evidence_content.source_text(context.evidence, item)
    page = {
        "case": case, "item": item,
        "picture": (base64.b64encode(picture).decode("ascii") if picture else None),
        "source": source[0] if source else None, "source_cut": bool(source and source[1]),
        "body_text": (evidence_content.derived_text(context.derived, item.text_sha256)
                      if source is None else None),
        "ocr_text": evidence_content.derived_text(context.derived, item.ocr_sha256),
        "ocr_status": ocr_words(item.ocr_status, language) if item.ocr_status else None,
        "flags": [flag_words(flag, language) for flag in item.flags or []],
        "media_type": item.sniffed_type or item.declared_type,
    }
    record_view(request, VIEWED, case.number, details={
        "what": "evidence", "evidence": item.id, "sha256": item.sha256})
    return render(request, "evidence.html", page,
                  headers=hostile.evidence_headers(hostile.VIEWER_POLICY))


def evidence_thumbnail(request: Request) -> Response:
    """GET /cases/{number}/evidence/{id}/thumbnail: the JPEG intake made (part of the case
    page, so not audited on its own)."""
    found = _case_and_item(request)
    if found is None:
        raise not_found()
    data = evidence_content.thumbnail(web_context(request).derived, found[1])
    if data is None:
        raise not_found()
    return hostile.picture(data)


def evidence_download(request: Request) -> Response:
    """GET /cases/{number}/evidence/{id}/download: the original bytes, as an attachment."""
    found = _case_and_item(request)
    if found is None:
        raise not_found()
    case, item = found
    store = web_context(request).evidence
    if not store.exists(item.sha256):
        raise not_found()
    record_view(request, DOWNLOADED, case.number, details={
        "what": "evidence", "evidence": item.id, "sha256": item.sha256})
    return hostile.download(_chunks(store, item.sha256),
                            item.filename or f"{case.number}-{item.part_path}.bin", item.size)


def message_download(request: Request) -> Response:
    """GET /cases/{number}/mails/{id}/download: a received mail's exact bytes (.eml)."""
    try:
        message_id = int(request.path_params["message_id"])
    except ValueError:
        raise not_found() from None
    context = web_context(request)
    with context.database.read() as session:
        case = case_by_number(session, visible(request), request.path_params["number"])
        message = message_of_case(session, case, message_id) if case is not None else None
        if case is None or message is None:
            raise not_found()
        session.expunge_all()
    if not context.evidence.exists(message.sha256):
        raise not_found()
    record_view(request, DOWNLOADED, case.number, message_sha256=message.sha256,
                details={"what": "message"})
    return hostile.download(_chunks(context.evidence, message.sha256),
                            f"{case.number}-{message.id}.eml", message.size)


def _chunks(store: BlobStore, sha256: str) -> Iterator[bytes]:
    """The blob's bytes a piece at a time (Starlette reads a plain iterator in a thread)."""
    with store.open(sha256) as source:
        while chunk := source.read(_CHUNK):
            yield chunk


