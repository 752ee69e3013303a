"""An S3-compatible store on 127.0.0.1 (moto's server), for result files, logs and outputs."""

from __future__ import annotations

import os
from typing import Any


class S3Store:
    """moto's threaded server: S3 (and CloudWatch Logs) speaking the real wire protocol."""

    access_key = "EMULATORACCESSKEY"
    secret_key = "EMULATOR/SECRET/KEY/0123456789abcdef"
    region = "us-east-1"

    def __init__(self) -> None:
        self._server: Any = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> S3Store:
        # moto must not reach for real credentials or metadata endpoints.
        os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "True")
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        if port:  # moto's thread would die on a busy port and leave start() waiting forever
            import socket

            with socket.socket() as probe:
                probe.bind((host, port))
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._server.start()
        self._host = host
        self._port = int(self._server.get_host_and_port()[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        assert self._port is not None, "start() the store first"
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self._port}"

    def client(self, service: str = "s3", region: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region or self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def create_bucket(self, bucket: str) -> None:
        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            pass

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        self.create_bucket(bucket)
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
