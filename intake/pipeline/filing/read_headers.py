"""Filing step: read the message's header block."""

from __future__ import annotations

from intake.parse.headers import parse_header_block
from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts


class ReadHeaders(NeedsNoParts):
    """Parse the header block of the raw message, which the later steps decide by."""

    name = "read_headers"
    in_transaction = False

    def file(self, filing: Filing) -> None:
        """Keep the parsed headers in the filing."""
        filing.headers = parse_header_block(filing.message.store, filing.message.sha256)
