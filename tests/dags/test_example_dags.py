"""Every example DAG runs end to end with dag.test() against the emulator and succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE_DAGS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "example_dags").glob("example_*.py"))


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="module")
def seeded(task_runs_emulator):
    for cloud in task_runs_emulator.clouds.values():
        cloud.seed_demo()
    return task_runs_emulator


#: one example per cloud writes to s3:// as well as file:// (make demo shows both)
S3_EXAMPLES = {"example_ncp_nclue", "example_oci_ai_data_platform", "example_aws_healthomics", "example_alibaba_ros"}


def test_every_cloud_example_writes_to_s3(dagbag):
    assert {dag_id for dag_id in S3_EXAMPLES if "s3_uri" in dagbag.get_dag(dag_id).params} == S3_EXAMPLES


@pytest.mark.dags
@pytest.mark.parametrize("dag_file", EXAMPLE_DAGS)
def test_example_dag_runs_to_success(dag_file, dagbag, seeded, task_runs_connections, tmp_path):
    dag = dagbag.get_dag(dag_file)
    assert dag is not None, f"{dag_file} defines no DAG with dag_id {dag_file}"
    conf = {"output_uri": f"file://{tmp_path}/out/"} if "output_uri" in dag.params else None
    s3_prefix = f"example-{tmp_path.name}/"
    if "s3_uri" in dag.params:  # the default s3:// folder, moved to a prefix of this test
        default = dag.params["s3_uri"]
        conf = {**(conf or {}), "s3_uri": default[: default.index("/demo/") + 1] + s3_prefix}
    dagrun = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", states
    assert states and all(state == "success" for state in states.values()), states
    if conf:
        written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert written, "the DAG wrote nothing to its output folder"
        assert not [p for p in written if p.name.endswith(".partial")], written
    if "s3_uri" in dag.params:  # every cloud's example also writes to s3:// on the emulator's store
        s3 = task_runs_connections.s3.client()
        listing = s3.list_objects_v2(Bucket="my-bucket", Prefix=s3_prefix).get("Contents", [])
        assert [obj for obj in listing if obj["Size"] > 0], f"{dag_file} wrote nothing to s3://my-bucket/{s3_prefix}"
        assert not s3.list_multipart_uploads(Bucket="my-bucket", Prefix=s3_prefix).get("Uploads")
