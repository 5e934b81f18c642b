"""A real webhook receiver for the notification tests: an HTTP server on 127.0.0.1 in a thread.

It answers each POST from a script of (status, delay) (200 at once when the script is empty)
and records what it received, so a test sees exactly the requests the operator made.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "T0KEN-s3cr3t-abc123"  # the part of a webhook URL that must never leak


@dataclass
class Receiver:
    """The receiver's script, its port and the requests it got (path, content type, body)."""

    script: list[tuple[int, float]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "hooks") -> str:
        return f"http://127.0.0.1:{self.port}/{path}/{TOKEN}"

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        """The bodies received (on ``/path/...`` only, when given), in order."""
        with self.lock:
            return [
                r["body"]
                for r in self.requests
                if path is None or r["path"].startswith(f"/{path}/")
            ]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received(path)) < count and time.monotonic() < deadline:
            time.sleep(0.2)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """Start a receiver on a free loopback port; stop it afterwards."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            with state.lock:
                state.requests.append(
                    {"path": self.path, "type": self.headers.get("Content-Type"), "body": body}
                )
                status, delay = state.script.pop(0) if state.script else (200, 0.0)
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up waiting (the slow case): nobody to answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed): connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
