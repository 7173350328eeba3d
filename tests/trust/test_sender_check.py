"""Whether a mail's From is authenticated: DKIM checked against a real dnsmasq, and the
Authentication-Results of the admin's own server, including published provider headers."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import dkim
import pytest

from intake.service.settings import TrustSettings
from intake.trust.dkim import KeyLookup, build_resolver
from intake.trust.sender import (
    AUTHSERV_FAIL,
    AUTHSERV_PASS,
    DKIM_FAIL,
    DKIM_PASS,
    NO_FROM,
    NO_SIGNATURE,
    NOT_ALIGNED,
    NOT_CHECKED,
    SEVERAL_FROM,
    UNREADABLE,
    DnsTemporaryError,
    SenderCheck,
    aligned,
    check_sender,
)
from tests.dns_server import REFUSED_DOMAIN, TIMEOUT_DOMAIN, DkimDns

FIXTURES = Path(__file__).parent.parent / "fixtures" / "auth_headers"
BORDER = "mx.kommune.dk"


def mail(sender: str = "Ansat <ansat@example.dk>", body: bytes = b"Hej\r\nSe vedhaeftet.\r\n",
         extra: bytes = b"") -> bytes:
    """A small report mail with CRLF line ends."""
    return (extra + f"From: {sender}\r\n".encode() +
            b"To: chikanemail@kommune.dk\r\n"
            b"Subject: Beskeder fra i aftes\r\n"
            b"Date: Mon, 06 Apr 2026 09:15:00 +0200\r\n"
            b"Message-ID: <test-1@example.dk>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"\r\n" + body)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def by_server(*ids: str) -> TrustSettings:
    return TrustSettings(authserv_ids=ids or (BORDER,))


# --- DKIM, verified by us -------------------------------------------------------------


def test_a_signature_of_the_from_domain_authenticates(dkim_dns: DkimDns) -> None:
    result = check_sender(dkim_dns.sign(mail()), dkim_dns.settings())
    assert result == SenderCheck(DKIM_PASS, True, "ansat@example.dk", "example.dk")


def test_one_changed_body_byte_fails(dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail())
    tampered = signed.replace(b"vedhaeftet", b"vedhaeftEt")
    assert tampered != signed
    result = check_sender(tampered, dkim_dns.settings())
    assert (result.code, result.authenticated, result.domain) == (DKIM_FAIL, False, None)
    assert result.from_address == "ansat@example.dk"


def test_a_changed_from_header_fails(dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail("Ansat <ansat@example.dk>"))
    forged = signed.replace(b"From: Ansat <ansat@example.dk>", b"From: Chef <chef@example.dk>")
    result = check_sender(forged, dkim_dns.settings())
    assert (result.code, result.authenticated, result.from_address) == (
        DKIM_FAIL, False, "chef@example.dk")


def test_a_valid_signature_of_another_domain_is_not_aligned(dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail("Chef <chef@kommune.dk>"), domain="evil.dk")
    assert check_sender(signed, dkim_dns.settings()) == SenderCheck(
        NOT_ALIGNED, False, "chef@kommune.dk", None)


def test_relaxed_alignment_lets_the_organizational_domain_sign_for_a_subdomain(
        dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail("Skolen <MX@Skole.Kommune.dk>"), domain="kommune.dk")
    assert check_sender(signed, dkim_dns.settings()) == SenderCheck(
        DKIM_PASS, True, "mx@skole.kommune.dk", "kommune.dk")


def test_alignment_follows_the_public_suffix_list() -> None:
    assert aligned("kommune.dk", "skole.kommune.dk")
    assert aligned("mail.kommune.dk", "kommune.dk")
    assert not aligned("evil.dk", "kommune.dk")
    assert not aligned("dk", "kommune.dk")
    assert not aligned("one.github.io", "other.github.io")  # private PSL entries count
    assert aligned("xn--sren-gra.dk", "mail.søren.dk")


def test_a_mail_without_signature(dkim_dns: DkimDns) -> None:
    assert check_sender(mail(), dkim_dns.settings()) == SenderCheck(
        NO_SIGNATURE, False, "ansat@example.dk", None)


def test_a_2048_bit_key_split_over_two_dns_strings_verifies(dkim_dns: DkimDns) -> None:
    resolver = build_resolver(dkim_dns.dns_servers, 2.0)
    answer = resolver.resolve("long._domainkey.example.dk", "TXT", search=False)
    assert len(answer[0].strings[0]) == 255  # served as several strings
    signed = dkim_dns.sign(mail(), selector="long")
    assert check_sender(signed, dkim_dns.settings()).code == DKIM_PASS


def test_a_selector_without_key_fails(dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail(), selector="long").replace(b"s=long", b"s=gone")
    assert check_sender(signed, dkim_dns.settings()).code == DKIM_FAIL


def test_signatures_that_never_count(dkim_dns: DkimDns) -> None:
    """rsa-sha1 (RFC 8301) and a body length (l=, anyone may append) verify in dkimpy but
    never authenticate here."""
    key = dkim_dns.keys[("example.dk", "mail")].private_pem
    for options in ({"signature_algorithm": b"rsa-sha1"}, {"length": True}):
        raw = mail()
        signature = dkim.sign(raw, b"mail", b"example.dk", key,
                              canonicalize=(b"relaxed", b"relaxed"), **options)
        assert dkim.verify(signature + raw, dnsfunc=_lookup_via(dkim_dns))  # dkimpy says yes
        assert check_sender(signature + raw, dkim_dns.settings()).code == DKIM_FAIL


def test_two_from_fields_or_two_addresses_are_never_authenticated(dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail())
    second_field = signed.replace(b"To: ", b"From: chef@example.dk\r\nTo: ", 1)
    two_addresses = dkim_dns.sign(mail("ansat@example.dk, chef@example.dk"))
    group = mail("Team: ansat@example.dk, chef@example.dk;")
    for raw in (second_field, two_addresses, group):
        assert check_sender(raw, dkim_dns.settings()) == SenderCheck(
            SEVERAL_FROM, False, None, None)
        assert check_sender(raw, TrustSettings()).code == SEVERAL_FROM


def test_a_mail_without_from(dkim_dns: DkimDns) -> None:
    raw = mail().replace(b"From: Ansat <ansat@example.dk>\r\n", b"")
    assert check_sender(raw, dkim_dns.settings()) == SenderCheck(NO_FROM, False, None, None)
    assert check_sender(mail("undisclosed-recipients:;"), dkim_dns.settings()).code == NO_FROM


def test_a_dns_timeout_is_temporary(dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail(f"Ansat <ansat@{TIMEOUT_DOMAIN}>"), domain=TIMEOUT_DOMAIN)
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError):
        check_sender(signed, dkim_dns.settings(dns_timeout_seconds=0.3))
    assert time.monotonic() - started < 3.0


def test_a_refusing_server_is_temporary(dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail(f"Ansat <ansat@{REFUSED_DOMAIN}>"), domain=REFUSED_DOMAIN)
    with pytest.raises(DnsTemporaryError):
        check_sender(signed, dkim_dns.settings())


def test_a_server_nobody_runs_is_temporary(dkim_dns: DkimDns) -> None:
    settings = TrustSettings(dkim=True, dns_servers=("127.0.0.1:9",), dns_timeout_seconds=0.3)
    with pytest.raises(DnsTemporaryError):
        check_sender(dkim_dns.sign(mail()), settings)


def test_dns_trouble_of_a_domain_that_could_not_authenticate_is_no_reason_to_retry(
        dkim_dns: DkimDns) -> None:
    signed = dkim_dns.sign(mail(), domain=REFUSED_DOMAIN)  # From is example.dk
    assert check_sender(signed, dkim_dns.settings()).code == DKIM_FAIL
    both = dkim_dns.sign(dkim_dns.sign(mail(), domain=TIMEOUT_DOMAIN))  # aligned one first
    started = time.monotonic()
    assert check_sender(both, dkim_dns.settings(dns_timeout_seconds=1.0)).code == DKIM_PASS
    assert time.monotonic() - started < 0.9  # the slow signature was never looked up


def test_nothing_configured_checks_nothing(dkim_dns: DkimDns) -> None:
    result = check_sender(dkim_dns.sign(mail()), TrustSettings())
    assert result == SenderCheck(NOT_CHECKED, False, "ansat@example.dk", None)


def test_a_one_label_domain_such_as_localhost_is_read() -> None:
    # The embedded defaults take mail for chikanemail@localhost; the README's first mail
    # comes from ansat@localhost and must get its receipt, not be "unreadable".
    raw = (b"From: Mette Ansat <ansat@localhost>\r\nTo: chikanemail@localhost\r\n"
           b"Subject: Fwd: ubehagelig besked\r\n\r\nSe nedenfor.\r\n")
    assert check_sender(raw, TrustSettings()) == SenderCheck(
        NOT_CHECKED, False, "ansat@localhost", None)


# --- Authentication-Results of the admin's own server ---------------------------------


def test_the_topmost_trusted_dkim_pass_authenticates() -> None:
    raw = mail("Skolen <mx@skole.kommune.dk>", extra=(
        b"Authentication-Results: mx.kommune.dk; dkim=pass header.d=kommune.dk\r\n"
        b"Received: from mail.kommune.dk by mx.kommune.dk; Mon, 6 Apr 2026 09:15:01 +0200\r\n"))
    assert check_sender(raw, by_server()) == SenderCheck(
        AUTHSERV_PASS, True, "mx@skole.kommune.dk", "kommune.dk")
    assert check_sender(raw, by_server("MX.Kommune.DK")).authenticated  # ids ignore case


def test_header_i_names_the_domain_when_header_d_is_missing() -> None:
    raw = mail("Chef <chef@kommune.dk>", extra=(
        b"Authentication-Results: mx.kommune.dk;\r\n"
        b"\tdkim=pass (2048-bit key) header.i=@mail.kommune.dk header.s=mail\r\n"))
    assert check_sender(raw, by_server()).code == AUTHSERV_PASS


def test_an_attackers_header_below_the_trusted_run_is_ignored() -> None:
    raw = mail("Chef <chef@kommune.dk>", extra=(
        b"Authentication-Results: mx.kommune.dk; spf=pass smtp.mailfrom=evil.dk\r\n"
        b"Received: from evil.dk by mx.kommune.dk; Mon, 6 Apr 2026 09:15:01 +0200\r\n"
        b"Authentication-Results: mx.kommune.dk; dkim=pass header.d=kommune.dk;\r\n"
        b" dmarc=pass header.from=kommune.dk\r\n"))
    assert check_sender(raw, by_server()) == SenderCheck(
        AUTHSERV_FAIL, False, "chef@kommune.dk", None)


def test_another_authserv_id_is_ignored_and_ends_the_run() -> None:
    raw = mail("Chef <chef@kommune.dk>", extra=(
        b"Authentication-Results: mx.evil.dk; dkim=pass header.d=kommune.dk\r\n"
        b"Authentication-Results: mx.kommune.dk; dkim=pass header.d=kommune.dk\r\n"))
    assert check_sender(raw, by_server()).code == AUTHSERV_FAIL
    assert check_sender(raw, by_server("mx.evil.dk")).code == AUTHSERV_PASS


def test_an_unparseable_header_ends_the_run() -> None:
    raw = mail("Chef <chef@kommune.dk>", extra=(
        b"Authentication-Results: mx.kommune.dk; spf=pass smtp.mailfrom=kommune.dk;\r\n"
        b"Authentication-Results: mx.kommune.dk; dkim=pass header.d=kommune.dk\r\n"))
    assert check_sender(raw, by_server()).code == AUTHSERV_FAIL


def test_spf_pass_alone_is_not_authentication() -> None:
    raw = mail("Chef <chef@kommune.dk>", extra=(
        b"Authentication-Results: mx.kommune.dk; spf=pass smtp.mailfrom=chef@kommune.dk\r\n"))
    assert check_sender(raw, by_server()) == SenderCheck(
        AUTHSERV_FAIL, False, "chef@kommune.dk", None)


def test_dmarc_pass_alone_is_not_authentication() -> None:
    raw = mail("Chef <chef@kommune.dk>", extra=(
        b"Authentication-Results: mx.kommune.dk; dmarc=pass (p=reject) header.from=kommune.dk\r\n"
        b"Authentication-Results: mx.kommune.dk; dkim=fail header.d=kommune.dk\r\n"))
    assert check_sender(raw, by_server()).code == AUTHSERV_FAIL


def test_a_trusted_dkim_pass_for_another_domain_is_not_aligned() -> None:
    raw = mail("Chef <chef@kommune.dk>", extra=(
        b"Authentication-Results: mx.kommune.dk; dkim=pass header.d=evil.dk\r\n"))
    assert check_sender(raw, by_server()).code == NOT_ALIGNED


def test_both_configured_prefers_our_own_dkim_and_falls_back_on_the_server(
        dkim_dns: DkimDns) -> None:
    trusted = (b"Authentication-Results: mx.kommune.dk; dkim=pass header.d=kommune.dk\r\n")
    both = dkim_dns.settings(authserv_ids=(BORDER,))
    signed = trusted + dkim_dns.sign(mail("Chef <chef@kommune.dk>"), domain="kommune.dk")
    assert check_sender(signed, both).code == DKIM_PASS
    unsigned = mail("Chef <chef@kommune.dk>", extra=trusted)
    assert check_sender(unsigned, both) == SenderCheck(
        AUTHSERV_PASS, True, "chef@kommune.dk", "kommune.dk")
    slow = trusted + dkim_dns.sign(mail(f"Chef <chef@{TIMEOUT_DOMAIN}>"), domain=TIMEOUT_DOMAIN)
    slow = slow.replace(b"header.d=kommune.dk", f"header.d={TIMEOUT_DOMAIN}".encode())
    assert check_sender(slow, replace(both, dns_timeout_seconds=0.3)).code == AUTHSERV_PASS
    assert check_sender(mail("Chef <chef@kommune.dk>"), both).code == NO_SIGNATURE


# --- Published provider headers (tests/fixtures/auth_headers/README.md) ---------------


@pytest.mark.parametrize("name", ["microsoft-learn-email-authentication-about.eml",
                                  "microsoft-learn-message-headers-eop-mdo.eml",
                                  "microsoft-365-internal-tenant.eml"])
def test_exchange_online_results_are_never_trusted(name: str) -> None:
    """Exchange Online writes no authserv-id: whatever the admin lists, even with
    dkim=pass aligned and compauth=pass, nothing counts."""
    raw = fixture(name)
    for ids in (("contoso.com",), ("fabrikam.com",), ("protection.outlook.com",),
                ("spf=pass",), ("spf=none",), ("dkim=none",)):
        result = check_sender(raw, by_server(*ids))
        assert (result.code, result.authenticated) == (AUTHSERV_FAIL, False), (name, ids)


def test_internal_microsoft_365_mail_has_no_signature_to_check() -> None:
    settings = TrustSettings(dkim=True, authserv_ids=("contoso.com",))
    assert check_sender(fixture("microsoft-365-internal-tenant.eml"), settings) == SenderCheck(
        NO_SIGNATURE, False, "leder@contoso.com", None)


def test_gmails_own_results_are_not_on_top_of_a_delivered_mail() -> None:
    raw = fixture("google-gmail-delivered.eml")
    assert check_sender(raw, by_server("mx.google.com")).code == AUTHSERV_FAIL


def test_why_mx_google_com_must_never_be_listed() -> None:
    """Anyone can write Gmail's words on top of a mail sent straight to us."""
    raw = fixture("google-gmail-delivered.eml")
    start = raw.index(b"Authentication-Results: mx.google.com;")
    end = raw.index(b"From: ")
    forged = raw[start:end] + raw[end:]
    assert check_sender(forged, by_server("mx.google.com")).code == AUTHSERV_PASS


def test_postfix_with_opendkim_and_opendmarc() -> None:
    raw = fixture("opendmarc-issue-160.eml")
    assert check_sender(raw, by_server("mail.simonandkate.net")) == SenderCheck(
        AUTHSERV_PASS, True, "tasker@googlegroups.com", "googlegroups.com")
    assert check_sender(raw, by_server()).code == AUTHSERV_FAIL


def test_a_dmarc_pass_built_on_a_forged_dkim_result_is_not_trusted() -> None:
    raw = fixture("opendmarc-forged-pastebin.eml")
    assert check_sender(raw, by_server("mx.example.com")) == SenderCheck(
        AUTHSERV_FAIL, False, "user@example.com", None)


# --- Bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"",
    b"\r\n\r\nbody only",
    b"\xff\xfe\x00garbage",
    b" folded first line\r\nFrom: a@example.dk\r\n\r\n",
    b"From: a@example.dk\rBcc: x@example.dk\r\n\r\n",
    b"From : a@example.dk\r\n\r\n",
    b"From: \xe6\xf8 <a@example.dk>\r\n\r\n",
    b"From: =?utf-8?q?chef?=@kommune.dk\r\n\r\n",
    b"From: chef@kommune.dk <a@evil.dk>\r\n\r\n",
    b"From: a@[192.0.2.1]\r\n\r\n",
    b"From: a@b@c.dk\r\n\r\n",
    b"From: a@example.dk\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.dk; broken\r\n\r\nx",
    b"From: a@example.dk\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.dk; s=mail; "
    b"h=from; bh=AAAA; b=AAAA\r\n\r\nx",
    b"From: a@example.dk\r\nDKIM-Signature: \xff\r\n\r\nx",
])
def test_bad_input_never_raises_and_never_authenticates(dkim_dns: DkimDns, raw: bytes) -> None:
    for settings in (dkim_dns.settings(authserv_ids=(BORDER,)), TrustSettings()):
        result = check_sender(raw, settings)
        assert not result.authenticated
        assert result.code in {UNREADABLE, NO_FROM, SEVERAL_FROM, DKIM_FAIL, NOT_CHECKED}, raw


def _lookup_via(server: DkimDns) -> KeyLookup:
    """A dkimpy dnsfunc against the test server (to show what dkimpy alone would say)."""
    return KeyLookup(server.settings())
