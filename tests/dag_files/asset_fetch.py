"""Producer and consumers for the Asset test: a fetch to s3:// makes a DAG scheduled on it run."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, Param

from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator

STATIC_URI = "s3://my-bucket/asset-test/static/result.csv"
ALIAS_URI = "s3://my-bucket/asset-test/alias/result.csv"

with DAG(
    dag_id="asset_fetch_producer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"run_id": Param("asset-run", type="string"), "where": Param("s3://my-bucket/asset-test/alias/")},
):
    # a literal destination: its static outlet is the Asset
    NclueFetchTaskRunResultOperator(task_id="static", run_id="{{ params.run_id }}", destination=STATIC_URI)
    # a templated one: the written URI goes to the alias
    NclueFetchTaskRunResultOperator(
        task_id="templated", run_id="{{ params.run_id }}", destination="{{ params.where }}", asset_alias="results"
    )

for name, uri in (("static", STATIC_URI), ("alias", ALIAS_URI)):
    with DAG(dag_id=f"asset_fetch_consumer_{name}", schedule=[Asset(uri)], start_date=datetime(2026, 1, 1)):
        NclueFetchTaskRunResultOperator(task_id="noop_fetch", run_id="unused")
