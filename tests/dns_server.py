"""A real DNS server for DKIM tests: Debian's dnsmasq on 127.0.0.1, serving DKIM keys.

`DkimDns.start()` generates one RSA key per signing domain, starts dnsmasq (package
dnsmasq-base) in the foreground on a free port with each public key as a TXT record, and
polls it until it answers. `sign()` DKIM-signs a mail with dkimpy so that the keys served
here verify it. Runs as root or as any other user (dnsmasq's debug mode changes no user and
writes no pid file; the port is above 1024).

Names it serves (selector `mail` unless said otherwise):

- `mail._domainkey.<domain>` for `example.dk`, `kommune.dk` and `evil.dk`, 1024-bit keys;
  a From in `skole.kommune.dk` aligns with d=kommune.dk;
- `long._domainkey.example.dk`, a 2048-bit key: its TXT record is longer than one DNS
  character-string (255 bytes) and is served as several;
- anything else under those domains: NXDOMAIN (dnsmasq answers them from its own data);
- `TIMEOUT_DOMAIN` (`slow.dk`): forwarded to a UDP socket that never answers, so a lookup
  times out after `dns_timeout_seconds`;
- `REFUSED_DOMAIN` (`broken.dk`) and every other domain: REFUSED, the way a resolver
  without upstream servers fails (dnspython's NoNameservers, as for SERVFAIL).
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dkim
import dkim.util
import dns.exception
import dns.nameserver
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from intake.service.settings import TrustSettings
from tests.support import free_port

DNSMASQ = "/usr/sbin/dnsmasq"
SELECTOR = "mail"
LONG_SELECTOR = "long"
SIGNING_DOMAINS = ("example.dk", "kommune.dk", "evil.dk")
TIMEOUT_DOMAIN = "slow.dk"
REFUSED_DOMAIN = "broken.dk"
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id")
_TXT_STRING_BYTES = 255  # RFC 1035: one character-string holds at most 255 bytes
_START_ATTEMPTS = 3
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SigningKey:
    """A private key (PKCS#1 PEM, as dkimpy wants it) and its DKIM DNS record."""

    private_pem: bytes
    record: str

    @classmethod
    def generate(cls, bits: int) -> SigningKey:
        """A fresh RSA key of `bits` bits."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        private_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
        public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode("ascii")
        return cls(private_pem, record)


def txt_record_option(name: str, text: str) -> str:
    """dnsmasq's --txt-record for `text`, split into 255-byte character-strings.

    dnsmasq takes a TXT record's strings as comma-separated values (quotes are for its
    config file; in an argument they would be served as part of the text). A DKIM record of
    a 2048-bit key (about 410 bytes) is given as two strings, which DKIM verifiers join.
    `text` must not contain a comma (a DKIM record has none).
    """
    data = text.encode("ascii")
    chunks = [data[start:start + _TXT_STRING_BYTES]
              for start in range(0, len(data), _TXT_STRING_BYTES)]
    if "," in text:
        raise ValueError("a comma would split the TXT record")
    return f"--txt-record={name}," + ",".join(chunk.decode("ascii") for chunk in chunks)


@dataclass
class DkimDns:
    """dnsmasq serving DKIM keys, and a signer that uses those keys.

    Use `dns_servers` (or `settings()`) in `TrustSettings`, `sign()` to sign a raw mail, and
    `stop()` when done (the `dkim_dns` pytest fixture does both ends).
    """

    work_dir: Path
    keys: dict[tuple[str, str], SigningKey] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _silent: socket.socket | None = None

    @property
    def dns_servers(self) -> tuple[str, ...]:
        """The `[trust] dns_servers` value that points at this server."""
        return (f"127.0.0.1:{self.port}",)

    def settings(self, **overrides: Any) -> TrustSettings:
        """`TrustSettings` with DKIM checking on against this server (2 s DNS timeout)."""
        base = TrustSettings(dkim=True, dns_servers=self.dns_servers, dns_timeout_seconds=2.0)
        return replace(base, **overrides)

    def sign(self, raw: bytes, domain: str = "example.dk", *, selector: str = SELECTOR,
             headers: tuple[bytes, ...] = SIGNED_HEADERS) -> bytes:
        """`raw` with a DKIM-Signature (relaxed/relaxed, rsa-sha256) for d=`domain` on top.

        Signs From, To, Subject, Date and Message-ID by default. A domain this server has
        no key for (`slow.dk`, `broken.dk`) is signed with example.dk's key: the signature is
        well formed and its key lookup fails the way that domain's DNS does.
        """
        key = self.keys.get((domain, selector)) or self.keys[("example.dk", SELECTOR)]
        signature = dkim.sign(raw, selector.encode("ascii"), domain.encode("ascii"),
                              key.private_pem, canonicalize=(b"relaxed", b"relaxed"),
                              include_headers=list(headers),
                              linesep=dkim.util.get_linesep(raw))
        return bytes(signature) + raw

    def start(self) -> DkimDns:
        """Generate the keys, start dnsmasq and wait until it answers."""
        for domain in SIGNING_DOMAINS:
            self.keys[(domain, SELECTOR)] = SigningKey.generate(1024)
        self.keys[("example.dk", LONG_SELECTOR)] = SigningKey.generate(2048)
        self._silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._silent.bind(("127.0.0.1", 0))  # receives forwarded queries, never answers
        last_error = ""
        for _ in range(_START_ATTEMPTS):  # a free port can be taken before dnsmasq binds it
            self.port = free_port()
            self.process = self._spawn()
            try:
                self._wait_until_answering()
                return self
            except RuntimeError as error:
                last_error = str(error)
                self._terminate()
        self.stop()
        raise RuntimeError(f"dnsmasq did not start: {last_error}")

    def stop(self) -> None:
        """Stop dnsmasq and close the silent socket."""
        self._terminate()
        if self._silent is not None:
            self._silent.close()
            self._silent = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self._silent is not None
        silent_port = self._silent.getsockname()[1]
        options = [
            "--no-daemon", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--conf-file=/dev/null", "--log-facility=-",
            *(f"--local=/{domain}/" for domain in SIGNING_DOMAINS),
            f"--server=/{TIMEOUT_DOMAIN}/127.0.0.1#{silent_port}",
            *(txt_record_option(f"{selector}._domainkey.{domain}", key.record)
              for (domain, selector), key in self.keys.items()),
        ]
        log = (self.work_dir / "dnsmasq.log").open("ab")
        try:
            return subprocess.Popen([DNSMASQ, *options], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def _wait_until_answering(self) -> None:
        """Ask for a served key until dnsmasq answers; fail if it exits or at the deadline."""
        assert self.process is not None
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", self.port)]
        resolver.lifetime = 0.5
        name = f"{SELECTOR}._domainkey.{SIGNING_DOMAINS[0]}"
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"dnsmasq exited with {self.process.returncode}: "
                                   f"{self._log_tail()}")
            try:
                resolver.resolve(name, "TXT", search=False)
                return
            except dns.exception.DNSException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer within {_START_TIMEOUT_S} s: {self._log_tail()}")
            time.sleep(0.02)

    def _terminate(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def _log_tail(self) -> str:
        path = self.work_dir / "dnsmasq.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def start_dkim_dns() -> DkimDns:
    """A started `DkimDns` in a temporary folder of its own (call `stop_dkim_dns` after)."""
    if not Path(DNSMASQ).exists():
        raise RuntimeError(f"{DNSMASQ} is missing (Debian package dnsmasq-base)")
    work_dir = Path(tempfile.mkdtemp(prefix="chik-dnsmasq-"))
    try:
        return DkimDns(work_dir).start()
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise


def stop_dkim_dns(server: DkimDns) -> None:
    """Stop the server and remove its folder."""
    server.stop()
    shutil.rmtree(server.work_dir, ignore_errors=True)
