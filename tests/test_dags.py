"""The DAGs, end to end through dag.test() against the emulator and the local Batch executor."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from pdf2md import s3 as s3io
from pdf2md.contracts import S3Uri, ShardProgress
from tests.conftest import REPO, upload

pytestmark = pytest.mark.usefixtures("airflow_db")

GOOD = ("crazyones.pdf", "code_and_formula.pdf", "table_mislabeled_as_picture.pdf", "PDFBOX-2984-rotations.pdf")
BROKEN = {"broken-truncated.pdf": "corrupt", "not-a-pdf.pdf": "not-pdf", "encrypted-asdfzxcv.pdf": "password-required"}


def _dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def _conf(bucket: str, **extra: Any) -> dict[str, Any]:
    return {"input_uri": f"s3://{bucket}/in/", "output_uri": f"s3://{bucket}/out/", "runs_uri": f"s3://{bucket}/runs/",
            "array_size": 3, "poll_interval_s": 1, "backend": "text", **extra}


def _run(dag_id: str, conf: dict[str, Any]) -> tuple[str, dict[str, str]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    dr = _dag(dag_id).test(run_conf=conf)
    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == dr.run_id, TaskInstance.dag_id == dag_id).all()
        return str(dr.state), {ti.task_id: str(ti.state) for ti in tis}


def _report(s3: Any, bucket: str, prefix: str = "runs/") -> dict[str, Any]:
    keys = [o.key for o in s3io.iter_objects(s3, S3Uri(bucket, prefix)) if o.key.endswith("/report.json")]
    assert len(keys) == 1, keys
    return json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())


def _markdown_keys(s3: Any, bucket: str) -> set[str]:
    return {o.key for o in s3io.iter_objects(s3, S3Uri(bucket, "out/")) if o.key.endswith(".md")}


def _latest_parent(batch: Any, suffix: str) -> str:
    """The newest array parent whose name ends with `suffix` (children carry ':' in their ids)."""
    listed = batch.list_jobs(jobQueue="pdf2md-spot", filters=[{"name": "JOB_NAME", "values": ["pdf2md-*"]}])["jobSummaryList"]
    parents = [j for j in listed if j["jobName"].endswith(suffix) and ":" not in j["jobId"]]
    return max(parents, key=lambda j: j["createdAt"])["jobId"]


def test_dags_import_without_errors_or_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.client
    from airflow.dag_processing.dagbag import DagBag

    def no_aws(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a DAG file called AWS at import")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", no_aws)
    monkeypatch.setenv("PDF2MD_SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/pdf2md-events")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"pdf2md_backfill", "pdf2md_s3_events"}
    assert all(stat.duration.total_seconds() < 5 for stat in bag.dagbag_stats), bag.dagbag_stats
    backfill = bag.get_dag("pdf2md_backfill")
    assert backfill.params["job_queue"] == "pdf2md-spot" and backfill.params["job_definition"] == "pdf2md-worker"
    assert all(backfill.params.get_param(name).description for name in backfill.params)


def test_backfill_converts_good_pdfs_and_reports_broken_ones_exactly(s3: Any, bucket: str) -> None:
    for name in GOOD + tuple(BROKEN):
        upload(s3, bucket, f"in/docs/{name}", name)
    upload(s3, bucket, "in/docs/notes.txt", "not-a-pdf.pdf")
    started = time.monotonic()
    state, tasks = _run("pdf2md_backfill", _conf(bucket))
    assert state == "success", tasks
    report = _report(s3, bucket)
    assert (report["listed"], report["planned"], report["converted"], report["skipped"], report["failed"]) == (7, 7, 4, 0, 3)
    assert report["failed_by_class"] == {v: 1 for v in BROKEN.values()}
    assert report["status"] == "succeeded" and report["rounds"] == 1
    assert report["pages"] == 1 + 2 + 1 + 6
    assert report["gpu_hours"] > 0 and report["estimated_cost_usd"] > 0
    assert _markdown_keys(s3, bucket) == {f"out/docs/{n[:-4]}.md" for n in GOOD}
    markers = {o.key for o in s3io.iter_objects(s3, S3Uri(bucket, "out/_pdf2md/failed/"))}
    assert markers == {f"out/_pdf2md/failed/docs/{n[:-4]}.json" for n in BROKEN}
    print(f"backfill DAG test: {time.monotonic() - started:.1f} s")

    state, tasks = _run("pdf2md_backfill", _conf(bucket, runs_uri=f"s3://{bucket}/runs2/"))
    assert state == "success"
    assert tasks["round_0.submit"] == "skipped", "a run with nothing new must submit nothing"
    second = _report(s3, bucket, "runs2/")
    assert (second["planned"], second["skipped"], second["known_failures"], second["status"]) == (0, 4, 3, "succeeded")


def test_an_interrupted_child_is_rerun_and_converted_in_round_two(s3: Any, bucket: str, batch: Any) -> None:
    for i in range(4):
        upload(s3, bucket, f"in/scan-{i}.pdf", "scanned-crazyones.pdf")
    for name in GOOD:
        upload(s3, bucket, f"in/{name}", name)
    stop = threading.Event()
    killer = threading.Thread(target=_terminate_child_when_busy, args=(s3, batch, bucket, 1, stop), daemon=True)
    killer.start()
    try:
        state, tasks = _run("pdf2md_backfill", _conf(bucket, array_size=2, backend="auto"))
    finally:
        stop.set()
    assert tasks["round_0.wait"] == "failed" and tasks["round_1.submit"] == "success", tasks
    assert state == "success", tasks
    report = _report(s3, bucket)
    assert report["rounds"] == 2 and report["converted"] == 8 and report["failed"] == 0, report
    assert len(_markdown_keys(s3, bucket)) == 8


def _terminate_child_when_busy(s3: Any, batch: Any, bucket: str, index: int, stop: threading.Event) -> None:
    """Spot reclaim, as the test can cause it: terminate one child once it is into its PDFs."""
    progress_prefix = S3Uri(bucket, "runs/")
    while not stop.is_set():
        for obj in s3io.iter_objects(s3, progress_prefix):
            if obj.key.endswith(f"round-000/progress/shard-{index:05d}.json"):
                record = s3io.get_json(s3, bucket, obj.key, ShardProgress)
                if record and record.state == "running":
                    parent = _latest_parent(batch, "-r0")
                    batch.terminate_job(jobId=f"{parent}:{index}", reason="Spot reclaim (test)")
                    return
        time.sleep(0.05)


def test_a_tiny_budget_halts_the_run_before_anything_is_submitted(s3: Any, bucket: str, batch: Any) -> None:
    for name in GOOD:
        upload(s3, bucket, f"in/{name}", name)
    state, tasks = _run("pdf2md_backfill", _conf(bucket, budget_usd=0.0000001, runs_uri=f"s3://{bucket}/runs/tiny/"))
    assert state == "failed" and tasks["check_budget"] == "failed" and tasks["round_0.submit"] != "success"
    report = _report(s3, bucket)
    assert report["status"] == "halted-budget"
    assert "over the budget of $0.00" in report["message"] and "s/page" in report["message"]
    assert _markdown_keys(s3, bucket) == set()


def test_crossing_the_budget_mid_run_terminates_the_jobs_and_fails_the_run(s3: Any, bucket: str, batch: Any) -> None:
    for i in range(6):
        upload(s3, bucket, f"in/scan-{i}.pdf", "scanned-crazyones.pdf")
    conf = _conf(bucket, array_size=2, backend="ocr", seconds_per_page=0.0001, price_per_hour_usd=3600.0, budget_usd=2.0,
                 runs_uri=f"s3://{bucket}/runs/budget/")
    state, tasks = _run("pdf2md_backfill", conf)
    assert state == "failed", tasks
    assert tasks["round_0.wait"] == "failed" and tasks["report"] == "failed"
    report = _report(s3, bucket)
    assert report["status"] == "halted-budget" and "budget exceeded" in report["message"], report
    children = batch.list_jobs(arrayJobId=_latest_parent(batch, "-r0"))
    assert any(j["status"] == "FAILED" for j in children["jobSummaryList"])
    assert len(_markdown_keys(s3, bucket)) < 6


def test_bad_conf_is_rejected_before_anything_runs(s3: Any, bucket: str) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="array_size"):
        _dag("pdf2md_backfill").test(run_conf=_conf(bucket, array_size=1))
    with pytest.raises(ParamValidationError, match="input_uri"):
        _dag("pdf2md_backfill").test(run_conf=_conf(bucket, input_uri="/local/folder"))
    state, tasks = _run("pdf2md_backfill", _conf(bucket, output_uri=f"s3://{bucket}/in/md/"))
    assert state == "failed" and tasks["plan"] == "failed"
    assert list(s3io.iter_objects(s3, S3Uri(bucket, "runs/"))) == []


def test_s3_events_convert_exactly_the_new_keys(s3: Any, bucket: str, aws_endpoint: str) -> None:
    import boto3
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
        {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}]})
    upload(s3, bucket, "in/old.pdf", "crazyones.pdf")
    s3.put_object(Bucket=bucket, Key="out/old.md", Body=b"converted before")
    sqs.purge_queue(QueueUrl=queue_url)
    upload(s3, bucket, "in/new docs/été+plan.pdf", "crazyones.pdf")
    upload(s3, bucket, "in/new docs/table.pdf", "table_mislabeled_as_picture.pdf")
    upload(s3, bucket, "in/new docs/readme.txt", "not-a-pdf.pdf")

    trigger = MessageQueueTrigger(scheme="sqs", sqs_queue=queue_url, aws_conn_id="aws_default", waiter_delay=1,
                                  max_messages=10, num_batches=3)
    event = asyncio.run(_first_event(trigger))
    messages = event.payload["message_batch"]
    state, tasks = _run("pdf2md_s3_events", {**_conf(bucket), "sqs_messages": json.loads(json.dumps(messages, default=str))})
    assert state == "success", tasks
    assert _markdown_keys(s3, bucket) == {"out/old.md", "out/new docs/été+plan.md", "out/new docs/table.md"}
    assert s3.get_object(Bucket=bucket, Key="out/old.md")["Body"].read() == b"converted before"
    report = _report(s3, bucket)
    assert (report["planned"], report["converted"]) == (2, 2)


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the SQS trigger ended without an event")


def test_crossing_the_budget_between_rounds_halts_before_the_rerun(s3: Any, bucket: str) -> None:
    """No Dolphin model here: every PDF fails as backend-unavailable (retryable), so round 1 is due; the
    round's spend (about 10 child-seconds at $0.001 a second) passes the $0.005 budget only by its end."""
    for i in range(6):
        upload(s3, bucket, f"in/doc-{i}.pdf", "crazyones.pdf")
    conf = _conf(bucket, array_size=2, backend="dolphin", seconds_per_page=0.000001, price_per_hour_usd=3.6,
                 budget_usd=0.005, poll_interval_s=30, runs_uri=f"s3://{bucket}/runs/between/")
    state, tasks = _run("pdf2md_backfill", conf)
    assert state == "failed", tasks
    assert tasks["round_0.wait"] == "success" and tasks["round_0.reduce"] == "success", tasks
    assert tasks["round_1.check_spend"] == "failed" and tasks["round_1.submit"] != "success", tasks
    report = _report(s3, bucket)
    assert report["status"] == "halted-budget" and "budget exceeded between rounds" in report["message"], report
    assert "6 retryable PDF(s) not rerun" in report["message"]


def test_the_trigger_forms_defaults_validate_and_optional_fields_take_null(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    from pdf2md.run_state import RunConfig

    dag = _dag("pdf2md_backfill")
    defaults = dag.params.validate()
    assert defaults["runs_uri"] is None and defaults["passwords_uri"] is None and defaults["inventory_uri"] is None
    for name in ("runs_uri", "passwords_uri", "inventory_uri"):
        assert "null" in dag.params.get_param(name).schema["type"], "the form treats a non-nullable field as required"
    conf = {"input_uri": "s3://in-bucket/x/", "output_uri": "s3://out-bucket/y/", "runs_uri": None, "passwords_uri": ""}
    config = RunConfig.from_params("manual__1", {**defaults, **_validated(dag, conf)})
    assert (config.runs_uri, config.passwords_uri) == ("s3://out-bucket/pdf2md-runs/", "")
    with pytest.raises(ParamValidationError, match="runs_uri"):
        _validated(dag, {"runs_uri": "/tmp/runs"})


def test_an_inventory_param_validates_and_reaches_the_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    from pdf2md.airflow import tasks
    from pdf2md.contracts import Plan

    dag = _dag("pdf2md_backfill")
    with pytest.raises(ParamValidationError, match="inventory_uri"):
        _validated(dag, {"inventory_uri": "inventory/manifest.json"})
    inventory = "s3://inventory-bucket/in-bucket/daily/2026-11-28T01-00Z/manifest.json"
    params = _validated(dag, {"input_uri": "s3://in-bucket/x/", "output_uri": "s3://out-bucket/y/", "inventory_uri": inventory})
    calls: list[dict[str, Any]] = []

    def plan_round(*args: Any, **kwargs: Any) -> Plan:
        calls.append(kwargs)
        return Plan("s3://out-bucket/m/", 0, 0, 0, 0, 0, 0, 0, 0)

    monkeypatch.setattr(tasks, "plan_round", plan_round)
    monkeypatch.setattr(tasks, "s3_client", lambda config: None)
    for given, planned in ((inventory, inventory), (None, None)):
        context = {"run_id": "manual__1", "params": {**params, "inventory_uri": given}}
        monkeypatch.setattr(tasks, "get_current_context", lambda context=context: context)
        state = tasks.plan_task.function()
        assert calls[-1]["inventory_uri"] == planned and state["config"]["inventory_uri"] == (given or "")


def _validated(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """The run's params as a trigger (CLI, REST, form) validates them: the DAG's Params updated with the conf."""
    import copy

    params = copy.deepcopy(dag.params)
    params.update(conf)
    return dict(params.validate())


def test_the_daily_catch_up_exists_only_once_input_and_output_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PDF2MD_INPUT_URI", raising=False)
    monkeypatch.setenv("PDF2MD_OUTPUT_URI", "s3://out-bucket/md/")
    assert _dag("pdf2md_backfill").schedule is None, "no surprise runs on the example prefixes"
    monkeypatch.setenv("PDF2MD_INPUT_URI", "s3://in-bucket/pdfs/")
    dag = _dag("pdf2md_backfill")
    assert dag.schedule == "@daily" and dag.params["input_uri"] == "s3://in-bucket/pdfs/"


def test_submit_declares_only_the_link_it_fills() -> None:
    """The provider's other links are read from XComs a non-waiting submit never writes (an error line each)."""
    submit = _dag("pdf2md_backfill").get_task("round_0.submit")
    assert [link.name for link in submit.operator_extra_links] == ["Batch Job Details"]


def test_task_ids_are_the_names_the_tasks_pull_by() -> None:
    """XCom pulls and the status page find tasks by pdf2md.airflow.names: the DAGs must be built from the same names."""
    from pdf2md.airflow.names import TaskId, round_task_id
    from pdf2md.airflow.params import MAX_RERUN_ROUNDS

    rounds = {round_task_id(r, step) for r in range(MAX_RERUN_ROUNDS + 1) for step in (TaskId.SUBMIT, TaskId.WAIT, TaskId.REDUCE)}
    rounds |= {round_task_id(r, TaskId.CHECK_SPEND) for r in range(1, MAX_RERUN_ROUNDS + 1)}
    for dag_id, first in (("pdf2md_backfill", TaskId.PLAN), ("pdf2md_s3_events", TaskId.COLLECT_EVENTS)):
        assert set(_dag(dag_id).task_ids) == {first, TaskId.CHECK_BUDGET, TaskId.REPORT} | rounds


def test_a_passwords_object_that_cannot_be_read_fails_the_plan_before_anything_is_written(s3: Any, bucket: str, batch: Any) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.pdf", Body=b"%PDF-1.4 tiny")
    before = len(batch.list_jobs(jobQueue="pdf2md-spot", filters=[{"name": "JOB_NAME", "values": ["pdf2md-*"]}])["jobSummaryList"])
    state, tasks = _run("pdf2md_backfill", _conf(bucket, passwords_uri=f"s3://{bucket}/secrets/missing.json"))
    assert state == "failed" and tasks["plan"] == "failed"
    assert list(s3io.iter_objects(s3, S3Uri(bucket, "runs/"))) == []
    after = len(batch.list_jobs(jobQueue="pdf2md-spot", filters=[{"name": "JOB_NAME", "values": ["pdf2md-*"]}])["jobSummaryList"])
    assert after == before, "nothing was submitted"
