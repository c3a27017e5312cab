"""Dolphin throughput on this machine's GPU: pages/s, tokens/s, batch sizes, GPU use, peak memory, a T4 estimate.

    python bench/dolphin_gpu.py --real-size all        # published shapes, random weights, real dev pages (GPU, <= 8 min)
    python bench/dolphin_gpu.py --smoke 1.5|v2         # the same path on tiny models and short answers (any CPU)
    python bench/dolphin_gpu.py --model-dir DIR [--pdf FILE] [--pages N] [--max-batch N]
    python bench/dolphin_gpu.py --tiny [1.x|v2]        # a tiny random model on a synthetic PDF: proves the CUDA path
    python bench/dolphin_gpu.py --prepare-carry        # copy the dev pages and the pypdfium2 wheel into bench/gpu-carry/

--real-size builds Dolphin 1.5 (Donut-Swin 896 + 10-layer MBart, 0.32B) and Dolphin v2 (Qwen2.5-VL-3B, 3.75B)
from their published configurations with random weights (pdf2md/convert/dolphin/published.py) and runs the
dev pages that have a ground-truth layout (corpus/dev/docling_md) through the real scheduler, documents
sharing batches. Each answer is forced to the length of the page's real answer and the recorded text is
handed on (pdf2md/convert/dolphin/scripted.py says where the lengths come from), so the decode work is a
real page's. The T4 figure scales the measured one by memory bandwidth (decode is memory-bound).

A machine without a package registry (the lent GPU machine) installs the carried wheel first:
    pip install --no-index --no-deps bench/gpu-carry/wheels/pypdfium2-*.whl
    PYTHONPATH=. python bench/dolphin_gpu.py --real-size all --corpus bench/gpu-carry/corpus
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from pdf2md.convert.dolphin import DolphinBackend
from pdf2md.convert.dolphin.tiny import build_tiny_model, build_tiny_v2_model

log = logging.getLogger("dolphin_gpu")

TINY = {"1.x": lambda d: build_tiny_model(d, max_positions=512), "v2": lambda d: build_tiny_v2_model(d, max_positions=1024)}
SMOKE = {"1.5": lambda d: build_tiny_model(d, max_positions=512, generation="1.5"), "v2": lambda d: build_tiny_v2_model(d, max_positions=1024)}
HERE = Path(__file__).resolve().parent
CARRY = HERE / "gpu-carry"
PYPDFIUM2 = "pypdfium2==5.15.2"
SHARED_CORPUS = Path(os.environ.get("PDF2MD_SHARED", "/work/shared")) / "corpus" / "dev"
BANDWIDTH_GBS = {"H200": 4800, "H100": 3350, "A100": 2039, "L40S": 864, "A10G": 600, "L4": 300, "T4": 320}
"""Memory bandwidth by GPU name (vendor data sheets; H200 and T4 as the issue states them)."""
T4_GBS = 320
T4_MEMORY_MB = 16 * 1024

LOREM = "Dolphin reads the layout of each page first, then every element of it in batches. "


def synthetic_pdf(path: Path, pages: int) -> Path:
    """Letter-sized pages with a heading, paragraphs and a ruled table, drawn at 100 dpi."""
    images = [_synthetic_page(n) for n in range(pages)]
    images[0].save(path, "PDF", resolution=100, save_all=True, append_images=images[1:])
    return path


def _synthetic_page(number: int) -> Image.Image:
    page = Image.new("RGB", (850, 1100), "white")
    draw = ImageDraw.Draw(page)
    draw.text((80, 70), f"Section {number + 1}: Results", fill="black", font_size=28)
    y = 130
    for _ in range(3):
        for line in range(6):
            draw.text((80, y + 22 * line), LOREM[: 60 + 3 * line], fill="black", font_size=16)
        y += 170
    for row in range(5):
        for col in range(4):
            x0, y0 = 80 + 170 * col, y + 40 * row
            draw.rectangle((x0, y0, x0 + 170, y0 + 40), outline="black")
            draw.text((x0 + 10, y0 + 10), f"r{row}c{col} {row * col:.2f}", fill="black", font_size=14)
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--real-size", choices=["1.5", "v2", "all"], help="published shapes, random weights, real dev pages")
    mode.add_argument("--smoke", choices=sorted(SMOKE), help="the --real-size path on a tiny model with short answers (CPU)")
    mode.add_argument("--model-dir", type=Path, help="a Dolphin checkpoint dir (1.0, 1.5 or v2) on a synthetic or given PDF")
    mode.add_argument("--tiny", nargs="?", const="1.x", choices=sorted(TINY), help="a tiny random model on a synthetic PDF")
    mode.add_argument("--prepare-carry", action="store_true", help=f"copy the dev pages and the {PYPDFIUM2} wheel into {CARRY}")
    parser.add_argument("--corpus", type=Path, help="the dev corpus (default: bench/gpu-carry/corpus if prepared, else /work/shared's)")
    parser.add_argument("--pdf", type=Path, help="--model-dir/--tiny: the PDF to convert (default: a synthetic one)")
    parser.add_argument("--pages", type=int, help="pages to time (default: 16 synthetic; every dev page within the budget)")
    parser.add_argument("--max-batch", type=int, help="most images per batch (default: the backend's, from free GPU memory)")
    parser.add_argument("--pages-per-round", type=int, default=8, help="pages pooled per round of batches (default 8)")
    parser.add_argument("--budget-s", type=float, default=150.0, help="--real-size: seconds of timed work per generation (default 150: both fit 8 minutes)")
    parser.add_argument("--max-tokens", type=int, help="cap on each answer's tokens (default: none; --smoke: 16)")
    parser.add_argument("--bandwidth-gbs", type=float, help="this GPU's memory bandwidth, if its name is not in the table")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.prepare_carry:
        return prepare_carry()

    import torch

    if not torch.cuda.is_available() and not args.smoke:
        log.warning("no CUDA GPU here: timing the CPU path")
    if args.real_size or args.smoke:
        corpus = args.corpus or (CARRY / "corpus" if (CARRY / "corpus").is_dir() else SHARED_CORPUS)
        docs = dev_documents(corpus)
        if not docs:
            print(f"no dev pages with a ground-truth layout under {corpus}/docling_md (give --corpus)", file=sys.stderr)
            return 2
        generations = (["1.5", "v2"] if args.real_size == "all" else [args.real_size]) if args.real_size else [args.smoke]
        results = [scripted_run(g, docs, args) for g in generations]
        print(json.dumps(results, indent=2) if args.json else "\n\n".join(report(r) for r in results))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = TINY[args.tiny](Path(tmp) / "tiny") if args.tiny else args.model_dir
        pages = args.pages or 16
        pdf = args.pdf or synthetic_pdf(Path(tmp) / "synthetic.pdf", pages + 1)
        result = run(model_dir, pdf, pages, args.max_batch)
    print(json.dumps(result, indent=2))
    return 0


@dataclass(frozen=True)
class DevDocument:
    """A dev PDF with docling's ground truth: page index -> its elements."""

    pdf: Path
    pages: dict[int, list[Any]]


def dev_documents(corpus: Path) -> list[DevDocument]:
    """The dev PDFs that have a DoclingDocument JSON beside them (their elements give the real answers)."""
    from pdf2md.convert.dolphin.scripted import docling_pages

    folder = corpus / "docling_md"
    docs = []
    for truth in sorted(folder.glob("*.docling.json")) if folder.is_dir() else []:
        pdf = truth.with_name(truth.name.removesuffix(".docling.json") + ".pdf")
        if pdf.is_file():
            docs.append(DevDocument(pdf, docling_pages(truth)))
    return docs


def scripted_run(generation: str, docs: list[DevDocument], args: argparse.Namespace) -> dict[str, Any]:
    """One generation over the dev documents, fed to one scheduler as a worker would, timed after a warm-up page."""
    import torch

    from pdf2md.convert.dolphin.backend import load_engine
    from pdf2md.convert.dolphin.published import build_engine, parameter_count
    from pdf2md.convert.dolphin.render import PDFIUM_LOCK, render_page
    from pdf2md.convert.dolphin.scripted import Script, ScriptedEngine

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            engine = load_engine(SMOKE[generation](Path(tmp) / "tiny"))
            params = sum(p.numel() for p in engine.model.parameters())
        else:
            engine = build_engine(generation)
            params = parameter_count(generation)
    build_s = time.perf_counter() - started
    script = Script()
    elements = 0
    for doc in docs:
        pdf = pdfium.PdfDocument(doc.pdf)
        try:
            for index in range(len(pdf)):
                page = render_page(pdf, index, engine.frame)
                width, height = pdf[index].get_size()
                elements += script.add_page(page, doc.pages.get(index, []), (width, height), engine.profile)
        finally:
            pdf.close()
    max_tokens = args.max_tokens or (16 if args.smoke else None)
    scripted = ScriptedEngine(engine, script, max_tokens=max_tokens)
    backend = DolphinBackend(engine=scripted, max_batch=args.max_batch, pages_per_round=args.pages_per_round)
    warm = pdfium.PdfDocument(docs[0].pdf)
    try:
        backend.convert_pages(warm, [0])
    finally:
        warm.close()
    scripted.tokens, scripted.calls, script.misses = 0, [], 0
    scheduler = backend.scheduler()
    budget = args.budget_s if not args.smoke else min(args.budget_s, 60.0)
    limit = args.pages or sum(len(d.pages) or 1 for d in docs) * 100
    sampler = GpuSampler()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    sampler.start()
    timed = time.perf_counter()
    pages_done, docs_done, failed = _feed_and_run(scheduler, backend, docs, limit, budget, PDFIUM_LOCK)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - timed
    sampler.stop()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    pages_per_s = pages_done / seconds if seconds else 0.0
    bandwidth = args.bandwidth_gbs or next((v for k, v in BANDWIDTH_GBS.items() if k in device), None)
    peak_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None
    return {
        "generation": generation,
        "mode": "smoke (tiny model, answers capped)" if args.smoke else "real size (published shapes, random weights)",
        "device": device,
        "dtype": str(engine.dtype),
        "parameters": params,
        "build_seconds": round(build_s, 1),
        "documents": docs_done,
        "failed_documents": failed,
        "pages": pages_done,
        "layout_elements_on_dev_pages": elements,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages_per_s, 3),
        "tokens": scripted.tokens,
        "tokens_per_s": round(scripted.tokens / seconds, 1) if seconds else 0.0,
        "answer_token_cap": max_tokens,
        "unrecorded_images": script.misses,
        "layout_batches": _sizes(scheduler.batch_sizes.layout),
        "element_batches": _sizes(scheduler.batch_sizes.elements),
        "batch_cap": backend.batcher.size,
        "batch_halvings": backend.batcher.halvings,
        "gpu_utilisation_pct": sampler.summary(),
        "peak_gpu_mb": peak_mb,
        "bandwidth_gbs": bandwidth,
        "t4_pages_per_s_estimate": round(pages_per_s * T4_GBS / bandwidth, 3) if bandwidth and peak_mb is not None else None,
        "t4_tokens_per_s_estimate": round(scripted.tokens / seconds * T4_GBS / bandwidth, 1) if bandwidth and peak_mb is not None and seconds else None,
        "fits_t4_memory": peak_mb <= T4_MEMORY_MB - 2048 if peak_mb is not None else None,
    }


def _feed_and_run(scheduler: Any, backend: DolphinBackend, docs: list[DevDocument], limit: int, budget: float, lock: Any) -> tuple[int, int, int]:
    """Submit documents (cycling through the dev set) while the budget lasts, keeping two rounds of pages queued,
    as a worker would; then drain. Returns (pages read, documents finished, documents failed)."""
    open_docs: dict[int, tuple[pdfium.PdfDocument, int]] = {}
    submitted = queued = outstanding = pages_done = docs_done = failed = 0
    started = time.perf_counter()
    while True:
        while time.perf_counter() - started < budget and queued < limit and outstanding < 2 * backend.pages_per_round:
            doc = docs[submitted % len(docs)]
            with lock:
                pdf = pdfium.PdfDocument(doc.pdf)
            count = min(len(pdf), limit - queued)
            open_docs[submitted] = (pdf, count)
            scheduler.submit(submitted, backend.render(pdf, list(range(count))))
            submitted += 1
            queued += count
            outstanding += count
        if not scheduler.pending:
            return pages_done, docs_done, failed
        for result in scheduler.step():
            pdf, count = open_docs.pop(result.doc_id)
            with lock:
                pdf.close()
            outstanding -= count
            docs_done += 1
            failed += not result.ok
            pages_done += len(result.pages)


def _sizes(counter: Counter[int]) -> dict[str, int]:
    return {str(size): counter[size] for size in sorted(counter)}


class GpuSampler:
    """GPU utilisation sampled every 0.2 s (torch.cuda.utilization, else nvidia-smi); None where neither answers."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
        self.source: str | None = None

    def start(self) -> None:
        self.source = _utilisation_source()
        if self.source is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return {"mean": round(sum(ordered) / len(ordered), 1), "median": ordered[len(ordered) // 2], "samples": len(ordered), "source": self.source}

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            value = _utilisation(self.source)
            if value is not None:
                self.samples.append(value)


def _utilisation_source() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    for source in ("torch", "nvidia-smi"):
        if _utilisation(source) is not None:
            return source
    return None


def _utilisation(source: str | None) -> float | None:
    try:
        if source == "torch":
            import torch

            return float(torch.cuda.utilization())
        if source == "nvidia-smi" and shutil.which("nvidia-smi"):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True, text=True, timeout=5, check=True,
            )
            return float(out.stdout.strip().splitlines()[0])
    except Exception:  # no NVML, no nvidia-smi: utilisation is reported as absent
        return None
    return None


def report(result: dict[str, Any]) -> str:
    """The figures as a table, the measured GPU beside the T4 estimate."""
    t4 = result["t4_pages_per_s_estimate"]
    rows = [
        ("generation", result["generation"], ""),
        ("mode", result["mode"], ""),
        ("device / dtype", f"{result['device']} / {result['dtype']}", "T4 (scaled by bandwidth)"),
        ("parameters", f"{result['parameters'] / 1e6:,.1f}M", ""),
        ("documents / pages", f"{result['documents']} / {result['pages']} ({result['failed_documents']} failed)", ""),
        ("pages/s", result["pages_per_s"], t4 if t4 is not None else "n/a (no GPU bandwidth)"),
        ("tokens/s", result["tokens_per_s"], result["t4_tokens_per_s_estimate"] or "n/a"),
        ("layout batches (size: count)", result["layout_batches"], ""),
        ("element batches (size: count)", result["element_batches"], ""),
        ("GPU utilisation %", result["gpu_utilisation_pct"] or "n/a", ""),
        ("peak GPU MB", result["peak_gpu_mb"] if result["peak_gpu_mb"] is not None else "n/a", f"fits a T4: {result['fits_t4_memory']}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  {'measured':<40} estimate"]
    lines += [f"{name:{width}}  {str(value):<40} {extra}" for name, value, extra in rows]
    lines.append(json.dumps(result))
    return "\n".join(lines)


def prepare_carry() -> int:
    """What a GPU machine without a registry needs: the dev pages with ground truth and the pypdfium2 wheel (gitignored)."""
    target = CARRY / "corpus" / "docling_md"
    target.mkdir(parents=True, exist_ok=True)
    source = SHARED_CORPUS / "docling_md"
    for truth in sorted(source.glob("*.docling.json")):
        for path in (truth, truth.with_name(truth.name.removesuffix(".docling.json") + ".pdf")):
            shutil.copy2(path, target / path.name)
    wheels = CARRY / "wheels"
    command = [sys.executable, "-m", "pip", "download", PYPDFIUM2, "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", "--platform", "manylinux_2_17_x86_64", "-d", str(wheels)]
    subprocess.run(command, check=True)
    print(f"carry ready in {CARRY}: {len(list(target.iterdir()))} corpus files, {[p.name for p in wheels.iterdir()]}")
    return 0


def run(model_dir: Path, pdf: Path, pages: int, max_batch: int | None) -> dict[str, object]:
    import torch

    started = time.perf_counter()
    backend = DolphinBackend(model_dir, max_batch=max_batch)
    load_s = time.perf_counter() - started
    doc = pdfium.PdfDocument(pdf)
    try:
        indices = [i % len(doc) for i in range(pages + 1)]
        backend.convert_pages(doc, indices[:1])
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        out = backend.convert_pages(doc, indices[1:])
        elapsed = time.perf_counter() - started
    finally:
        doc.close()
    outputs = list(out.values())
    return {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "model_dir": str(model_dir),
        "engine": type(backend.engine).__name__,
        "dtype": str(getattr(backend.engine, "dtype", "")),
        "pages": len(indices) - 1,
        "load_seconds": round(load_s, 2),
        "seconds": round(elapsed, 2),
        "pages_per_second": round((len(indices) - 1) / elapsed, 3),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "element_batch": backend.batcher.size,
        "batch_halvings": backend.batcher.halvings,
        "layout_fallbacks": sum(o.extra["layout"] == "fallback" for o in outputs),
        "elements": sum(o.extra["elements"] for o in outputs),
        "failed_elements": sum(o.extra["failed_elements"] for o in outputs),
    }


if __name__ == "__main__":
    sys.exit(main())
