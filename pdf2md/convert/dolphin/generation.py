"""What both Dolphin generations share at inference: the device, a stop for token loops, GPU memory probes."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from pdf2md.convert.dolphin.repetition import MAX_UNIT, repeated_tail

STOP_COPIES = 8
"""A row whose last tokens repeat a unit this many times (over STOP_SPAN_TOKENS) stops decoding."""
STOP_SPAN_TOKENS = 128
"""Long enough that a legitimately repetitive answer (a row of empty table cells) is not stopped."""


class RepetitionStop(StoppingCriteria):
    """A stopping criterion that ends each row caught in a token loop (saves up to ~4k wasted steps)."""

    def __init__(self, prompt_len: int) -> None:
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        window = STOP_COPIES * MAX_UNIT
        tails = input_ids[:, max(self.prompt_len, input_ids.shape[1] - window):].tolist()
        done = [repeated_tail(row, STOP_COPIES, STOP_SPAN_TOKENS) is not None for row in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class NonFiniteGuard(LogitsProcessor):
    """Ends each row whose scores turn NaN or +inf (fp16 overflow in a model trained in bf16) and remembers it.

    Greedy decoding would otherwise pick token 0 forever and return a page of '!!!!'. The flags stay on
    the device, so the guard adds no synchronisation to the decoding loop.
    """

    def __init__(self, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id
        self.broken: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        broken = (torch.isnan(scores) | torch.isposinf(scores)).any(dim=-1)  # -inf is a banned token, not a fault
        self.broken = broken if self.broken is None else self.broken | broken
        ended = torch.full_like(scores, float("-inf"))
        ended[:, self.eos_token_id] = 0.0
        return torch.where(self.broken[:, None], ended, scores)

    def rows(self) -> list[bool]:
        """Which rows broke (read once, after generate)."""
        return [] if self.broken is None else self.broken.tolist()


def answers_or_none(answers: list[str], guard: NonFiniteGuard) -> list[str | None]:
    """None where the row's numbers broke: the element is counted as failed, not written as garbage."""
    broken = guard.rows() or [False] * len(answers)
    return [None if bad else answer for answer, bad in zip(answers, broken, strict=True)]


def pick_device(device: str | None = None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def free_gpu_bytes() -> int | None:
    """Free accelerator memory, or None on a CPU."""
    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return int(free)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float | None:
    """Peak GPU memory allocated since the last reset, or None on a CPU."""
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
