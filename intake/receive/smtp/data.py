"""Reading one DATA off the stream: finding its end-of-data line, and undoing dot-stuffing.

aiosmtpd keeps a DATA in memory as one bytearray a line and joins them (about 4x the
message); read this way, a connection holds a few MiB whatever the message size, and lines
may be of any length. intake.receive.smtp.server's DATA command feeds what is read here into the
spool of intake.receive.smtp.handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

# The StreamReader's limit: the longest command line, and the size of the pieces DATA is
# read in (the reader buffers up to twice this before it stops reading the socket).
STREAM_LIMIT = 256 * 1024
# The only end of DATA (RFC 5321 4.1.1.4) is a line that is exactly "." CRLF, after a CRLF
# (or first). A dot next to a bare LF or CR is content: no sender can smuggle a second
# message into one.
END_OF_DATA = b"\r\n.\r\n"
_DOT_CRLF = b".\r\n"
# A line ending in "." CRLF shorter than this is not worth the byte-wise look at the next.
_SHORT_LINE = 8
# Reading DATA whose lines end in "." gives short pieces without waiting: let other sessions
# run after this many.
_YIELD_EVERY_PIECES = 4096


def _end_line_begun(tail: bytes) -> int:
    """How many bytes of END_OF_DATA the tail ends with (5: all of it)."""
    for length in range(min(len(tail), len(END_OF_DATA)), 0, -1):
        if tail.endswith(END_OF_DATA[:length]):
            return length
    return 0


class DataReader:
    """Reads the dot-stuffed bytes of one DATA off a stream, up to its end-of-data line.

    Pieces are about `piece_bytes` long whatever the lines are (shorter at the end), and
    never reach past the end of data: commands pipelined after it stay in the stream.

    Until it is sure that no end-of-data line can have begun in what it has read (DATA
    begins a line, as if after a CRLF), it reads up to each "." CRLF in turn: the end is the
    first one right after a CRLF. A byte or three more after such a line (read one by one)
    usually make it sure; from then on it reads up to CRLF "." CRLF, which dot-stuffing keeps
    out of everything but the end. Either way it needs one read per about STREAM_LIMIT
    bytes, not one a line as aiosmtpd does; only lines shorter than _SHORT_LINE that end in
    "." cost a read each.
    """

    def __init__(self, reader: asyncio.StreamReader, piece_bytes: int = STREAM_LIMIT) -> None:
        self._reader = reader
        self._piece_bytes = piece_bytes
        self._tail = b"\r\n"  # the last bytes read; DATA begins a line, as if after a CRLF
        self._sure = False
        self.ended = False

    async def read(self) -> bytes | bytearray:
        """The next piece of DATA as sent (still dot-stuffed), without the end-of-data line."""
        try:
            piece = await self._read_some()
            if self.ended or len(piece) >= self._piece_bytes:
                return piece
            gathered = bytearray(piece)
            count = 0
            while not self.ended and len(gathered) < self._piece_bytes:
                gathered += await self._read_some()
                count += 1
                if count % _YIELD_EVERY_PIECES == 0:
                    await asyncio.sleep(0)  # many short lines must not hold the loop long
            return gathered
        except asyncio.IncompleteReadError as error:
            raise ConnectionResetError("connection closed in the middle of DATA") from error

    def _read_some(self) -> Coroutine[Any, Any, bytes]:
        return self._read_to_end_line() if self._sure else self._read_to_dot_crlf()

    async def _read_to_end_line(self) -> bytes:
        try:
            piece = await self._reader.readuntil(END_OF_DATA)
        except asyncio.LimitOverrunError as overrun:
            # None within the limit. The reader keeps back the last bytes it has, those that
            # could begin one (or the one it found too far on): none begins in this piece.
            return await self._reader.read(overrun.consumed)
        self.ended = True
        return piece[: -len(_DOT_CRLF)]  # its CRLF ends the message's last line

    async def _read_to_dot_crlf(self) -> bytes:
        try:
            piece = await self._reader.readuntil(_DOT_CRLF)
        except asyncio.LimitOverrunError as overrun:
            # As above: no "." CRLF begins in this piece, so no end line can end in it.
            piece = await self._reader.read(overrun.consumed)
        else:
            before_dot = piece[-5:-3] if len(piece) >= 5 else (self._tail + piece)[-5:-3]
            if before_dot == b"\r\n":
                self.ended = True
                return piece[: -len(_DOT_CRLF)]
            if len(piece) < _SHORT_LINE:
                # Lines this short: stay with "." CRLF, which costs a read a line, no more.
                self._tail = (self._tail + piece)[-4:]
                return piece
        tail = (self._tail + piece[-4:])[-4:]
        extra = bytearray()
        begun = _end_line_begun(tail)
        while 2 <= begun < len(END_OF_DATA):  # after CRLF, CRLF "." or CRLF "." CR: one more
            byte = await self._reader.readexactly(1)
            extra += byte
            tail = tail[-4:] + byte
            begun = _end_line_begun(tail)
        whole = piece + extra
        if begun == len(END_OF_DATA):
            self.ended = True
            return whole[: -len(_DOT_CRLF)]
        self._tail = tail[-4:]
        self._sure = begun == 0
        return whole


class DotUnstuffer:
    """Removes the dot a sender put before every line starting with a dot (RFC 5321 4.5.2),
    from DATA that comes in pieces split anywhere."""

    def __init__(self) -> None:
        # The start of DATA is the start of a line: as if it came after a CRLF, not kept.
        self._held = b"\r\n"
        self._unsent_prefix = 2

    def feed(self, wire: bytes | bytearray) -> bytes:
        """The message bytes of the next piece (a CR or CRLF at its end waits for the next)."""
        data = self._held + wire
        if data.endswith(b"\r\n"):
            keep = 2
        elif data.endswith(b"\r"):
            keep = 1
        else:
            keep = 0
        self._held = data[len(data) - keep:]
        # Every CRLF on the wire ends a line: a dot right after one is the stuffed dot.
        message = data[: len(data) - keep].replace(b"\r\n.", b"\r\n")
        if self._unsent_prefix and message:
            message = message[self._unsent_prefix:]
            self._unsent_prefix = 0
        return message

    def flush(self) -> bytes:
        """The bytes held back, once the end of data has been read."""
        held, self._held = self._held, b""
        if self._unsent_prefix:  # nothing came at all
            held = held[self._unsent_prefix:]
            self._unsent_prefix = 0
        return held
