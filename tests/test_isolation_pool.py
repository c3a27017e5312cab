"""Parallel isolated converters: each child converts its own PDFs under its own time and memory limits, and one
child killed for a PDF neither fails the PDFs of the other child nor outlives its own replacement."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from pdf2md.convert import Conversion, ConversionError, ConvertOptions, convert_pdf
from pdf2md.convert.pipeline import assemble
from pdf2md.isolation import ConverterPool, IsolatedConverter
from pdf2md.shard_pipeline import ShardIO, ShardPipeline
from tests.conftest import BROKEN_SAMPLES, GOOD_SAMPLES, SAMPLES


def misbehaving_convert(path: Path, options: ConvertOptions) -> Conversion:
    """convert_pdf, except that a file named slow-* never ends and hungry-* grows until it is stopped."""
    name = path.read_bytes()[:16]
    if name.startswith(b"slow"):
        time.sleep(600)
    if name.startswith(b"hungry"):
        held = []
        while True:  # touched pages: resident memory really grows
            held.append(bytearray(b"x" * (16 << 20)))
            time.sleep(0.01)
    return convert_pdf(path, options)


def _pipeline_over(names: list[str], pool: ConverterPool, workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Run `names` (sample files, or slow-/hungry- stand-ins) through the pipeline; (markdown, failures) by name."""
    markdown: dict[str, str] = {}
    failures: dict[str, str] = {}

    def fetch(name: str, dest: Path) -> str:
        if name.startswith(("slow", "hungry")):
            dest.write_bytes(name.encode())
        else:
            shutil.copyfile(SAMPLES / name, dest)
        return name

    def publish(name: str, context: str, conversion: Conversion) -> None:
        markdown[name] = conversion.markdown

    io = ShardIO(fetch=fetch, publish=publish, fail=lambda name, kind, msg: failures.__setitem__(name, kind),
                 skip=lambda name: None, size_of=lambda name: 1000)
    inbox = workdir / "inbox"
    inbox.mkdir()
    ShardPipeline(names, io, pool.converters, inbox, lambda: False).run()
    return markdown, failures


def test_two_children_convert_a_shard_as_one_converter_would(tmp_path: Path) -> None:
    names = [*GOOD_SAMPLES, *BROKEN_SAMPLES]
    with ConverterPool(ConvertOptions(backend="text"), timeout_s=60, memory_mb=1024, size=2) as pool:
        markdown, failures = _pipeline_over(names, pool, tmp_path)
        pids = {c._proc.pid for c in pool.converters if c._proc is not None}
    assert failures == {"broken-truncated.pdf": "corrupt", "not-a-pdf.pdf": "not-pdf"}
    assert markdown == {n: convert_pdf(SAMPLES / n, ConvertOptions(backend="text")).markdown for n in GOOD_SAMPLES}
    assert len(pids) == 2, "both children worked"


def test_each_child_has_its_own_limits_and_the_others_go_on(tmp_path: Path) -> None:
    names = ["slow-1", "crazyones.pdf", "hungry-2", "code_and_formula.pdf", "FC60_Times.pdf"]
    pool = ConverterPool(ConvertOptions(backend="text"), timeout_s=4, memory_mb=300, size=2, convert=misbehaving_convert)
    with pool:
        markdown, failures = _pipeline_over(names, pool, tmp_path)
    assert failures == {"slow-1": "timeout", "hungry-2": "resource-limit"}
    assert sorted(markdown) == ["FC60_Times.pdf", "code_and_formula.pdf", "crazyones.pdf"]
    assert all(c._proc is None for c in pool.converters), "closing the pool stops every child"


def test_a_planner_child_plans_in_its_limits_without_loading_a_model() -> None:
    options = ConvertOptions(backend="auto", model="ocr")
    with IsolatedConverter(options, timeout_s=60, memory_mb=1024, load_model=False) as planner:
        plan = planner.plan(SAMPLES / "crazyones.pdf")
        baseline = planner._baseline
        with pytest.raises(ConversionError) as err:
            planner.plan(SAMPLES / "not-a-pdf.pdf")
    assert err.value.error_class == "not-pdf"
    assert plan.model_pages == [] and assemble(plan, {}).markdown == convert_pdf(SAMPLES / "crazyones.pdf", options).markdown
    assert baseline < 200 * 2**20, "no model (nor torch) loaded in a planner"


def _stand_in(tmp_path: Path, name: str) -> Path:
    """A slow-/hungry- stand-in file (misbehaving_convert reads its name), or a copy of a sample PDF."""
    path = tmp_path / name
    if name.startswith(("slow", "hungry")):
        path.write_bytes(name.encode())
    else:
        shutil.copyfile(SAMPLES / name, path)
    return path


def test_a_pdf_sent_ahead_converts_as_if_asked_for_alone(tmp_path: Path) -> None:
    first, second, third = (_stand_in(tmp_path, n) for n in ("crazyones.pdf", "FC60_Times.pdf", "code_and_formula.pdf"))
    options = ConvertOptions(backend="text")
    with IsolatedConverter(options, timeout_s=60, memory_mb=1024) as converter:
        results = [converter.convert(first, upcoming=second).markdown, converter.convert(second, upcoming=third).markdown]
        pid = converter._proc.pid
        results.append(converter.convert(third).markdown)
        assert converter._proc.pid == pid, "one child did all three"
    assert results == [convert_pdf(p, options).markdown for p in (first, second, third)]


def test_a_child_killed_for_its_pdf_loses_the_one_sent_ahead_and_the_next_call_sends_it_again(tmp_path: Path) -> None:
    slow, good = _stand_in(tmp_path, "slow-1"), _stand_in(tmp_path, "crazyones.pdf")
    options = ConvertOptions(backend="text")
    with IsolatedConverter(options, timeout_s=4, memory_mb=1024, convert=misbehaving_convert) as converter:
        with pytest.raises(ConversionError) as err:
            converter.convert(slow, upcoming=good)
        assert err.value.error_class == "timeout"
        assert converter.convert(good).markdown == convert_pdf(good, options).markdown


def test_the_time_limit_of_a_pdf_sent_ahead_counts_from_when_its_child_starts_it(tmp_path: Path) -> None:
    good, slow = _stand_in(tmp_path, "crazyones.pdf"), _stand_in(tmp_path, "slow-1")
    with IsolatedConverter(ConvertOptions(backend="text"), timeout_s=3, memory_mb=1024, convert=misbehaving_convert) as converter:
        converter.convert(good, upcoming=slow)
        time.sleep(2)  # the child has been on the slow PDF all along
        asked = time.monotonic()
        with pytest.raises(ConversionError) as err:
            converter.convert(slow)
        assert err.value.error_class == "timeout"
        assert time.monotonic() - asked < 2.5, "the limit counted from the child's start, not from this call"


def test_asking_for_another_pdf_than_the_one_sent_ahead_replaces_the_child(tmp_path: Path) -> None:
    first, ahead, other = (_stand_in(tmp_path, n) for n in ("crazyones.pdf", "slow-1", "FC60_Times.pdf"))
    options = ConvertOptions(backend="text")
    with IsolatedConverter(options, timeout_s=60, memory_mb=1024, convert=misbehaving_convert) as converter:
        converter.convert(first, upcoming=ahead)
        pid = converter._proc.pid
        assert converter.convert(other).markdown == convert_pdf(other, options).markdown
        assert converter._proc.pid != pid, "the child busy with the PDF sent ahead was replaced"
