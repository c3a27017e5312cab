"""Security: hostile S3 keys map to safe output keys and local paths; no credentials in the tree;
no temporary files left behind; the containers run as a non-root user."""

from __future__ import annotations

import posixpath
import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_jobs import worker
from pdf2md import s3 as s3io
from pdf2md.cli import _collect
from pdf2md.contracts import (
    JOB_ENV_NAMES,
    MAX_NAME_BYTES,
    MAX_REL_BYTES,
    FailureRecord,
    JobSettings,
    OutputMeta,
    RunLayout,
    S3Uri,
    failure_marker_key,
    markdown_rel,
    output_key,
    relative_key,
    safe_rel,
)
from pdf2md.plan import plan_round
from tests.conftest import REPO, SAMPLES

LONG_KEY = "in/" + "/".join(["d" * 150] * 5) + "/" + "é" * 80 + ".pdf"
"""922 bytes: S3 takes it (the limit is 1,024), its relative path is over MAX_REL_BYTES."""
HOSTILE_KEYS = [
    LONG_KEY,
    "in/with space/a b.pdf",
    "in/ünïcødé/ドキュメント ✓.pdf",
    "in/../../etc/passwd.pdf",
    "in/a/../../../b.pdf",
    "/in/leading-slash.pdf",
    "in//double//slash.pdf",
    "in/./dot/./x.pdf",
    "in/back\\slash\\..\\..\\evil.pdf",
    "in/nul\x00byte.pdf",
    "in/" + "é" * 300 + ".pdf",
    "in/" + "/".join(["d" * 180] * 5) + "/" + "x" * 150 + ".pdf",
    "in/" + "long name " * 95 + ".pdf",
]


def _check_rel(rel: str) -> None:
    """A relative path that stays under any root, in S3 and on a local disk."""
    assert rel and not rel.startswith("/") and "\\" not in rel and "\x00" not in rel
    parts = rel.split("/")
    assert all(p not in ("", ".", "..") for p in parts), rel
    assert all(len(p.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES for p in parts)
    assert len(rel.encode("utf-8", "surrogatepass")) <= MAX_REL_BYTES
    root = "/srv/out"
    assert posixpath.normpath(posixpath.join(root, rel)).startswith(root + "/")
    assert safe_rel(rel) == rel, "idempotent: the planner and the worker agree on every key"


def _check_output(prefix: str, rel: str) -> None:
    out = S3Uri("bucket", prefix)
    for key in (output_key(out, rel), failure_marker_key(out, rel)):
        assert key.startswith(out.dir_prefix)
        tail = key[len(out.dir_prefix):]
        assert all(p not in ("", ".", "..") for p in tail.split("/")), key
        assert len(key.encode("utf-8", "surrogatepass")) <= 1024, "S3's key limit"
    md = markdown_rel(rel)
    assert md.endswith(".md") and all(p not in ("", ".", "..") for p in md.split("/"))
    # Local mirror: the .md and the CLI's '.<name>.XXXXXXXX.tmp' sibling both fit in 255 bytes.
    assert len(f".{PurePosixPath(md).name}.XXXXXXXX.tmp".encode("utf-8", "surrogatepass")) <= 255


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k[:40]))
def test_hostile_keys_map_to_safe_keys_and_paths(key: str) -> None:
    rel = relative_key(key, "in/")
    _check_rel(rel)
    _check_output("markdown/2024/", rel)


def test_long_names_stay_distinct_and_keep_their_extension() -> None:
    a, b = "in/" + "x" * 400 + "-a.pdf", "in/" + "x" * 400 + "-b.pdf"
    ra, rb = relative_key(a, "in/"), relative_key(b, "in/")
    assert ra != rb and ra.endswith(".pdf") and rb.endswith(".pdf")
    assert markdown_rel(ra).endswith("~" + ra.rsplit("~", 1)[1][:-4] + ".md")
    deep = ["in/" + "/".join([f"{c}" * 200] * 5) + "/f.pdf" for c in "pq"]
    assert relative_key(deep[0], "in/") != relative_key(deep[1], "in/")
    assert relative_key("in/short name.pdf", "in/") == "short name.pdf", "ordinary keys are untouched"


@pytest.mark.parametrize("key", ["", "/", "//", "./..", "..\\..", "\x00", "in/", "in/../.."])
def test_keys_without_a_usable_name_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="no usable name"):
        relative_key(key, "in/")


_chars = st.sampled_from(list("ab./\\ \x00é✓~%-") + ["..", "ドキ", "\ud800", "é" * 60, "x" * 90])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.lists(_chars, max_size=40).map("".join), prefix=st.sampled_from(["", "in/", "in", "in/sub/", "/"]))
def test_no_produced_path_escapes_its_root(key: str, prefix: str) -> None:
    try:
        rel = relative_key(key, prefix)
    except ValueError:
        return
    _check_rel(rel)
    _check_output("out/", rel)


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.text(st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)), min_size=1, max_size=300)
                      .filter(lambda s: s not in (".", "..")), min_size=1, max_size=4))
def test_distinct_ordinary_keys_stay_distinct(names: list[str]) -> None:
    """Shortening keeps a digest of the full name: two different names never merge."""
    key = "/".join(names)
    other = key + "x"
    assert safe_rel(key) != safe_rel(other)


def test_distinct_pdf_keys_that_share_an_output_are_refused_not_overwritten() -> None:
    from pdf2md.contracts import ManifestEntry
    from pdf2md.plan import drop_collisions

    keys = ["in/a/../b.pdf", "in/a/b.pdf", "in/x.PDF", "in/x.pdf", "in//y.pdf", "in/y.pdf", "in/z.pdf"]
    entries = [ManifestEntry("b", k, relative_key(k, "in/"), 1, "e", 1.0) for k in keys]
    kept, refused = drop_collisions(entries)
    out = S3Uri("b", "out/")
    assert len({output_key(out, e.rel) for e in kept}) == len(kept) == 4
    assert sorted(e.key for e in refused) == ["in/a/b.pdf", "in/x.pdf", "in/y.pdf"]


# --- the CLI's local mirror ------------------------------------------------------------------------


def test_cli_local_mirror_stays_inside_the_output_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    names = ["a b/ü ✓.pdf", "é" * 120 + ".pdf", "d" * 200 + "/" + "x" * 240 + ".PDF", "..dots..pdf"]
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((SAMPLES / "crazyones.pdf").read_bytes())
    jobs = list(_collect([str(src)]))
    assert len(jobs) == len(names) and len({j.rel_md for j in jobs}) == len(names)
    out = tmp_path / "out"
    for job in jobs:
        _check_rel(job.rel_md)
        target = (out / job.rel_md).resolve()
        assert target.is_relative_to(out.resolve())
        assert len(f".{target.name}.XXXXXXXX.tmp".encode()) <= 255


def test_cli_single_long_file_name_is_shortened(tmp_path: Path) -> None:
    pdf = tmp_path / ("é" * 120 + "xxxxxx.pdf")
    pdf.write_bytes((SAMPLES / "crazyones.pdf").read_bytes())
    (job,) = _collect([str(pdf)])
    assert len(f".{job.rel_md}.XXXXXXXX.tmp".encode()) <= 255


def test_cli_s3_mirror_of_hostile_keys(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pdf2md import cli

    body = (SAMPLES / "crazyones.pdf").read_bytes()
    keys = ["in/a b/ü ✓.pdf", "in/../../x.pdf", "in//y.pdf", "in/" + "é" * 300 + ".pdf", LONG_KEY]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    monkeypatch.setattr(cli, "_s3_client", lambda: s3)
    jobs = list(_collect([f"s3://{bucket}/in/"]))
    assert sorted(j.s3.prefix for j in jobs) == sorted(keys)
    for job in jobs:
        _check_rel(job.rel_md)


# --- the worker on hostile keys, and its temporary files -----------------------------------------


class _StopAfterFirstOutput:
    """A stop flag that turns on once the first Markdown PUT is sent (a Spot reclaim mid-shard)."""

    def __init__(self, client: Any) -> None:
        self.on = False
        client.meta.events.register("before-send.s3.PutObject", self._seen)

    def _seen(self, request: Any, **_: Any) -> None:
        if request.url.endswith(".md"):
            self.on = True

    def __call__(self) -> bool:
        return self.on


@pytest.mark.parametrize("interrupt", [False, True], ids=["done", "interrupted"])
def test_worker_on_hostile_keys_writes_only_under_its_prefix_and_leaves_no_temp_files(
    s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: bool
) -> None:
    samples = {"in/with space/ü ✓.pdf": "crazyones.pdf", "in//double.pdf": "code_and_formula.pdf",
               "in/" + "é" * 300 + ".pdf": "crazyones.pdf", "in/broken/b.pdf": "broken-truncated.pdf",
               "in/not/a.pdf": "not-a-pdf.pdf", LONG_KEY: "FC60_Times.pdf"}
    for key, sample in samples.items():
        s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / sample).read_bytes())
    layout = RunLayout(S3Uri(bucket, "runs/r1/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=2)
    settings_ = JobSettings(manifest_uri=plan.manifest_uri, output_uri=f"s3://{bucket}/out/", run_uri=f"s3://{bucket}/runs/r1/",
                            run_id="r1", array_size=1, backend="text", pdf_timeout_s=60)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    client = s3io.client()
    stop = _StopAfterFirstOutput(client) if interrupt else None
    code = worker.run(settings_, s3=client, stop=stop)  # type: ignore[arg-type]
    assert code == (worker.EXIT_INTERRUPTED if interrupt else worker.EXIT_DONE)
    assert list(tmp.iterdir()) == [], "the worker's temporary folder and the downloaded PDFs are gone"

    written = [o.key for o in s3io.iter_objects(s3, S3Uri(bucket, ""))]
    for key in set(written) - set(samples):
        assert key.startswith(("out/", "runs/r1/")), key
        assert all(p not in ("", ".", "..") for p in key.split("/")), key
    results = list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 1), OutputMeta))
    failures = list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 1), FailureRecord))
    assert len(results) + len(failures) == len(samples)
    assert len(LONG_KEY.encode()) > 900 and relative_key(LONG_KEY, "in/").startswith("~")
    if not interrupt:
        assert len(results) == 4 and {f.error_class for f in failures} == {"corrupt", "not-pdf"}


# --- no credentials, non-root containers --------------------------------------------------------------

_SECRETS = [
    re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"),
    re.compile(r"(?i)aws_?secret_?access_?key\s*[=:]\s*['\"]?(?!testing\b)[A-Za-z0-9/+]{40}\b"),
    re.compile(r"(?i)aws_?session_?token\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{100,}"),
    re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
]


def _repo_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / n for n in out.decode().split("\0") if n and (REPO / n).is_file()]


def test_no_credentials_in_the_repository() -> None:
    files = _repo_files()
    assert any(f.suffix == ".tf" for f in files) and any(f.suffix == ".py" for f in files)
    hits = []
    for path in files:
        if path.suffix.lower() in (".pdf", ".png", ".jpg", ".onnx", ".safetensors", ".bin", ".gz"):
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{path.relative_to(REPO)}: {m.group(0)[:24]}..." for rx in _SECRETS for m in rx.finditer(text)]
    assert hits == []


def test_the_job_definition_carries_no_secrets() -> None:
    tf = {p.name: p.read_text() for p in (REPO / "terraform").glob("*.tf")}
    block = re.search(r"job_environment\s*=\s*\{(.*?)\n\s*\}", tf["main.tf"], re.S)
    assert block, "terraform/main.tf defines local.job_environment"
    names = re.findall(r"^\s*(\w+)\s*=", block.group(1), re.M)
    assert names and set(names) <= set(JOB_ENV_NAMES)
    assert not [n for n in names if re.search(r"SECRET|TOKEN|KEY_ID|ACCESS_KEY|PASSWORD", n)]
    definition = tf["batch.tf"][tf["batch.tf"].index('resource "aws_batch_job_definition"'):]
    assert not re.search(r"(?i)AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|password\s*=", definition)
    assert "jobRoleArn" in definition, "credentials come from the job role"


NON_ROOT_BASES = ("apache/airflow",)
"""Official images that already run as a non-root user (apache/airflow: `airflow`, uid 50000)."""


def test_the_worker_images_exist() -> None:
    workers = [p.name for p in (REPO / "containers").glob("*.Dockerfile") if re.search(r'"pdf2md",\s*"worker"', p.read_text())]
    assert {"cpu.Dockerfile", "gpu.Dockerfile"} <= set(workers)


@pytest.mark.parametrize("dockerfile", sorted(p.name for p in (REPO / "containers").glob("*.Dockerfile")))
def test_containers_run_as_a_non_root_user(dockerfile: str) -> None:
    text = (REPO / "containers" / dockerfile).read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    final_stage = lines[max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")):]
    users = [ln.split(None, 1)[1].split(":")[0] for ln in final_stage if ln.upper().startswith("USER ")]
    runs_worker = bool(re.search(r'"pdf2md",\s*"worker"', text))
    if not users and not runs_worker and any(base in text for base in NON_ROOT_BASES):
        return  # inherits the official image's non-root user
    assert users, f"{dockerfile} never switches away from root"
    assert users[-1] not in ("root", "0")
    last_user = max(i for i, ln in enumerate(final_stage) if ln.upper().startswith("USER "))
    assert not [ln for ln in final_stage[last_user:] if ln.upper().startswith("RUN ")], "nothing runs as root after USER"
    uid = users[-1]
    assert (uid.isdigit() and int(uid) >= 1000) or any("useradd" in ln and uid in ln for ln in final_stage)
