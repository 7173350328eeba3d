"""The SMTP load of the fault tests: a separate process (spawned, like a real MTA) that
sends numbered mails to the intake address over a few connections and retries a mail that
got no 250, with the same bytes, after reconnecting. It writes one JSON line per try to a
ledger: which mail, its SHA-256, the reply code (None: no reply), whether it got 250, when
the try began and when it ended.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tests.support import INTAKE_ADDRESS

DEADLINE = 60.0


def load_mail(run: str, number: int, *, report_every: int,
              reporters: int | None = None) -> tuple[str, bytes]:
    """Mail `number` of the load `run`: its envelope sender and its bytes (distinct, a few
    hundred bytes, CRLF, no dot-stuffing). Every `report_every`-th is a report (it opens a
    case); the others carry `Auto-Submitted: auto-generated` and are filed without one. The
    sender is one of `reporters` employees, or one of its own without a number."""
    reporter = f"ansat{number % reporters if reporters else number}@kommune.example"
    automatic = "" if number % report_every == 0 else "Auto-Submitted: auto-generated\r\n"
    return reporter, (
        f"From: Ansat {number} <{reporter}>\r\nTo: <{INTAKE_ADDRESS}>\r\n"
        f"Subject: Chikane {run} nummer {number}\r\n"
        f"Message-ID: <load-{run}-{number}@kommune.example>\r\n{automatic}\r\n"
        + f"Beskrivelse {number}: en grim besked.\r\n" * 8).encode()


class Flag(Protocol):
    """A `multiprocessing` event, as far as the load uses it."""

    def is_set(self) -> bool: ...


def run_load(port: int, mail: Callable[[int], tuple[str, bytes]], ledger_path: str, *,
             connections: int, count: int | None = None, finish: Flag | None = None,
             pause: float = 0.05) -> None:
    """Send mails 0, 1, 2, ... (`mail(n)` gives the envelope sender and the bytes) until
    `count` mails or, without a count, until `finish` is set; each until it got 250."""
    lock = threading.Lock()
    numbers = iter(range(count if count is not None else 10**9))
    with open(ledger_path, "a", encoding="utf-8") as ledger:

        def record(number: int, sha256: str, began: float, code: int | None,
                   error: str = "") -> None:
            with lock:
                ledger.write(json.dumps({"n": number, "sha256": sha256, "ok": code == 250,
                                         "code": code, "error": error, "began": began,
                                         "at": time.time()}) + "\n")
                ledger.flush()

        def next_number() -> int | None:
            if finish is not None and finish.is_set():
                return None
            with lock:
                return next(numbers, None)

        def connection_loop(client: int) -> None:
            connection: smtplib.SMTP | None = None
            number = next_number()
            while number is not None:
                mail_from, raw = mail(number)
                sha256 = hashlib.sha256(raw).hexdigest()
                began = time.time()
                try:
                    if connection is None:
                        connection = smtplib.SMTP("127.0.0.1", port, timeout=DEADLINE,
                                                  local_hostname=f"mta{client}.test")
                    refused = connection.sendmail(mail_from, [INTAKE_ADDRESS], raw)
                    if refused:
                        raise smtplib.SMTPRecipientsRefused(refused)
                except smtplib.SMTPResponseException as error:
                    record(number, sha256, began, error.smtp_code, str(error.smtp_error))
                    _close(connection)
                    connection = None
                except (smtplib.SMTPException, OSError) as error:
                    record(number, sha256, began, None, f"{type(error).__name__}: {error}")
                    _close(connection)
                    connection = None
                else:
                    record(number, sha256, began, 250)
                    number = next_number()
                    continue
                time.sleep(pause)  # a sender's back-off before it retries
            if connection is not None:
                connection.quit()

        threads = [threading.Thread(target=connection_loop, args=(client,))
                   for client in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _close(connection: smtplib.SMTP | None) -> None:
    if connection is not None:
        connection.close()


@dataclass
class Ledger:
    """What the load process has written so far."""

    path: Path

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def accepted(self) -> dict[int, str]:
        """The mails that got 250: number -> SHA-256."""
        return {int(e["n"]): str(e["sha256"]) for e in self.entries() if e["ok"]}
