"""A local RFC 3161 time-stamp authority for tests: a test CA made with the openssl CLI and a
small HTTP server that answers each query with `openssl ts -reply`.

The CA is a root, an intermediate and a TSA certificate (critical extendedKeyUsage
timeStamping) signed by the intermediate; the intermediate travels in every token
(`-chain`), so a verifier needs only the root, as with a public TSA. The server can be told
to answer 503, to answer garbage, to stamp another digest than the one asked for, to hang
without answering, or to be down (its port closed); it keeps every query it was sent and
every token it made.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Literal

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
# The TSA's policy in every token it issues (an OID under the documentation arc, RFC 5612).
TEST_POLICY = "1.3.6.1.4.1.32473.1.1"

Mode = Literal["reply", "unavailable", "garbage", "other-digest", "hang"]

_CA_CONFIG = """\
[ req ]
distinguished_name = dn
prompt = no

[ dn ]
CN = unused

[ v3_root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_intermediate ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_tsa ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

_TS_CONFIG = """\
[ tsa ]
default_tsa = test_tsa

[ test_tsa ]
dir = {directory}
serial = $dir/tsa-serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/intermediate.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl(*arguments: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the openssl CLI; its output as text, failing loudly (with stderr) on an error."""
    result = subprocess.run(["openssl", *map(str, arguments)], cwd=cwd, capture_output=True,
                            text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {arguments[0]} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class TsaFiles:
    """The files of a test TSA: the root a verifier trusts, and what the TSA signs with."""

    directory: Path
    root_pem: Path
    intermediate_pem: Path
    tsa_pem: Path
    tsa_key: Path
    ts_config: Path


def make_tsa_files(directory: Path, name: str = "Chikanemail test") -> TsaFiles:
    """Make a root CA, an intermediate CA and a TSA certificate under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_config = directory / "ca.cnf"
    ca_config.write_text(_CA_CONFIG, encoding="ascii")

    def key(stem: str) -> Path:
        path = directory / f"{stem}.key"
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", path)
        return path

    def certificate(stem: str, subject: str, extensions: str, serial: int,
                    issuer: tuple[Path, Path] | None) -> Path:
        private_key, pem = key(stem), directory / f"{stem}.pem"
        subj = f"/O={name}/CN={subject}"
        if issuer is None:
            openssl("req", "-config", ca_config, "-new", "-x509", "-key", private_key,
                    "-subj", subj, "-days", "3650", "-set_serial", str(serial),
                    "-extensions", extensions, "-out", pem)
            return pem
        csr = directory / f"{stem}.csr"
        openssl("req", "-config", ca_config, "-new", "-key", private_key, "-subj", subj,
                "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", issuer[0], "-CAkey", issuer[1],
                "-set_serial", str(serial), "-days", "3650", "-extfile", ca_config,
                "-extensions", extensions, "-out", pem)
        return pem

    root = certificate("root", f"{name} root CA", "v3_root", 1, None)
    intermediate = certificate("intermediate", f"{name} intermediate CA", "v3_intermediate",
                               2, (root, directory / "root.key"))
    tsa = certificate("tsa", f"{name} TSA", "v3_tsa", 3,
                      (intermediate, directory / "intermediate.key"))
    (directory / "tsa-serial").write_text("01\n", encoding="ascii")
    ts_config = directory / "ts.cnf"
    ts_config.write_text(_TS_CONFIG.format(directory=directory, policy=TEST_POLICY),
                         encoding="ascii")
    return TsaFiles(directory, root, intermediate, tsa, directory / "tsa.key", ts_config)


class LocalTsa:
    """An HTTP time-stamp authority on a free 127.0.0.1 port, answering with openssl.

    `mode` says how it answers from now on; `stop()` closes the port (the TSA is down) and
    `start()` opens the same port again. `queries` holds every query it was sent, `replies`
    every time-stamp response it made.
    """

    def __init__(self, authority: TsaFiles, work_dir: Path) -> None:
        self.authority = authority
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.mode: Mode = "reply"
        self.queries: list[bytes] = []
        self.replies: list[bytes] = []
        self.port = 0
        self._lock = threading.Lock()  # one openssl at a time: they share the serial file
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._count = 0
        self._release = threading.Event()  # ends a hanging answer

    @property
    def url(self) -> str:
        """Where to POST queries."""
        return f"http://127.0.0.1:{self.port}/tsr"

    def start(self) -> LocalTsa:
        """Listen (on the port it had before, if any) and answer in a background thread."""
        self._release.clear()
        server = HTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self.port = int(server.server_address[1])
        self._server = server
        # A short poll interval: `stop()` waits for the loop to notice.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name="test-tsa", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: connections are refused until `start()`."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> LocalTsa:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, query: bytes) -> tuple[int, str, bytes]:
        """The HTTP status, content type and body the TSA sends for a query."""
        if self.mode == "hang":
            self.queries.append(query)
            self._release.wait(30)
            return 503, "text/plain", b"gave up hanging\n"
        with self._lock:
            self.queries.append(query)
            self._count += 1
            if self.mode == "unavailable":
                return 503, "text/plain", b"TSA unavailable (test)\n"
            if self.mode == "garbage":
                return 200, REPLY_TYPE, b"\x30\x03not a time-stamp response"
            query_file = self.work_dir / f"query-{self._count}.tsq"
            if self.mode == "other-digest":
                openssl("ts", "-query", "-digest", "ab" * 32, "-sha256", "-cert",
                        "-out", query_file)
            else:
                query_file.write_bytes(query)
            reply_file = self.work_dir / f"reply-{self._count}.tsr"
            authority = self.authority
            openssl("ts", "-reply", "-config", authority.ts_config, "-queryfile", query_file,
                    "-signer", authority.tsa_pem, "-inkey", authority.tsa_key,
                    "-chain", authority.intermediate_pem, "-out", reply_file)
            reply = reply_file.read_bytes()
            self.replies.append(reply)
            return 200, REPLY_TYPE, reply


def _handler_for(tsa: LocalTsa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            query = self.rfile.read(length)
            if self.headers.get("Content-Type") != QUERY_TYPE:
                status, content_type, body = 415, "text/plain", b"wrong content type\n"
            else:
                status, content_type, body = tsa.answer(query)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # keep test output quiet

    return Handler
