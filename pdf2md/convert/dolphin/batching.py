"""Element batches sized to the GPU: halve on out-of-memory and retry, never lose the shard."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

GIB = 1 << 30
BYTES_PER_ITEM = int(1.5 * GIB)
"""Rough fp16 cost of one element in flight (encoder activations plus a 4k-token KV cache)."""
MAX_BATCH = 8
"""Upstream reports 16 crops running a T4 out of memory and 1-4 as safe; halving covers the rest."""


def initial_batch_size(free_bytes: int | None, cap: int = MAX_BATCH, per_item: int = BYTES_PER_ITEM) -> int:
    """How many crops to decode together given the free accelerator memory (None: a CPU, keep it small)."""
    if free_bytes is None:
        return min(4, cap)
    return max(1, min(cap, free_bytes // per_item))


@dataclass
class BatchRun(Generic[R]):
    """Results in input order (None where even a batch of one ran out of memory, or no answer came) and seconds per item."""

    results: list[R | None]
    seconds: list[float]
    failed: int = 0


@dataclass
class AdaptiveBatcher:
    """Runs a batched callable over items; on OOM halves the batch (for good) and retries the same items."""

    size: int
    is_oom: Callable[[BaseException], bool]
    after_oom: Callable[[], None] = lambda: None
    halvings: int = field(default=0, init=False)

    def run(self, items: Sequence[T], fn: Callable[[Sequence[T]], list[R]]) -> BatchRun[R]:
        out: BatchRun[R] = BatchRun([None] * len(items), [0.0] * len(items))
        start = 0
        while start < len(items):
            batch = items[start:start + self.size]
            started = time.perf_counter()
            try:
                values = fn(batch)
            except Exception as exc:
                if not self.is_oom(exc):
                    raise
                self.after_oom()
                if self._halve():
                    continue
                log.warning("out of memory on a single element; it is left empty")
                out.failed += 1
                start += 1
                continue
            share = (time.perf_counter() - started) / len(batch)
            for offset, value in enumerate(values):
                out.results[start + offset] = value
                out.seconds[start + offset] = share
            start += len(batch)
        return out

    def _halve(self) -> bool:
        """Halve the batch size; False when it is already 1."""
        if self.size <= 1:
            return False
        self.size = max(1, self.size // 2)
        self.halvings += 1
        log.warning("out of GPU memory: element batch size now %d", self.size)
        return True
