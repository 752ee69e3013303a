"""Outputs as data: Asset events that schedule a downstream DAG, and OpenLineage datasets."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_task_runs.alibaba.operators import RosFetchAITaskOutputOperator
from airflow_task_runs.aws.operators import HealthOmicsFetchTaskLogOperator
from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
from airflow_task_runs.oci.operators import OciFetchTaskRunOutputOperator
from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY, encode_item
from airflow_task_runs.testing.sensors import task_context


@pytest.fixture
def asset_dags(airflow_db, task_runs_connections):
    from airflow.dag_processing.dagbag import DagBag

    task_runs_connections.ncp.add_run("asset-run", lifecycle=["completed"], result=b"id,score\n1,0.9\n")
    bag = DagBag()
    assert not bag.import_errors, bag.import_errors
    return bag


STATIC_URI = "s3://my-bucket/asset-test/static/result.csv"  # as in tests/dag_files/asset_fetch.py
ALIAS_URI = "s3://my-bucket/asset-test/alias/result.csv"


def test_fetch_to_s3_triggers_the_dag_scheduled_on_its_asset(asset_dags):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit
    from sqlalchemy import select

    consumers = ("asset_fetch_consumer_static", "asset_fetch_consumer_alias")
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(asset_dags, "dags-folder", None)
    with create_session() as session:  # the consumers are switched on, as a user would
        for dag_id in consumers:
            session.get(DagModel, dag_id).is_paused = False
    dagrun = asset_dags.get_dag("asset_fetch_producer").test()
    assert dagrun.state == "success", {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri.in_([STATIC_URI, ALIAS_URI]))
        )
        assert {event.asset.uri for event in events} == {STATIC_URI, ALIAS_URI}
    # what the scheduler does next: create the runs of the DAGs whose assets were updated
    with create_session() as session, prohibit_commit(session) as guard:
        SchedulerJobRunner(job=Job())._create_dagruns_for_dags(guard, session)
    with create_session() as session:
        for dag_id, uri in zip(consumers, (STATIC_URI, ALIAS_URI), strict=True):
            (run,) = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)).all()
            assert run.run_type == "asset_triggered"
            assert [event.asset.uri for event in run.consumed_asset_events] == [uri]


def test_literal_destination_is_a_static_outlet_and_alias_replaces_it():
    from airflow.sdk import Asset, AssetAlias

    static = NclueFetchTaskRunResultOperator(task_id="a", run_id="r", destination="s3://aws_default@b/k/x.csv")
    assert static.outlets == [Asset("s3://b/k/x.csv")]  # no conn_id@ in the asset
    templated = NclueFetchTaskRunResultOperator(task_id="b", run_id="r", destination="s3://b/{{ ds }}/")
    assert templated.outlets == []
    aliased = NclueFetchTaskRunResultOperator(task_id="c", run_id="r", destination="s3://b/{{ ds }}/", asset_alias="x")
    assert aliased.outlets == [AssetAlias("x")]


def _lineage(op):
    op.execute(task_context())
    return op.get_openlineage_facets_on_complete(None)


def test_openlineage_names_the_cloud_run_and_every_written_object(task_runs_connections, store, output_dir):
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    emu = task_runs_connections
    ncp_host = emu.ncp.url.split("//")[1]
    run_id = emu.ncp.add_run(lifecycle=["completed"], result=b"a\n", result_file_path="r/out.csv")
    lineage = _lineage(NclueFetchTaskRunResultOperator(task_id="f", run_id=run_id, destination=store.uri()))
    assert isinstance(lineage, OperatorLineage)
    assert lineage.inputs == [Dataset(namespace=f"nclue://{ncp_host}", name=f"task-runs/{run_id}")]
    assert lineage.outputs == [Dataset(namespace="s3://my-bucket", name=f"{store.prefix}out.csv")]

    key = emu.oci.add_task_run(lifecycle=["SUCCESS"], output_key="out")
    emu.oci.set_output(key, "out", [encode_item(b"x", "TEXT_PLAIN", charset="UTF_8")])
    op = OciFetchTaskRunOutputOperator(
        task_id="o", ai_data_platform_id=PLATFORM_ID, workspace_key=WORKSPACE_KEY, task_run_key=key,
        destination=store.uri("oci/"),
    )  # fmt: skip
    lineage = _lineage(op)
    assert lineage.inputs[0].namespace == f"oci-aidp://{emu.oci.url.split('//')[1]}"
    assert lineage.inputs[0].name == f"{PLATFORM_ID}/workspaces/{WORKSPACE_KEY}/taskRuns/{key}"
    assert [d.name for d in lineage.outputs] == [
        f"{store.prefix}oci/000_text_plain.txt",
        f"{store.prefix}oci/output_parameters.json",
    ]

    run = emu.aws.add_run(lifecycle=[("COMPLETED", 0)])
    task = emu.aws.add_task(run, lifecycle=[("COMPLETED", 0)], log_lines=["one"])
    lineage = _lineage(
        HealthOmicsFetchTaskLogOperator(task_id="l", run_id=run, run_task_id=task, destination=store.uri("x.log"))
    )
    assert lineage.inputs == [Dataset(namespace="healthomics://us-east-1", name=f"runs/{run}/tasks/{task}/log")]
    assert lineage.outputs == [Dataset(namespace="s3://my-bucket", name=f"{store.prefix}x.log")]

    ai_task = emu.alibaba.add_task(lifecycle=[("SUCCESS", 0)], output={"Result": {"a": 1}})
    op = RosFetchAITaskOutputOperator(task_id="r", ai_task_id=ai_task, destination=f"file://{output_dir}/t.json")
    lineage = _lineage(op)
    assert lineage.inputs == [Dataset(namespace=f"ros://{emu.alibaba.url.split('//')[1]}", name=f"ai-tasks/{ai_task}")]
    assert lineage.outputs == [Dataset(namespace="file", name=f"{output_dir}/t.json")]


def test_a_key_with_hash_or_question_mark_stays_that_object_in_assets_and_lineage(task_runs_connections, store):
    """NCLUE names the result file, not the user: ``a#1.csv`` must not become the Asset (or the
    OpenLineage dataset) ``a``, which would also collide with ``a?x=1.csv`` and trigger the wrong DAGs."""
    from airflow.sdk import Asset, AssetAlias
    from openlineage.client.event_v2 import Dataset

    emu = task_runs_connections
    names = ["a#1.csv", "a?x=1.csv", "a%23.csv"]
    runs = [emu.ncp.add_run(lifecycle=["completed"], result=b"x\n", result_file_path=f"r/{n}") for n in names]
    events: dict[Any, Any] = {}

    class Collected:
        def __init__(self) -> None:
            self.assets: list[Any] = []

        def add(self, asset: Any) -> None:
            self.assets.append(asset)

    seen = []
    for run_id, name in zip(runs, names, strict=True):
        op = NclueFetchTaskRunResultOperator(
            task_id="f", run_id=run_id, destination=store.uri("out/"), asset_alias="results"
        )
        collected = events.setdefault(AssetAlias("results"), Collected())
        op.execute({**task_context(), "outlet_events": events})
        lineage = op.get_openlineage_facets_on_complete(None)
        assert lineage.outputs == [Dataset(namespace="s3://my-bucket", name=f"{store.prefix}out/{name}")]
        seen.append(collected.assets[-1].uri)
    assert seen == [
        f"s3://my-bucket/{store.prefix}out/a%231.csv",
        f"s3://my-bucket/{store.prefix}out/a%3Fx=1.csv",
        f"s3://my-bucket/{store.prefix}out/a%2523.csv",
    ]
    assert len({Asset(uri).uri for uri in seen}) == 3
    assert store.keys() == [f"out/{name}" for name in sorted(names)]
