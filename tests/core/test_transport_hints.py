"""A failed connection gets the same words from the worker's client (httpx) and the triggerer's
(aiohttp-backed): what failed and what to check. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_task_runs.core.errors import ApiError
from airflow_task_runs.ncp.hooks import NclueHook


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])  # nothing listens once the socket is closed: refused


@pytest.fixture
def untrusted_tls_port(tmp_path: Path) -> Iterator[int]:
    """A TLS listener whose certificate (self-signed, made here) no CA bundle trusts."""
    from airflow_task_runs.testing.tls import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                continue
            try:  # the handshake fails on the client's side: it does not trust the certificate
                with context.wrap_socket(raw, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def _errors(monkeypatch, ncp_emulator, host: str) -> list[str]:
    """The status read's error in the worker, then in the triggerer, against ``host``."""
    conn = ncp_emulator.airflow_connection()
    conn["host"] = host
    conn["extra"].update({"retry_max_attempts": 1})
    monkeypatch.setenv("AIRFLOW_CONN_NCP_UNREACHABLE", json.dumps(conn))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    def hook() -> NclueHook:
        return NclueHook(ncp_conn_id="ncp_unreachable")

    async def in_the_triggerer() -> None:
        h = hook()
        try:
            await h.aget_status("run-1")
        finally:
            await h.aclose()

    reads: list[Callable[[], object]] = [lambda: hook().get_status("run-1"), lambda: asyncio.run(in_the_triggerer())]
    errors = []
    for read in reads:
        with pytest.raises(ApiError) as caught:
            read()
        errors.append(str(caught.value))
    return errors


def test_a_refused_connection_is_called_refused_in_the_worker_and_the_triggerer(task_runs_connections, monkeypatch):
    host = f"http://127.0.0.1:{_closed_port()}"
    for text in _errors(monkeypatch, task_runs_connections.ncp, host):
        assert f"connection refused by {host} ([Errno 111] Connection refused)" in text, text
        assert "check the host and port in the connection and that the service is up" in text, text


def test_an_untrusted_certificate_is_called_a_tls_failure_in_the_worker_and_the_triggerer(
    task_runs_connections, monkeypatch, untrusted_tls_port
):
    host = f"https://127.0.0.1:{untrusted_tls_port}"
    for text in _errors(monkeypatch, task_runs_connections.ncp, host):
        assert f"TLS with {host} failed (" in text, text
        assert "certificate verify failed" in text, text
        assert "set the connection's verify to a CA bundle path" in text, text
