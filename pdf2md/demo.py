"""`make demo`: the real pdf2md_backfill DAG, end to end, on a laptop with no AWS account.

A local AWS (moto server on a free loopback port, whose Batch runs each array child as a local
`pdf2md worker` process) receives the sample PDFs shipped in tests/data/pdfs; Airflow's dag.test()
runs the DAG against it; the report is printed and the outputs copied to ./demo-output/.
`python -m pdf2md.demo --outputs markdown,json,figures,page-markers` runs it with every output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "pdfs"
INPUT_URI = "s3://pdf2md-input/pdfs/"
OUTPUT_URI = "s3://pdf2md-output/markdown/"

def _airflow_env() -> None:
    """A private Airflow home under the repo, quiet logs, the project's DAGs; set before importing Airflow."""
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow")))
    home.mkdir(exist_ok=True)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    step("preparing the Airflow metadata database (airflow db migrate)")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def step(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    from pdf2md.contracts import DEFAULT_OUTPUTS, OUTPUTS, parse_outputs

    parser = argparse.ArgumentParser(prog="python -m pdf2md.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS), type=parse_outputs,
                        help=f"the run's outputs, comma-separated from {','.join(OUTPUTS)}")
    outputs: tuple[str, ...] = parser.parse_args(argv).outputs
    started = time.monotonic()
    _airflow_env()
    import boto3

    from pdf2md.localbatch import aws_env, local_aws, provision

    with local_aws() as endpoint:
        os.environ.update(aws_env(endpoint))
        step(f"local AWS (S3, SQS, Batch with a local executor) at {endpoint}")
        provision(endpoint, buckets=("pdf2md-input", "pdf2md-output"))
        s3 = boto3.client("s3")
        samples = sorted(SAMPLES.glob("*.pdf"))
        for pdf in samples:
            s3.upload_file(str(pdf), "pdf2md-input", f"pdfs/{pdf.name}")
        step(f"uploaded {len(samples)} sample PDFs (born-digital, scanned, encrypted, broken) to {INPUT_URI}")
        step("running the pdf2md_backfill DAG (plan → budget → Batch array job → reduce → report)")
        report = _run_dag(outputs)
        local = REPO / "demo-output"
        counts = _download(s3, local)
    from pdf2md.contracts import RunReport
    from pdf2md.report import format_report

    print()
    print(format_report(RunReport.from_dict(report)))
    if report["failures"]:
        print("  failures:")
        for failure in report["failures"]:
            print(f"    {failure['key']}: {failure['error_class']}: {failure['message']}")
    written = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing"
    print(f"\noutputs: {written} in {local}/ (and in {OUTPUT_URI} while the emulator ran)")
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 0 if report["status"] == "succeeded" else 1


def _run_dag(outputs: tuple[str, ...]) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    from pdf2md import s3 as s3io
    from pdf2md.contracts import RunLayout, RunReport

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag("pdf2md_backfill")
    log_path = Path(os.environ["AIRFLOW_HOME"]) / "demo-dag-test.log"
    step(f"Airflow's task logs go to {log_path}")
    with _output_to(log_path):
        run = dag.test(run_conf={"input_uri": INPUT_URI, "output_uri": OUTPUT_URI, "array_size": 3, "poll_interval_s": 1,
                                 "outputs": list(outputs)})
    step(f"DAG run {run.run_id}: {run.state}")
    s3 = s3io.client()
    layout = RunLayout.for_run("s3://pdf2md-output/pdf2md-runs/", run.run_id)
    report = s3io.get_json(s3, layout.run.bucket, layout.report_key, RunReport)
    if report is None:
        raise SystemExit(f"the run wrote no report at {layout.uri(layout.report_key)}")
    return report.to_dict()


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Airflow logs straight to the file descriptors) to a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("w") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _download(s3: S3Client, dest: Path) -> dict[str, int]:
    """Every output (Markdown, JSON, figures; not the failure markers) into `dest`, counted by kind."""
    from pdf2md import s3 as s3io
    from pdf2md.contracts import FAILED_DIR, S3Uri

    output = S3Uri.parse(OUTPUT_URI)
    kinds = {".md": "Markdown", ".json": "JSON", ".png": "figure"}
    counts: dict[str, int] = {}
    for obj in s3io.iter_objects(s3, output):
        rel = obj.key[len(output.dir_prefix):]
        kind = kinds.get(Path(rel).suffix)
        if kind is None or rel.startswith(FAILED_DIR):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        s3io.download(s3, output.bucket, obj.key, target)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
