"""The case's evidence bundle as a zip download, made by storage's export (which writes
the `exported` audit event naming the viewer)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from starlette.requests import Request
from starlette.responses import Response

from intake import __version__
from intake.web.pages import hostile
from intake.web.pages.case_view import case_by_number
from intake.web.pages.viewing import not_found, viewer_of, visible, web_actor, web_context
from storage.export import ExportOptions, export_case

_CHUNK = 1024 * 1024


def export_download(request: Request) -> Response:
    """GET /cases/{number}/export.zip: the bundle `chikanemail export` makes, in the
    viewer's language, streamed and deleted once sent."""
    context = web_context(request)
    viewer = viewer_of(request)
    with context.database.read() as session:
        case = case_by_number(session, visible(request), request.path_params["number"])
        if case is None:
            raise not_found()
        number = case.number
    config = context.config
    options = ExportOptions(
        blob_root=config.storage.blob_root, derived_root=config.storage.derived_root,
        language=viewer.language, exporter=web_actor(viewer), tool_version=__version__,
        tsa_ca_file=Path(config.timestamp.ca_file) if config.timestamp.ca_file else None,
        zone=config.ui.zone)
    # A private folder of its own (0700): the bundle holds the evidence. The open file is
    # all that is left of it once the folder is removed, so no copy outlives the download,
    # not even when the client goes away before it starts.
    work = Path(tempfile.mkdtemp(prefix="chikanemail-export-"))
    try:
        result = export_case(context.database, number, work / f"{number}.zip", options)
        bundle = result.path.open("rb")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return hostile.download(_chunks(bundle), f"{number}.zip", os.fstat(bundle.fileno()).st_size)


def _chunks(bundle: BinaryIO) -> Iterator[bytes]:
    """The file's bytes a piece at a time, closed at the end."""
    with bundle:
        while chunk := bundle.read(_CHUNK):
            yield chunk
