"""The Airflow versions we claim are the ones the suite runs on."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def airflow_floor() -> Version:
    # The installed metadata is pyproject's [project] dependencies (tomllib would need Python 3.11).
    from importlib.metadata import requires

    requirement = next(
        Requirement(r) for r in requires("airflow-task-runs") or [] if Requirement(r).name == "apache-airflow"
    )
    (floor,) = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return floor


def test_the_claimed_floor_is_the_tested_minor_line():
    from airflow import __version__

    installed = Version(__version__)
    floor = airflow_floor()
    assert floor <= installed
    assert floor.release[:2] == installed.release[:2], (
        f"pyproject claims apache-airflow>={floor} but the suite runs on {installed}: "
        "raise the floor or run the suite on the lowest claimed version too"
    )


def test_the_readme_states_the_same_floor():
    readme = (ROOT / "README.md").read_text()
    assert f"apache-airflow>={airflow_floor()}" in readme
    assert not re.search(r"apache-airflow>=3\.2", readme)
