"""Speed and quality of the text-layer path against raw pypdfium2 on the shared dev corpus.

Run as `.venv/bin/python bench/text_quality.py [--keep DIR]`. Each extractor runs in its own child
process (so its peak RSS is its own), writes one .md per manifest entry, and both outputs are then
scored with ../shared/tools/score.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "dev"
SCORER = SHARED / "tools" / "score.py"
EXTRACTORS = ("pdf2md-text", "pypdfium2-raw")


def manifest_pdfs(corpus: Path) -> list[str]:
    """The manifest's `pdf` entries, relative to the corpus."""
    lines = (corpus / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["pdf"] for line in lines if line.strip()]


def extract_pdf2md(pdf: Path) -> tuple[str, int]:
    """The text path, exactly as `pdf2md convert --backend text` runs it."""
    from pdf2md.convert import ConvertOptions, convert_pdf

    result = convert_pdf(pdf, ConvertOptions(backend="text"))
    return result.markdown, result.pages


def extract_raw(pdf: Path) -> tuple[str, int]:
    """The floor: pypdfium2's own bounded text of every page, pages joined by blank lines."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        texts = []
        for page in doc:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return "\n\n".join(texts), len(doc)
    finally:
        doc.close()


def run_worker(name: str, out: Path) -> None:
    """Child process: convert the corpus with one extractor and print pages, seconds and peak RSS."""
    extract = extract_pdf2md if name == "pdf2md-text" else extract_raw
    pages, seconds, failed = 0, 0.0, []
    for rel in manifest_pdfs(CORPUS):
        started = time.perf_counter()
        try:
            markdown, n = extract(CORPUS / rel)
        except Exception as exc:  # noqa: BLE001 - a failing PDF is reported, not fatal to the bench
            failed.append(f"{rel}: {exc}")
            continue
        seconds += time.perf_counter() - started
        pages += n
        target = out / (rel[:-4] + ".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(markdown, encoding="utf-8")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"pages": pages, "seconds": seconds, "rss_mb": rss_mb, "failed": failed}))


def measure(name: str, out: Path) -> dict:
    """Run one extractor in a fresh interpreter and return its figures."""
    proc = subprocess.run([sys.executable, __file__, "--worker", name, str(out)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def score(out: Path) -> dict:
    """The scorer's OVERALL summary for one output folder."""
    report = out / "_score.json"
    subprocess.run([sys.executable, str(SCORER), "--corpus", str(CORPUS), "--pred", str(out), "--json", str(report)],
                   capture_output=True, text=True, check=True)
    return json.loads(report.read_text(encoding="utf-8"))["summary"]


def print_table(figures: dict[str, dict]) -> None:
    """Both extractors side by side, then the speed ratio."""
    rows = [("pages", "{:.0f}", "pages"), ("pages/s (1 core)", "{:.1f}", "pps"), ("seconds", "{:.2f}", "seconds"),
            ("peak RSS MB", "{:.0f}", "rss_mb"), ("sim", "{:.3f}", "similarity"), ("wF1", "{:.3f}", "word_f1"),
            ("order", "{:.3f}", "order"), ("headR", "{:.3f}", "heading_recall"), ("tabR", "{:.3f}", "table_recall")]
    print(f"{'':<18}" + "".join(f"{n:>16}" for n in figures))
    for label, fmt, key in rows:
        cells = ["-" if f.get(key) is None else fmt.format(f[key]) for f in figures.values()]
        print(f"{label:<18}" + "".join(f"{c:>16}" for c in cells))
    text, raw = figures["pdf2md-text"], figures["pypdfium2-raw"]
    print(f"speed ratio pdf2md-text / pypdfium2-raw: {text['pps'] / raw['pps']:.3f}")
    for name, f in figures.items():
        for failure in f["failed"]:
            print(f"{name} failed: {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="write the outputs here (default: a temporary folder)")
    parser.add_argument("--worker", nargs=2, metavar=("EXTRACTOR", "OUTDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not (CORPUS / "manifest.jsonl").is_file() or not SCORER.is_file():
        print(f"skipped: the dev corpus or the scorer is missing under {SHARED}")
        return 0
    if args.worker:
        run_worker(args.worker[0], Path(args.worker[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="pdf2md-bench-") as tmp:
        root = args.keep or Path(tmp)
        figures = {}
        for name in EXTRACTORS:
            out = root / name
            out.mkdir(parents=True, exist_ok=True)
            f = measure(name, out)
            f["pps"] = f["pages"] / f["seconds"] if f["seconds"] else 0.0
            f.update(score(out))
            figures[name] = f
    print(f"corpus: {CORPUS}")
    print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
