"""The environment's proxy (HTTP(S)_PROXY, NO_PROXY), worker and triggerer alike.

Through a real forward proxy on 127.0.0.1: the worker's httpx client and the triggerer's
aiohttp-backed transport each look the proxy up from the environment, so both are checked.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from airflow_task_runs.core.errors import ApiError
from airflow_task_runs.ncp.hooks import NclueHook

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ForwardProxy:
    """Forwards plain-HTTP requests (absolute URIs) to their origin. A CONNECT is answered as
    ``tunnel`` says: ``refuse`` (403), ``hang-up`` (200, then the far end closes during the TLS
    handshake) or ``stall`` (200, then nothing comes back)."""

    def __init__(self) -> None:
        self.seen: list[str] = []  # "GET http://..." / "CONNECT host:443"
        self.tunnel = "refuse"
        self._stop = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_CONNECT(self) -> None:
                proxy.seen.append(f"CONNECT {self.path}")
                if proxy.tunnel != "refuse":
                    self.send_response(200, "Connection established")
                    self.end_headers()
                    self.wfile.flush()
                    if proxy.tunnel == "stall":
                        proxy._stop.wait(30)
                    self.close_connection = True
                    return
                body = b"tunnels are not allowed here"
                self.send_response(403, "Forbidden by policy")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _forward(self) -> None:
                proxy.seen.append(f"{self.command} {self.path}")
                target = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
                upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
                try:
                    path = target.path + (f"?{target.query}" if target.query else "")
                    upstream.request(self.command, path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy(monkeypatch) -> Iterator[ForwardProxy]:
    """A proxy the environment names for http and https, and no NO_PROXY (whatever the machine sets)."""
    server = ForwardProxy()
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, server.url)
        monkeypatch.setenv(name.lower(), server.url)
    yield server
    server.stop()


def _both(hook_factory, run_id: str) -> list[str]:
    """The run's status read by the worker's client, then by the triggerer's."""

    async def in_the_triggerer() -> str:
        hook = hook_factory()
        try:
            return (await hook.aget_status(run_id)).raw_status
        finally:
            await hook.aclose()

    return [hook_factory().get_status(run_id).raw_status, asyncio.run(in_the_triggerer())]


def _only_all_proxy(monkeypatch, url: str) -> None:
    """The environment names ``url`` in ALL_PROXY and nothing in HTTP(S)_PROXY, either spelling."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("ALL_PROXY", url)


def _triggerer_read(conn_id: str, run_id: str) -> None:
    """The status read as the triggerer makes it (async, its own event loop)."""

    async def read() -> None:
        hook = NclueHook(ncp_conn_id=conn_id)
        try:
            await hook.aget_status(run_id)
        finally:
            await hook.aclose()

    asyncio.run(read())


def _errors(conn_id: str, run_id: str) -> list[str]:
    """The status read's ApiError through connection ``conn_id``, in the worker, then in the triggerer."""
    errors = []
    for read in (lambda: NclueHook(ncp_conn_id=conn_id).get_status(run_id), lambda: _triggerer_read(conn_id, run_id)):
        with pytest.raises(ApiError) as caught:
            read()
        errors.append(str(caught.value))
    return errors


def test_status_reads_go_through_the_environments_proxy_worker_and_triggerer(ncp, proxy):
    emu, run_id = ncp
    assert _both(NclueHook, run_id) == ["in_progress", "in_progress"]
    path = f"/api/v1/task-runs/{run_id}"
    assert proxy.seen == [f"GET {emu.url}{path}"] * 2  # absolute URIs: a forward proxy's requests
    assert len(emu.requests_to(path)) == 2  # and the signature still checked out at the emulator


def test_no_proxy_sends_them_direct(ncp, proxy, monkeypatch):
    emu, run_id = ncp
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    assert _both(NclueHook, run_id) == ["in_progress", "in_progress"]
    assert proxy.seen == []
    assert len(emu.requests_to(f"/api/v1/task-runs/{run_id}")) == 2


def test_a_proxy_refusing_the_tunnel_is_named_with_the_variables_to_check(ncp, proxy, monkeypatch):
    """An https API behind a proxy that answers CONNECT 403: the same error, worker and triggerer."""
    emu, run_id = ncp
    conn = emu.airflow_connection()
    conn["host"] = "https://nclue.example.invalid"  # never resolved here: the proxy is asked to tunnel
    conn["extra"].update({"retry_max_attempts": 1})
    monkeypatch.setenv("AIRFLOW_CONN_NCP_BEHIND_PROXY", json.dumps(conn))
    errors = _errors("ncp_behind_proxy", run_id)
    for text in errors:
        assert "the proxy refused the request to https://nclue.example.invalid" in text, text
        assert "HTTPS_PROXY / NO_PROXY" in text, text
    assert "403" in errors[1]  # the triggerer's names the proxy's answer
    assert proxy.seen == ["CONNECT nclue.example.invalid:443"] * 2


def test_all_proxy_alone_is_used_by_the_worker_and_the_triggerer(ncp, proxy, monkeypatch):
    """ALL_PROXY, the only variable set: httpx's worker client uses it, and so must the triggerer."""
    emu, run_id = ncp
    _only_all_proxy(monkeypatch, proxy.url)
    assert _both(NclueHook, run_id) == ["in_progress", "in_progress"]
    assert proxy.seen == [f"GET {emu.url}/api/v1/task-runs/{run_id}"] * 2


def test_an_unreachable_proxy_is_named_with_its_variable_not_blamed_on_the_api(ncp, proxy, monkeypatch):
    """The environment names a proxy nothing listens on (its password never shown): the error says
    the proxy could not be reached, and where it came from, in the worker and in the triggerer."""
    import socket

    emu, run_id = ncp
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed once the with block ends: connections are refused
    dead = f"http://squid-user:proxy-secret@127.0.0.1:{port}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, dead)
    conn = emu.airflow_connection()
    conn["extra"].update({"retry_max_attempts": 1})
    monkeypatch.setenv("AIRFLOW_CONN_NCP_DEAD_PROXY", json.dumps(conn))
    for text in _errors("ncp_dead_proxy", run_id):
        # both spellings are set: the lower-case one is the one used, and named
        assert f"cannot reach the proxy http://127.0.0.1:{port} that http_proxy names for {emu.url}" in text, text
        assert "or add the host to NO_PROXY" in text, text
        assert "proxy-secret" not in text and "squid-user" not in text, text
    assert emu.requests_to(f"/api/v1/task-runs/{run_id}") == []


@pytest.mark.parametrize("tunnel", ["hang-up", "stall"])
def test_a_host_failing_behind_a_working_proxy_is_not_called_an_unreachable_proxy(ncp, proxy, monkeypatch, tunnel):
    """The proxy opens the tunnel (200), then the TLS handshake with the host is cut off or never
    answered: the proxy was reached, so the error says the host could not be reached through it."""
    emu, run_id = ncp
    proxy.tunnel = tunnel
    conn = emu.airflow_connection()
    conn["host"] = "https://nclue.example.invalid"  # only the proxy resolves it (it never does here)
    conn["extra"].update({"retry_max_attempts": 1, "connect_timeout": 0.5, "read_timeout": 5})
    monkeypatch.setenv("AIRFLOW_CONN_NCP_TUNNELLED", json.dumps(conn))
    errors = _errors("ncp_tunnelled", run_id)
    for text in errors:
        assert f"could not connect to https://nclue.example.invalid through the proxy {proxy.url}" in text, text
        assert "verify" not in text, text  # not called a TLS misconfiguration, whichever way the cut shows
    assert proxy.seen == ["CONNECT nclue.example.invalid:443"] * 2


def test_a_handshake_outliving_the_time_budget_is_named_as_the_budget_not_the_proxy(ncp, proxy, monkeypatch):
    """Through a proxy too, a request whose whole time budget ran out says so (raise
    retry_max_elapsed / read_timeout), not that the proxy could not be reached."""
    emu, run_id = ncp
    proxy.tunnel = "stall"
    conn = emu.airflow_connection()
    conn["host"] = "https://nclue.example.invalid"
    conn["extra"].update(
        {"retry_max_attempts": 1, "connect_timeout": 10, "read_timeout": 0.4, "retry_max_elapsed": 0.4}
    )
    monkeypatch.setenv("AIRFLOW_CONN_NCP_SLOW_TUNNEL", json.dumps(conn))
    for text in _errors("ncp_slow_tunnel", run_id):
        assert "time budget" in text, text
        assert "proxy" not in text, text


def test_a_socks_proxy_is_refused_by_name_in_the_triggerer_not_spoken_to_as_http(ncp, proxy, monkeypatch):
    """aiohttp speaks only to HTTP proxies: an ALL_PROXY of socks5:// (common on desktops) is named
    with the ways out, once, and nothing is sent to it as plain HTTP."""
    import socket

    emu, run_id = ncp
    with socket.socket() as socks:
        socks.bind(("127.0.0.1", 0))
        socks.listen()
        socks.settimeout(0.2)
        port = socks.getsockname()[1]
        _only_all_proxy(monkeypatch, f"socks5://user:socks-secret@127.0.0.1:{port}")
        with pytest.raises(ApiError) as caught:
            _triggerer_read("ncp_default", run_id)
        with pytest.raises(TimeoutError):
            socks.accept()  # nothing connected to the SOCKS port
    text = str(caught.value)
    assert f"{emu.url}: ALL_PROXY names the proxy socks5://127.0.0.1:{port} for it" in text, text
    assert "AIRFLOW_TASK_RUNS_ASYNC_TRANSPORT=httpx" in text and "NO_PROXY" in text, text
    assert "socks-secret" not in text, text
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://squid-user:proxy-secret@proxy.corp:3128", "http://proxy.corp:3128"),
        ("http://u:p@[::1]:3128", "http://[::1]:3128"),
        ("https://[fd00::5]", "https://[fd00::5]"),
    ],
)
def test_a_proxy_is_shown_without_its_credentials_and_ipv6_hosts_keep_their_brackets(url, shown):
    from airflow_task_runs.core.http import EnvironmentProxy

    assert EnvironmentProxy("HTTP_PROXY", url).shown == shown


def test_a_socks_proxy_without_socksio_is_named_in_the_worker(ncp, proxy, monkeypatch):
    """httpx uses a SOCKS proxy only with socksio: without it, its ImportError named neither the
    variable nor the host. The error now names both, without the proxy's credentials."""
    import importlib.util

    from airflow_task_runs.core.errors import TaskRunsError

    if importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed: httpx speaks SOCKS")
    emu, run_id = ncp
    _only_all_proxy(monkeypatch, "socks5://user:socks-secret@127.0.0.1:1080")
    with pytest.raises(TaskRunsError) as caught:
        NclueHook().get_status(run_id)
    text = str(caught.value)
    assert f"{emu.url}: ALL_PROXY names the SOCKS proxy socks5://127.0.0.1:1080 for it" in text, text
    assert "install httpx[socks]" in text and "NO_PROXY" in text, text
    assert "socks-secret" not in text, text


@pytest.mark.parametrize("where", ["worker", "triggerer"])
def test_a_malformed_proxy_url_is_refused_without_its_credentials(ncp, proxy, monkeypatch, caplog, where):
    """aiohttp's InvalidURL quoted the proxy URL whole, password included, into the error and the
    retry warning. The error names the variable and what is wrong; no log line has the password."""
    import logging

    _, run_id = ncp
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://squid-user:proxy-secret@proxy.corp:99999")
    caplog.set_level(logging.DEBUG)
    read = (
        (lambda: NclueHook().get_status(run_id))
        if where == "worker"
        else (lambda: _triggerer_read("ncp_default", run_id))
    )
    with pytest.raises(Exception) as caught:
        read()
    text = str(caught.value)
    assert "proxy-secret" not in text and "squid-user" not in text, text
    assert "proxy-secret" not in caplog.text
    if where == "triggerer":
        assert "http_proxy names the proxy http://proxy.corp:99999 for it, but that is not a valid URL" in text, text
        assert caught.value.retryable is False


def test_the_proxy_variable_named_is_the_one_in_use(monkeypatch):
    """Both spellings set: the lower-case one is used (as urllib and httpx read them), so it is named."""
    import httpx

    from airflow_task_runs.core.http import environment_proxy

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://upper.corp:3128")
    monkeypatch.setenv("https_proxy", "http://lower.corp:3128")
    proxy = environment_proxy(httpx.URL("https://api.example"))
    assert proxy is not None
    assert (proxy.variable, proxy.shown) == ("https_proxy", "http://lower.corp:3128")
    monkeypatch.delenv("https_proxy")
    proxy = environment_proxy(httpx.URL("https://api.example"))
    assert proxy is not None
    assert (proxy.variable, proxy.shown) == ("HTTPS_PROXY", "http://upper.corp:3128")
