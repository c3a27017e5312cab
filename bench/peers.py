"""The converters the text path is measured against, and the private virtualenvs they run in.

Peers are never project dependencies (pymupdf is AGPL, docling pulls torch): each one is installed by the
bench into its own venv under `.bench-venvs/`, at pinned versions with every transitive package held by
`bench/peer-constraints.txt`, so two runs months apart measure the same code. A venv that cannot be
built (no registry, a yanked release) leaves its peers unavailable with pip's reason; it never stops
the bench.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENVS = REPO / ".bench-venvs"
CONSTRAINTS = Path(__file__).resolve().with_name("peer-constraints.txt")
STAMP = ".bench-installed"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Venv:
    """A private environment: pip install steps run in order (torch must land before what needs it)."""

    name: str
    steps: tuple[tuple[str, ...], ...]

    @property
    def path(self) -> Path:
        return VENVS / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def pins(self) -> str:
        """The requirements as one line, for the table's legend."""
        return " ".join(req for step in self.steps for req in step)


@dataclass(frozen=True)
class Extractor:
    """One column of the table: an extraction routine in `extractors.py`, run by a venv's interpreter."""

    name: str
    column: str  # the table's header, short enough for a narrow column
    venv: Venv | None  # None: the project's own venv (pdf2md itself)
    about: str


# On these machines `torch==2.13.0` is a local CPU build; docling's converter module imports torch (for its
# speech pipeline) even when no model runs, and any other torch requirement would pull CUDA builds.
PYMUPDF = Venv("pymupdf", (("pymupdf==2.0", "pymupdf4llm==2.0", "pymupdf-layout==2.0"),))
DOCLING = Venv("docling", (("torch==2.13.0",), ("docling-slim[format-pdf]==2.143.0",)))
MARKITDOWN = Venv("markitdown", (("markitdown[pdf]==0.1.9",),))
PYPDFIUM2 = Venv("pypdfium2", (("pypdfium2==5.15.2",),))
# camelot 2.x renders pages for its lattice flavour with pypdfium2 and finds rules with OpenCV (the headless
# wheel it requires); neither flavour needs Ghostscript any more.
CAMELOT = Venv("camelot", (("camelot-py==2.0.0",),))

EXTRACTORS: tuple[Extractor, ...] = (
    Extractor("pdf2md-text", "pdf2md", None, "pdf2md convert --backend text (project venv)"),
    Extractor("pymupdf4llm", "p4llm", PYMUPDF, "pymupdf4llm with its layout model (pymupdf-layout), header/footer kept"),
    Extractor("pymupdf4llm-nohf", "p4llm-nohf", PYMUPDF, "pymupdf4llm with its layout model, header=False footer=False"),
    Extractor("pymupdf4llm-legacy", "p4llm-legacy", PYMUPDF, "pymupdf4llm without the layout model (use_layout(False))"),
    Extractor("docling-native", "docling-nat", DOCLING, "docling NativePdfPipeline: docling-parse text cells, no model"),
    Extractor("markitdown", "markitdown", MARKITDOWN, "markitdown's PDF converter (pdfminer + pdfplumber)"),
    Extractor("pypdfium2-raw", "pdfium-raw", PYPDFIUM2, "pypdfium2 bounded text of every page, no structure"),
    Extractor("camelot-stream", "cam-stream", CAMELOT, "camelot tables only (stream: text alignment), as pipe tables"),
    Extractor("camelot-lattice", "cam-lattice", CAMELOT, "camelot tables only (lattice: drawn rules, OpenCV), as pipe tables"),
)


def _fingerprint(venv: Venv) -> str:
    """What the venv was built from: its steps and the constraints file. A change rebuilds it."""
    text = repr(venv.steps) + CONSTRAINTS.read_text(encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def _pip_reason(stderr: str) -> str:
    """The line of pip's complaint worth printing: an unreachable index first (pip then blames a 'conflict'
    with the constraints, which misleads), else its first ERROR line, else its last line."""
    unreachable = re.search(r"(NewConnectionError|NameResolutionError|ConnectTimeout|ProxyError)\W+.*?(\[Errno[^\]]*\][^'\"]*|$)",
                            stderr, re.MULTILINE)
    if unreachable:
        return f"package index unreachable ({unreachable.group(1)}: {unreachable.group(2).strip() or 'no detail'})"
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["pip failed without a message"])[0]


def provision(venv: Venv) -> str | None:
    """Make the venv ready; return None when it is, else why it cannot be (for the peer's column).

    A lock beside the venv keeps two benches started at once from building (and deleting) it together.
    """
    VENVS.mkdir(exist_ok=True)
    with (VENVS / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(venv)


def _build(venv: Venv) -> str | None:
    """Reuse the venv when its stamp matches, else build it afresh; None when ready, else why not."""
    stamp = venv.path / STAMP
    fingerprint = _fingerprint(venv)
    if venv.python.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == fingerprint:
        return None
    shutil.rmtree(venv.path, ignore_errors=True)
    log.warning("installing the %s peer venv (%s)", venv.name, venv.pins)
    made = subprocess.run([sys.executable, "-m", "venv", str(venv.path)], capture_output=True, text=True)
    if made.returncode:
        return f"venv not created: {_pip_reason(made.stderr)}"
    for step in venv.steps:
        cmd = [str(venv.python), "-m", "pip", "install", "--quiet", "--retries", "1", "--timeout", "60",
               "-c", str(CONSTRAINTS), *step]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            return f"pip install {' '.join(step)} failed: {_pip_reason(done.stderr)}"
    stamp.write_text(fingerprint, encoding="utf-8")
    return None
