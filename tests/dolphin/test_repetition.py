"""The loop guard: cuts degenerate tails, leaves content (even repetitive content) alone."""

from __future__ import annotations

import pytest

from pdf2md.convert.dolphin.repetition import cut_repetition, repeated_tail


def test_looping_tail_keeps_one_copy() -> None:
    assert cut_repetition("The results are shown in Table 2. " + "and the results " * 40) == "The results are shown in Table 2. and the results"


def test_single_character_loop() -> None:
    assert cut_repetition("Total: 12" + "0" * 300) == "Total: 120"


@pytest.mark.parametrize(
    "text",
    [
        "ha ha ha ha ha",
        "<table>" + "<tr>" + "<td></td>" * 30 + "</tr>" + "</table>",
        "Contents ........................................ 3",
        "a b c d e f g " * 3,
    ],
)
def test_content_is_left_alone(text: str) -> None:
    assert cut_repetition(text) == text


def test_token_ids_work_the_same() -> None:
    ids = [5, 6, 7] + [1, 2, 3, 4] * 30
    assert repeated_tail(ids, min_copies=8, min_span=48) == (3, 4)
    assert repeated_tail(list(range(200)), min_copies=8, min_span=48) is None


def test_stopping_criterion_stops_only_looping_rows() -> None:
    torch = pytest.importorskip("torch")
    from pdf2md.convert.dolphin.generation import RepetitionStop

    looping = [9, 9, 9] + [1, 2, 3] * 60
    fine = [9, 9, 9] + list(range(10, 190))
    done = RepetitionStop(prompt_len=3)(torch.tensor([looping, fine]), None)
    assert done.tolist() == [True, False]
