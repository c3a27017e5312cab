"""Batch sizing under memory pressure, proven with a fake model that runs out of memory."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pdf2md.convert.dolphin.batching import GIB, AdaptiveBatcher, initial_batch_size

torch = pytest.importorskip("torch")


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


class FakeModel:
    """Doubles numbers; runs out of memory on batches over `limit` or on any item in `poison`."""

    def __init__(self, limit: int, poison: frozenset[int] = frozenset()) -> None:
        self.limit, self.poison = limit, poison
        self.calls: list[int] = []

    def __call__(self, batch: Sequence[int]) -> list[int]:
        self.calls.append(len(batch))
        if len(batch) > self.limit or self.poison & set(batch):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return [2 * x for x in batch]


def test_halves_until_it_fits_and_keeps_the_size() -> None:
    released: list[int] = []
    batcher = AdaptiveBatcher(16, _is_oom, after_oom=lambda: released.append(1))
    fake = FakeModel(limit=3)
    run = batcher.run(list(range(10)), fake)
    assert run.results == [2 * x for x in range(10)]
    assert batcher.size == 2 and batcher.halvings == 3 and len(released) == 3
    assert fake.calls == [10, 8, 4, 2, 2, 2, 2, 2]
    assert run.failed == 0 and all(s >= 0 for s in run.seconds)


def test_an_element_too_big_for_a_batch_of_one_is_left_empty() -> None:
    batcher = AdaptiveBatcher(4, _is_oom)
    run = batcher.run([1, 2, 3, 4, 5], FakeModel(limit=4, poison=frozenset({3})))
    assert run.results == [2, 4, None, 8, 10]
    assert run.failed == 1 and batcher.size == 1


def test_other_errors_are_not_swallowed() -> None:
    def broken(batch: Sequence[int]) -> list[int]:
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        AdaptiveBatcher(4, _is_oom).run([1], broken)


@pytest.mark.parametrize(
    ("free", "cap", "expected"), [(None, 16, 4), (None, 2, 2), (0, 16, 1), (15 * GIB, 16, 10), (100 * GIB, 16, 16), (100 * GIB, 8, 8)]
)
def test_initial_batch_size_follows_free_memory(free: int | None, cap: int, expected: int) -> None:
    assert initial_batch_size(free, cap) == expected
