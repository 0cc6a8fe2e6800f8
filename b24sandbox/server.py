"""Server mode: the same request core behind a real HTTP server on localhost (demo, end-to-end tests, PBX
vendors). Portals are path-based: ``{base}/portal/{domain}/rest/…``; OAuth at ``{base}/oauth/…``; the demo
page at ``{base}/``. Events are delivered by a background worker, like Bitrix24's queue server."""

from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from b24sandbox.http import Request

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox

log = logging.getLogger("b24sandbox.server")


class _Handler(BaseHTTPRequestHandler):
    server_version = "b24sandbox"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    sandbox: Sandbox

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        request = Request(
            method=self.command,
            url=f"http://{host}{self.path}",
            headers={k: v for k, v in self.headers.items()},
            body=body,
            client=self.client_address[0],
        )
        response = self.sandbox.handle_request(request)
        if response.delay:
            time.sleep(response.delay)
        if response.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class EventWorker:
    """Delivers queued events off the request threads (so an app handling an event can call back)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="b24sandbox-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            try:
                self.sandbox.deliver_due()
            except Exception:  # never let one bad event stop delivery
                log.exception("event delivery failed")


class SandboxServer:
    def __init__(self, sandbox: Sandbox, host: str, port: int) -> None:
        handler = type("BoundHandler", (_Handler,), {"sandbox": sandbox})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.sandbox = sandbox
        bound_host, bound_port = self.httpd.server_address[:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="b24sandbox-http", daemon=True
        )
        self.worker = EventWorker(sandbox)

    def start(self) -> SandboxServer:
        self.sandbox._server = self
        self.sandbox._worker = self.worker
        self.worker.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.worker.stop()
        if self.sandbox._server is self:
            self.sandbox._server = None
            self.sandbox._worker = None

    def portal_url(self, domain: str) -> str:
        return f"{self.base_url}/portal/{domain}"

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    sandbox.allow_http = True  # the server speaks plain http
    return SandboxServer(sandbox, host, port).start()
