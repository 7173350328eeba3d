"""A real Dovecot IMAP server for tests: its own config, Maildirs and passwd-file users.

Started from Debian's dovecot-imapd in the foreground on free ports of 127.0.0.1, with TLS
(a trustme certificate) on the implicit-TLS port and STARTTLS on the plain one. Mail is
delivered as the unprivileged `mail` user (Dovecot will not deliver as uid 0).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import trustme

from tests.support import free_port, wait_until

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


class Dovecot:
    """One private Dovecot instance under a base folder."""

    def __init__(self, base: Path, users: dict[str, str], ca: trustme.CA,
                 oauth_introspection_url: str | None = None) -> None:
        self.base = base
        self.users = users
        self.ca = ca
        self.oauth_introspection_url = oauth_introspection_url
        self.port = free_port()  # implicit TLS ("ssl")
        self.starttls_port = free_port()  # plain, STARTTLS offered
        self.process: subprocess.Popen[bytes] | None = None
        mail = pwd.getpwnam("mail")
        self.uid, self.gid = mail.pw_uid, mail.pw_gid
        self.ca_file = base / "ca.pem"
        self._write_config()

    @property
    def log_text(self) -> str:
        log = self.base / "dovecot.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def maildir(self, user: str) -> Path:
        """The user's Maildir."""
        return self.base / "mail" / user / "Maildir"

    def _write_config(self) -> None:
        for folder in ("run", "state", "mail"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        os.chown(self.base / "mail", self.uid, self.gid)
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        cert.cert_chain_pems[0].write_to_path(str(self.base / "cert.pem"))
        cert.private_key_pem.write_to_path(str(self.base / "key.pem"))
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        (self.base / "users").write_text(
            "".join(f"{user}:{{PLAIN}}{password}::::::\n"
                    for user, password in self.users.items()), encoding="utf-8")
        oauth = ""
        file_user_mechanisms = ""
        if self.oauth_introspection_url:
            # Without this the passwd-file passdb also answers XOAUTH2, and the user's
            # password would pass for a token.
            file_user_mechanisms = "\n  mechanisms = plain login"
            (self.base / "oauth2.conf").write_text(
                f"introspection_mode = post\nintrospection_url = "
                f"{self.oauth_introspection_url}\nusername_attribute = username\n"
                "active_attribute = active\nactive_value = true\n", encoding="utf-8")
            oauth = f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self.base}/oauth2.conf
}}"""
        (self.base / "dovecot.conf").write_text(f"""
base_dir = {self.base}/run
state_dir = {self.base}/state
log_path = {self.base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.base}/cert.pem
ssl_key = <{self.base}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
# Tests fail logins on purpose: answer them at once instead of after 2 s.
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_privileged_group = mail
imap_idle_notify_interval = 1 secs
protocol imap {{
  mail_max_userip_connections = 200
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.base}/users{file_user_mechanisms}
}}{oauth}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""", encoding="utf-8")

    def start(self) -> Dovecot:
        """Run Dovecot in the foreground until `stop`; wait until it accepts connections."""
        with open(self.base / "stderr.log", "ab") as stderr:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.base / "dovecot.conf")],
                stdout=subprocess.DEVNULL, stderr=stderr,
            )

        def accepting() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"dovecot exited: {self.log_text[-2000:]}"
                                     f"{(self.base / 'stderr.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.starttls_port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(accepting, timeout=30, interval=0.05, message="dovecot listening")
        return self

    def stop(self) -> None:
        """Stop Dovecot and wait until its ports are closed."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self.process = None

        def closed() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.starttls_port), timeout=1):
                    return False
            except OSError:
                return True

        wait_until(closed, timeout=30, interval=0.05, message="dovecot stopped")

    def restart(self) -> None:
        """Stop and start again (same ports, same mail)."""
        self.stop()
        self.start()
