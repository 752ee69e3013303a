"""A run's output listing (ListObjectsV2) is bounded: pages, time, continuation tokens, XCom size.

Real listings page over moto's S3; hostile ones come from the HealthOmics emulator standing in
for S3 (``service_config.s3``), answering injected ListObjectsV2 pages.
"""

from __future__ import annotations

import json
import time

import pytest

from airflow_task_runs.aws.hooks import HealthOmicsHook
from airflow_task_runs.aws.operators import HealthOmicsListRunOutputsOperator, HealthOmicsStartRunOperator
from airflow_task_runs.core.errors import ApiError, MalformedResponseError, OutputTooLargeError
from airflow_task_runs.testing.aws import DEMO_ROLE_ARN, DEMO_WORKFLOW_ID
from airflow_task_runs.testing.sensors import task_context

BUCKET = "omics-listing-test"
HOSTILE = "hostile-bucket"
HOSTILE_URI = f"s3://{HOSTILE}/runs/1/"


def _run_with_outputs(emu, count: int) -> str:
    outputs = {f"out/part-{i:04d}.txt": b"x" for i in range(count)}
    return emu.add_run(lifecycle=[("COMPLETED", 0)], outputs=outputs, output_uri=f"s3://{BUCKET}/runs/")


@pytest.fixture
def hostile_s3(emu, monkeypatch) -> str:
    """A connection whose S3 is the emulator: every ListObjectsV2 page is one injected answer."""
    conn = emu.airflow_connection()
    conn["extra"]["service_config"]["s3"] = {"endpoint_url": emu.url}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_HOSTILE_S3", json.dumps(conn))
    return "aws_hostile_s3"


def _page(emu, token: str | None, key: str, truncated: bool = True) -> None:
    """Queue one ListObjectsV2 answer (faults are used in the order they were injected)."""
    next_token = f"<NextContinuationToken>{token}</NextContinuationToken>" if token is not None else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{HOSTILE}</Name><Prefix>runs/1/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        f"<Contents><Key>runs/1/{key}</Key><Size>1</Size></Contents>{next_token}</ListBucketResult>"
    ).encode()
    emu.inject("status", status=200, body=body, headers={"Content-Type": "application/xml"}, match=f"/{HOSTILE}")


def _listings(emu) -> int:
    return len(emu.requests_to(f"/{HOSTILE}"))


def test_the_operator_stops_at_the_page_cap_naming_prefix_cap_and_knob(emu):
    run_id = _run_with_outputs(emu, 30)
    op = HealthOmicsListRunOutputsOperator(task_id="outputs", run_id=run_id, page_size=5, max_list_pages=3)
    context = task_context()
    with pytest.raises(ApiError) as caught:
        op.execute(context)
    err = caught.value
    assert (err.cloud, err.code, err.operation) == ("AWS S3", "ListPagingLimit", "ListObjectsV2")
    assert f"s3://{BUCKET}/runs/{run_id}/" in str(err)
    assert "still paging after 3 page(s)" in str(err) and "max_list_pages=3" in str(err)
    assert "raise them" in str(err)


def test_listing_pages_until_the_end_within_the_cap(emu):
    run_id = _run_with_outputs(emu, 23)
    op = HealthOmicsListRunOutputsOperator(task_id="outputs", run_id=run_id, page_size=5, max_list_pages=5)
    result = op.execute(task_context())  # 5 pages of 5, the last one not truncated: exactly the cap
    assert result["uris"] == [f"s3://{BUCKET}/runs/{run_id}/out/part-{i:04d}.txt" for i in range(23)]


def test_listing_is_bounded_in_time_too(emu):
    run_id = _run_with_outputs(emu, 10)
    uris = HealthOmicsHook().iter_output_uris(f"s3://{BUCKET}/runs/{run_id}/", page_size=1, max_seconds=0.25)
    with pytest.raises(ApiError, match=r"max_list_seconds=0\.25") as caught:
        for _ in uris:
            time.sleep(0.1)  # 10 pages take at least 1 s
    assert caught.value.code == "ListPagingLimit"


def test_invented_continuation_tokens_end_at_the_page_cap(emu, hostile_s3):
    for i in range(20):
        _page(emu, f"token-{i}", f"key-{i}")
    uris = HealthOmicsHook(aws_conn_id=hostile_s3).iter_output_uris(HOSTILE_URI, max_pages=5)
    with pytest.raises(ApiError, match="max_list_pages=5") as caught:
        list(uris)
    assert caught.value.code == "ListPagingLimit"
    assert HOSTILE_URI in str(caught.value)
    assert _listings(emu) == 5


def test_a_continuation_token_sent_again_ends_the_listing(emu, hostile_s3):
    """botocore's paginator only notices a token repeated at once: a, b, a, b, ... went round for ever."""
    for token in ("a", "b", "a", "b", "a", "b"):
        _page(emu, token, f"key-{token}")
    with pytest.raises(MalformedResponseError, match="sent before") as caught:
        list(HealthOmicsHook(aws_conn_id=hostile_s3).iter_output_uris(HOSTILE_URI))
    assert (caught.value.code, caught.value.operation) == ("ListingLoop", "ListObjectsV2")
    assert HOSTILE_URI in str(caught.value)
    assert _listings(emu) == 3


def test_a_truncated_page_without_a_token_is_an_error_not_the_end(emu, hostile_s3):
    """botocore's paginator took it for the end: the listing came back short, silently."""
    _page(emu, "t1", "first")
    _page(emu, None, "second")
    with pytest.raises(MalformedResponseError, match="IsTruncated without a NextContinuationToken"):
        list(HealthOmicsHook(aws_conn_id=hostile_s3).iter_output_uris(HOSTILE_URI))


def test_the_listing_stops_once_over_the_xcom_limit_without_reading_the_rest(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "700")  # about ten URIs
    run_id = _run_with_outputs(emu, 60)
    consumed = []
    real = HealthOmicsHook.iter_output_uris

    def counting(self, *args, **kwargs):
        for uri in real(self, *args, **kwargs):
            consumed.append(uri)
            yield uri

    monkeypatch.setattr(HealthOmicsHook, "iter_output_uris", counting)
    op = HealthOmicsListRunOutputsOperator(task_id="outputs", run_id=run_id, page_size=5)
    with pytest.raises(OutputTooLargeError) as caught:
        op.execute(task_context())
    assert len(consumed) <= 15  # three pages of five at most, not all twelve
    assert f"output listing under s3://{BUCKET}/runs/{run_id}/ (stopped at object" in str(caught.value)


def test_the_start_operator_lists_within_its_caps_too(emu):
    op = HealthOmicsStartRunOperator(
        task_id="start",
        workflow_id=DEMO_WORKFLOW_ID,
        role_arn=DEMO_ROLE_ARN,
        output_uri="s3://omics-outputs/listing-caps/",
        page_size=1,
        max_list_pages=1,  # the run writes two outputs
        poke_interval=0.05,
        timeout=60,
    )
    with pytest.raises(ApiError, match="max_list_pages=1") as caught:
        op.execute(task_context())
    assert caught.value.code == "ListPagingLimit"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"max_list_pages": 0}, "max_list_pages"),
        ({"max_list_seconds": 0}, "max_list_seconds"),
    ],
)
def test_listing_parameters_are_checked_at_parse_time(options, says):
    with pytest.raises(ValueError, match=says):
        HealthOmicsListRunOutputsOperator(task_id="outputs", run_id="1", **options)
    with pytest.raises(ValueError, match=says):
        HealthOmicsStartRunOperator(
            task_id="start", workflow_id=DEMO_WORKFLOW_ID, role_arn=DEMO_ROLE_ARN, output_uri="s3://b/", **options
        )
