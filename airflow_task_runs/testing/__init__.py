"""A local emulator of the provider's cloud APIs, for tests, the demo and users' own DAG tests.

``Emulator().start()`` serves every cloud on 127.0.0.1 (ephemeral ports) plus an
S3-compatible object store; ``emulator.airflow_connections()`` gives the matching Airflow
connections. The pytest plugin offers it as the ``task_runs_emulator`` fixture.
"""

from airflow_task_runs.testing.emulator import Emulator

__all__ = ["Emulator"]
