"""The web view served by uvicorn on the daemon's own event loop.

A listener that cannot bind (the port taken, an address not on this machine) is logged and
written to the web status file, which `chikanemail health` reads; mail intake goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import uvicorn

from intake.web.app import build_app
from intake.web.context import WebContext
from intake.web.status import write_status

log = logging.getLogger("chikanemail.web")

# Connections still open this long after the stop are closed.
GRACEFUL_SHUTDOWN_SECONDS = 5.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers (the daemon's stop it) and with an event for
    'listening'."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """The daemon handles SIGTERM and SIGINT; uvicorn must not take them over."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then say so."""
        await super().startup(sockets=sockets)
        self.listening.set()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; OSError when it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named, not 0 (as socket.create_server leaves it): asyncio turns Nagle off
    # (TCP_NODELAY) only on connections of a listener whose proto is IPPROTO_TCP. Without it
    # a response written in two parts waits for the client's delayed ACK: 40 ms a request.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind((host, port))
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    return listener


def _with_bound_port(context: WebContext, listener: socket.socket) -> WebContext:
    """With port 0 (tests) and no base_url, links must name the port the system chose."""
    web = context.web
    if web.base_url or web.port != 0:
        return context
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    bound = replace(web, listen=f"{shown}:{port}")
    return replace(context, config=replace(context.config, web=bound))


class WebServer:
    """The running web view: started by the daemon, stopped before the database closes."""

    def __init__(self, context: WebContext, status_path: Path) -> None:
        self.context = context
        self.status_path = status_path
        self.address: tuple[str, int] | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int] | None:
        """Bind and start serving; the address, or None (logged) when it cannot bind."""
        web = self.context.web
        try:
            listener = bind_socket(web.host, web.port)
        except OSError as error:
            problem = f"cannot listen on {web.listen}: {error.strerror or error}"
            log.error("web view not started: %s (mail intake goes on)", problem)
            await asyncio.to_thread(write_status, self.status_path, address=None,
                                    error=problem)
            return None
        self.context = _with_bound_port(self.context, listener)
        config = uvicorn.Config(build_app(self.context), log_config=None, access_log=False,
                                lifespan="off", proxy_headers=False, server_header=False,
                                timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_SECONDS))
        server = _EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[listener]), name="web-server")
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait([task, listening], return_when=asyncio.FIRST_COMPLETED)
        if not server.listening.is_set():
            listening.cancel()
            listener.close()
            problem = f"the web server stopped at start on {web.listen}"
            with contextlib.suppress(BaseException):
                task.result()
            log.error("web view not started: %s (mail intake goes on)", problem)
            await asyncio.to_thread(write_status, self.status_path, address=None,
                                    error=problem)
            return None
        name = listener.getsockname()
        self.address = (str(name[0]), int(name[1]))
        self._server, self._task = server, task
        await asyncio.to_thread(write_status, self.status_path, address=self.address,
                                error=None)
        log.info("web view listening on %s:%d base_url=%s", self.address[0], self.address[1],
                 self.context.base_url)
        return self.address

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (briefly), then close."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, GRACEFUL_SHUTDOWN_SECONDS * 2)
        except TimeoutError:
            log.warning("web view did not stop in time; its connections were cut")
        self._server = self._task = None
