"""Helpers the tests share: polling with a deadline, a daemon in a thread, test configs."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from intake.cases.routing import RoutingSettings
from intake.commands.cli.main import main
from intake.service.config import CONFIG_ENV_VAR, AppConfig
from intake.service.daemon import ReadyInfo, serve
from intake.service.settings import (
    ExtractSettings,
    IntakeSettings,
    SmtpSettings,
    TrustSettings,
    WorkerSettings,
)
from intake.web.settings import WebSettings
from notifier.clock import Clock
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings
from storage.database import Database
from storage.messages import list_messages
from storage.models import Message
from storage.settings import StorageSettings

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = REPO_ROOT.parent / "shared" / "corpus"
INTAKE_ADDRESS = "chikanemail@kommune.example"
MANAGER = "leder@kommune.example"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def write_toml(path: Path, tables: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write a TOML file made of the given tables. A config (it has [storage]) that says
    nothing of [web] gets the web view off: daemons of tests running side by side would all
    want its default port."""
    if "storage" in tables and "web" not in tables:
        tables = {**tables, "web": {"enabled": False}}
    lines: list[str] = []
    for table, keys in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in keys.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def wait_until(predicate: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll until the predicate returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def make_config(data_dir: Path, database_url: str, **smtp_overrides: Any) -> AppConfig:
    """A config for tests: its own data dir and database, SMTP on a free port."""
    intake_overrides = smtp_overrides.pop("intake", {})
    worker_overrides = smtp_overrides.pop("worker", {})
    notify_overrides = smtp_overrides.pop("notify", {})
    routing_overrides = smtp_overrides.pop("routing", {})
    extract_overrides = smtp_overrides.pop("extract", {})
    plan_overrides = smtp_overrides.pop("plan", {})
    trust_overrides = smtp_overrides.pop("trust", {})
    smtp = SmtpSettings(port=0, server_hostname="chikanemail.test", **smtp_overrides)
    return AppConfig(
        source="(test)",
        storage=StorageSettings(data_dir=str(data_dir), database_url=database_url),
        smtp=smtp,
        intake=replace(IntakeSettings(addresses=(INTAKE_ADDRESS,)), **intake_overrides),
        worker=replace(WorkerSettings(processes=1, poll_seconds=0.2, retry_seconds=0.0),
                       **worker_overrides),
        extract=replace(ExtractSettings(), **extract_overrides),
        routing=replace(RoutingSettings(default_manager=MANAGER), **routing_overrides),
        notify=replace(NotifySettings(poll_seconds=0.2, first_retry_seconds=0.05),
                       **notify_overrides),
        plan=replace(PlanSettings(), **plan_overrides),
        trust=replace(TrustSettings(), **trust_overrides),
        # The web view on a free port of its own: tests run side by side.
        web=WebSettings(listen="127.0.0.1:0"),
    )


class DaemonThread:
    """Runs `intake.service.daemon.serve` on an event loop in a background thread."""

    def __init__(self, config: AppConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock
        self.ready_info: ReadyInfo | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, name="test-daemon", daemon=True)

    @property
    def smtp_address(self) -> tuple[str, int]:
        assert self.ready_info is not None and self.ready_info.smtp_address is not None
        return self.ready_info.smtp_address

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def main() -> int:
            self._stop = asyncio.Event()
            return await serve(self.config, stop=self._stop, on_ready=self._on_ready,
                               handle_signals=False, clock=self.clock)

        try:
            self.exit_code = loop.run_until_complete(main())
        except BaseException as error:  # reported to the test thread
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    def _on_ready(self, info: ReadyInfo) -> None:
        self.ready_info = info
        self._ready.set()

    def start(self) -> DaemonThread:
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError("daemon did not become ready within 60 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "daemon did not stop within 60 s"
        if self._error is not None:
            raise self._error

    def __enter__(self) -> DaemonThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port nobody listens on right now (for daemons started as processes)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chikanemail_command() -> list[str]:
    """The console script of the environment running the tests."""
    return [sys.executable, "-c", "from intake.commands.cli.main import main; main()"]


@contextmanager
def daemon_process(config_file: Path, log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`chikanemail serve` as a real process; killed at the end if still running."""
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [*chikanemail_command(), "--config", str(config_file), "serve"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def port_accepts(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    wait_until(lambda: port_accepts(port), timeout=timeout, interval=0.05,
               message=f"port {port}")


# PostgreSQL runs on this machine (trust auth); each test gets a schema of its own.
POSTGRES_URL = os.environ.get(
    "CHIKANEMAIL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose search path is a new, empty schema, dropped afterwards."""
    schema = f"chik_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_cli(args: list[str], env: Mapping[str, str | None] | None = None) -> Result:
    """Invoke the real click group in-process; CHIKANEMAIL_CONFIG is unset unless given."""
    environment: dict[str, str | None] = {CONFIG_ENV_VAR: None}
    environment.update(env or {})
    return CliRunner(env=environment).invoke(main, args)


def describe(result: Result) -> str:
    """What to print when a CLI assertion fails."""
    return (f"exit={result.exit_code} exception={result.exception!r}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")


def message_rows(database_url: str) -> list[Message]:
    """Every message row of the database at this URL, newest first (its own connection)."""
    database = Database(database_url)
    try:
        return list_messages(database)
    finally:
        database.dispose()
