"""The loop guard: cuts degenerate tails, leaves content (even repetitive content) alone."""

from __future__ import annotations

import pytest

from pdf2md.convert.dolphin.prompts import PROMPTS
from pdf2md.convert.dolphin.repetition import TEXT_LOOP, cut_repetition, loop_rule, repeated_tail, whole_rows


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


SIGN_UP_SHEET = (
    "<table><tr><td>Date</td><td>Name</td><td>Room</td><td>Signature</td></tr>"
    + "<tr><td></td><td></td><td></td><td></td></tr>" * 12
    + "</table>"
)
"""A sign-up sheet: a header row and twelve empty rows (a form, a schedule): repetitive, and all content."""


def test_a_table_of_identical_rows_is_decoded_to_its_end() -> None:
    """At every step of decoding the sheet, the table's rule lets it go on; prose's rule (the old and only one)
    stopped it once eight empty rows were written, and cut the answer to one of them."""
    torch = pytest.importorskip("torch")
    from pdf2md.convert.dolphin.generation import RepetitionStop
    from pdf2md.convert.dolphin.tiny import dolphin_tokenizer

    tokenizer = dolphin_tokenizer()
    ids = tokenizer(SIGN_UP_SHEET, add_special_tokens=False).input_ids
    rule = loop_rule(PROMPTS["table"])
    table_stop, prose_stop = RepetitionStop(0, rule, tokenizer.decode), RepetitionStop(0, TEXT_LOOP, tokenizer.decode)
    steps = [torch.tensor([ids[:n]]) for n in range(1, len(ids) + 1)]
    assert not any(table_stop(step, None).item() for step in steps)
    assert any(prose_stop(step, None).item() for step in steps)  # the stop this replaces for tables
    cut_short = tokenizer.decode(ids[: len(ids) - 3])  # an answer ended inside its last row
    assert cut_repetition(cut_short, rule) == cut_short
    assert cut_repetition(cut_short) != cut_short


@pytest.mark.parametrize(
    "loop",
    [
        "<table><tr><td>Total</td><td>" + "0" * 600,
        "<table><tr><td>a</td>" + "<td></td>" * 120,
        "<table><tr><td>1</td></tr><tr><td>2" + "</td><td>2" * 80,
    ],
)
def test_a_table_that_loops_inside_a_row_is_still_stopped_and_cut(loop: str) -> None:
    torch = pytest.importorskip("torch")
    from pdf2md.convert.dolphin.generation import RepetitionStop
    from pdf2md.convert.dolphin.tiny import dolphin_tokenizer

    tokenizer = dolphin_tokenizer()
    ids = tokenizer(loop, add_special_tokens=False).input_ids
    rule = loop_rule(PROMPTS["table"])
    stop = RepetitionStop(0, rule, tokenizer.decode)
    assert any(stop(torch.tensor([ids[:n]]), None).item() for n in range(1, len(ids) + 1))
    assert len(cut_repetition(loop, rule)) < len(loop) / 3


def test_whole_rows_are_told_from_fragments() -> None:
    row = "<tr><td>x</td><td colspan=\"2\"><b>y</b></td></tr>"
    assert whole_rows((row * 6)[7:-9])  # cut anywhere, it is still rows
    assert not whole_rows("<td>0</td>" * 10)
    assert not whole_rows("<tr><td>1</td>" * 10)  # rows that never close
