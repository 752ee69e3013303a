"""Object-store fixtures: the emulator's S3 (moto's real server) and a proxy that cuts transfers."""

from __future__ import annotations

import os
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
    ``trickle``: after the first ``trickle_after`` response bytes of a connection, pass
    ``trickle`` bytes every ``delay`` seconds (for at most ``trickle_for`` seconds, then cut).
    """

    def __init__(
        self,
        upstream: str,
        budget: int,
        whole_reads: bool = False,
        trickle: int = 0,
        delay: float = 0.0,
        trickle_after: int = 0,
        trickle_for: float = 15.0,
    ) -> None:
        self.whole_reads = whole_reads
        self.trickle, self.delay, self.trickle_after, self.trickle_for = trickle, delay, trickle_after, trickle_for
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

    def _send(self, sink: socket.socket, data: bytes, sent: int, started: list[float]) -> None:
        """Send ``data`` (``sent`` response bytes went before it), trickled past ``trickle_after``."""
        import time

        fast = max(0, min(len(data), self.trickle_after - sent)) if self.trickle else len(data)
        sink.sendall(data[:fast])
        for start in range(fast, len(data), self.trickle or 1):
            if not started:
                started.append(time.monotonic())
            if time.monotonic() - started[0] > self.trickle_for:
                raise ConnectionResetError
            time.sleep(self.delay)
            sink.sendall(data[start : start + self.trickle])

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        sent, started = 0, []  # type: ignore[var-annotated]
        try:
            while data := source.recv(65536):
                if counted and self.trickle:
                    self._send(sink, data, sent, started)
                    sent += len(data)
                    continue
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

    def make(budget: int, whole_reads: bool = False, **trickle: float) -> CuttingProxy:
        proxies.append(CuttingProxy(task_runs_connections.s3.url, budget, whole_reads, **trickle))  # type: ignore[arg-type]
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.stop()


_ENFORCING_SERVER = """
import sys
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@dataclass
class ReadOnlyStore:
    """A moto server that enforces IAM, with a bucket the connection ``conn_id`` may read but not write."""

    conn_id: str
    bucket: str
    client: object  # boto3 S3 client with the read-only user's keys

    #: an object put before IAM is enforced, for reads signed by the provider's own signers
    readable_key: str = "seeded/readable.bin"
    readable_data: bytes = b""

    def keys(self) -> list[str]:
        """Every key but the seeded readable one."""
        listing = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return [obj["Key"] for obj in listing if obj["Key"] != self.readable_key]

    def open_uploads(self) -> list[str]:
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]


@pytest.fixture
def read_only_store(monkeypatch) -> ReadOnlyStore:
    """A real denial: moto checks IAM policies once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests are spent
    (read when moto is imported, hence a server process of its own). The 5 free requests set up a
    bucket, an object in it and a user whose policy allows reading and listing only."""
    import json
    import subprocess
    import sys

    import boto3

    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "5", "MOTO_ALLOW_NONEXISTENT_REGION": "True"}
    server = subprocess.Popen(
        [sys.executable, "-c", _ENFORCING_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        setup = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "setup"}
        setup["aws_secret_access_key"] = "setup"
        boto3.client("s3", **setup).create_bucket(Bucket="locked-bucket")
        readable = os.urandom(300_000)
        boto3.client("s3", **setup).put_object(Bucket="locked-bucket", Key=ReadOnlyStore.readable_key, Body=readable)
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="reader")
        read_only = ["s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": read_only, "Resource": "*"}]}
        iam.put_user_policy(UserName="reader", PolicyName="read-only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        conn = {
            "conn_type": "aws",
            "login": key["AccessKeyId"],
            "password": key["SecretAccessKey"],
            "extra": {"region_name": "us-east-1", "endpoint_url": url},
        }
        monkeypatch.setenv("AIRFLOW_CONN_S3_READ_ONLY", json.dumps(conn))
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        yield ReadOnlyStore("s3_read_only", "locked-bucket", client, readable_data=readable)
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
