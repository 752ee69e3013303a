"""A throwaway Airflow home with a SQLite metadata database: what ``dag.test()`` needs.

Airflow reads ``AIRFLOW__*`` variables on every ``conf.get``, but builds its database engine
once; :class:`AirflowHome` sets the variables, rebuilds the engine on the new database and
creates the schema, so it works whether or not Airflow was imported before. ``dag.test()``
runs only DAGs found in ``[core] dags_folder``: put yours there with :meth:`add_dags` (or pass
your own folder).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def airflow_home_environment(home: Path, dags_folder: Path) -> dict[str, str]:
    """What every Airflow process of a throwaway SQLite home needs (read before Airflow is imported)."""
    from cryptography.fernet import Fernet

    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": os.environ.get("AIRFLOW__CORE__FERNET_KEY") or Fernet.generate_key().decode(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }


class AirflowHome:
    """``with AirflowHome(tmp) as home: home.add_dags("dags/my_dag.py"); home.get_dag("my_dag").test()``."""

    def __init__(self, home: Path, dags_folder: Path | None = None) -> None:
        self.home = home
        self.dags_folder = dags_folder or home / "dags"
        self._saved: dict[str, str | None] = {}

    def start(self) -> AirflowHome:
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        for name, value in airflow_home_environment(self.home, self.dags_folder).items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        from airflow import settings
        from airflow.utils import db

        settings.configure_vars()  # DAGS_FOLDER and the connection string, from the variables above
        settings.dispose_orm(do_log=False)
        settings.configure_orm()
        db.resetdb(skip_init=False)
        return self

    def stop(self) -> None:
        from airflow import settings

        settings.dispose_orm(do_log=False)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()

    def __enter__(self) -> AirflowHome:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_dags(self, *paths: str | Path | Iterable[str | Path]) -> None:
        """Copy DAG files into the DAGs folder (``dag.test()`` runs only DAGs found there)."""
        for item in paths:
            for path in [item] if isinstance(item, (str, Path)) else item:
                shutil.copy(path, self.dags_folder / Path(path).name)

    def get_dag(self, dag_id: str) -> Any:
        """The DAG, parsed from the DAGs folder; fails with the folder's import errors if it is not there."""
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(self.dags_folder))
        dag = bag.get_dag(dag_id)
        if dag is None:
            raise LookupError(
                f"no DAG {dag_id!r} in {self.dags_folder} (import errors: {bag.import_errors or 'none'}); "
                "add its file with add_dags()"
            )
        return dag
