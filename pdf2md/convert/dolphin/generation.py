"""What both Dolphin generations share at inference: the device, a stop for token loops, the fp16 overflow
guard and its fp32 rerun, GPU memory probes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import torch
from transformers import LogitsProcessor, StoppingCriteria

from pdf2md.convert.dolphin.repetition import MAX_UNIT, TEXT_LOOP, LoopRule, repeated_tail, whole_rows

log = logging.getLogger(__name__)

T = TypeVar("T")

class RepetitionStop(StoppingCriteria):
    """A stopping criterion that ends each row caught in a token loop (saves up to ~4k wasted steps).

    The element kind's rule (repetition.LOOP_RULES) sets how many copies over how many tokens are a loop;
    where its repeats may be table rows, the looping stretch is decoded and whole rows go on.
    """

    def __init__(self, prompt_len: int, rule: LoopRule = TEXT_LOOP, decode: Callable[[list[int]], str] | None = None) -> None:
        self.prompt_len = prompt_len
        self.rule = rule
        self.decode = decode

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        window = self.rule.stop_copies * MAX_UNIT
        tails = input_ids[:, max(self.prompt_len, input_ids.shape[1] - window):].tolist()
        done = [self._looping(row) for row in tails]
        return cast(torch.BoolTensor, torch.tensor(done, dtype=torch.bool, device=input_ids.device))

    def _looping(self, row: list[int]) -> bool:
        found = repeated_tail(row, self.rule.stop_copies, self.rule.stop_span_tokens)
        if found is None:
            return False
        return not (self.rule.rows_are_content and self.decode is not None and whole_rows(self.decode(row[found[0]:])))


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
        return cast(torch.FloatTensor, torch.where(self.broken[:, None], ended, scores))

    def rows(self) -> list[bool]:
        """Which rows broke (read once, after generate)."""
        return [] if self.broken is None else self.broken.tolist()


def answers_or_none(answers: list[str], guard: NonFiniteGuard) -> list[str | None]:
    """None where the row's numbers broke: the element is counted as failed, not written as garbage."""
    broken = guard.rows() or [False] * len(answers)
    return [None if bad else answer for answer, bad in zip(answers, broken, strict=True)]


def rerun_broken_in_fp32(
    model: torch.nn.Module, dtype: torch.dtype, items: Sequence[T], answers: list[str | None], run: Callable[[Sequence[T]], list[str | None]]
) -> list[str | None]:
    """fp16 answers with each row whose numbers broke (None) decoded again with fp32 arithmetic.

    A model trained in bf16 (Dolphin v2) can overflow fp16's range on some inputs; a T4 has no bf16.
    Only the broken rows pay for the rerun; a row that breaks in fp32 too stays None (a failed element).
    """
    broken = [i for i, answer in enumerate(answers) if answer is None]
    if dtype != torch.float16 or not broken:
        return answers
    log.warning("Dolphin: %d of %d row(s) overflowed fp16; decoding them again in fp32", len(broken), len(answers))
    with fp32_compute(model):
        again = run([items[i] for i in broken])
    out = list(answers)
    for i, answer in zip(broken, again, strict=True):
        out[i] = answer
    return out


@contextmanager
def fp32_compute(model: torch.nn.Module) -> Iterator[None]:
    """Inside, every module that owns weights computes in fp32: its weights widen as it runs and narrow back
    after (fp16 -> fp32 -> fp16 is exact), its floating inputs widen, so activations stay fp32 from the
    embeddings to the logits. Beyond the fp16 model only one module's weights are held in fp32 at a time,
    so this fits a 16 GB T4 where a second, fp32 copy of a 3B model would not."""
    handles = []
    owned: list[torch.nn.Parameter] = []
    for module in model.modules():
        narrow = [p for p in module.parameters(recurse=False) if p.dtype == torch.float16]
        if narrow:
            owned += narrow
            handles.append(module.register_forward_pre_hook(_widen(narrow), with_kwargs=True))
            handles.append(module.register_forward_hook(_narrow(narrow)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for param in owned:  # a forward that raised (out of memory) left its module wide
            if param.dtype == torch.float32:
                param.data = param.data.half()


def _widen(params: list[torch.nn.Parameter]) -> Callable[..., tuple[Any, dict[str, Any]]]:
    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        for param in params:
            param.data = param.data.float()
        return _to_fp32(args), _to_fp32(kwargs)

    return hook


def _narrow(params: list[torch.nn.Parameter]) -> Callable[..., None]:
    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        for param in params:
            param.data = param.data.half()

    return hook


def _to_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype == torch.float16 else value
    if isinstance(value, tuple):
        return tuple(_to_fp32(v) for v in value)
    if isinstance(value, list):
        return [_to_fp32(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_fp32(v) for k, v in value.items()}
    return value


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
