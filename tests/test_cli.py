"""The `pdf2md` command: what users type, and what they get back for good and bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, SAMPLES, upload


def _pdf2md(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pdf2md.cli", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_convert_a_folder_mirrors_it_and_reports_failures(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("crazyones.pdf", "broken-truncated.pdf"):
        (src / name).write_bytes((SAMPLES / name).read_bytes())
    (src / "sub" / "Table.PDF").write_bytes((SAMPLES / "table_mislabeled_as_picture.pdf").read_bytes())
    (src / "sub" / "notes.txt").write_text("ignored")
    result = _pdf2md("convert", str(src), "-o", str(tmp_path / "out"), "--backend", "text", "--report", str(tmp_path / "r.json"))
    assert result.returncode == 1, result.stderr
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.md")) == ["crazyones.md", "sub/Table.md"]
    assert "crazy ones" in (tmp_path / "out" / "crazyones.md").read_text()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"] == {"converted": 2, "skipped": 0, "failed": 1, "pages": 2}
    assert report["failed"][0]["error_class"] == "corrupt" and report["failed"][0]["source"].endswith("broken-truncated.pdf")
    assert "Traceback" not in result.stderr


def test_convert_with_parallel_jobs_gives_the_same_files_and_report_as_one(tmp_path: Path) -> None:
    reports = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        result = _pdf2md("convert", str(SAMPLES), "-o", str(out), "--backend", "text", "--jobs", jobs,
                         "--report", str(tmp_path / f"r{jobs}.json"))
        assert result.returncode == 1, result.stderr  # the samples hold broken and encrypted PDFs
        reports.append(json.loads((tmp_path / f"r{jobs}.json").read_text()))
    assert reports[0]["summary"] == reports[1]["summary"] and reports[0]["summary"]["converted"] > 1
    assert [f["source"] for f in reports[0]["failed"]] == [f["source"] for f in reports[1]["failed"]]
    one = {p.relative_to(tmp_path / "out1"): p.read_text() for p in (tmp_path / "out1").rglob("*.md")}
    two = {p.relative_to(tmp_path / "out2"): p.read_text() for p in (tmp_path / "out2").rglob("*.md")}
    assert one == two


def test_convert_exits_zero_when_everything_converted_and_uses_passwords(tmp_path: Path) -> None:
    result = _pdf2md("convert", str(SAMPLES / "encrypted-asdfzxcv.pdf"), "-o", str(tmp_path), "--password", "wrong", "--password", "asdfzxcv")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "encrypted-asdfzxcv.md").read_text().strip()
    without = _pdf2md("convert", str(SAMPLES / "encrypted-asdfzxcv.pdf"), "-o", str(tmp_path / "x"))
    assert without.returncode == 1 and "password-required" in without.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["convert", "/no/such/file.pdf", "-o", "{tmp}/out"], "no such file or folder: /no/such/file.pdf"),
    (["convert", "{tmp}/notes.txt", "-o", "{tmp}/out"], "not a PDF:"),
    (["convert", "{samples}/crazyones.pdf", "-o", "/proc/pdf2md-out"], "cannot create output folder /proc/pdf2md-out"),
    (["convert", "{samples}/crazyones.pdf", "-o", "{tmp}/ro"], "is not writable"),
    (["convert", "{tmp}/empty", "-o", "{tmp}/out"], "no PDFs found"),
    (["convert", "{samples}/crazyones.pdf"], "required: -o/--output"),
    (["convert", "s3://", "-o", "{tmp}/out"], "no bucket"),
])
def test_bad_input_gets_one_clear_line_and_exit_code_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() == 0 and "{tmp}/ro" in args:
        pytest.skip("root can write anywhere: the unwritable-folder case needs a normal user")
    result = _pdf2md(*[a.format(tmp=tmp_path, samples=SAMPLES) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert message in last and "error:" in last, result.stderr
    assert "Traceback" not in result.stderr


def test_convert_reads_s3_uris(s3: Any, bucket: str, tmp_path: Path) -> None:
    upload(s3, bucket, "docs/2024/a.pdf", "crazyones.pdf")
    upload(s3, bucket, "docs/2024/deep/b.pdf", "FC60_Times.pdf")
    upload(s3, bucket, "docs/readme.txt", "not-a-pdf.pdf")
    result = _pdf2md("convert", f"s3://{bucket}/docs/", "-o", str(tmp_path), "--backend", "text")
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.md")) == ["2024/a.md", "2024/deep/b.md"]
    missing = _pdf2md("convert", f"s3://{bucket}/nothing-here/", "-o", str(tmp_path))
    assert missing.returncode == 2 and "no PDFs under" in missing.stderr


def _csv_inventory(s3: Any, bucket: str, source_bucket: str, keys: list[str]) -> str:
    """An S3 Inventory report as AWS writes it: a gzipped CSV data file and a dated manifest.json."""
    rows = "".join(f'"{source_bucket}","{key}","{s3.head_object(Bucket=source_bucket, Key=key)["ContentLength"]}",'
                   f'"2026-11-28T01:00:00.000Z","etag-{i}"\n' for i, key in enumerate(keys))
    s3.put_object(Bucket=bucket, Key="inventory/data/part-0.csv.gz", Body=gzip.compress(rows.encode()))
    manifest = {"sourceBucket": source_bucket, "destinationBucket": f"arn:aws:s3:::{bucket}", "version": "2016-11-30",
                "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
                "files": [{"key": "inventory/data/part-0.csv.gz", "size": 1}]}
    s3.put_object(Bucket=bucket, Key="inventory/2026-11-28T01-00Z/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{bucket}/inventory/2026-11-28T01-00Z/manifest.json"


def test_convert_reads_the_s3_input_from_an_inventory_instead_of_listing_it(s3: Any, bucket: str, tmp_path: Path) -> None:
    upload(s3, bucket, "docs/2024/a.pdf", "crazyones.pdf")
    upload(s3, bucket, "docs/notes.txt", "not-a-pdf.pdf")
    inventory = _csv_inventory(s3, bucket, bucket, ["docs/2024/a.pdf", "docs/notes.txt"])
    upload(s3, bucket, "docs/2024/later.pdf", "crazyones.pdf")  # after the report: waits for the next one
    result = _pdf2md("convert", f"s3://{bucket}/docs/", "-o", str(tmp_path / "out"), "--backend", "text", "--inventory", inventory)
    assert result.returncode == 0, result.stderr
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.md")] == ["2024/a.md"]

    other = _csv_inventory(s3, bucket, "another-bucket", [])
    wrong = _pdf2md("convert", f"s3://{bucket}/docs/", "-o", str(tmp_path / "x"), "--inventory", other)
    assert wrong.returncode == 2 and "is of bucket 'another-bucket'" in wrong.stderr.strip().splitlines()[-1], wrong.stderr
    local = _pdf2md("convert", str(SAMPLES / "crazyones.pdf"), "-o", str(tmp_path / "y"), "--inventory", inventory)
    assert local.returncode == 2 and "--inventory lists an s3:// input" in local.stderr, local.stderr


def test_worker_with_a_bad_environment_fails_with_a_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDF2MD_")}
    result = subprocess.run([sys.executable, "-m", "pdf2md.cli", "worker"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert result.returncode == 1 and "missing environment variable(s): PDF2MD_MANIFEST_URI" in result.stderr


def test_outputs_get_the_umasks_mode_and_skip_existing_skips_what_is_up_to_date(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for name in ("crazyones.pdf", "table_mislabeled_as_picture.pdf"):
        (src / name).write_bytes((SAMPLES / name).read_bytes())
    first = subprocess.run(["sh", "-c", f'umask 027 && exec "$0" -m pdf2md.cli convert {src} -o {out} --backend text',
                            sys.executable], capture_output=True, text=True, timeout=180, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert first.returncode == 0, first.stderr
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {"crazyones.md": 0o640, "table_mislabeled_as_picture.md": 0o640}

    stale = out / "crazyones.md"
    os.utime(stale, (1_000_000, 1_000_000))  # older than its PDF: converted again
    again = _pdf2md("convert", str(src), "-o", str(out), "--backend", "text", "--skip-existing", "--report", str(tmp_path / "r.json"))
    assert again.returncode == 0, again.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [c["source"] for c in report["converted"]] == [str(src / "crazyones.pdf")]
    assert [s["source"] for s in report["skipped"]] == [str(src / "table_mislabeled_as_picture.pdf")]
    assert report["summary"]["skipped"] == 1 and stale.stat().st_mtime > 1_000_000


def test_convert_of_pdfs_that_share_an_output_keeps_the_first_and_records_the_others(tmp_path: Path) -> None:
    body = (SAMPLES / "crazyones.pdf").read_bytes()
    (tmp_path / "in2").mkdir()
    for name in ("a.pdf", "a.PDF", "in2/a.pdf"):
        (tmp_path / name).write_bytes(body if name == "a.pdf" else (SAMPLES / "code_and_formula.pdf").read_bytes())
    out = tmp_path / "out"
    result = _pdf2md("convert", "a.pdf", "a.PDF", "in2/a.pdf", "-o", str(out), "--backend", "text",
                     "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert [p.name for p in out.rglob("*.md")] == ["a.md"] and "crazy ones" in (out / "a.md").read_text()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["converted"] == 1 and report["summary"]["failed"] == 2
    assert [(f["source"], f["error_class"]) for f in report["failed"]] == [("a.PDF", "key-collision"), ("in2/a.pdf", "key-collision")]
    assert "a.pdf" in report["failed"][0]["message"], "the message names the PDF that keeps the output"
