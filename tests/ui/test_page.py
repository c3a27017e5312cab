"""The status page inside a real Airflow API server, on a real run: its JSON while the run is live,
and the rendered page in headless Chromium once it is done."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pdf2md.batch import ACTIVE
from tests.conftest import REPO
from tests.ui.conftest import ARRAY_SIZE, BROKEN, BUDGET_USD, GOOD, SCANNED, LiveRun

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _token(base_url: str) -> str:
    """A JWT from the simple auth manager (all users are admins in this test's Airflow)."""
    with urllib.request.urlopen(f"{base_url}/auth/token", timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def _facts(run: LiveRun, token: str) -> dict[str, Any]:
    url = f"{run.base_url}/pdf2md/api/runs/pdf2md_backfill/{urllib.parse.quote(run.run_id, safe='')}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _wait_for(run: LiveRun, token: str, predicate: Any, what: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    facts: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            facts = _facts(run, token)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # 404: the plan task has not written the run's configuration yet
                raise
        else:
            if predicate(facts):
                return facts
        time.sleep(0.3)
    raise AssertionError(f"never saw {what}; last facts: {json.dumps(facts)[:2000]}")


def test_the_data_endpoint_follows_a_live_run_and_checks_the_caller(live_run: LiveRun) -> None:
    live_run.wait_for_server()
    with pytest.raises(urllib.error.HTTPError) as forged:
        _facts(live_run, "not-a-jwt")
    assert forged.value.code == 403, "the endpoint is behind Airflow's authentication"

    token = _token(live_run.base_url)
    live = _wait_for(live_run, token, lambda f: any(s["state"] == "running" for r in f["rounds"] for s in r["shards"]),
                     "a running shard")
    assert live["live"] and live["state"] == "running" and live["report"] is None
    running = [(r, s) for r in live["rounds"] for s in r["shards"] if s["state"] == "running"]
    assert all(s["batch_status"] == "RUNNING" and s["assigned"] >= 1 for _, s in running), running
    assert all(r["job"]["status"] in ACTIVE for r, _ in running)
    assert [s["shard"] for s in live["rounds"][0]["shards"]] == list(range(ARRAY_SIZE))
    assert live["spend"]["budget_usd"] == BUDGET_USD and live["spend"]["price_per_hour_usd"] > 0

    live_run.wait_until_finished()
    done = _facts(live_run, token)
    assert live_run.reclaimed.is_set(), "the test never reclaimed a child"
    assert done["state"] == "succeeded", done["message"]
    assert [r["round"] for r in done["rounds"]] == [0, 1] and done["rounds"][1]["rerun"]
    assert done["rounds"][0]["shards"][live_run.reclaimed_shard]["state"] == "interrupted"
    assert all(r["reduced"] for r in done["rounds"])
    total = SCANNED + len(GOOD) + len(BROKEN)
    assert done["totals"]["assigned"] == total and done["totals"]["converted"] == SCANNED + len(GOOD)
    by_class = {c["error_class"]: c for c in done["failures"]["by_class"]}
    assert {k: c["count"] for k, c in by_class.items()} == {v: 1 for v in BROKEN.values()}
    assert by_class["corrupt"]["keys"] == [f"s3://{live_run.bucket}/in/docs/broken-truncated.pdf"]
    spend = done["spend"]
    assert 0 < spend["spent_usd"] < BUDGET_USD and spend["series"]["usd"][-1] == pytest.approx(spend["spent_usd"], rel=0.05)
    assert done["throughput"]["pages"][-1] >= SCANNED


def _chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _render(url: str, screenshot: Path, profile: Path) -> str:
    """Chromium's DOM after the page's scripts ran (virtual time lets fetches and charts finish)."""
    base = [_chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--window-size=1280,1400", "--virtual-time-budget=8000"]
    subprocess.run([*base, f"--screenshot={screenshot}", url], check=True, capture_output=True, timeout=60)
    return subprocess.run([*base, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=60).stdout


def test_chromium_renders_shards_failure_classes_and_budget(finished_run: LiveRun, tmp_path: Path) -> None:
    if _chromium() is None:
        message = "headless Chromium is not installed (apt-get install chromium); the Makefile installs it for CI"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    finished_run.wait_for_server()
    page = f"/pdf2md/runs/pdf2md_backfill/{urllib.parse.quote(finished_run.run_id, safe='')}"
    login = f"{finished_run.base_url}/auth/token/login?next={urllib.parse.quote(page)}"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "pdf2md-status-page.png"
    dom = _render(login, screenshot, tmp_path / "profile")

    (ARTIFACTS / "pdf2md-status-page.html").write_text(dom)
    assert '<div id="error" class="error"></div>' in dom, "the page reported an error: see pdf2md-status-page.html"
    assert '<span id="state" class="badge" style="background: var(--ok);">succeeded</span>' in dom
    assert dom.count('class="shard"') >= 3 + 2, "three shards in round 0, at least two (an array's minimum) in round 1"
    assert 'data-state="interrupted"' in dom
    for error_class in BROKEN.values():
        assert f'data-class="{error_class}"' in dom
    assert f"of ${BUDGET_USD:.2f}" in dom
    assert dom.count("<canvas") >= 2, "the throughput and spend charts"
    assert screenshot.stat().st_size > 20_000

    chooser = _render(f"{finished_run.base_url}/auth/token/login?next=/pdf2md/", tmp_path / "chooser.png", tmp_path / "profile")
    assert f"pdf2md_backfill · {finished_run.run_id}" in chooser, "the navigation page lists the run"
