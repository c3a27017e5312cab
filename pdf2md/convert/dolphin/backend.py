"""The Dolphin page backend: one document's pages through the cross-document scheduler (scheduler.py).

The same pipeline drives every generation; the checkpoint picks the engine and the profile (profiles.py)
whose rules read its layout and choose its prompts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pypdfium2 as pdfium

from pdf2md.contracts import ENV_OUTPUTS
from pdf2md.convert.backends import BackendUnavailable, PageOutput, import_target
from pdf2md.convert.dolphin.batching import MAX_BATCH, AdaptiveBatcher, initial_batch_size
from pdf2md.convert.dolphin.guard import GenerationGuard
from pdf2md.convert.dolphin.markdown import FIGURE_MODES
from pdf2md.convert.dolphin.model_dir import resolve_model_dir
from pdf2md.convert.dolphin.profiles import profile_for
from pdf2md.convert.dolphin.render import RenderedPage, prefetch_pages
from pdf2md.convert.dolphin.scheduler import PAGES_PER_ROUND, Engine, PageScheduler

log = logging.getLogger(__name__)

ENV_MAX_BATCH = "PDF2MD_DOLPHIN_MAX_BATCH"
"""Upper bound on crops decoded together (the free GPU memory may allow fewer)."""
ENV_FIGURES = "PDF2MD_DOLPHIN_FIGURES"
"""markdown.FIGURE_MODES; default: 'image' when the run's outputs hold figures, else 'drop' (no link to an
image nobody writes)."""


ENGINES = {
    "1.0": "pdf2md.convert.dolphin.engine:DolphinModel",
    "1.5": "pdf2md.convert.dolphin.engine:DolphinModel",
    "v2": "pdf2md.convert.dolphin.engine_v2:DolphinV2Model",
}
"""Generation (profiles.PROFILES) -> the engine that runs it."""


class DolphinBackend:
    """Dolphin (1.0, 1.5 or v2) on whole pages.

    :param model_dir: a complete checkpoint dir; default: PDF2MD_MODEL_DIR / PDF2MD_MODEL_URI.
    :param figures: one of markdown.FIGURE_MODES; default: PDF2MD_DOLPHIN_FIGURES, else 'image' when
        PDF2MD_OUTPUTS holds figures, else 'drop'.
    :param max_batch: most crops per batch; default: PDF2MD_DOLPHIN_MAX_BATCH or 8 (fewer if memory is short).
    :param pages_per_round: pages rendered ahead and pooled per round of batches.
    :param engine: a ready model (tests); default: the engine for the checkpoint in the model dir.
    """

    name = "dolphin"

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        figures: str | None = None,
        max_batch: int | None = None,
        pages_per_round: int = PAGES_PER_ROUND,
        engine: Engine | None = None,
    ) -> None:
        try:
            from pdf2md.convert.dolphin import generation
        except ImportError as exc:
            raise BackendUnavailable(f"the Dolphin backend needs torch and transformers (pip install 'pdf2md[dolphin]'): {exc.name}") from exc
        env = os.environ
        self.figures = figures or env.get(ENV_FIGURES) or ("image" if "figures" in env.get(ENV_OUTPUTS, "") else "drop")
        if self.figures not in FIGURE_MODES:
            raise BackendUnavailable(f"{ENV_FIGURES}={self.figures!r} is not one of {', '.join(FIGURE_MODES)}")
        self.pages_per_round = max(1, pages_per_round)
        self.engine: Engine = engine or load_engine(model_dir or resolve_model_dir(env))
        cap = max_batch or _int_env(env, ENV_MAX_BATCH) or MAX_BATCH
        self.batcher = AdaptiveBatcher(
            initial_batch_size(generation.free_gpu_bytes(), cap),
            is_oom=generation.is_oom,
            after_oom=generation.release_cached_memory,
        )
        self._gpu = generation  # memory probes; imported here so that importing this module needs no torch
        self.guard = GenerationGuard()
        """One count of wrong-generation pages across every PDF this backend reads (guard.py)."""
        log.info("Dolphin backend ready: element batch %d, figures %s", self.batcher.size, self.figures)

    def convert_pages(self, doc: pdfium.PdfDocument, pages: Sequence[int]) -> dict[int, PageOutput]:
        """One document through the scheduler; an error that failed it (a page pdfium cannot render) is raised."""
        scheduler = self.scheduler()
        scheduler.submit(0, self.render(doc, pages))
        (result,) = scheduler.run()
        if result.error is not None:
            raise result.error
        return result.pages

    def scheduler(self) -> PageScheduler:
        """A scheduler on this backend's model and batch size, for pages of many documents at once (a GPU worker)."""
        return PageScheduler(
            self.engine, self.batcher, figures=self.figures, pages_per_round=self.pages_per_round, probes=self._gpu, guard=self.guard
        )

    def render(self, doc: pdfium.PdfDocument, pages: Sequence[int]) -> Iterator[RenderedPage]:
        """The pages as this model sees them, rendered on a thread a round ahead (pass to PageScheduler.submit)."""
        return prefetch_pages(doc, pages, self.engine.frame, self.pages_per_round)


def load_engine(model_dir: Path) -> Engine:
    """The engine for the checkpoint's generation; a one-line error for anything that is not Dolphin."""
    profile = profile_for(model_dir)
    engine: Engine = import_target(ENGINES[profile.name])(model_dir, profile=profile)
    return engine


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BackendUnavailable(f"{name} must be an integer, got {raw!r}") from None
