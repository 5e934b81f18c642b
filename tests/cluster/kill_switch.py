"""Killing the operator at exact points of its work, from outside: a tap on its API traffic.

The operator under test is given a kubeconfig whose server is this tap, a plain-HTTP listener on
loopback; the tap forwards every request over TLS to the real API server with the credentials of
the test bed's kubeconfig and streams the answers back (watch streams included). Nothing
in the operator knows: no test hook exists in its code.

Each request the operator makes is parsed far enough (method, path, JSON body) to be matched
against ``KillPoint``s, in order. When the next armed point's request passes, the tap lets the
API server answer it, then holds every later write (POST, PUT, PATCH, DELETE) of the operator
and SIGKILLs it; a write that was never sent is lost with the process, exactly as if the kill
had come between the two. A point whose following write does not come within ``settle`` seconds
(the operator went on to wait) is killed then. Reads always pass.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dbmigrate.controller.kube import load_api_client

WRITES = ("POST", "PUT", "PATCH", "DELETE")
HOP_HEADERS = ("connection", "keep-alive", "transfer-encoding", "content-length")


@dataclass(frozen=True)
class Request:
    """One request of the operator, as the tap saw it."""

    method: str
    path: str
    body: Any

    @property
    def is_write(self) -> bool:
        return self.method in WRITES

    def status(self) -> dict[str, Any]:
        """The ``status`` of a status patch (empty for anything else)."""
        if self.method != "PATCH" or not self.path.split("?")[0].endswith("/status"):
            return {}
        return (self.body or {}).get("status") or {} if isinstance(self.body, dict) else {}


@dataclass(frozen=True)
class KillPoint:
    """Kill the operator right after the first request (from now on) that ``matches`` was
    answered, or, with ``before``, instead of sending it."""

    name: str
    matches: Callable[[Request], bool]
    before: bool = False


@dataclass
class _Armed:
    point: KillPoint
    seen: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)


class KillSwitch:
    """The tap (see the module docstring); ``arm(point)``, then ``wait_killed()``."""

    def __init__(self, kubeconfig: Path, kill: Callable[[], None], settle: float = 1.0) -> None:
        conf = load_api_client(str(kubeconfig)).configuration
        host = conf.host.split("://", 1)[1]
        self.upstream = (host.rsplit(":", 1)[0], int(host.rsplit(":", 1)[1]))
        self.tls = ssl.create_default_context(cafile=conf.ssl_ca_cert)
        self.tls.load_cert_chain(conf.cert_file, conf.key_file)
        self.kill_operator = kill
        self.settle = settle
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.log: list[Request] = []
        self.in_flight: set[tuple[int, str, float]] = set()  # requests not answered yet
        self.errors: list[str] = []  # connections that ended in an error (the operator's kill)
        self._armed: _Armed | None = None
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def kubeconfig(self, folder: Path) -> Path:
        """A kubeconfig that sends the operator through the tap (no credentials of its own)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "tap", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "tap", "user": {}}],
            "contexts": [{"name": "tap", "context": {"cluster": "tap", "user": "tap"}}],
            "current-context": "tap",
        }
        path = folder / "tap-kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        return path

    # --- the test's side ---------------------------------------------------------------------

    def arm(self, point: KillPoint) -> None:
        with self._lock:
            self._armed = _Armed(point)

    def wait_killed(self, timeout: float) -> bool:
        """Whether the armed point was reached and the operator killed within ``timeout``."""
        armed = self._armed
        assert armed is not None, "arm a point first"
        if not armed.seen.wait(timeout):
            return False
        if not armed.answered.wait(30):
            return False
        if not armed.killed.wait(self.settle + 10):
            return False
        with self._lock:
            self._armed = None
        return True

    def writes(self, predicate: Callable[[Request], bool]) -> list[Request]:
        with self._lock:
            return [r for r in self.log if r.is_write and predicate(r)]

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    # --- the tap -----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """One connection of the operator: its requests in turn, each sent upstream on one TLS
        connection of this thread and its answer streamed back (re-chunked)."""
        host, port = self.upstream
        upstream = http.client.HTTPSConnection(host, port, context=self.tls, timeout=400)
        reader = client.makefile("rb")
        try:
            while True:
                head, body = _read_request(reader)
                if head is None:
                    return
                request = _parse(head, body)
                if request.is_write and self._must_hold():
                    self._kill(self._armed)
                    return
                with self._lock:
                    self.log.append(request)
                    armed = self._armed
                    hit = armed is not None and not armed.seen.is_set()
                    hit = hit and armed is not None and armed.point.matches(request)
                if hit and armed is not None and armed.point.before:
                    armed.seen.set()
                    armed.answered.set()  # nothing is sent: the kill comes instead
                    self._kill(armed)
                    return
                if hit and armed is not None:
                    armed.seen.set()
                    threading.Thread(target=self._kill_after_settle, args=(armed,)).start()
                key = (id(request), f"{request.method} {request.path}", time.monotonic())
                self.in_flight.add(key)
                try:
                    answer = _send(upstream, request, body, _headers(head))
                    if hit and armed is not None:
                        armed.answered.set()
                    _relay(answer, client, request.method)
                finally:
                    self.in_flight.discard(key)
        except (OSError, http.client.HTTPException) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            upstream.close()
            _close(client)

    def _must_hold(self) -> bool:
        armed = self._armed
        return armed is not None and armed.seen.is_set()

    def _kill_after_settle(self, armed: _Armed) -> None:
        armed.answered.wait(30)
        time.sleep(self.settle)
        self._kill(armed)

    def _kill(self, armed: _Armed | None) -> None:
        if armed is None:
            return
        armed.answered.wait(30)  # the point's own write took effect before the kill
        with self._lock:
            if armed.killed.is_set():
                return
            self.kill_operator()
            armed.killed.set()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _headers(head: bytes) -> dict[str, str]:
    """The request's headers to send upstream (framing is http.client's)."""
    out = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() not in HOP_HEADERS:
            out[name.strip()] = value.strip()
    return out


def _send(
    upstream: http.client.HTTPSConnection, request: Request, body: bytes, headers: dict[str, str]
) -> http.client.HTTPResponse:
    """Send the request; once more on a fresh connection if the kept one had been closed."""
    for attempt in (1, 2):
        try:
            upstream.request(request.method, request.path, body or None, headers)
            return upstream.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            upstream.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _relay(answer: http.client.HTTPResponse, client: socket.socket, method: str) -> None:
    """The API server's answer to the operator, its body chunked as it arrives (watches)."""
    lines = [f"HTTP/1.1 {answer.status} {answer.reason}"]
    lines += [f"{k}: {v}" for k, v in answer.getheaders() if k.lower() not in HOP_HEADERS]
    bodyless = method == "HEAD" or answer.status in (204, 304)
    lines.append("Content-Length: 0" if bodyless else "Transfer-Encoding: chunked")
    client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if bodyless:
        answer.read()
        return
    while chunk := answer.read1(65536):
        client.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    answer.read()  # a sized body's end: lets the connection carry the next request
    client.sendall(b"0\r\n\r\n")


def _read_request(reader: Any) -> tuple[bytes | None, bytes]:
    """One HTTP/1.1 request: its head (request line and headers) and its body."""
    head = b""
    while True:
        line = reader.readline(65536)
        if not line:
            return None, b""
        head += line
        if line in (b"\r\n", b"\n"):
            break
    length = 0
    chunked = False
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size_line = reader.readline()
            body += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            chunk = reader.read(size + 2)
            body += chunk
            if size == 0:
                return head, body
    return head, reader.read(length) if length else b""


def _parse(head: bytes, body: bytes) -> Request:
    method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    try:
        parsed = json.loads(body) if body and not body.startswith(b"0\r\n") else None
    except ValueError:
        parsed = None
    return Request(method, path, parsed)
