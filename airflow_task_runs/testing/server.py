"""The emulator's HTTP machinery: a real server on 127.0.0.1, a request log, fault injection.

Each cloud's emulator subclasses :class:`EmulatorServer` and implements :meth:`handle`;
the server, keep-alive, recording and faults are shared.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FAULT_KINDS = ("status", "reset", "slow", "malformed", "truncated")


@dataclass
class Request:
    method: str
    raw_path: str  # path and query exactly as on the request line
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.raw_path).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.raw_path).query, keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass
class Fault:
    """One injected misbehaviour, used ``times`` times on requests whose path starts with ``match``.

    kinds: ``status`` (answer ``status`` with ``headers``/``body``), ``reset`` (close the
    socket without an answer), ``slow`` (sleep ``delay`` then answer normally),
    ``malformed`` (200 with a body that is not JSON), ``truncated`` (a body shorter than its
    Content-Length).
    """

    kind: str
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    match: str | None = None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 drops connections when many triggers poll at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Injected resets make clients hang up mid-answer; that is expected, not news."""


class EmulatorServer:
    """A threaded HTTP/1.1 server; subclasses answer requests in :meth:`handle`."""

    name = "emulator"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
        handler = _make_handler(self)
        self._httpd = _QuietServer((host, port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"{self.name}-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the emulator first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the emulator first"
        host = str(self._httpd.server_address[0])
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    # -- faults and the request log ----------------------------------------------------------
    def inject(self, kind: str, times: int = 1, **options: Any) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        fault = Fault(kind=kind, times=times, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and (fault.match is None or request.path.startswith(fault.match)):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r for r in self.requests if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- to implement ------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        raise NotImplementedError


def _make_handler(server: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                raw_path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            with server._lock:
                server.requests.append(request)
            fault = server._take_fault(request)
            if fault is not None:
                if fault.kind == "reset":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault.kind == "slow":
                    time.sleep(fault.delay)
                elif fault.kind == "status":
                    payload = fault.body if fault.body is not None else b'{"message": "injected fault"}'
                    self._send(Reply(fault.status, payload, {"Content-Type": "application/json", **fault.headers}))
                    return
                elif fault.kind == "malformed":
                    self._send(Reply(200, fault.body or b'{"runs": [{"run_id": ', {"Content-Type": "application/json"}))
                    return
                elif fault.kind == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "4096")
                    self.end_headers()
                    self.wfile.write(b'{"partial": tr')
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
            try:
                reply = server.handle(request)
            except Exception as exc:  # an emulator bug should look like a 500, not a hang
                reply = Reply.json(500, {"message": f"emulator error: {type(exc).__name__}: {exc}"})
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    return Handler
