"""The `pdf2md` command: convert PDFs locally or from S3, show a run's status, run as an array child, run the emulator."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdf2md import __version__
from pdf2md.contracts import (
    BACKENDS,
    DEFAULT_JOB_QUEUE,
    DEFAULT_MAX_PAGES,
    DEFAULT_OUTPUT_URI,
    DEFAULT_OUTPUTS,
    DEFAULT_PDF_MEMORY_MB,
    DEFAULT_PDF_TIMEOUT_S,
    DEFAULT_RUNS_PREFIX,
    ENV_JOB_QUEUE,
    ENV_OUTPUT_URI,
    ENV_OUTPUTS,
    ENV_RUNS_URI,
    OUTPUTS,
    ErrorKind,
    S3Uri,
    is_pdf_key,
    markdown_rel,
    parse_outputs,
    relative_key,
    safe_rel,
)
from pdf2md.report import STOPPED

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from pdf2md.ui.airflow_runs import AirflowRun

log = logging.getLogger("pdf2md")

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: one line on stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pdf2md", description="PDFs to Markdown, locally or on AWS Batch.")
    parser.add_argument("--version", action="version", version=f"pdf2md {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    conv = sub.add_parser("convert", help="convert PDFs, folders (recursively) or s3:// URIs into OUTDIR")
    conv.add_argument("paths", nargs="+", metavar="PATH", help="a PDF, a folder of PDFs, or an s3:// key or prefix")
    conv.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="where the .md files go")
    conv.add_argument("--backend", choices=BACKENDS, default="auto", help="how pages are converted (default: auto)")
    conv.add_argument("--report", type=Path, metavar="FILE.json", help="write a JSON report of every PDF")
    conv.add_argument("--password", action="append", default=[], help="a password to try on encrypted PDFs (repeatable)")
    conv.add_argument("--timeout", type=float, default=DEFAULT_PDF_TIMEOUT_S, help="seconds allowed per PDF")
    conv.add_argument("--memory-mb", type=int, default=DEFAULT_PDF_MEMORY_MB, help="memory allowed per PDF")
    conv.add_argument("--max-pages", type=int, default=DEFAULT_MAX_PAGES, help="PDFs with more pages fail")
    conv.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS), metavar="LIST", type=_outputs_arg,
                      help=f"what each PDF becomes, comma-separated from {','.join(OUTPUTS)} (markdown always; default markdown): "
                           "json beside the .md, figures under <name>.assets/, page-markers in the Markdown")
    conv.add_argument("--page-markers", action="store_true", help="put <!-- page N --> before each page (--outputs ...,page-markers)")
    conv.add_argument("--jobs", type=int, default=1, metavar="N",
                      help="PDFs converted in parallel, each in its own process (0: as many as the CPUs and memory allow)")
    conv.add_argument("--skip-existing", action="store_true",
                      help="skip PDFs whose Markdown in OUTDIR is newer than the PDF (as the Batch worker does)")
    conv.add_argument("--inventory", metavar="URI",
                      help="an S3 Inventory report of the s3:// PATHs' bucket (its manifest.json, or the <source bucket>/"
                           "<config id>/ folder for the newest): read instead of listing the input; PDFs added after "
                           "the report wait for the next one")
    conv.set_defaults(func=_cmd_convert)

    worker = sub.add_parser("worker", help="the AWS Batch array-job entrypoint (configured by PDF2MD_* variables)")
    worker.set_defaults(func=_cmd_worker)

    emu = sub.add_parser("emulator", help="run a local S3/SQS/Batch emulator whose Batch really runs jobs")
    emu.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    emu.set_defaults(func=_cmd_emulator)

    add_status_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"pdf2md: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


# --- convert ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One PDF to convert: where it is (local path or s3 location) and where its Markdown goes."""

    source: str
    rel_md: str
    mtime: float
    local: Path | None = None
    s3: S3Uri | None = None

    def up_to_date(self, target: Path) -> bool:
        """The Markdown exists and is newer than the PDF: converting again would change nothing."""
        try:
            return target.stat().st_mtime >= self.mtime
        except FileNotFoundError:
            return False


def _cmd_convert(args: argparse.Namespace) -> int:
    import threading

    from pdf2md.convert import ConvertOptions
    from pdf2md.convert.pipeline import model_backend_for
    from pdf2md.gpu_feeder import FeederPool, feeder_memory_mb
    from pdf2md.isolation import ConverterPool
    from pdf2md.outputs import needs_document, page_markers, wants_figures, written
    from pdf2md.shard_pipeline import ShardIO, ShardPipeline, converter_processes_for

    if args.jobs < 0:
        raise UsageError("--jobs must be >= 0 (0: as many as the machine allows)")
    outdir = _writable_dir(args.output)
    if args.inventory and not any(p.startswith("s3://") for p in args.paths):
        raise UsageError("--inventory lists an s3:// input: give the s3:// prefix it covers")
    jobs = list(_collect(args.paths, args.inventory))
    if not jobs:
        raise UsageError("no PDFs found in the given paths")
    order = {j.source: i for i, j in enumerate(jobs)}
    jobs, collided = _drop_collisions(jobs)
    model = "" if args.backend == "text" else model_backend_for(args.backend)
    outputs = parse_outputs([*args.outputs, *(["page-markers"] if args.page_markers else [])])
    options = ConvertOptions(backend=args.backend, passwords=tuple(args.password), max_pages=args.max_pages,
                             page_markers=page_markers(outputs), model=model, figures=wants_figures(outputs),
                             document=needs_document(outputs))
    os.environ[ENV_OUTPUTS] = ",".join(outputs)  # the model backend, in the converter children, reads it
    report: dict[str, Any] = {"converted": [], "skipped": [], "failed": collided}
    if args.skip_existing:
        report["skipped"] = [{"source": j.source, "output": str(outdir / j.rel_md)} for j in jobs
                             if j.up_to_date(outdir / j.rel_md) and ("json" not in outputs or j.up_to_date(outdir / (j.rel_md[:-3] + ".json")))]
        done = {s["source"] for s in report["skipped"]}
        jobs = [j for j in jobs if j.source not in done]
    s3 = _s3_client() if any(j.s3 for j in jobs) else None
    mode = 0o666 & ~_umask()
    lock = threading.Lock()

    def publish(job: Job, _context: object, result: Any) -> None:
        target = outdir / job.rel_md
        out = written(job.rel_md, result, outputs, {"uri": job.source})
        for car in out.sidecars:
            _write_atomically(outdir / car.rel, car.body, mode)
        _write_atomically(target, out.markdown, mode)
        with lock:
            report["converted"].append({
                "source": job.source, "output": str(target), "pages": result.pages,
                "backend": result.backend, "seconds": round(result.seconds, 3),
                "routes": [r.to_dict() for r in result.routes],
            })

    def fail(job: Job, error_class: str, message: str) -> None:
        log.warning("%s: %s: %s", job.source, error_class, message)
        report["failed"].append({"source": job.source, "error_class": error_class, "message": message})

    bar = _progress_bar(len(jobs))
    io: ShardIO[Job] = ShardIO(fetch=lambda job, dest: _stage(s3, job, dest), publish=publish, fail=fail,
                               skip=lambda job: None, size_of=_size_of, progress=bar)
    feeder_mb = feeder_memory_mb(os.environ, args.memory_mb)
    processes = converter_processes_for(model, args.jobs, args.memory_mb, feeder_mb)
    pool: ConverterPool | FeederPool = (
        FeederPool(options, args.timeout, args.memory_mb, processes, feeder_memory_mb=feeder_mb) if model == "dolphin"
        else ConverterPool(options, args.timeout, args.memory_mb, processes)
    )
    with tempfile.TemporaryDirectory(prefix="pdf2md-") as tmp, pool:
        ShardPipeline(jobs, io, pool.converters, Path(tmp), lambda: False).run()
    for key in ("converted", "failed"):
        report[key].sort(key=lambda entry: order[entry["source"]])
    report["summary"] = {"converted": len(report["converted"]), "skipped": len(report["skipped"]),
                         "failed": len(report["failed"]), "pages": sum(c["pages"] for c in report["converted"])}
    if args.report:
        _write_atomically(args.report, json.dumps(report, indent=2, ensure_ascii=False) + "\n", mode)
    s = report["summary"]
    log.info("%d converted (%d pages), %d up to date, %d failed; Markdown in %s", s["converted"], s["pages"], s["skipped"],
             s["failed"], outdir)
    return EXIT_SOME_FAILED if report["failed"] else EXIT_OK


def _drop_collisions(jobs: list[Job]) -> tuple[list[Job], list[dict[str, str]]]:
    """PDFs whose Markdown would be one file (a.pdf, a.PDF; or two folders' a.pdf given together): the
    first keeps it, the others are failed as key-collision, as the Batch planner does."""
    owners: dict[str, Job] = {}
    kept: list[Job] = []
    refused: list[dict[str, str]] = []
    for job in jobs:
        owner = owners.setdefault(job.rel_md, job)
        if owner is job:
            kept.append(job)
            continue
        if owner.source == job.source:  # the same PDF named twice
            continue
        message = f"its output {job.rel_md} belongs to {owner.source}"
        log.warning("%s: %s: %s", job.source, ErrorKind.KEY_COLLISION, message)
        refused.append({"source": job.source, "error_class": str(ErrorKind.KEY_COLLISION), "message": message})
    return kept, refused


def _stage(s3: S3Client | None, job: Job, dest: Path) -> None:
    """The PDF at `dest` for a converter: a link to a local file, a download of an S3 one."""
    from pdf2md.convert import ConversionError
    from pdf2md.shard_pipeline import ItemFailed

    if job.local is not None:
        dest.symlink_to(job.local.resolve())
        return
    try:
        _fetch(s3, job.s3, dest)
    except ConversionError as exc:
        raise ItemFailed(exc.error_class, exc.message) from None


def _size_of(job: Job) -> int:
    try:
        return job.local.stat().st_size if job.local is not None else 0
    except OSError:
        return 0


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path} is not writable")
    return path


def _collect(paths: Sequence[str], inventory: str | None = None) -> Iterator[Job]:
    for raw in paths:
        if raw.startswith("s3://"):
            yield from _collect_s3(raw, inventory)
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
            for pdf in found:
                yield Job(str(pdf), markdown_rel(safe_rel(pdf.relative_to(path).as_posix())), pdf.stat().st_mtime, local=pdf)
        elif path.is_file():
            if path.suffix.lower() != ".pdf" and not _has_pdf_header(path):
                raise UsageError(f"not a PDF: {raw}")
            yield Job(str(path), markdown_rel(safe_rel(path.name)), path.stat().st_mtime, local=path)
        else:
            raise UsageError(f"no such file or folder: {raw}")


def _has_pdf_header(path: Path) -> bool:
    from pdf2md.convert.document import looks_like_pdf

    try:
        return looks_like_pdf(path)
    except OSError:
        return False


def _collect_s3(raw: str, inventory: str | None = None) -> Iterator[Job]:
    """The PDFs under an s3:// key or prefix: listed, or read from the S3 Inventory report `inventory`."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pdf2md import s3 as s3io
    from pdf2md.inventory import iter_inventory

    try:
        uri = S3Uri.parse(raw)
        client = _s3_client()
        found = iter_inventory(client, inventory, uri) if inventory else s3io.iter_objects(client, uri)
        objects = [o for o in found if is_pdf_key(o.key)]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except (ClientError, BotoCoreError) as exc:
        raise UsageError(f"cannot {'read the inventory ' + inventory + ' for' if inventory else 'list'} {raw}: {exc}") from None
    if not objects:
        raise UsageError(f"no PDFs under {raw}")
    for obj in objects:
        rel = relative_key(obj.key, uri.prefix) if obj.key != uri.prefix else safe_rel(obj.key.rsplit("/", 1)[-1])
        yield Job(f"s3://{uri.bucket}/{obj.key}", markdown_rel(rel), obj.mtime, s3=S3Uri(uri.bucket, obj.key))


def _s3_client() -> S3Client:
    from pdf2md import s3 as s3io

    return s3io.client()


def _fetch(s3: S3Client | None, loc: S3Uri | None, dest: Path) -> Path:
    from botocore.exceptions import BotoCoreError, ClientError

    from pdf2md import s3 as s3io
    from pdf2md.convert import ConversionError

    assert s3 is not None and loc is not None
    try:
        s3io.download(s3, loc.bucket, loc.prefix, dest)
    except (ClientError, BotoCoreError) as exc:
        raise ConversionError("s3-error", f"cannot download: {exc}") from None
    return dest


def _umask() -> int:
    """The process's umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _outputs_arg(value: str) -> tuple[str, ...]:
    try:
        return parse_outputs(value, "--outputs")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _write_atomically(target: Path, text: str | bytes, mode: int) -> None:
    """Write beside the target and rename: a reader never sees half a file. The temporary file is
    private (0600), so the result gets `mode` (0666 less the umask, as `open` would give) before
    it becomes visible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode() if isinstance(text, str) else text)
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _progress_bar(total: int) -> Callable[[], None]:
    """One tick per settled PDF: a progress bar on a terminal, nothing otherwise."""
    if not sys.stderr.isatty():
        return lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="pdf", file=sys.stderr)

    def tick() -> None:
        bar.update(1)

    return tick


# --- status -----------------------------------------------------------------------------------


def add_status_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`pdf2md status [RUN_ID] [--runs-uri URI] [--watch] [--json] [--shards]`."""
    parser = subparsers.add_parser("status", help="show a conversion run's shards, throughput, failures and spend")
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="Airflow run id or its folder name (default: the latest run)")
    parser.add_argument("--runs-uri", metavar="URI",
                        help="s3:// prefix of the run artefacts (default: the Airflow run's own, where $AIRFLOW_HOME "
                             f"names the Airflow that ran it; else ${ENV_RUNS_URI}, else s3://<bucket of "
                             f"${ENV_OUTPUT_URI} or {DEFAULT_OUTPUT_URI}>/{DEFAULT_RUNS_PREFIX}, as the DAG does)")
    parser.add_argument("--job-queue", help=f"the run's Batch job queue (default: the run's own, else ${ENV_JOB_QUEUE}, "
                                            f"else {DEFAULT_JOB_QUEUE})")
    parser.add_argument("--budget-usd", type=float, help="the run's budget, when its report is not written yet")
    parser.add_argument("--price-per-hour-usd", type=float, help="the instance price, when its report is not written yet")
    parser.add_argument("--watch", action="store_true", help="redraw until the run ends")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="seconds between redraws (default 5)")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.add_argument("--shards", action="store_true",
                        help="add a line per shard to each round's aggregate (its progress distribution, slowest, "
                             "failed and interrupted shards)")
    parser.set_defaults(func=_cmd_status)
    return parser


def _cmd_status(args: argparse.Namespace) -> int:
    """Print the run's status once, or redraw it until the run is no longer live (--watch).

    Exit 2 on usage errors (a bad runs URI, no runs), 1 when the run failed or AWS could not be
    read, else 0."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _show(args)
    except ValueError as exc:
        print(f"pdf2md: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ClientError, BotoCoreError) as exc:
        print(f"pdf2md: error: cannot read the run: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED


def _show(args: argparse.Namespace) -> int:
    from pdf2md import batch as batch_api
    from pdf2md import s3 as s3io
    from pdf2md.status import ShardTable, default_runs_uri, latest_run_id, run_status, with_airflow_outcome
    from pdf2md.status_text import format_status

    s3, batch = s3io.client(), batch_api.client()
    airflow = _airflow_run(args.run_id) if args.run_id else None
    where = airflow.location if airflow else None
    runs_uri = args.runs_uri or (where.runs_uri if where else default_runs_uri())
    run_id = args.run_id or latest_run_id(s3, runs_uri)
    if run_id is None:
        raise ValueError(f"no runs under {runs_uri}")
    job_queue = args.job_queue or (where.job_queue if where else os.environ.get(ENV_JOB_QUEUE, DEFAULT_JOB_QUEUE))
    budget = args.budget_usd if args.budget_usd is not None else (where.budget_usd if where else None)
    price = args.price_per_hour_usd if args.price_per_hour_usd is not None else (where.price_per_hour_usd if where else None)
    while True:
        facts = run_status(s3, batch, runs_uri, run_id, budget_usd=budget, price_per_hour_usd=price, job_queue=job_queue,
                           shard_table=ShardTable() if args.shards else None)
        if airflow is not None:
            facts = with_airflow_outcome(facts, airflow.state, airflow.failed_tasks)
        text = json.dumps(facts, indent=2) if args.json else format_status(facts)
        if args.watch and sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        print(text, flush=True)
        if not args.watch or not facts["live"]:
            return EXIT_SOME_FAILED if facts["state"] in STOPPED else EXIT_OK
        time.sleep(args.interval)
        airflow = _airflow_run(run_id) if airflow is not None else None


def _airflow_run(run_id: str) -> AirflowRun | None:
    """Airflow's record of the run, when this shell is configured for the Airflow that ran it
    ($AIRFLOW_HOME or a database URL) and Airflow is installed; None otherwise."""
    if not (os.environ.get("AIRFLOW_HOME") or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")):
        return None
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from pdf2md.ui.airflow_runs import find_run
    except ImportError:
        return None
    try:
        return find_run(run_id)
    except SQLAlchemyError as exc:
        log.warning("cannot read Airflow's database (%s): showing what S3 and Batch know", exc.__class__.__name__)
        return None


# --- worker and emulator ----------------------------------------------------------------------


def _cmd_worker(_args: argparse.Namespace) -> int:
    from pdf2md.worker import main as worker_main

    return worker_main(dict(os.environ))


def _cmd_emulator(args: argparse.Namespace) -> int:
    from pdf2md.localbatch import serve_forever

    serve_forever(args.port)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
