"""The `outputs` setting end to end on the emulator: the worker writes what a run asks for (and counts its S3
requests per PDF), the plan treats a PDF whose requested outputs are not all present and current as not done,
the CLI takes --outputs (and --page-markers as its alias)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pdf2md import worker
from pdf2md.contracts import DEFAULT_OUTPUTS, ENV_OUTPUTS, JobSettings, RunLayout, S3Uri, json_key, output_key, parse_outputs
from pdf2md.convert.document_json import schema
from pdf2md.plan import plan_round
from pdf2md.run_state import RunConfig
from tests.conftest import upload

REPO = Path(__file__).resolve().parents[1]
SAMPLES = ("crazyones.pdf", "FC60_Times.pdf", "code_and_formula.pdf")


def test_outputs_parse_in_one_order_and_always_hold_markdown() -> None:
    assert parse_outputs("page-markers, json,markdown,json") == ("markdown", "json", "page-markers")
    assert parse_outputs(["markdown"]) == DEFAULT_OUTPUTS
    with pytest.raises(ValueError, match="'pdf' not one of"):
        parse_outputs("markdown,pdf")
    with pytest.raises(ValueError, match="must include markdown"):
        parse_outputs("json")


def test_the_job_env_carries_outputs_only_when_not_the_default() -> None:
    base = JobSettings("s3://b/m/", "s3://b/out/", "s3://b/runs/r/", "r", 1)
    assert ENV_OUTPUTS not in base.to_env()
    chosen = JobSettings("s3://b/m/", "s3://b/out/", "s3://b/runs/r/", "r", 1, outputs=("markdown", "json", "figures"))
    assert chosen.to_env()[ENV_OUTPUTS] == "markdown,json,figures"
    assert JobSettings.from_env(chosen.to_env()).outputs == ("markdown", "json", "figures")
    with pytest.raises(ValueError, match=ENV_OUTPUTS):
        JobSettings.from_env({**chosen.to_env(), ENV_OUTPUTS: "markdown,html"})


def _params(**over: Any) -> dict[str, Any]:
    from pdf2md.airflow.params import run_params

    params = {name: param.value for name, param in run_params().items()}
    return {**params, "input_uri": "s3://in-bucket/pdfs/", "output_uri": "s3://out-bucket/md/", **over}


def test_the_trigger_form_offers_a_multi_select_and_the_conf_key_reaches_the_job() -> None:
    pytest.importorskip("airflow")
    from pdf2md.airflow.params import run_params
    from pdf2md.contracts import Plan
    from pdf2md.run_state import RunState, round_order

    param = run_params()["outputs"]
    assert param.value == ["markdown"]
    assert param.schema["type"] == "array" and param.schema["items"]["enum"] == ["markdown", "json", "figures", "page-markers"]
    validator = jsonschema.Draft202012Validator(param.schema)
    assert validator.is_valid(["markdown", "json"]) and not validator.is_valid(["json"]) and not validator.is_valid(["markdown", "x"])
    config = RunConfig.from_params("r1", _params(outputs=["json", "markdown"]))
    assert config.outputs == ("markdown", "json")
    state = RunState.from_xcom(RunState(config, Plan("s3://out-bucket/m/", 0, 0, 0, 0, 0, 0, 0, 0), 0.0).to_xcom())
    assert state.config.outputs == ("markdown", "json")
    order = round_order(state, 0, "s3://out-bucket/m/", 2, 1.0, 10.0)
    assert order.environment[ENV_OUTPUTS] == "markdown,json"
    assert ENV_OUTPUTS not in round_order(RunState(RunConfig.from_params("r2", _params()), state.plan, 0.0), 0, "s3://x/m/", 2, 1.0, 1.0).environment
    with pytest.raises(ValueError, match="outputs"):
        RunConfig.from_params("r3", _params(outputs=["markdown", "pdf"]))


class Requests:
    """Every S3 request a client makes, as (operation, key)."""

    def __init__(self, s3: Any) -> None:
        self.calls: list[tuple[str, str]] = []
        s3.meta.events.register("before-call.s3", self._seen)

    def _seen(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, params.get("url_path", "")))

    def per_pdf(self, pdf_keys: list[str], out: S3Uri) -> Counter[str]:
        """Requests on the PDFs and on the outputs they became (not the shard's manifest and records)."""
        stems = [k.removeprefix("in/")[:-4] for k in pdf_keys]
        paths = [f"/in/{s}.pdf" for s in stems] + [f"/{out.dir_prefix}{s}." for s in stems]
        return Counter(op for op, path in self.calls if any(path.startswith(p) for p in paths))


@pytest.fixture
def pdfs(s3: Any, bucket: str) -> list[str]:
    for sample in SAMPLES:
        upload(s3, bucket, f"in/{sample}", sample)
    return [f"in/{s}" for s in SAMPLES]


def _count(s3: Any, bucket: str, pdfs: list[str], run_id: str, outputs: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    requests = Requests(s3)
    monkeypatch.setattr(worker.s3io, "client", lambda config=None: s3)
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", 2, outputs=outputs)
    requests.calls.clear()
    for index in range(plan.array_size):
        settings = JobSettings(plan.manifest_uri, f"s3://{bucket}/out/", str(layout.run), run_id, plan.array_size, array_index=index,
                               backend="text", pdf_timeout_s=60, jobs=1, outputs=outputs)
        assert worker.run(settings, s3=s3) == 0
    return requests.per_pdf(pdfs, S3Uri(bucket, "out/"))


def test_requests_per_pdf_for_each_output_choice(s3: Any, bucket: str, pdfs: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = S3Uri(bucket, "out/")
    n = len(pdfs)
    assert _count(s3, bucket, pdfs, "r-md", DEFAULT_OUTPUTS, monkeypatch) == {"GetObject": n, "PutObject": n, "HeadObject": n}
    head = s3.head_object(Bucket=bucket, Key=output_key(out, "crazyones.pdf"))["Metadata"]
    assert "outputs" not in head  # the default run's Markdown and its metadata are as before

    # json and page anchors: the plan sees that none of the PDFs has them, and each costs one more PUT
    chosen = ("markdown", "json", "page-markers")
    assert _count(s3, bucket, pdfs, "r-all", chosen, monkeypatch) == {"GetObject": n, "PutObject": 2 * n, "HeadObject": n}
    body = s3.get_object(Bucket=bucket, Key=output_key(out, "crazyones.pdf"))
    assert body["Metadata"]["outputs"] == "markdown,json,page-markers"
    assert body["Body"].read().decode().startswith("<!-- page 1 -->\n\n")
    data = json.loads(s3.get_object(Bucket=bucket, Key=json_key(out, "crazyones.pdf"))["Body"].read())
    jsonschema.Draft202012Validator(schema()).validate(data)
    assert data["source"]["uri"] == f"s3://{bucket}/in/crazyones.pdf" and data["pages"][0]["blocks"]


def test_the_plan_counts_a_pdf_done_only_with_every_requested_output(s3: Any, bucket: str, pdfs: list[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = S3Uri(bucket, "out/")
    _count(s3, bucket, pdfs, "r-md", DEFAULT_OUTPUTS, monkeypatch)

    def plan(outputs: tuple[str, ...], run: str) -> Any:
        return plan_round(s3, RunLayout(S3Uri(bucket, f"runs/{run}/")), f"s3://{bucket}/in/", f"s3://{bucket}/out/", 2, outputs=outputs)

    assert (plan(DEFAULT_OUTPUTS, "p1").entries, plan(DEFAULT_OUTPUTS, "p1").skipped) == (0, 3)
    wants_json = plan(("markdown", "json"), "p2")
    assert (wants_json.entries, wants_json.skipped) == (3, 0)  # no JSON yet: not done
    wants_markers = plan(("markdown", "page-markers"), "p3")
    assert (wants_markers.entries, wants_markers.skipped) == (3, 0)  # the Markdown says it has no anchors
    _count(s3, bucket, pdfs, "r-json", ("markdown", "json", "page-markers"), monkeypatch)
    assert plan(("markdown", "json", "page-markers"), "p4").skipped == 3
    assert plan(DEFAULT_OUTPUTS, "p5").skipped == 3
    s3.delete_object(Bucket=bucket, Key=json_key(out, "crazyones.pdf"))
    again = plan(("markdown", "json"), "p6")
    assert (again.entries, again.skipped) == (1, 2)


def test_cli_outputs_and_the_page_markers_alias(tmp_path: Path) -> None:
    sample = REPO / "tests" / "data" / "pdfs" / "crazyones.pdf"
    env_cmd = [sys.executable, "-m", "pdf2md.cli", "convert", str(sample)]
    done = subprocess.run([*env_cmd, "-o", str(tmp_path / "a"), "--outputs", "markdown,json"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "a" / "crazyones.json").read_text())
    jsonschema.Draft202012Validator(schema()).validate(data)
    md = (tmp_path / "a" / "crazyones.md").read_text()
    assert "".join(b["markdown"] for p in data["pages"] for b in p["blocks"][:1]) in md and not md.startswith("<!--")
    alias = subprocess.run([*env_cmd, "-o", str(tmp_path / "b"), "--page-markers"], capture_output=True, text=True, cwd=REPO)
    assert alias.returncode == 0 and (tmp_path / "b" / "crazyones.md").read_text().startswith("<!-- page 1 -->")
    assert not (tmp_path / "b" / "crazyones.json").exists()
    bad = subprocess.run([*env_cmd, "-o", str(tmp_path / "c"), "--outputs", "json"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "must include markdown" in bad.stderr


def _figure_pdf(s3: Any, bucket: str, tmp_path: Path) -> str:
    from tests.convert.pdfgen import Page, write_pdf

    path = write_pdf(tmp_path / "fig.pdf", [Page(texts=[(72, 720, "A page with one figure on it"), (72, 300, "Text under the figure.")],
                                                 image=True, image_rect=(72, 400, 300, 200))])
    s3.put_object(Bucket=bucket, Key="in/fig.pdf", Body=path.read_bytes())
    return "in/fig.pdf"


def test_figures_cost_one_put_each_and_their_links_resolve(s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _figure_pdf(s3, bucket, tmp_path)
    out = S3Uri(bucket, "out/")
    assert _count(s3, bucket, [key], "r-fig", ("markdown", "figures"), monkeypatch) == {"GetObject": 1, "PutObject": 2, "HeadObject": 1}
    got = s3.get_object(Bucket=bucket, Key=output_key(out, "fig.pdf"))
    assert got["Metadata"]["figures"] == "1" and got["Metadata"]["outputs"] == "markdown,figures"
    markdown = got["Body"].read().decode()
    assert "![Figure 1](fig.assets/page-0001-figure-01.png)" in markdown
    image = s3.get_object(Bucket=bucket, Key="out/fig.assets/page-0001-figure-01.png")
    assert image["ContentType"] == "image/png" and image["Body"].read()[:8] == b"\x89PNG\r\n\x1a\n"
    # a rerun replaces the image rather than adding another
    s3.delete_object(Bucket=bucket, Key=output_key(out, "fig.pdf"))
    _count(s3, bucket, [key], "r-fig2", ("markdown", "figures"), monkeypatch)
    assets = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/fig.assets/")["Contents"]]
    assert assets == ["out/fig.assets/page-0001-figure-01.png"]


def test_a_pdf_whose_markdown_cannot_be_written_leaves_no_sidecars(s3: Any, bucket: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    _figure_pdf(s3, bucket, tmp_path)

    def refuse_markdown(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", "").endswith(".md"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "PutObject")

    s3.meta.events.register("provide-client-params.s3.PutObject", refuse_markdown)
    try:
        _count(s3, bucket, ["in/fig.pdf"], "r-deny", ("markdown", "json", "figures"), monkeypatch)
    finally:
        s3.meta.events.unregister("provide-client-params.s3.PutObject", refuse_markdown)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="out/")
