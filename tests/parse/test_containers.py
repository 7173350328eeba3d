"""Opening TNEF streams and Outlook .msg files: the real-world corpus, built streams, bad input."""

from __future__ import annotations

import email
import functools
import hashlib
import struct
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage

import pytest
from tnefparse import TNEF

from intake.parse.containers.contents import (
    FLAG_CHECKSUM_MISMATCH,
    FLAG_ITEM_UNREADABLE,
    FLAG_PARTLY_READ,
    FLAG_TOO_DEEP,
    FLAG_TRAILING_DATA,
    FLAG_UNREADABLE,
    OUTLOOK_MSG_CONTENT_TYPE,
    ROLE_ATTACHMENT,
    ROLE_BODY,
    TNEF_CONTENT_TYPE,
    ContainerContents,
    ContainerItem,
)
from intake.parse.containers.outlook_msg import is_outlook_msg, open_outlook_msg
from intake.parse.containers.tnef import is_tnef, open_tnef
from tests.support import CORPUS

CFB_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
IMESSAGE_IID = bytes.fromhex("0703020000000000c000000000000046")


def _tagged(tag: str) -> list[str]:
    """Corpus files (relative paths) carrying the tag in index.tsv."""
    paths = []
    for line in (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines():
        path, _size, _sha256, tags = line.split("\t")
        if tag in tags.split(","):
            paths.append(path)
    return paths


TNEF_RAW = _tagged("tnef-raw")
TNEF_MAILS = [path for path in _tagged("tnef") if path not in TNEF_RAW]
MSG_RAW = _tagged("outlook-msg-raw")


def _read(path: str) -> bytes:
    return (CORPUS / path).read_bytes()


def _winmail_part(path: str) -> bytes:
    """The decoded payload of the mail's application/ms-tnef or winmail.dat part."""
    message = email.message_from_bytes(_read(path), policy=policy.default)
    for part in message.walk():
        name = (part.get_filename() or "").lower()
        if part.get_content_type() == "application/ms-tnef" or name == "winmail.dat":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError(f"{path} has no winmail.dat part")


@functools.cache
def _opened_msg(path: str) -> ContainerContents:
    """A corpus .msg opened once per test run (RTF de-encapsulation takes a second)."""
    return open_outlook_msg(_read(path))


def _attachments(contents: ContainerContents) -> list[ContainerItem]:
    return [item for item in contents.items if item.role == ROLE_ATTACHMENT]


def _names(contents: ContainerContents) -> list[str | None]:
    return [item.filename for item in _attachments(contents)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_corpus_has_the_tagged_containers() -> None:
    assert len(TNEF_RAW) == 6
    assert sorted(TNEF_MAILS) == [
        "mimekit/tnef/rich-text.eml",
        "mimekit/tnef/ukr.eml",
        "zbateson-mail-mime-parser/m4006.txt",
    ]
    assert len(MSG_RAW) == 6


# --- raw TNEF streams -------------------------------------------------------------------

# Attachment names per stream, as MimeKit's tests and tnefparse (cross-checked below) see them.
TNEF_RAW_NAMES = {
    "mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef": [
        "VIA_Nytt_1402.doc",
        "VIA_Nytt_1402.pdf",
        "VIA_Nytt_14021.htm",
    ],
    "mimekit/tnef/garbage-at-end.tnef": [],
    "mimekit/tnef/panic.tnef": ["image001.jpg", "image002.jpg", "image003.png"],
    "mimekit/tnef/two-files.tnef": ["AUTHORS", "README"],
    "mimekit/tnef/unicode-mapi-attr-name.tnef": [
        "spaconsole2.cfg",
        "image001.png",
        "image002.png",
        "image003.png",
    ],
    "mimekit/tnef/winmail.tnef": ["Untitled Attachment", "Untitled Attachment"],
}

# garbage-at-end ends in a stray byte; panic.tnef in 17 KB that are no TNEF attribute.
TNEF_RAW_FLAGS = {
    "mimekit/tnef/garbage-at-end.tnef": (FLAG_TRAILING_DATA,),
    "mimekit/tnef/panic.tnef": (FLAG_TRAILING_DATA,),
}


@pytest.mark.parametrize("path", TNEF_RAW)
def test_raw_tnef_streams_open_with_their_attachments(path: str) -> None:
    data = _read(path)
    assert is_tnef(data)
    assert is_tnef(data, "application/ms-tnef", "winmail.dat")
    assert not is_outlook_msg(data)

    contents = open_tnef(data)

    assert contents.kind == "tnef"
    assert contents.flags == TNEF_RAW_FLAGS.get(path, ())
    assert _names(contents) == TNEF_RAW_NAMES[path]
    assert all(item.data for item in _attachments(contents))


@pytest.mark.parametrize("path", TNEF_RAW)
def test_raw_tnef_attachments_agree_with_tnefparse(path: str) -> None:
    data = _read(path)
    library = TNEF(data)

    attachments = _attachments(open_tnef(data))

    assert len(attachments) == len(library.attachments)
    for item, theirs in zip(attachments, library.attachments, strict=True):
        assert item.filename == theirs.long_filename()
        # tnefparse drops trailing NULs of MAPI values and keeps the 16-byte object IID
        # in front of OLE storages; apart from that the bytes must be the same.
        content, library = item.data.rstrip(b"\x00"), theirs.data.rstrip(b"\x00")
        assert library.endswith(content)
        assert len(library) - len(content) in (0, 16)


def test_tnef_attachment_keeps_the_zeros_tnefparse_strips() -> None:
    data = _read("mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef")
    library_doc = TNEF(data).attachments[0].data

    doc, pdf, htm = _attachments(open_tnef(data))

    # The Word file is an OLE compound file: whole 512-byte sectors, the last one zero-padded.
    assert doc.data.startswith(CFB_SIGNATURE)
    assert len(doc.data) == 61952 == 121 * 512
    assert len(library_doc) == 61534
    assert doc.data[: len(library_doc)] == library_doc
    assert doc.data[len(library_doc) :] == bytes(61952 - 61534)
    assert pdf.data.startswith(b"%PDF-1.3")
    assert htm.data.startswith(b"<html")


def test_tnef_ole_storage_attachments_lose_their_interface_id() -> None:
    contents = open_tnef(_read("mimekit/tnef/winmail.tnef"))

    first, second = _attachments(contents)

    for item in (first, second):
        assert item.data.startswith(CFB_SIGNATURE)
        assert len(item.data) % 512 == 0
    assert [len(first.data), len(second.data)] == [29184, 68608]
    rtf = [item for item in contents.items if item.role == ROLE_BODY]
    assert [item.content_type for item in rtf] == ["application/rtf"]
    assert rtf[0].data.startswith(b"{\\rtf1")


def test_tnef_message_facts_are_read() -> None:
    panic = open_tnef(_read("mimekit/tnef/panic.tnef"))
    two_files = open_tnef(_read("mimekit/tnef/two-files.tnef"))

    assert panic.subject is not None and panic.subject.startswith("Fw: VIKTIGT:")
    assert (panic.from_name, panic.from_address) == ("Anders Wåglund", "anders.waglund@bifirm.com")
    assert panic.date == datetime(2016, 1, 12, 13, 14, 55, tzinfo=UTC)
    assert panic.body_text is not None and "From: Andreas Wallenberg" in panic.body_text
    assert panic.body_html is not None and panic.body_html.startswith("<html>")
    assert [item.content_type for item in _attachments(panic)] == [
        "image/jpeg",
        "image/jpeg",
        "image/png",
    ]
    assert _attachments(panic)[2].data.startswith(PNG_SIGNATURE)
    assert two_files.subject == "two files"
    assert two_files.date == datetime(1999, 10, 14, 2, 49, 9, tzinfo=UTC)
    assert [len(item.data) for item in _attachments(two_files)] == [244, 893]


@pytest.mark.parametrize("path", TNEF_RAW)
def test_tnef_item_bytes_hash_the_same_on_every_open(path: str) -> None:
    data = _read(path)

    first = [_sha256(item.data) for item in open_tnef(data).items]
    second = [_sha256(item.data) for item in open_tnef(data).items]

    assert first == second
    assert len(first) == len(TNEF_RAW_NAMES[path]) + len(
        [item for item in open_tnef(data).items if item.role == ROLE_BODY]
    )


# --- winmail.dat parts of mails ---------------------------------------------------------


def test_ukr_winmail_dat_has_both_bodies_in_koi8_r() -> None:
    payload = _winmail_part("mimekit/tnef/ukr.eml")
    assert is_tnef(payload, "application/ms-tnef", "winmail.dat")

    contents = open_tnef(payload)

    assert contents.flags == ()
    assert _attachments(contents) == []  # the stream carries bodies only
    assert [item.content_type for item in contents.items] == [
        "text/plain; charset=utf-8",
        "text/html; charset=utf-8",
    ]
    assert contents.body_text is not None and contents.body_text.startswith("шостий")
    assert contents.body_html is not None and "<p>шостий</p>" in contents.body_html
    assert contents.subject == "rr test 7"
    assert (contents.from_name, contents.from_address) == ("RR Tester 1", "rrtest1@xink.io")
    assert contents.message_id is not None and contents.message_id.startswith("<AM0PR0702MB")


def test_rich_text_winmail_dat_holds_embedded_messages() -> None:
    payload = _winmail_part("mimekit/tnef/rich-text.eml")

    contents = open_tnef(payload)

    assert contents.flags == ()
    kitten, train, party = _attachments(contents)
    assert kitten.filename == "kitten-playing-with-a-christmas-tree.jpg"
    assert kitten.data.startswith(JPEG_SIGNATURE) and len(kitten.data) == 375081
    for embedded in (train, party):
        assert embedded.content_type == TNEF_CONTENT_TYPE
        assert is_tnef(embedded.data)
        assert embedded.nested is not None and embedded.nested.flags == ()
    assert train.nested is not None and party.nested is not None
    assert train.nested.subject == "Build a train table"
    assert party.nested.subject == "Christmas Celebration!"
    assert party.nested.body_text is not None
    assert party.nested.body_text.startswith("It's time for everyone")
    (inner_kitten,) = _attachments(party.nested)
    assert inner_kitten.filename == kitten.filename
    assert _sha256(inner_kitten.data) == _sha256(kitten.data)


def test_winmail_dat_that_is_a_png_is_not_tnef() -> None:
    # zbateson's m4006.txt declares application/ms-tnef, name winmail.dat; it is a PNG.
    payload = _winmail_part("zbateson-mail-mime-parser/m4006.txt")
    assert payload.startswith(PNG_SIGNATURE)

    assert not is_tnef(payload, "application/ms-tnef", "winmail.dat")
    contents = open_tnef(payload)
    assert contents.flags == (FLAG_UNREADABLE,)
    assert contents.items == ()


@pytest.mark.parametrize("path", TNEF_MAILS)
def test_every_tnef_mail_part_opens_without_error(path: str) -> None:
    payload = _winmail_part(path)

    contents = open_tnef(payload)

    if is_tnef(payload):
        assert contents.flags == ()
        assert contents.items
    else:
        assert contents.flags == (FLAG_UNREADABLE,)


# --- Outlook .msg files -----------------------------------------------------------------

# What each .msg says about itself (inspected with extract-msg and olefile by hand).
MSG_FACTS: dict[str, dict[str, object]] = {
    "msgreader/EmailWithAttachments.msg": {
        "subject": "This is the subject",
        "from_name": "Kees",
        "from_address": "peterpan@neverland.com",
        "date": datetime(2016, 12, 3, 18, 8, 54, tzinfo=UTC),
        "attachments": ["peterpan.jpg", "tinkerbell.jpg"],
    },
    "msgreader/EmailWithInnerMailAndAttachments.msg": {
        "subject": "Outer mail",
        "from_name": None,
        "date": None,
        "attachments": ["OUTER 1.pdf", "OUTER 2.pdf", "Inner mail.msg"],
    },
    "msgreader/EmailWithMsgAttachment.msg": {
        "subject": "FW: Msg Attachment Test",
        "from_name": "Daniel Triendl",
        "from_address": "d.triendl@cp-solutions.at",
        "date": datetime(2025, 7, 22, 12, 15, 9, tzinfo=UTC),
        "attachments": ["Msg Attachment Test.msg"],
    },
    "msgreader/EmailWithSpecialCharsInSubject.msg": {
        "subject": "Un sujet bien défini Àéroport mañana être ouïe électricité così próxima à Ô",
        "from_name": "Julie Clarebots",
        "from_address": "Julie.Clarebots@qbere.com",
        "date": datetime(2024, 3, 27, 9, 14, 48, tzinfo=UTC),
        "date_raw": "Wed, 27 Mar 2024 09:14:48 +0000",
        "message_id": (
            "<CY5PR02MB8965DFCBCFAFD12DCFEB7465F6342@CY5PR02MB8965.namprd02.prod.outlook.com>"
        ),
        "attachments": [],
    },
    "msgreader/RtfWithShortRussianString.msg": {
        "subject": None,
        "from_name": None,
        "date": None,
        "attachments": [],
    },
    "spamscope-mail-parser/mail_outlook_1": {
        "subject": "Newsletter Prüfung Personalwesen / Prüfung Eröffnungsbilanz",
        "from_address": "NueblingV@w-vwa.de",
        "date": datetime(2017, 9, 18, 12, 0, 18, tzinfo=timezone(timedelta(hours=2))),
        "date_raw": "Mon, 18 Sep 2017 12:00:18 +0200",
        "message_id": "<20170918100018.6AE0948009C@www.w-vwa.de>",
        "to": "gaiser-schoenenborn@kreis-tuebingen.de",
        "attachments": [
            "newsletter.png",
            "spacer.gif",
            "image004.jpg",
            "image006.jpg",
            "image008.jpg",
        ],
    },
}


@pytest.mark.parametrize("path", MSG_RAW)
def test_outlook_msg_files_open_with_their_facts(path: str) -> None:
    data = _read(path)
    assert is_outlook_msg(data)
    assert is_outlook_msg(data, "application/octet-stream", "mail_outlook_1")
    assert not is_tnef(data)

    contents = _opened_msg(path)

    assert contents.kind == "outlook-msg"
    assert contents.flags == ()
    expected = MSG_FACTS[path]
    for field, value in expected.items():
        if field != "attachments":
            assert getattr(contents, field) == value, field
    assert _names(contents) == expected["attachments"]
    for item in _attachments(contents):
        assert item.data
    assert contents.body_text or contents.body_html


def test_outlook_msg_attachment_bytes_and_types() -> None:
    photos = _opened_msg("msgreader/EmailWithAttachments.msg")
    newsletter = _opened_msg("spamscope-mail-parser/mail_outlook_1")

    assert [(item.content_type, len(item.data)) for item in _attachments(photos)] == [
        ("image/jpeg", 39150),
        ("image/jpeg", 49353),
    ]
    assert all(item.data.startswith(JPEG_SIGNATURE) for item in _attachments(photos))
    png, gif, *jpegs = _attachments(newsletter)
    assert png.data.startswith(PNG_SIGNATURE) and len(png.data) == 100150
    assert gif.data.startswith(b"GIF89a")
    assert all(item.data.startswith(JPEG_SIGNATURE) for item in jpegs)


def test_outlook_msg_bodies_become_parts() -> None:
    newsletter = _opened_msg("spamscope-mail-parser/mail_outlook_1")
    russian = _opened_msg("msgreader/RtfWithShortRussianString.msg")

    assert [item.content_type for item in newsletter.items if item.role == ROLE_BODY] == [
        "text/plain; charset=utf-8",
        "text/html; charset=utf-8",
        "application/rtf",
    ]
    assert newsletter.body_text is not None and newsletter.body_text.startswith("Wenn Sie")
    # Only plain text and RTF are stored; the HTML comes out of the RTF (\fromhtml1).
    assert [item.content_type for item in russian.items] == [
        "text/plain; charset=utf-8",
        "application/rtf",
    ]
    assert russian.body_text is not None and "«Имя пользователя»" in russian.body_text
    assert russian.body_html is not None and "пользователя" in russian.body_html


def test_msg_with_a_msg_attached_opens_the_embedded_message() -> None:
    contents = _opened_msg("msgreader/EmailWithMsgAttachment.msg")

    (embedded,) = _attachments(contents)

    assert embedded.filename == "Msg Attachment Test.msg"
    assert embedded.content_type == OUTLOOK_MSG_CONTENT_TYPE
    assert embedded.nested is not None
    assert embedded.nested.subject == "Msg Attachment Test"
    assert embedded.nested.date == datetime(2025, 7, 22, 12, 14, 13, tzinfo=UTC)
    # Its bytes are a standalone .msg rebuilt from the embedded storage: it opens alike.
    assert embedded.data.startswith(CFB_SIGNATURE)
    assert is_outlook_msg(embedded.data)
    reopened = open_outlook_msg(embedded.data)
    assert reopened.flags == ()
    assert reopened.subject == embedded.nested.subject
    assert reopened.message_id == embedded.nested.message_id


def test_msg_with_inner_mail_opens_the_inner_attachments() -> None:
    contents = _opened_msg("msgreader/EmailWithInnerMailAndAttachments.msg")

    inner = _attachments(contents)[2]

    assert inner.nested is not None
    assert inner.nested.subject == "Inner mail"
    assert _names(inner.nested) == ["INNER 1.pdf", "INNER 2.pdf"]
    assert all(item.data.startswith(b"%PDF-") for item in _attachments(inner.nested))


def test_embedded_msg_beyond_max_depth_is_kept_but_not_opened() -> None:
    contents = open_outlook_msg(_read("msgreader/EmailWithMsgAttachment.msg"), max_depth=0)

    (embedded,) = _attachments(contents)

    assert embedded.nested is None
    assert embedded.data.startswith(CFB_SIGNATURE)
    assert contents.flags == (FLAG_TOO_DEEP,)


def test_embedded_msg_bytes_hash_the_same_on_every_open() -> None:
    data = _read("msgreader/EmailWithMsgAttachment.msg")

    first = [_sha256(item.data) for item in open_outlook_msg(data).items]
    second = [_sha256(item.data) for item in open_outlook_msg(data).items]

    assert first == second


# --- what is not a container, and broken containers -------------------------------------


def _plain_mail() -> bytes:
    message = EmailMessage()
    message["From"] = "someone@example.org"
    message["Subject"] = "not a container"
    message.set_content("hello")
    return message.as_bytes()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(_plain_mail(), id="eml"),
        pytest.param(_read("mimekit/messages/simple-embedded-message.eml"), id="corpus-eml"),
        pytest.param(PNG_SIGNATURE + bytes(64), id="png"),
    ],
)
def test_other_bytes_are_no_container(data: bytes) -> None:
    assert not is_tnef(data)
    assert not is_tnef(data, "application/ms-tnef", "winmail.dat")
    assert not is_outlook_msg(data)
    assert not is_outlook_msg(data, OUTLOOK_MSG_CONTENT_TYPE, "mail.msg")


def test_garbage_opens_as_unreadable() -> None:
    for contents in (
        open_tnef(b"garbage"),
        open_outlook_msg(b"garbage"),
        open_tnef(b""),
        open_outlook_msg(b""),
        open_tnef(b"\x78\x9f\x3e\x22"),  # the signature and nothing else
    ):
        assert contents.flags == (FLAG_UNREADABLE,)
        assert contents.items == ()
        assert contents.subject is None


def test_ole_file_that_is_no_message_is_unreadable_as_msg() -> None:
    # The Word document inside a corpus TNEF stream: a readable compound file, not a .msg.
    doc = _attachments(open_tnef(_read("mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef")))[0].data

    assert not is_outlook_msg(doc)
    assert not is_outlook_msg(doc, OUTLOOK_MSG_CONTENT_TYPE, "doc.msg")
    assert open_outlook_msg(doc).flags == (FLAG_UNREADABLE,)


@pytest.mark.parametrize("path", MSG_RAW)
def test_truncated_msg_is_flagged_not_raised(path: str) -> None:
    data = _read(path)
    half = data[: len(data) // 2]

    contents = open_outlook_msg(half)

    assert contents.flags in ((FLAG_UNREADABLE,), (FLAG_PARTLY_READ,))
    if contents.flags == (FLAG_UNREADABLE,):
        assert contents.items == ()
    assert is_outlook_msg(half, filename="forwarded.msg")


def test_truncated_msg_keeps_what_could_be_read() -> None:
    data = _read("spamscope-mail-parser/mail_outlook_1")
    complete = _opened_msg("spamscope-mail-parser/mail_outlook_1")

    contents = open_outlook_msg(data[: len(data) // 2])

    assert contents.flags == (FLAG_PARTLY_READ,)
    assert contents.subject == complete.subject
    assert _names(contents) == _names(complete)
    # What lay in the lost half is gone; what lay before it is byte for byte the same.
    assert _attachments(contents)[1].data == _attachments(complete)[1].data


def test_first_half_of_ole_msg_without_a_readable_structure_is_unreadable() -> None:
    data = _read("msgreader/EmailWithAttachments.msg")
    half = data[: len(data) // 2]

    assert not is_outlook_msg(half)
    assert open_outlook_msg(half).flags == (FLAG_UNREADABLE,)


def test_truncated_tnef_keeps_the_attachments_before_the_cut() -> None:
    data = _read("mimekit/tnef/winmail.tnef")
    complete = _attachments(open_tnef(data))

    contents = open_tnef(data[: len(data) // 2])

    assert FLAG_PARTLY_READ in contents.flags
    assert _attachments(contents)[0].data == complete[0].data


# --- built TNEF streams -----------------------------------------------------------------


def _attribute(level: int, attr_id: int, attr_type: int, value: bytes) -> bytes:
    header = struct.pack("<BHHI", level, attr_id, attr_type, len(value))
    return header + value + struct.pack("<H", sum(value) & 0xFFFF)


def _tnef(*attributes: bytes) -> bytes:
    version = _attribute(1, 0x9006, 8, struct.pack("<I", 0x10000))
    codepage = _attribute(1, 0x9007, 6, struct.pack("<II", 1252, 0))
    return struct.pack("<IH", 0x223E9F78, 1) + version + codepage + b"".join(attributes)


def _mapi_binary(prop_type: int, prop_id: int, value: bytes) -> bytes:
    padding = bytes(-len(value) % 4)
    return struct.pack("<HHII", prop_type, prop_id, 1, len(value)) + value + padding


def _attachment(title: bytes, *, data: bytes | None = None, mapi: bytes = b"") -> bytes:
    """An attachment: render data, title, optional attATTACHDATA, optional MAPI property."""
    attributes = [_attribute(2, 0x9002, 6, bytes(14)), _attribute(2, 0x8010, 1, title)]
    if data is not None:
        attributes.append(_attribute(2, 0x800F, 6, data))
    if mapi:
        attributes.append(_attribute(2, 0x9005, 6, struct.pack("<I", 1) + mapi))
    return b"".join(attributes)


def test_built_tnef_binary_value_keeps_its_trailing_zeros() -> None:
    value = b"PK\x03\x04 archive body" + bytes(7)
    stream = _tnef(_attachment(b"bundle.zip\x00", mapi=_mapi_binary(0x0102, 0x3701, value)))
    assert TNEF(stream).attachments[0].data == value.rstrip(b"\x00")  # the library's loss

    (item,) = open_tnef(stream).items

    assert item.data == value
    assert item.filename == "bundle.zip"


def test_built_tnef_code_page_title_is_decoded() -> None:
    stream = _tnef(_attachment("Résumé.txt\x00".encode("cp1252"), data=b"cv"))

    (item,) = open_tnef(stream).items

    assert item.filename == "Résumé.txt"
    assert item.data == b"cv"


def test_built_tnef_embedded_message_is_opened_as_nested() -> None:
    inner = _tnef(
        _attribute(1, 0x8004, 1, b"inner subject\x00"),
        _attachment(b"note.txt\x00", data=b"threat"),
    )
    outer = _tnef(
        _attribute(1, 0x8004, 1, b"outer subject\x00"),
        _attachment(b"Untitled\x00", mapi=_mapi_binary(0x000D, 0x3701, IMESSAGE_IID + inner)),
    )

    contents = open_tnef(outer)
    shallow = open_tnef(outer, max_depth=0)

    (embedded,) = contents.items
    assert contents.subject == "outer subject"
    assert embedded.content_type == TNEF_CONTENT_TYPE
    assert embedded.data == inner
    assert embedded.nested is not None
    assert embedded.nested.subject == "inner subject"
    assert [(item.filename, item.data) for item in embedded.nested.items] == [
        ("note.txt", b"threat")
    ]
    assert shallow.items[0].nested is None
    assert shallow.items[0].data == inner
    assert shallow.flags == (FLAG_TOO_DEEP,)


def test_built_tnef_checksum_mismatch_is_flagged_and_read() -> None:
    good = _attachment(b"a.txt\x00", data=b"original")
    stream = _tnef(good.replace(b"original", b"tampered"))

    contents = open_tnef(stream)

    assert contents.flags == (FLAG_CHECKSUM_MISMATCH,)
    assert [item.data for item in contents.items] == [b"tampered"]


def test_built_tnef_attachment_cut_before_its_data_is_flagged() -> None:
    stream = _tnef(_attribute(2, 0x9002, 6, bytes(14)))

    contents = open_tnef(stream)

    assert contents.items == ()
    assert contents.flags == (FLAG_ITEM_UNREADABLE,)


def test_built_tnef_that_would_take_quadratic_time_is_cut_short() -> None:
    # tnefparse copies the rest of the stream for every attribute: thousands of tiny
    # attributes in front of 8 MB would mean copying tens of gigabytes.
    tiny = _attribute(1, 0x800D, 4, b"\x02\x00")
    stream = _tnef(
        _attachment(b"first.txt\x00", data=b"kept"),
        tiny * 600,
        _attachment(b"big.bin\x00", data=bytes(8 * 1024 * 1024)),
    )

    contents = open_tnef(stream)

    assert contents.flags == (FLAG_PARTLY_READ,)
    assert [(item.filename, item.data) for item in contents.items] == [("first.txt", b"kept")]


@pytest.mark.parametrize(
    "bogus",
    [
        pytest.param(struct.pack("<I", 0xFFFFFFFF), id="claims-4-billion-properties"),
        pytest.param(
            struct.pack("<IHHI", 1, 0x1003, 0x0E08, 0xFFFFFFFF), id="claims-4-billion-values"
        ),
        pytest.param(b"\x01", id="no-room-for-a-count"),
    ],
)
def test_built_tnef_with_impossible_counts_is_read_around_them(bogus: bytes) -> None:
    # tnefparse trusts these counts: it would loop for hours or build billions of objects.
    stream = _tnef(
        _attribute(1, 0x8004, 1, b"subject\x00"),
        _attribute(1, 0x9003, 6, bogus),
        _attachment(b"after.txt\x00", data=b"still here"),
    )

    contents = open_tnef(stream)

    assert contents.flags == (FLAG_PARTLY_READ,)
    assert contents.subject == "subject"
    assert [(item.filename, item.data) for item in contents.items] == [("after.txt", b"still here")]


def test_built_tnef_embedded_message_with_impossible_counts_is_not_parsed() -> None:
    inner = _tnef(_attribute(1, 0x9003, 6, struct.pack("<I", 0xFFFFFFFF)))
    outer = _tnef(
        _attachment(b"Untitled\x00", mapi=_mapi_binary(0x000D, 0x3701, IMESSAGE_IID + inner)),
        _attachment(b"after.txt\x00", data=b"still here"),
    )

    contents = open_tnef(outer)

    assert FLAG_PARTLY_READ in contents.flags
    assert ("after.txt", b"still here") in [(item.filename, item.data) for item in contents.items]
