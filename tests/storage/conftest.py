"""Object-store fixtures: the emulator's S3 (moto's real server) and a proxy that cuts transfers."""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass

import pytest

from airflow_task_runs.testing.emulator import DEMO_BUCKET


@dataclass
class Store:
    """The emulator's S3 seen through boto3, for assertions."""

    client: object
    bucket: str
    prefix: str

    def uri(self, name: str = "", conn: str = "") -> str:
        at = f"{conn}@" if conn else ""
        return f"s3://{at}{self.bucket}/{self.prefix}{name}"

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        return sorted(obj["Key"][len(self.prefix) :] for obj in listing.get("Contents", []))

    def read(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()

    def open_uploads(self) -> list[str]:
        listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        return [upload["Key"] for upload in listing.get("Uploads", [])]

    def assert_nothing(self) -> None:
        """No object (final or partial) and no unfinished multipart upload under the prefix."""
        assert self.keys() == [], self.keys()
        assert self.open_uploads() == [], self.open_uploads()


@pytest.fixture
def store(task_runs_connections) -> Store:
    """A fresh prefix in the README's bucket; connections and the default AWS chain point here."""
    return Store(task_runs_connections.s3.client(), DEMO_BUCKET, f"t-{uuid.uuid4().hex[:10]}/")


class CuttingProxy:
    """TCP proxy to ``upstream`` that lets ``budget`` response bytes through in all, then cuts connections.

    ``whole_reads``: the read that crosses the budget still goes through whole; the cut comes
    before the next one (a connection dropped between two answers rather than inside one).
    """

    def __init__(self, upstream: str, budget: int, whole_reads: bool = False) -> None:
        self.whole_reads = whole_reads
        host, port = upstream.rsplit("//", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.budget = budget
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self.upstream, timeout=10)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted:
                    with self.lock:
                        allowed = max(0, min(len(data), self.budget))
                        if self.whole_reads and self.budget > 0:
                            allowed = len(data)
                        self.budget -= allowed
                    if allowed < len(data):
                        sink.sendall(data[:allowed])
                        raise ConnectionResetError
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):  # shutdown() also wakes the other direction's blocked recv()
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def cutting_proxy(task_runs_connections):
    """``cutting_proxy(budget)``: a proxy to the emulator's S3 that fails after ``budget`` response bytes."""
    proxies: list[CuttingProxy] = []

    def make(budget: int, whole_reads: bool = False) -> CuttingProxy:
        proxies.append(CuttingProxy(task_runs_connections.s3.url, budget, whole_reads))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.stop()
