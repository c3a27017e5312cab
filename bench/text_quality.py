"""Speed and quality of the text-layer path beside its peers on the shared dev corpus, in one table.

Run as `.venv/bin/python bench/text_quality.py [--keep DIR] [--json FILE] [--peers NAME,...]`. The peers
(peers.py) are installed on first use into their own venvs under `.bench-venvs/`; each extractor then
converts every manifest entry in its own child process (extractors.py) pinned to one CPU, so its peak RSS
and its time are its own, and each output folder is scored by ../shared/tools/score.py. The table puts
every scorer figure, overall and per corpus folder, beside pages/s (for the ICDAR 2013 dev half, `icdar2013/`,
the competition's cell adjacency F1: `tAdj mean` over documents and `tAdj total` over all relations, with
its precision and recall); `*` marks the best column of a row and
`lead` is pdf2md's margin over the best peer, so a lead or a regression shows at a glance.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peers import EXTRACTORS, Extractor, provision

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "dev"
SCORER = SHARED / "tools" / "score.py"
WORKER = Path(__file__).resolve().with_name("extractors.py")
US = "pdf2md-text"
COLUMN = 13
# Child processes run one thread where the library lets us choose, and never reach for a model hub.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

log = logging.getLogger("bench.text_quality")


def manifest_entries(corpus: Path) -> list[dict]:
    """The manifest's entries (each has `pdf`, relative to the corpus, and `pages`)."""
    lines = (corpus / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def manifest_pdfs(corpus: Path) -> list[str]:
    """The manifest's `pdf` entries, relative to the corpus."""
    return [entry["pdf"] for entry in manifest_entries(corpus)]


def _one_cpu() -> None:
    """Child set-up: run on a single CPU, so pages/s is a per-core figure for every extractor alike."""
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def measure(extractor: Extractor, root: Path, timeout: float) -> dict:
    """Run one extractor over the corpus in a fresh interpreter of its venv; its figures or why it has none."""
    out = root / extractor.name
    out.mkdir(parents=True, exist_ok=True)
    job, result = root / f"_{extractor.name}.job.json", root / f"_{extractor.name}.result.json"
    pdfs = [{"pdf": e["pdf"], "pages": e.get("pages") or 0} for e in manifest_entries(CORPUS)]
    job.write_text(json.dumps({"corpus": str(CORPUS), "out": str(out), "pdfs": pdfs}), encoding="utf-8")
    python = str(extractor.venv.python) if extractor.venv else sys.executable
    try:
        proc = subprocess.run([python, str(WORKER), extractor.name, str(job), str(result)], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **CHILD_ENV}, preexec_fn=_one_cpu)
    except subprocess.TimeoutExpired:
        return {"unavailable": f"timed out after {timeout:.0f} s"}
    if proc.returncode or not result.is_file():
        return {"unavailable": f"worker exit {proc.returncode}: {_last_line(proc.stderr)}"}
    figures = json.loads(result.read_text(encoding="utf-8"))
    figures["pps"] = figures["pages"] / figures["seconds"] if figures["seconds"] else None
    figures["pps_cpu"] = figures["pages"] / figures["cpu_seconds"] if figures["cpu_seconds"] else None
    figures.update(score(out))
    return figures


def score(out: Path) -> dict:
    """The scorer's summary, overall and per corpus folder, for one output folder."""
    report = out / "_score.json"
    subprocess.run([sys.executable, str(SCORER), "--corpus", str(CORPUS), "--pred", str(out), "--json", str(report)],
                   capture_output=True, text=True, check=True)
    scored = json.loads(report.read_text(encoding="utf-8"))
    return {"summary": scored["summary"], "per_folder": scored["per_folder"]}


@dataclass(frozen=True)
class Row:
    """One line of the table: how to read a figure from an extractor's results and how to print it."""

    label: str
    get: Callable[[dict], float | str | None]
    kind: str  # "section", "speed", "metric" (0..1), "rate" (0..1 shown in %), "mb", "count", "text"


def _summary_rows(title: str, pick: Callable[[dict], dict | None], test_types: list[str]) -> list[Row]:
    """The scorer's figures for one summary (OVERALL or a folder)."""
    def field(key: str) -> Callable[[dict], float | None]:
        return lambda f: (pick(f) or {}).get(key)

    def by_type(kind: str) -> Callable[[dict], float | None]:
        return lambda f: (pick(f) or {}).get("test_pass_rate_by_type", {}).get(kind)

    def total(key: str) -> Callable[[dict], float | None]:
        """The scorer's adjacency relations summed over every table document (ICDAR 2013), not averaged."""
        return lambda f: ((pick(f) or {}).get("table_adj_total") or {}).get(key)

    def counts(f: dict) -> str | None:
        s = pick(f)
        return f"{s['tests_passed']}/{s['tests_total']}" if s and s.get("tests_total") else None

    rows = [Row(title, lambda f: None, "section")]
    rows += [Row(f"  {label}", field(key), "metric") for label, key in
             (("sim", "similarity"), ("wF1", "word_f1"), ("order", "order"), ("headR", "heading_recall"),
              ("tabR", "table_recall"))]
    rows += [Row("  tAdj mean", field("table_adj_f1"), "metric")]
    rows += [Row(label, total(key), "metric") for label, key in
             (("  tAdj total", "f1"), ("    precision", "precision"), ("    recall", "recall"))]
    rows += [Row("  tests passed", counts, "text"), Row("  test pass rate", field("test_pass_rate"), "rate")]
    rows += [Row(f"    {kind}", by_type(kind), "rate") for kind in test_types]
    return rows


def table_rows(figures: dict[str, dict]) -> list[Row]:
    """Speed, then OVERALL, then each corpus folder; rows no extractor fills are left out."""
    scored = [f for f in figures.values() if "summary" in f]
    folders = list(dict.fromkeys(name for f in scored for name in f["per_folder"]))

    def types(summaries: list[dict]) -> list[str]:
        return sorted({kind for s in summaries for kind in s.get("test_pass_rate_by_type", {})})

    rows = [Row("pages/s per core (CPU)", lambda f: f.get("pps_cpu"), "speed"),
            Row("pages/s wall, 1 core", lambda f: f.get("pps"), "speed"),
            Row("peak RSS MB", lambda f: f.get("rss_mb"), "mb"),
            Row("failed PDFs", lambda f: len(f["failed"]) if "failed" in f else None, "count")]
    rows += _summary_rows("OVERALL", lambda f: f.get("summary"), types([f["summary"] for f in scored]))
    for folder in folders:
        pick = (lambda name: lambda f: f.get("per_folder", {}).get(name))(folder)
        rows += _summary_rows(folder + "/", pick, types([pick(f) for f in scored if pick(f)]))
    return [r for r in rows if r.kind == "section" or any(r.get(f) is not None for f in scored)]


def _cell(value: float | str | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind in ("section", "text"):
        return str(value)
    return {"speed": "{:.1f}", "metric": "{:.3f}", "rate": "{:.0%}", "mb": "{:.0f}", "count": "{:d}"}[kind].format(value)


def _lead(row: Row, figures: dict[str, dict]) -> str:
    """pdf2md's margin over the best peer on a row where higher is better (a ratio for speed)."""
    ours = row.get(figures[US]) if US in figures else None
    theirs = [v for name, f in figures.items() if name != US for v in [row.get(f)] if v is not None]
    if row.kind not in ("speed", "metric", "rate") or ours is None or not theirs:
        return ""
    best = max(theirs)
    if row.kind == "speed":
        return f"x{ours / best:.2f}" if best else ""
    return f"{ours - best:+.3f}" if row.kind == "metric" else f"{100 * (ours - best):+.0f}pt"


def print_table(figures: dict[str, dict], extractors: list[Extractor]) -> None:
    """Extractors as columns, figures as rows, the best of a row starred, pdf2md's lead on the right."""
    print(f"{'':<24}" + "".join(f"{e.column:>{COLUMN}}" for e in extractors) + f"{'lead':>{COLUMN}}")
    notes = [(e.name, figures[e.name]["unavailable"]) for e in extractors if "unavailable" in figures[e.name]]
    status = ["ok" if "unavailable" not in figures[e.name] else f"n/a [{[n for n, _ in notes].index(e.name) + 1}]"
              for e in extractors]
    print(f"{'status':<24}" + "".join(f"{s:>{COLUMN}}" for s in status))
    for row in table_rows(figures):
        values = [row.get(figures[e.name]) for e in extractors]
        numbers = [v for v in values if isinstance(v, (int, float))]
        starred = row.kind in ("speed", "metric", "rate") and len(numbers) > 1
        cells = [_cell(v, row.kind) + ("*" if starred and v == max(numbers) else " " if starred else "")
                 for v in values]
        if row.kind == "section":
            cells = ["" for _ in values]
        print(f"{row.label:<24}" + "".join(f"{c:>{COLUMN}}" for c in cells) + f"{_lead(row, figures):>{COLUMN}}")
    print("\n* best of the row; lead: pdf2md-text minus the best peer (speed: ratio). pages/s per core = pages per "
          "CPU-second of the pinned child; wall figures move with other load on the machine.")
    for number, (name, reason) in enumerate(notes, 1):
        print(f"[{number}] {name}: {reason}")
    for e in extractors:
        print(f"{e.column:>13} = {e.name}: {e.about}" + (f"; {e.venv.pins}" if e.venv else ""))
    for e in extractors:
        for failure in figures[e.name].get("failed", []):
            print(f"{e.name} failed: {failure}")


def run(extractors: list[Extractor], root: Path, timeout: float) -> dict[str, dict]:
    """Provision each venv once, then measure and score every extractor in turn."""
    reasons: dict[str, str | None] = {}
    figures = {}
    for extractor in extractors:
        venv = extractor.venv
        if venv and venv.name not in reasons:
            reasons[venv.name] = provision(venv)
        reason = reasons.get(venv.name) if venv else None
        log.info("measuring %s", extractor.name)
        figures[extractor.name] = {"unavailable": reason} if reason else measure(extractor, root, timeout)
    return figures


def main() -> int:
    names = [e.name for e in EXTRACTORS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="write the outputs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every figure of every extractor here")
    parser.add_argument("--peers", default=",".join(names), help=f"comma-separated subset of {', '.join(names)}")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one extractor may take (default 1800)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chosen = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown extractor(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if not (CORPUS / "manifest.jsonl").is_file() or not SCORER.is_file():
        print(f"skipped: the dev corpus or the scorer is missing under {SHARED}")
        return 0
    extractors = [e for e in EXTRACTORS if e.name in chosen]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pdf2md-bench-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        figures = run(extractors, root, args.timeout)
    print(f"corpus: {CORPUS} ({len(manifest_entries(CORPUS))} PDFs); load average at start {load:.1f} "
          f"on {os.cpu_count()} CPUs")
    print_table(figures, extractors)
    if args.json:
        about = {e.name: {"about": e.about, "pins": e.venv.pins if e.venv else None} for e in extractors}
        args.json.write_text(json.dumps({"corpus": str(CORPUS), "extractors": {
            name: {**about[name], **f} for name, f in figures.items()}}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
