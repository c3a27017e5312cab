"""Hostile input: run `pdf2md convert` over ../shared/corpus/nasty and tabulate how each file ended.

Run as `.venv/bin/python bench/nasty.py [--backend auto] [--timeout 60] [--keep DIR]`. Every file must
end converted or with a named error class (contracts.ERROR_CLASSES) and a one-line message; the CLI
must exit 0 or 1 (never a crash), within the time limit. A second run supplies the passwords the
corpus README publishes and checks that those encrypted PDFs then convert.
Prints the wall time, the peak RSS of the CLI and its converter child (getrusage RUSAGE_CHILDREN),
and a table of outcomes by error class; exits 1 if any file ended outside the contract.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pdf2md.contracts import ERROR_CLASSES  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "nasty"
PASSWORDS = {  # published in the corpus README
    "pypdf_r6_user_password.pdf": "asdfzxcv",
    "pypdf_r2_rc4_40_user_password.pdf": "asdfzxcv",
    "pypdf_libreoffice_password.pdf": "openpassword",
    "docling_password_pg3.pdf": "1234",
}
HANG_LIMIT_S = 1800


def run_cli(paths: list[str], out: Path, *extra: str) -> tuple[int, dict, float, str]:
    """`pdf2md convert` in a child process: exit code, report, seconds, stderr."""
    report = out / "report.json"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pdf2md.cli", "convert", *paths, "-o", str(out / "md"), "--report", str(report), *extra],
        capture_output=True, text=True, timeout=HANG_LIMIT_S, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    seconds = time.perf_counter() - started
    data = json.loads(report.read_text()) if report.exists() else {"converted": [], "failed": []}
    return proc.returncode, data, seconds, proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--timeout", default="60", help="seconds per PDF (the CLI's --timeout)")
    parser.add_argument("--keep", type=Path, help="keep the Markdown and reports here")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"bench/nasty.py: {args.corpus} is absent; nothing to measure", file=sys.stderr)
        return 0
    manifest = [json.loads(line) for line in (args.corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    category = {m["file"]: m["category"] for m in manifest}
    pdfs = sorted(p for p in args.corpus.glob("*.pdf"))
    work = args.keep or Path(tempfile.mkdtemp(prefix="pdf2md-nasty-"))
    work.mkdir(parents=True, exist_ok=True)

    code, report, seconds, stderr = run_cli([str(args.corpus)], work / "plain", "--backend", args.backend, "--timeout", args.timeout)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    outcome: dict[str, tuple[str, str]] = {}
    pages = 0
    for c in report["converted"]:
        outcome[Path(c["source"]).name] = ("converted", f"{c['pages']} page(s)")
        pages += c["pages"]
    for f in report["failed"]:
        outcome[Path(f["source"]).name] = (f["error_class"], f["message"])

    problems = []
    if code not in (0, 1):
        problems.append(f"the CLI exited {code}:\n{stderr[-2000:]}")
    for pdf in pdfs:
        cls, message = outcome.get(pdf.name, ("missing", "not in the report"))
        if cls != "converted" and (cls not in ERROR_CLASSES or not message or "\n" in message):
            problems.append(f"{pdf.name}: {cls}: {message!r}")

    pw_code, pw_report, pw_seconds, _ = run_cli(
        [str(args.corpus / name) for name in PASSWORDS], work / "passwords", "--backend", args.backend,
        *[arg for pw in sorted(set(PASSWORDS.values())) for arg in ("--password", pw)],
    )
    unlocked = len(pw_report["converted"])
    if unlocked != len(PASSWORDS):
        problems.append(f"only {unlocked} of {len(PASSWORDS)} encrypted PDFs converted with their published passwords")

    print(f"nasty corpus: {len(pdfs)} files, {len(report['converted'])} converted ({pages} pages), "
          f"{len(report['failed'])} failed with a named class, CLI exit {code}")
    print(f"nasty corpus: total {seconds:.1f} s wall, peak RSS {peak_mb:.0f} MB (CLI + converter child, RUSAGE_CHILDREN)")
    print(f"nasty corpus: with the README's passwords {unlocked}/{len(PASSWORDS)} encrypted PDFs convert ({pw_seconds:.1f} s)")
    logged = stderr.count("Traceback (most recent call last)")
    if logged:
        print(f"nasty corpus: {logged} converter traceback(s) logged (conversion-error: a converter bug on that PDF, not a crash)")
    by_class = Counter(cls for cls, _ in outcome.values())
    print()
    print(f"| {'outcome':<19} | {'files':>5} | categories (manifest) |")
    print(f"|{'-' * 21}|{'-' * 7}|{'-' * 23}|")
    for cls, n in sorted(by_class.items(), key=lambda kv: (kv[0] != "converted", -kv[1], kv[0])):
        cats = Counter(category.get(name, "?") for name, (c, _) in outcome.items() if c == cls)
        print(f"| {cls:<19} | {n:>5} | {', '.join(f'{k} {v}' for k, v in sorted(cats.items()))} |")
    print()
    for name in sorted(outcome):
        cls, message = outcome[name]
        if cls != "converted":
            print(f"  {name:<38} {cls:<18} {message[:90]}")
    if problems:
        print("\nOUTSIDE THE CONTRACT:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
