"""The status page inside a real Airflow API server, on a real run: its JSON while the run is live,
and the rendered page in headless Chromium once it is done."""

from __future__ import annotations

import json
import os
import re
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


def _facts(run: LiveRun, token: str, query: str = "") -> dict[str, Any]:
    url = f"{run.base_url}/pdf2md/api/runs/pdf2md_backfill/{urllib.parse.quote(run.run_id, safe='')}{query}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _wait_for(run: LiveRun, token: str, predicate: Any, what: str, query: str = "", timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    facts: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            facts = _facts(run, token, query)
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
    live = _wait_for(live_run, token, lambda f: any(s["state"] == "running" for r in f["rounds"][:1] for s in r["shard_table"]["rows"]),
                     "a running shard in round 0's table", query="?shards_round=0")
    assert live["live"] and live["state"] == "running" and live["report"] is None
    first = live["rounds"][0]
    running = [s for s in first["shard_table"]["rows"] if s["state"] == "running"]
    assert all(s["batch_status"] == "RUNNING" and s["assigned"] >= 1 for s in running), running
    assert first["job"]["status"] in ACTIVE
    assert [s["shard"] for s in first["shard_table"]["rows"]] == list(range(ARRAY_SIZE)) == list(range(first["shard_table"]["total"]))
    assert first["progress"]["shards"] == ARRAY_SIZE and first["progress"]["by_state"]["running"] == len(running)
    assert all("shard_table" not in r for r in live["rounds"][1:]), "rows only for the round asked for"
    assert live["spend"]["budget_usd"] == BUDGET_USD and live["spend"]["price_per_hour_usd"] > 0

    live_run.wait_until_finished()
    done = _facts(live_run, token)
    assert live_run.reclaimed.is_set(), "the test never reclaimed a child"
    assert done["state"] == "succeeded", done["message"]
    assert [r["round"] for r in done["rounds"]] == [0, 1] and done["rounds"][1]["rerun"]
    assert all("shard_table" not in r for r in done["rounds"]), "no per-shard rows unless asked for"
    assert done["rounds"][0]["progress"]["interrupted"] == [live_run.reclaimed_shard], "interrupted shards by name"
    assert done["rounds"][1]["progress"]["shards"] >= 2 and sum(done["rounds"][1]["progress"]["histogram"]) >= 2
    rows = _facts(live_run, token, "?shards_round=0")["rounds"][0]["shard_table"]["rows"]
    assert rows[live_run.reclaimed_shard]["state"] == "interrupted"
    page = _facts(live_run, token, "?shards_round=0&shards_offset=1&shards_limit=1")["rounds"][0]["shard_table"]
    assert (page["total"], [s["shard"] for s in page["rows"]]) == (ARRAY_SIZE, [1])
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


def _render(url: str, screenshot: Path | None, profile: Path) -> str:
    """Chromium's DOM after the page's scripts ran (virtual time lets fetches and charts finish),
    and a screenshot where one is asked for."""
    base = [_chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--window-size=1280,1400", "--virtual-time-budget=8000"]
    if screenshot is not None:
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
    assert 'class="shard"' not in dom, "no per-shard rows until asked for"
    assert '<section class="round" data-round="0" data-shards="3">' in dom
    assert re.search(r'<section class="round" data-round="1" data-shards="([2-9]|\d\d+)">', dom), "a rerun of at least two shards"
    assert dom.count('class="bin"') == 2 * 10, "each round's distribution of shard progress"
    assert f'data-kind="interrupted"><b>interrupted: </b><span class="shard-name" data-state="interrupted">#{finished_run.reclaimed_shard}</span>' in dom
    for error_class in BROKEN.values():
        assert f'data-class="{error_class}"' in dom
    assert f"of ${BUDGET_USD:.2f}" in dom
    assert dom.count("<canvas") >= 2, "the throughput and spend charts"
    assert screenshot.stat().st_size > 20_000

    table = _render(login.replace(urllib.parse.quote(page), urllib.parse.quote(page + "?shards=0")), None, tmp_path / "profile")
    (ARTIFACTS / "pdf2md-status-page-shards.html").write_text(table)
    assert table.count('class="shard"') == 3, "round 0's three shards on demand"
    assert f'<tr class="shard" data-state="interrupted"><td>{finished_run.reclaimed_shard}</td>' in table

    chooser = _render(f"{finished_run.base_url}/auth/token/login?next=/pdf2md/", tmp_path / "chooser.png", tmp_path / "profile")
    assert f"pdf2md_backfill · {finished_run.run_id}" in chooser, "the navigation page lists the run"
