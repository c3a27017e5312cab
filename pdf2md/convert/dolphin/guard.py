"""The run-time guard against reading one Dolphin generation's answers by another's rules.

Dolphin 1.0 and 1.5 share one architecture; profiles.py tells them apart by the tokenizer's tokens, which no
real 1.5 checkpoint has been checked against here. Read with the wrong rules, no box of a page parses and
every page is read whole, as one paragraph: silently, for thousands of pages. The layout answer itself says
which format the model writes (layout.other_format), so each page is checked: a page in the other format is
noted in its results (and warned about once, naming the setting that fixes it); a few in a row are a
configuration fault, which fails the PDFs still held retryably (`wrong-generation`) for a rerun with the
setting, and which the shard takes as its cue to stop (gpu_feeder.GpuFeeder.fault, worker.run).
"""

from __future__ import annotations

import logging

from pdf2md.contracts import ErrorKind
from pdf2md.convert.dolphin.layout import other_format
from pdf2md.convert.dolphin.profiles import CONFIG_FIELD, ENV_GENERATION, Profile
from pdf2md.convert.errors import ConversionError

log = logging.getLogger(__name__)

PAGES_IN_A_ROW = 3
"""Pages in a row answered in the other generation's format that make a configuration fault."""
_WRITTEN_BY = {"label-after": "1.0", "bracketed": "1.5"}
"""The generation whose format an entry format is (v2 writes 1.5's, but is told by its architecture)."""


class GenerationGuard:
    """Counts the pages in a row whose layout answer is in the other generation's format (one per backend:
    the count runs across the PDFs it reads); `fault` is set once the count reaches `pages_in_a_row`."""

    def __init__(self, pages_in_a_row: int = PAGES_IN_A_ROW) -> None:
        self.pages_in_a_row = pages_in_a_row
        self.in_a_row = 0
        self.warned = False
        self.fault: ConversionError | None = None

    def check(self, answer: str, profile: Profile) -> str | None:
        """This page's note for its results when its answer is in the other format (None: it is not)."""
        found = other_format(answer, profile)
        if found is None:
            self.in_a_row = 0
            return None
        self.in_a_row += 1
        written_by = _WRITTEN_BY[found]
        note = (
            f"the layout answer is in Dolphin {written_by}'s format, read by the {profile.name} profile: no box parses "
            f"and the page is read whole; set {ENV_GENERATION}={written_by} (or config.json {CONFIG_FIELD}) if the checkpoint is {written_by}"
        )
        if not self.warned:
            self.warned = True
            log.warning("Dolphin: %s", note)
        if self.in_a_row >= self.pages_in_a_row and self.fault is None:
            self.fault = ConversionError(
                ErrorKind.WRONG_GENERATION,
                f"{self.in_a_row} pages in a row answered in Dolphin {written_by}'s layout format under the {profile.name} "
                f"profile: the checkpoint's generation was read wrong; set {ENV_GENERATION}={written_by} "
                f"(or config.json {CONFIG_FIELD}) and rerun",
            )
            log.error("Dolphin: %s", self.fault.message)
        return note
