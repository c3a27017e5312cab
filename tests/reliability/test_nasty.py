"""Hostile input: every file ends converted or as a named, permanent error class with a one-line message.

The tiny fixtures (tests/reliability/fixtures/, < 2 KB each, see its README) always run; the whole
../shared/corpus/nasty runs where the shared folder is present (the shared_corpus fixture skips otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pdf2md import s3 as s3io
from pdf2md.contracts import (
    ERROR_CLASSES,
    FailureRecord,
    JobSettings,
    ManifestEntry,
    OutputMeta,
    RunLayout,
    S3Uri,
    failure_marker_key,
)
from pdf2md.convert import ConversionError, ConvertOptions
from pdf2md.convert.document import open_pdf
from pdf2md.isolation import IsolatedConverter
from tests.conftest import REPO

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED_FIXTURES = {
    "qpdf_empty_0_pages.pdf": "empty",
    "qpdf_bad-encryption-length.pdf": "password-required",
    "opf_trailer_root_invalid_ref.pdf": "corrupt",
    "qpdf_bad1.pdf": "not-pdf",
    "qpdf_bad-xref.pdf": "converted",
}
# The corpus README's published passwords.
PASSWORDS = {
    "pypdf_r6_user_password.pdf": "asdfzxcv",
    "pypdf_r2_rc4_40_user_password.pdf": "asdfzxcv",
    "pypdf_libreoffice_password.pdf": "openpassword",
    "docling_password_pg3.pdf": "1234",
}
# How each file of the nasty corpus that does not convert must end (everything else converts).
EXPECTED_FAILURES: dict[str, set[str]] = {
    "empty_0_bytes.pdf": {"not-pdf"},
    "qpdf_bad1.pdf": {"not-pdf"},
    "qpdf_issue-335b.pdf": {"not-pdf"},
    "qpdf_issue-147.pdf": {"not-pdf"},
    "qpdf_issue-150.pdf": {"not-pdf"},
    "opf_header_no_pdf.pdf": {"not-pdf"},
    "qpdf_bad-direct-root.pdf": {"not-pdf"},  # no %PDF- header at all
    "generated_png_named.pdf": {"not-pdf"},
    "generated_markdown_named.pdf": {"not-pdf"},
    "generated_zip_odt_named.pdf": {"not-pdf"},
    "opf_trailer_root_invalid_ref.pdf": {"corrupt"},
    "generated_truncated_50pct.pdf": {"corrupt"},
    "generated_truncated_1k.pdf": {"corrupt"},
    "generated_no_eof_marker.pdf": {"corrupt"},
    "qpdf_empty_0_pages.pdf": {"empty"},
    "generated_zero_pages_pypdf.pdf": {"empty"},
    "generated_100k_pages.pdf": {"too-many-pages"},
    "opf_encryption_openpassword.pdf": {"password-required"},
    "qpdf_bad-encryption-length.pdf": {"password-required"},
    **{name: {"password-required"} for name in PASSWORDS},
    # pdfium opens these but cannot load one of their pages: the text layer reports a converter
    # error today; `corrupt` would be the better name (and is accepted here).
    "pdfjs_Pages-tree-refs.pdf": {"conversion-error", "corrupt"},
    "pdfjs_poppler-937-fuzzed.pdf": {"conversion-error", "corrupt"},
}


def _classify(path: Path, passwords: tuple[str, ...] = (), max_pages: int | None = 5000) -> str:
    try:
        with open_pdf(path, passwords, max_pages):
            return "opened"
    except ConversionError as exc:
        assert exc.message and "\n" not in exc.message
        return exc.error_class


def _pdf_with_pages(path: Path, n: int) -> Path:
    """A valid PDF whose page tree references one empty page n times (like generated_100k_pages)."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (n, b" ".join([b"3 0 R"] * n)),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer << /Root 1 0 R /Size %d >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))
    return path


# --- without ../shared -------------------------------------------------------------------------


def test_fixtures_are_tiny_and_documented() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for name in EXPECTED_FIXTURES:
        assert (FIXTURES / name).stat().st_size < 2048
        assert name in readme


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_FIXTURES.items()))
def test_open_pdf_names_the_error_class(name: str, expected: str) -> None:
    assert _classify(FIXTURES / name) == ("opened" if expected == "converted" else expected)


def test_an_empty_page_tree_is_empty_whatever_failed_before_it() -> None:
    """pdfium's last error is process-wide and stale for a document that loads with 0 pages: after an
    encrypted PDF a zero-page one used to read as password-required, after a broken one as corrupt."""
    order = ["qpdf_bad-encryption-length.pdf", "qpdf_empty_0_pages.pdf", "opf_trailer_root_invalid_ref.pdf",
             "qpdf_empty_0_pages.pdf", "qpdf_bad-xref.pdf", "qpdf_empty_0_pages.pdf"]
    assert [_classify(FIXTURES / n) for n in order] == [
        "password-required", "empty", "corrupt", "empty", "opened", "empty"]
    assert _classify(FIXTURES / "qpdf_empty_0_pages.pdf", passwords=("x", "y")) == "empty"


def test_empty_agrees_with_pypdf_page_tree() -> None:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(FIXTURES / "qpdf_empty_0_pages.pdf")
    assert reader.trailer["/Root"]["/Pages"]["/Count"] == 0 and len(reader.pages) == 0


def test_too_many_pages_is_named_without_loading_them(tmp_path: Path) -> None:
    big = _pdf_with_pages(tmp_path / "6000.pdf", 6000)
    assert _classify(big) == "too-many-pages"
    assert _classify(big, max_pages=6000) == "opened"
    with pytest.raises(ConversionError, match=r"6000 pages, more than the limit of 5000"):
        with open_pdf(big, max_pages=5000):
            pass


def test_isolated_converter_classifies_each_fixture_in_one_long_lived_child() -> None:
    """The real path: one spawn child converts them in turn, as the worker and the CLI do."""
    got = {}
    with IsolatedConverter(ConvertOptions(backend="text"), timeout_s=30, memory_mb=1024) as conv:
        for name in [*sorted(EXPECTED_FIXTURES), "qpdf_empty_0_pages.pdf"]:
            try:
                got[name] = "converted" if conv.convert(FIXTURES / name).pages >= 1 else "no pages?"
            except ConversionError as exc:
                assert not exc.retryable and "\n" not in exc.message
                got[name] = exc.error_class
    assert got == EXPECTED_FIXTURES


# --- the whole nasty corpus (../shared) ------------------------------------------------------------


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pdf2md.cli", "convert", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_every_nasty_file_ends_converted_or_named(shared_corpus: Path, tmp_path: Path) -> None:
    nasty = shared_corpus / "nasty"
    pdfs = sorted(p.name for p in nasty.glob("*.pdf"))
    assert len(pdfs) == 57
    # The text backend: this is about parsing hostile files, not OCR speed (bench/nasty.py runs `auto`).
    result = _cli(str(nasty), "-o", str(tmp_path / "md"), "--report", str(tmp_path / "r.json"), "--backend", "text", "--timeout", "30")
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    ended = {Path(c["source"]).name: "converted" for c in report["converted"]}
    for f in report["failed"]:
        assert f["error_class"] in ERROR_CLASSES and not ERROR_CLASSES[f["error_class"]].retryable
        assert f["message"] and "\n" not in f["message"] and len(f["message"]) < 300, f
        ended[Path(f["source"]).name] = f["error_class"]
    assert sorted(ended) == pdfs, "every file ends exactly once"
    wrong = {n: c for n, c in ended.items() if c not in EXPECTED_FAILURES.get(n, {"converted"})}
    assert not wrong, wrong
    assert all((tmp_path / "md" / (n[:-4] + ".md")).is_file() for n, c in ended.items() if c == "converted")


def test_published_passwords_open_the_encrypted_ones(shared_corpus: Path, tmp_path: Path) -> None:
    nasty = shared_corpus / "nasty"
    files = [str(nasty / n) for n in [*PASSWORDS, "opf_encryption_openpassword.pdf"]]
    pw_args = [a for pw in sorted(set(PASSWORDS.values())) for a in ("--password", pw)]
    result = _cli(*files, "-o", str(tmp_path / "md"), "--report", str(tmp_path / "r.json"), "--backend", "text", *pw_args)
    report = json.loads((tmp_path / "r.json").read_text())
    assert sorted(Path(c["source"]).name for c in report["converted"]) == sorted(PASSWORDS), result.stderr[-2000:]
    assert [(Path(f["source"]).name, f["error_class"]) for f in report["failed"]] == [
        ("opf_encryption_openpassword.pdf", "password-required")]
    assert "3 supplied password(s) failed" in report["failed"][0]["message"]
    assert "DocLayNet" in (tmp_path / "md" / "docling_password_pg3.md").read_text()


def test_worker_uses_the_passwords_object_and_never_retries_password_required(
    shared_corpus: Path, s3: Any, bucket: str
) -> None:
    from batch_jobs import worker

    nasty = shared_corpus / "nasty"
    names = [*PASSWORDS, "opf_encryption_openpassword.pdf"]
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"in/{name}", Body=(nasty / name).read_bytes())
    s3.put_object(Bucket=bucket, Key="secrets/passwords.json", Body=json.dumps(sorted(set(PASSWORDS.values()))).encode())
    entries = [ManifestEntry(bucket=bucket, key=f"in/{n}", rel=n, size=1, etag=f"e{i}", mtime=0.0) for i, n in enumerate(names)]

    def run(run_id: str, passwords_uri: str | None) -> tuple[list[OutputMeta], list[FailureRecord]]:
        layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
        s3io.write_jsonl(s3, bucket, layout.manifest_key(0), entries)
        settings = JobSettings(
            manifest_uri=layout.uri(layout.manifest_key(0)), output_uri=f"s3://{bucket}/out-{run_id}/",
            run_uri=f"s3://{bucket}/runs/{run_id}/", run_id=run_id, array_size=1, backend="text", pdf_timeout_s=60,
            passwords_uri=passwords_uri,
        )
        assert worker.run(settings, s3=s3) == worker.EXIT_DONE
        return (list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 1), OutputMeta)),
                list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 1), FailureRecord)))

    converted, failed = run("without", None)
    assert converted == [] and sorted(f.rel for f in failed) == sorted(names)
    assert {(f.error_class, f.retryable) for f in failed} == {("password-required", False)}

    converted, failed = run("with", f"s3://{bucket}/secrets/passwords.json")
    assert sorted(m.source_uri.rsplit("/", 1)[-1] for m in converted) == sorted(PASSWORDS)
    assert [(f.rel, f.error_class, f.retryable) for f in failed] == [("opf_encryption_openpassword.pdf", "password-required", False)]
    # A permanent failure leaves its marker, so later plans skip this version instead of retrying it.
    marker = failure_marker_key(S3Uri(bucket, "out-with/"), "opf_encryption_openpassword.pdf")
    assert s3io.get_json(s3, bucket, marker, FailureRecord) is not None
