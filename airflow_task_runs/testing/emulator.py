"""Every cloud's emulator and the shared object store, started and stopped together."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airflow_task_runs.testing.s3 import S3Store
from airflow_task_runs.testing.server import EmulatorServer

#: import paths of the cloud emulators; a new cloud adds one line here.
#: the bucket the README's examples write to (``s3://my-bucket/...``); created on start
DEMO_BUCKET = "my-bucket"

CLOUD_EMULATORS: tuple[str, ...] = (
    "airflow_task_runs.testing.ncp.NclueEmulator",
    "airflow_task_runs.testing.oci.OciEmulator",
    "airflow_task_runs.testing.alibaba.RosEmulator",
    "airflow_task_runs.testing.aws.HealthOmicsEmulator",
)


def _load(path: str) -> type[EmulatorServer]:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


class Emulator:
    """``with Emulator() as emu: emu.ncp.add_run(...)``; each cloud is an attribute by its name."""

    def __init__(self) -> None:
        self.s3 = S3Store()
        self.clouds: dict[str, EmulatorServer] = {}
        for path in CLOUD_EMULATORS:
            cls = _load(path)
            self.clouds[cls.name] = cls(self.s3)  # type: ignore[call-arg]

    def __getattr__(self, name: str) -> Any:
        clouds = self.__dict__.get("clouds", {})
        if name in clouds:
            return clouds[name]
        raise AttributeError(name)

    def start(self, host: str = "127.0.0.1", port_base: int = 0) -> Emulator:
        """Start everything; ``port_base`` N puts the clouds on N, N+1, ... and the S3 store last (0: any ports)."""
        ports = [port_base + i if port_base else 0 for i in range(len(self.clouds) + 1)]
        self.s3.start(host=host, port=ports[-1])
        self.s3.create_bucket(DEMO_BUCKET)
        for cloud, port in zip(self.clouds.values(), ports, strict=False):
            cloud.start(host=host, port=port)
        return self

    def stop(self) -> None:
        for cloud in self.clouds.values():
            cloud.stop()
        self.s3.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pace_for_real_airflow(self) -> Callable[[], None]:
        """Every cloud at its :meth:`~EmulatorServer.real_airflow_pace` (seed the demo after this);
        returns the call that puts each setting back as it was."""
        missing = object()
        before: list[tuple[EmulatorServer, str, Any]] = []
        for cloud in self.clouds.values():
            for name, value in cloud.real_airflow_pace().items():
                before.append((cloud, name, cloud.__dict__.get(name, missing)))
                setattr(cloud, name, value)

        def restore() -> None:
            for cloud, name, value in reversed(before):
                if value is missing:
                    cloud.__dict__.pop(name, None)  # back to the class's default
                else:
                    setattr(cloud, name, value)

        return restore

    def airflow_connections(self) -> dict[str, dict[str, Any]]:
        """``{conn_id: connection dict}`` pointing every cloud's default connection here."""
        return {
            cloud.conn_id: cloud.airflow_connection()  # type: ignore[attr-defined]
            for cloud in self.clouds.values()
        }

    def connection_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables (JSON form) for every default connection."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in self.airflow_connections().items()
        }

    def aws_environment(self) -> dict[str, str]:
        """boto3's default credential chain, pointed at the emulator's S3 (moto).

        What a destination without a connection (``s3://my-bucket/...``) uses: keys, region,
        and ``AWS_ENDPOINT_URL_S3`` (botocore's per-service endpoint variable).
        """
        return {
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": self.s3.region,
            "AWS_ENDPOINT_URL_S3": self.s3.url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def environment(self) -> dict[str, str]:
        """Everything a process needs to run DAGs here: ``AIRFLOW_CONN_*`` plus the default AWS chain."""
        return {**self.connection_env(), **self.aws_environment()}
