"""The generation comes from the checkpoint (or an explicit override), and each profile holds its generation's rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pdf2md.convert.backends import BackendUnavailable
from pdf2md.convert.dolphin.profiles import CONFIG_FIELD, ENV_GENERATION, PROFILES, profile_for
from pdf2md.convert.dolphin.prompts import PROMPTS


def test_the_checkpoint_names_its_generation(tiny_model_dir: Path, tiny_15_model_dir: Path, tiny_v2_model_dir: Path) -> None:
    assert profile_for(tiny_model_dir, {}).name == "1.0"
    assert profile_for(tiny_15_model_dir, {}).name == "1.5"  # same architecture, 1.5's layout separators as tokens
    assert profile_for(tiny_v2_model_dir, {}).name == "v2"


def test_an_explicit_generation_wins(tiny_model_dir: Path, tiny_15_model_dir: Path, tmp_path: Path) -> None:
    assert profile_for(tiny_15_model_dir, {ENV_GENERATION: "1.0"}).name == "1.0"
    marked = shutil.copytree(tiny_model_dir, tmp_path / "marked")
    config = json.loads((marked / "config.json").read_text())
    (marked / "config.json").write_text(json.dumps({**config, CONFIG_FIELD: "1.5"}))
    assert profile_for(marked, {}).name == "1.5"
    assert profile_for(marked, {ENV_GENERATION: "1.0"}).name == "1.0"  # the environment over the model dir


def test_a_wrong_generation_is_one_clear_error(tiny_model_dir: Path, tiny_v2_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"'2\.0' is not one of 1\.0, 1\.5, v2"):
        profile_for(tiny_model_dir, {ENV_GENERATION: "2.0"})
    with pytest.raises(BackendUnavailable, match="cannot be Dolphin v2"):
        profile_for(tiny_model_dir, {ENV_GENERATION: "v2"})
    with pytest.raises(BackendUnavailable, match="cannot be Dolphin 1.5"):
        profile_for(tiny_v2_model_dir, {ENV_GENERATION: "1.5"})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BackendUnavailable, match="holds a 'llama' model, not Dolphin"):
        profile_for(tmp_path, {ENV_GENERATION: "1.0"})


def test_a_1x_checkpoint_without_tokenizer_json_is_taken_as_1_0(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vision-encoder-decoder"}))
    assert profile_for(tmp_path, {}).name == "1.0"


def test_each_generation_keeps_its_own_rules() -> None:
    v1, v15, v2 = PROFILES["1.0"], PROFILES["1.5"], PROFILES["v2"]
    assert (v1.repetition_penalty, v15.repetition_penalty, v2.repetition_penalty) == (1.1, None, None)
    assert v1.prompts["formula"] == v1.prompts["code"] == PROMPTS["text"] and v1.prompts["table"] == PROMPTS["table"]
    assert v15.prompts == v2.prompts == PROMPTS
    assert [p.coordinates for p in (v1, v15, v2)] == ["fraction", "square", "grid"]
    assert [p.edge_adjustment for p in (v1, v15, v2)] == [True, False, False]
    assert [p.trim_previous for p in (v1, v15, v2)] == [True, True, False]
    assert [p.distorted_page for p in (v1, v15, v2)] == [False, False, True]
    assert [p.half_precision for p in (v1, v15, v2)] == ["fp16", "fp16", "bf16"]


@pytest.mark.parametrize(("generation", "penalty"), [("1.0", 1.1), ("1.5", None)])
def test_the_engine_decodes_with_its_profiles_penalty(
    generation: str, penalty: float | None, tiny_model_dir: Path, tiny_15_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    from PIL import Image

    from pdf2md.convert.dolphin.backend import load_engine

    engine = load_engine(tiny_model_dir if generation == "1.0" else tiny_15_model_dir)
    assert engine.profile.name == generation
    seen: dict[str, object] = {}
    real = engine.model.generate

    def spy(**kwargs: object) -> object:
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(engine.model, "generate", spy)
    engine.generate([Image.new("RGB", (64, 32), "white")], PROMPTS["text"])
    assert seen["repetition_penalty"] == penalty


def test_the_readmes_difference_table_is_the_rendering_of_the_differences() -> None:
    from pdf2md.convert.dolphin.differences import difference_table

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start, end = "<!-- dolphin-differences:start -->\n", "\n<!-- dolphin-differences:end -->"
    assert readme[readme.index(start) + len(start):readme.index(end)] == difference_table()
