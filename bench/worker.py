"""Shard throughput on the dev corpus: the real array child (pdf2md.worker.run) against the emulator with
injected S3 latency, beside the converter alone (convert_pdf in one process, one PDF after another, no I/O).

Run as `.venv/bin/python bench/worker.py [--cores 1,2] [--latency-ms 100] [--repeat 10] [--rounds 2] [--json]`
(make bench runs it). Each row is the fastest of `--rounds` runs, taken in turns (a shared machine's other
load only ever slows a run down).

Rows: the converter alone; the shard with one converter process (`ratio`: what the pipeline keeps of the
converter's pace); then the shard confined to 1, 2, ... cores (`--cores`, by CPU affinity, which the child
reads to choose its number of converter processes, as it reads a container's CPU quota), the child's own
process and the emulator included (`scaling_1_to_2`).

The dev PDFs, `--repeat` times over (by default 710 PDFs, 2,510 pages: about one child's share of a million
PDFs on a 1,400-child array; a child's fixed costs, about ten round trips to S3 at its start and end, weigh
more on a shorter shard), are uploaded to moto (its own process on a free loopback port, as S3 is another
machine) and planned by the real planner into one shard, dealt largest first. Each row then runs one child
from its start: the shard manifest's GET, its progress records, a converter pool started from cold, every
PDF's GET and conditional PUT, the results and failure files. Every S3 request of the child waits
`--latency-ms` before it is sent (a botocore `before-send` hook): the round trip of real S3, which the
loopback emulator does not have. So the figure says whether downloads and uploads hide behind conversions
and whether more processes scale. The emulator's own CPU is spent on this machine (real S3's is not): it
runs at the lowest priority, and its CPU seconds are printed beside the figures, with the shard process's
own (the child's S3 client and pipeline, apart from its converter processes).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pdf2md import machine, worker  # noqa: E402
from pdf2md import s3 as s3io  # noqa: E402
from pdf2md.contracts import JobSettings, OutputMeta, RunLayout, S3Uri, shard_manifest_key, whole_manifest_key  # noqa: E402
from pdf2md.convert import ConversionError, ConvertOptions, convert_pdf  # noqa: E402
from pdf2md.plan import plan_round  # noqa: E402

DEV = REPO.parent / "shared" / "corpus" / "dev"
BUCKET = "pdf2md-bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def corpus() -> list[Path]:
    manifest = DEV / "manifest.jsonl"
    return [DEV / json.loads(line)["pdf"] for line in manifest.read_text().splitlines() if line.strip()]


@contextmanager
def emulator() -> Iterator[tuple[str, int]]:
    """moto's S3 in a process of its own, at the lowest CPU priority; yields its endpoint and pid."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # lowest priority: it stands for another machine, so it gets what the shard leaves of this one's CPUs
    proc = subprocess.Popen(["nice", "-n", "19", sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the emulator did not start on {endpoint}") from None
                time.sleep(0.2)
        yield endpoint, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client(endpoint: str, latency_s: float = 0.0) -> Any:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(max_pool_connections=worker.S3_CONNECTIONS))
    if latency_s:
        s3.meta.events.register("before-send.s3.*", lambda **_: time.sleep(latency_s))
    return s3


def upload(s3: Any, pdfs: list[Path], repeat: int) -> str:
    """The corpus under in/, `repeat` copies of each PDF; returns the input URI."""
    s3.create_bucket(Bucket=BUCKET)
    for copy in range(repeat):
        for pdf in pdfs:
            s3.put_object(Bucket=BUCKET, Key=f"in/{copy}/{pdf.relative_to(DEV)}", Body=pdf.read_bytes())
    return f"s3://{BUCKET}/in/"


def converter_alone(pdfs: list[Path], options: ConvertOptions) -> dict[str, Any]:
    pages, started = 0, time.perf_counter()
    for pdf in pdfs:
        try:
            pages += convert_pdf(pdf, options).pages
        except ConversionError:
            pass
    return _row("converter alone", 1, len(pdfs), pages, time.perf_counter() - started)


def shard(endpoint: str, emulator_pid: int, input_uri: str, backend: str, latency_s: float, *, processes: int = 0,
          cores: int = 0, attempt: int = 0) -> dict[str, Any]:
    """One array child from its start to its exit, planned afresh into its own output prefix: with
    `processes` converters (0: its own choice), on the first `cores` CPUs (0: all)."""
    s3 = client(endpoint)
    name = f"jobs-{processes}-cores-{cores}-{attempt}"
    layout = RunLayout(S3Uri(BUCKET, f"runs/{name}/"))
    output_uri = f"s3://{BUCKET}/out/{name}/"
    plan = plan_round(s3, layout, input_uri, output_uri, requested_array_size=1)
    # AWS arrays have two children at least: the bench's one child takes the whole round, as a hand-made
    # single-shard manifest would give it
    manifest = S3Uri.parse(plan.manifest_uri)
    s3.copy_object(Bucket=BUCKET, Key=shard_manifest_key(manifest.prefix, 0, 1),
                   CopySource={"Bucket": BUCKET, "Key": whole_manifest_key(manifest.prefix)})
    settings = JobSettings(manifest_uri=plan.manifest_uri, output_uri=output_uri, run_uri=str(layout.run), run_id=name,
                           array_size=1, backend=backend, jobs=processes)
    emulator_cpu, own_cpu = cpu_seconds(emulator_pid), own_cpu_seconds()
    allowed = os.sched_getaffinity(0)
    if cores:
        # the child's threads and processes inherit it; the emulator shares those cores too, so that its
        # CPU weighs alike on every core count (given a core of its own only on 1, it would flatter the 1)
        for pid in (0, emulator_pid):
            os.sched_setaffinity(pid, sorted(allowed)[:cores])
    try:
        started = time.perf_counter()
        code = worker.run(settings, s3=client(endpoint, latency_s))
        seconds = time.perf_counter() - started
    finally:
        for pid in (0, emulator_pid):
            os.sched_setaffinity(pid, allowed)
    if code != worker.EXIT_DONE:
        raise RuntimeError(f"the shard exited {code}")
    results = list(s3io.read_jsonl(s3, BUCKET, layout.results_key(0, 0, 1), OutputMeta))
    mode = f"shard on {cores} core(s)" if cores else f"shard, {processes} converter(s)"
    row = _row(mode, processes or machine.converter_processes(0, pdf_memory_mb=settings.pdf_memory_mb, gpu_feeder=False,
                                                              cpus=cores), len(results), sum(r.pages for r in results), seconds)
    return {**row, "cores": cores or None, "shard_process_cpu_s": round(own_cpu_seconds() - own_cpu, 2),
            "emulator_cpu_s": round(cpu_seconds(emulator_pid) - emulator_cpu, 2)}


def _row(mode: str, processes: int, pdfs: int, pages: int, seconds: float) -> dict[str, Any]:
    return {"mode": mode, "processes": processes, "pdfs": pdfs, "pages": pages, "seconds": round(seconds, 2),
            "pdfs_per_s": round(pdfs / seconds, 2), "pages_per_s": round(pages / seconds, 2)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's figures: the 1-process shard against the converter alone, and the shard from 1 to 2 cores."""
    alone, one = rows[0]["pages_per_s"], rows[1]["pages_per_s"]
    by_cores = {r["cores"]: r["pages_per_s"] for r in rows[2:]}
    return {
        "shard_pages_per_s": one,
        "converter_pages_per_s": alone,
        "ratio": round(one / alone, 3),
        "cores": machine.available_cpus(),
        "scaling_1_to_2": round(by_cores[2] / by_cores[1], 3) if 1 in by_cores and 2 in by_cores else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="1,2", help="core counts to confine the shard to, in turn")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="latency injected before each S3 request")
    parser.add_argument("--repeat", type=int, default=10, help="run the corpus this many times over")
    parser.add_argument("--backend", default="text", help="conversion backend (default: text)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each row; the fastest is kept")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not (DEV / "manifest.jsonl").is_file():
        print(f"skipped: the dev corpus is absent (looked in {DEV})")
        return 0
    os.environ.update(CREDENTIALS)
    options = ConvertOptions(backend=args.backend)
    pdfs = corpus()
    with emulator() as (endpoint, pid):
        input_uri = upload(client(endpoint), pdfs, args.repeat)
        load = os.getloadavg()
        latency_s = args.latency_ms / 1000
        measures: list[Callable[[int], dict[str, Any]]] = [
            lambda attempt: converter_alone(pdfs * args.repeat, options),
            lambda attempt: shard(endpoint, pid, input_uri, args.backend, latency_s, processes=1, attempt=attempt),
            *(lambda attempt, n=int(n): shard(endpoint, pid, input_uri, args.backend, latency_s, cores=n, attempt=attempt)
              for n in args.cores.split(",")),
        ]
        runs = [[measure(attempt) for measure in measures] for attempt in range(max(1, args.rounds))]
        rows = [min(tries, key=lambda row: row["seconds"]) for tries in zip(*runs)]
    result = {"cpus": machine.available_cpus(), "load_before": [round(x, 2) for x in load], "rows": rows, **summary(rows)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['cpus']} usable CPU(s); load average before: {' '.join(f'{x:.2f}' for x in load)}")
    print(f"| {'mode':<26} | procs | PDFs | pages | seconds | PDFs/s | pages/s | shard process CPU s | emulator CPU s |")
    print(f"|{'-' * 28}|-------|------|-------|---------|--------|---------|---------------------|----------------|")
    for r in rows:
        print(f"| {r['mode']:<26} | {r['processes']:>5} | {r['pdfs']:>4} | {r['pages']:>5} | {r['seconds']:>7.2f} "
              f"| {r['pdfs_per_s']:>6.2f} | {r['pages_per_s']:>7.2f} | {r.get('shard_process_cpu_s', ''):>19} "
              f"| {r.get('emulator_cpu_s', ''):>14} |")
    print("shard with 1 converter / converter alone: {ratio}; shard on 2 cores / on 1 core: {scaling_1_to_2}".format(**result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
