"""The Dovecot fixture itself: a real IMAP server with TLS, STARTTLS, APPEND and IDLE."""

from __future__ import annotations

import ssl

from imapclient import IMAPClient

from tests.dovecot import Dovecot


def tls_context(dovecot: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dovecot.ca_file))


def test_login_append_and_fetch_over_tls(dovecot: Dovecot) -> None:
    raw = b"From: a@b.dk\r\nSubject: hej\r\n\r\nhej\r\n"
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=True,
                    ssl_context=tls_context(dovecot), timeout=10) as client:
        client.login("intake", "secret")
        client.append("INBOX", raw)
        client.select_folder("INBOX")
        (uid,) = client.search("ALL")
        assert client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == raw
        assert b"IDLE" in client.capabilities() and b"MOVE" in client.capabilities()
    assert dovecot.maildir("intake").is_dir()


def test_starttls_port(dovecot: Dovecot) -> None:
    with IMAPClient("127.0.0.1", port=dovecot.starttls_port, ssl=False, timeout=10) as client:
        client.starttls(tls_context(dovecot))
        client.login("intake", "secret")
        assert client.select_folder("INBOX")[b"UIDVALIDITY"] > 0
