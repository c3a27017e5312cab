"""The UI path a newcomer takes, in a real browser: `make airflow`, the trigger form, a run started
from it, the run's "Conversion status" tab checked against the run's report, a failed run, and
Ctrl-C stopping everything. Headless Chromium (Debian's) is driven by Playwright; each step leaves a
screenshot in test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pdf2md.contracts import RunLayout
from tests.conftest import REPO, SAMPLES
from tests.ui.conftest import LocalAirflow, alive

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
PDFS = {"crazyones.pdf": None, "table_mislabeled_as_picture.pdf": None, "broken-truncated.pdf": "corrupt"}
INPUT, OUTPUT = "s3://pdf2md-input/ui-test/", "s3://pdf2md-output/ui-test/"
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        message = "headless Chromium is not installed (apt-get install chromium); the Makefile installs it for CI"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def _api(base: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _wait_for_run(base: str, run_id: str) -> str:
    path = f"/api/v2/dags/pdf2md_backfill/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = _api(base, path)["state"]
        if state in ("success", "failed"):
            return str(state)
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish in {RUN_TIMEOUT_S} s")


def _s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _status_tab(page: Any, base: str, run_id: str, shot: str) -> Any:
    """The run's page, its "Conversion status" tab, the status page inside it once it has drawn."""
    page.goto(f"{base}/dags/pdf2md_backfill/runs/{urllib.parse.quote(run_id, safe='')}")
    page.get_by_role("link", name="Conversion status").or_(page.get_by_role("tab", name="Conversion status")).first.click()
    frame = page.frame_locator("iframe").first
    frame.locator("#state:not(:empty)").wait_for()
    frame.locator("#fig-pdfs b:not(:empty)").wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return frame


def _pdf2md_status(launched: LocalAirflow, run_id: str) -> subprocess.CompletedProcess[str]:
    """`pdf2md status RUN_ID` in the shell the README sets up: Airflow's home, the emulator, no flags."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PDF2MD_"))}
    env.update({"AIRFLOW_HOME": str(launched.home), "AWS_ENDPOINT_URL": launched.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(REPO)})
    return subprocess.run([sys.executable, "-m", "pdf2md.cli", "status", run_id], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)


def test_a_newcomer_triggers_watches_and_reads_a_run_from_the_ui(local_airflow: LocalAirflow, browser: Any) -> None:
    base = local_airflow.base_url
    s3 = _s3(local_airflow.endpoint)
    for name in PDFS:
        s3.put_object(Bucket="pdf2md-input", Key=f"ui-test/{name}", Body=(SAMPLES / name).read_bytes())
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})

    # 1. The trigger form validates with its defaults: nothing starred is empty, optional fields are optional.
    page.goto(f"{base}/dags/pdf2md_backfill")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    submit = dialog.get_by_test_id("trigger-dag-submit")
    dialog.locator("#element_input_uri").wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "ui-01-trigger-form-defaults.png"))
    assert submit.is_enabled(), "the defaults must validate"
    assert dialog.locator("#element_runs_uri").input_value() == "" and dialog.locator("#element_passwords_uri").input_value() == ""
    assert dialog.get_by_text("This field is required").count() == 0

    # 2. A wrong value says so next to its field; the server refuses it and names the field.
    field = dialog.locator("#element_input_uri")
    field.fill("")
    row = dialog.locator("[data-scope='field'][data-part='root']", has=page.locator("#element_input_uri")).last
    row.get_by_text("This field is required").wait_for()
    assert submit.is_disabled()
    field.fill("/home/me/pdfs")
    assert row.get_by_text("s3://bucket/prefix/").is_visible(), "the field's rule is shown next to it"
    with page.expect_response(lambda r: r.url.endswith("/dagRuns") and r.request.method == "POST") as refused:
        submit.click()
    assert refused.value.status == 400
    dialog.get_by_text("Invalid input for param input_uri").wait_for()
    dialog.get_by_text("Invalid input for param input_uri").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "ui-02-bad-input.png"))

    # 3. Only Input and Output typed: the run starts.
    page.reload()
    page.get_by_role("button", name="Trigger").first.click()
    dialog.locator("#element_input_uri").fill(INPUT)
    dialog.locator("#element_output_uri").fill(OUTPUT)
    with page.expect_response(lambda r: r.url.endswith("/dagRuns") and r.request.method == "POST") as triggered:
        submit.click()
    created = triggered.value.json()
    assert triggered.value.status == 200, created
    run_id = created["dag_run_id"]
    assert created["conf"]["runs_uri"] is None and created["conf"]["passwords_uri"] is None
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "ui-03-triggered.png"))

    # 4. The run finishes; its tab's figures are the report's.
    assert _wait_for_run(base, run_id) == "success"
    assert "XCom not found" not in local_airflow.home.joinpath("standalone.log").read_text(errors="replace")
    layout = RunLayout.for_run("s3://pdf2md-output/pdf2md-runs/", run_id)
    report = json.loads(s3.get_object(Bucket=layout.run.bucket, Key=layout.report_key)["Body"].read())
    assert (report["status"], report["converted"], report["failed"]) == ("succeeded", 2, 1), report
    frame = _status_tab(page, base, run_id, "ui-04-status-tab.png")
    assert frame.locator("#state").inner_text() == "succeeded"
    assert frame.locator("#fig-pdfs b").inner_text() == f"{report['converted']} / {report['planned']}"
    assert frame.locator("#fig-pages b").inner_text() == str(report["pages"])
    assert frame.locator("#fig-failed b").inner_text() == str(report["failed"])
    assert frame.locator("#fig-budget b").inner_text().startswith(f"${report['estimated_cost_usd']:.4f} of ${report['budget_usd']:.2f}")
    for error_class in report["failed_by_class"]:
        assert frame.locator(f"tr.failure-class[data-class='{error_class}']").count() == 1
    assert re.fullmatch(r"\d\d:\d\d:\d\d UTC", frame.locator("#updated").inner_text())
    shards = int(frame.locator("section.round[data-round='0']").get_attribute("data-shards") or 0)
    assert shards >= 2 and frame.locator("tr.shard").count() == 0, "each round as an aggregate; shard rows on demand"
    frame.locator("button.show-shards[data-round='0']").click()
    frame.locator("tr.shard").first.wait_for()
    assert frame.locator("tr.shard").count() == shards
    ticks = frame.locator("body").evaluate(
        "() => { const u = charts['throughput-chart'].plot; return u.axes[0].values(u, [u.scales.x.min, u.scales.x.max]); }")
    assert all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in ticks), ticks
    ok = _pdf2md_status(local_airflow, run_id)
    assert ok.returncode == 0 and "SUCCEEDED" in ok.stdout, ok.stdout + ok.stderr

    # 5. A run that fails in `plan` looks failed, with the task and its message, in the tab and the CLI.
    bad = _api(base, "/api/v2/dags/pdf2md_backfill/dagRuns",
               {"logical_date": None, "conf": {"input_uri": INPUT, "output_uri": INPUT + "md/"}})
    assert _wait_for_run(base, bad["dag_run_id"]) == "failed"
    frame = _status_tab(page, base, bad["dag_run_id"], "ui-05-failed-run.png")
    assert frame.locator("#state").inner_text() == "failed"
    plan_failure = frame.locator("li.failed-task[data-task='plan']").inner_text()
    assert "output_uri must not be inside input_uri" in plan_failure
    failed = _pdf2md_status(local_airflow, bad["dag_run_id"])
    assert failed.returncode == 1 and "FAILED" in failed.stdout and "failed task plan:" in failed.stdout, failed.stdout + failed.stderr
    page.close()

    # 6. Ctrl-C stops everything `make airflow` started.
    started = local_airflow.processes()
    assert any("airflow" in cmd for cmd in started.values()), started
    local_airflow.proc.send_signal(signal.SIGINT)
    assert local_airflow.proc.wait(60) == 0
    assert alive(started) == {}, alive(started)
