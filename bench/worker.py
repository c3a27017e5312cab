"""Shard throughput on the dev corpus: the pipelined shard with 1 and with N converter processes, beside the
converter alone (convert_pdf in one process, one PDF after another, no I/O).

Run as `.venv/bin/python bench/worker.py [--jobs 1,2] [--latency-ms 100] [--repeat 3] [--json]` (make bench runs it).
The shard fetches each PDF and publishes each Markdown through shard_pipeline with `--latency-ms` of
simulated S3 latency per request (a sleep: the emulator's own costs are not what is measured here), so
the figure says whether downloads and uploads hide behind conversions and whether more processes scale.
Children are started before the clock starts (a shard pays that once). The load average is printed:
on a shared machine the N-process figure is only as good as the idle CPUs it found.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pdf2md.convert import Conversion, ConversionError, ConvertOptions, convert_pdf  # noqa: E402
from pdf2md.isolation import ConverterPool  # noqa: E402
from pdf2md.machine import available_cpus  # noqa: E402
from pdf2md.shard_pipeline import ShardIO, ShardPipeline  # noqa: E402

DEV = REPO.parent / "shared" / "corpus" / "dev"


def corpus(repeat: int) -> list[Path]:
    """The dev PDFs `repeat` times over, largest first: the order the planner deals a shard its PDFs in."""
    manifest = DEV / "manifest.jsonl"
    pdfs = [DEV / json.loads(line)["pdf"] for line in manifest.read_text().splitlines() if line.strip()]
    return sorted(pdfs * repeat, key=lambda pdf: pdf.stat().st_size, reverse=True)


def converter_alone(pdfs: list[Path], options: ConvertOptions) -> dict[str, Any]:
    pages, started = 0, time.perf_counter()
    for pdf in pdfs:
        try:
            pages += convert_pdf(pdf, options).pages
        except ConversionError:
            pass
    return _row("converter alone", 1, len(pdfs), pages, time.perf_counter() - started)


def shard(pdfs: list[Path], options: ConvertOptions, processes: int, latency_s: float) -> dict[str, Any]:
    pages = [0]

    def fetch(pdf: Path, dest: Path) -> None:
        time.sleep(latency_s)
        shutil.copyfile(pdf, dest)

    def publish(pdf: Path, context: None, conversion: Conversion) -> None:
        time.sleep(latency_s)
        pages[0] += conversion.pages

    io = ShardIO(fetch=fetch, publish=publish, fail=lambda *a: None, skip=lambda pdf: None, size_of=lambda p: p.stat().st_size)
    with tempfile.TemporaryDirectory(prefix="pdf2md-bench-") as tmp, ConverterPool(options, 600, 4096, processes) as pool:
        for converter in pool.converters:
            converter.start()
        started = time.perf_counter()
        ShardPipeline(pdfs, io, pool.converters, Path(tmp), lambda: False).run()
        seconds = time.perf_counter() - started
    return _row(f"shard, {latency_s * 1000:.0f} ms S3 latency", processes, len(pdfs), pages[0], seconds)


def _row(mode: str, processes: int, pdfs: int, pages: int, seconds: float) -> dict[str, Any]:
    return {"mode": mode, "processes": processes, "pdfs": pdfs, "pages": pages, "seconds": round(seconds, 2),
            "pdfs_per_s": round(pdfs / seconds, 2), "pages_per_s": round(pages / seconds, 2)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's figures: the 1-process shard against the converter alone, and 1 -> 2 process scaling."""
    alone = rows[0]["pages_per_s"]
    shards = {r["processes"]: r["pages_per_s"] for r in rows[1:]}
    one = shards.get(1)
    return {
        "shard_pages_per_s": one,
        "converter_pages_per_s": alone,
        "ratio": round(one / alone, 3) if one and alone else None,
        "cores": available_cpus(),
        "scaling_1_to_2": round(shards[2] / one, 3) if one and 2 in shards else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1,2", help="converter process counts to compare")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="simulated S3 latency per request")
    parser.add_argument("--repeat", type=int, default=3, help="run the corpus this many times over")
    parser.add_argument("--backend", default="text", help="conversion backend (default: text)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not (DEV / "manifest.jsonl").is_file():
        print(f"skipped: the dev corpus is absent (looked in {DEV})")
        return 0
    options = ConvertOptions(backend=args.backend)
    pdfs = corpus(args.repeat)
    load = os.getloadavg()
    rows = [converter_alone(pdfs, options)]
    rows += [shard(pdfs, options, int(n), args.latency_ms / 1000) for n in args.jobs.split(",")]
    result = {"cpus": available_cpus(), "load_before": [round(x, 2) for x in load], "rows": rows, **summary(rows)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['cpus']} usable CPU(s); load average before: {' '.join(f'{x:.2f}' for x in load)}")
    print(f"| {'mode':<32} | procs | PDFs | pages | seconds | PDFs/s | pages/s |")
    print(f"|{'-' * 34}|-------|------|-------|---------|--------|---------|")
    for r in rows:
        print(f"| {r['mode']:<32} | {r['processes']:>5} | {r['pdfs']:>4} | {r['pages']:>5} | {r['seconds']:>7.2f} "
              f"| {r['pdfs_per_s']:>6.2f} | {r['pages_per_s']:>7.2f} |")
    print("shard / converter alone (1 process): {ratio}; 1 -> 2 processes: {scaling_1_to_2}".format(**result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
