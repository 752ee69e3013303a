"""The emulator's HTTP machinery: a real server on 127.0.0.1, a request log, fault injection.

Each cloud's emulator subclasses :class:`EmulatorServer` and implements :meth:`handle`;
the server, keep-alive, recording and faults are shared.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FAULT_KINDS = (
    "status",
    "reset",
    "slow",
    "malformed",
    "truncated",
    "reset_mid_body",
    "short_length",
    "long_length",
    "html",
    "deep",
    "huge",
    "trickle",
)


@dataclass
class Request:
    method: str
    raw_path: str  # path and query exactly as on the request line
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)
    #: when its answer (or misbehaviour) was sent in full; None while still being sent
    answered: float | None = None

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

    kinds, with the real answer where one is sent:

    - ``status``: answer ``status`` with ``headers`` / ``body`` (429 + Retry-After, 5xx bursts).
    - ``reset``: close the socket without an answer; ``slow``: sleep ``delay``, then answer.
    - ``malformed``: 200 with ``body`` (default: JSON cut short) and a JSON content type.
    - ``truncated``: the first half of the real body under its full Content-Length, then close.
    - ``reset_mid_body``: the first half of the real body, then a TCP reset (RST).
    - ``short_length``: the whole real body under a Content-Length of half of it.
    - ``long_length``: the whole real body under a Content-Length 64 bytes longer, then close.
    - ``html``: ``200 text/html``, a proxy's or portal's page instead of the API's answer.
    - ``deep``: 200 JSON nested ``depth`` levels (``{"a": [[[...]]]}``, ~2 bytes a level).
    - ``huge``: 200 valid JSON of ``size`` bytes, chunked (no Content-Length to refuse it by);
      with ``in_value``, the bytes are one ``data[0].value`` (an output's value, not its structure).
    - ``trickle``: the real answer ``trickle_bytes`` (default 1) every ``delay`` s (default 0.5);
      its status line and headers too when ``trickle_headers``.

    ``match`` limits a fault to paths starting with it; ``target`` to requests whose
    ``x-amz-target`` header (AWS JSON protocols, e.g. ``GetLogEvents``) contains it.
    """

    kind: str
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    match: str | None = None
    target: str | None = None
    depth: int = 100_000
    size: int = 64 * 1024 * 1024
    in_value: bool = False
    trickle_headers: bool = False
    trickle_bytes: int = 1

    def applies_to(self, request: Request) -> bool:
        if self.times <= 0 or (self.match is not None and not request.path.startswith(self.match)):
            return False
        return self.target is None or self.target in request.headers.get("x-amz-target", "")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 drops connections when many triggers poll at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Injected resets make clients hang up mid-answer; that is expected, not news."""


class EmulatorServer:
    """A threaded HTTP/1.1 server; subclasses answer requests in :meth:`handle`."""

    name = "emulator"
    #: status reads the demo's runs spend running (seed_demo); :meth:`real_airflow_pace` raises it
    demo_running_polls = 2

    def real_airflow_pace(self) -> dict[str, Any]:
        """Settings that let a real Airflow (scheduler and triggerer as processes) keep up.

        The scheduler can see a deferred task's process exit seconds late, and a trigger firing
        before that makes Airflow fail the resumed task ("state changed externally", a race of
        its own): no demo run may end within ~8 s of its sensor deferring. ``dag.test()`` has no
        such race, so ``make demo`` and the tests keep the quick default.
        """
        return {"demo_running_polls": 8}

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
                if fault.applies_to(request):
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
            try:
                if fault is None or not self._misbehave(fault, request):
                    self._send(self._answer(request))
                request.answered = time.monotonic()
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: expected under faults
                self.close_connection = True

        def _answer(self, request: Request) -> Reply:
            try:
                return server.handle(request)
            except Exception as exc:  # an emulator bug should look like a 500, not a hang
                return Reply.json(500, {"message": f"emulator error: {type(exc).__name__}: {exc}"})

        def _misbehave(self, fault: Fault, request: Request) -> bool:
            """Act out ``fault``; False when the normal answer should follow (``slow``)."""
            kind = fault.kind
            if kind == "reset":
                self._hang_up()
                return True
            if kind == "slow":
                time.sleep(fault.delay)
                return False
            if kind == "status":
                payload = fault.body if fault.body is not None else b'{"message": "injected fault"}'
                self._send(Reply(fault.status, payload, {"Content-Type": "application/json", **fault.headers}))
            elif kind == "malformed":
                self._send(Reply(200, fault.body or b'{"runs": [{"run_id": ', {"Content-Type": "application/json"}))
            elif kind == "html":
                page = fault.body or b"<!DOCTYPE html><html><body><h1>Sign in to the network</h1></body></html>"
                self._send(Reply(200, page, {"Content-Type": "text/html; charset=utf-8", **fault.headers}))
            elif kind == "deep":
                nested = b'{"a": ' + b"[" * fault.depth + b"]" * fault.depth + b"}"
                self._send(Reply(200, nested, {"Content-Type": "application/json", **fault.headers}))
            elif kind == "huge":
                self._send_huge(fault)
            else:
                self._send_broken(fault, self._answer(request))
            return True

        def _head(self, status: int, headers: dict[str, str]) -> bytes:
            phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            lines = [f"HTTP/1.1 {status} {phrase}"] + [f"{name}: {value}" for name, value in headers.items()]
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

        def _send_broken(self, fault: Fault, reply: Reply) -> None:
            """The real answer, cut, mis-sized or trickled (see :class:`Fault`)."""
            body = reply.body
            headers = {name: value for name, value in reply.headers.items() if name.lower() != "content-length"}
            sent_length = {"short_length": len(body) // 2, "long_length": len(body) + 64}.get(fault.kind, len(body))
            head = self._head(reply.status, {**headers, "Content-Length": str(sent_length)})
            self.close_connection = True
            if fault.kind == "trickle":
                delay = fault.delay or 0.5
                if not fault.trickle_headers:
                    self.wfile.write(head)
                    self.wfile.flush()
                data = (head if fault.trickle_headers else b"") + body
                for start in range(0, len(data), fault.trickle_bytes):
                    time.sleep(delay)
                    self.wfile.write(data[start : start + fault.trickle_bytes])
                    self.wfile.flush()
                return
            if fault.kind in ("truncated", "reset_mid_body"):
                body = body[: len(body) // 2]
            self.wfile.write(head + body)
            self.wfile.flush()
            if fault.kind == "reset_mid_body":
                self._hang_up(rst=True)
            else:
                self.connection.shutdown(socket.SHUT_RDWR)

        def _send_huge(self, fault: Fault) -> None:
            head = self._head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
            self.close_connection = True
            self.wfile.write(head)
            piece = b"a" * 65536
            head_part, tail = (b'{"data": [{"value": "', b'"}]}') if fault.in_value else (b'{"pad": "', b'"}')
            parts = [head_part] + [piece] * max(0, (fault.size - 12) // len(piece)) + [tail]
            for part in parts:
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _hang_up(self, rst: bool = False) -> None:
            self.close_connection = True
            try:
                if rst:  # SO_LINGER 0: close() sends a reset instead of a clean end
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
