"""Model location: validation with one-line reasons, the S3 sync (once, skipping what is there), availability."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from pdf2md.contracts import ENV_MODEL_DIR, ENV_MODEL_URI
from pdf2md.convert.backends import BackendUnavailable
from pdf2md.convert.dolphin import dolphin_available
from pdf2md.convert.dolphin.model_dir import missing_files, resolve_model_dir, sync_model, validate_model_dir

COMPLETE = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json")


def _model(tmp_path: Path, files: tuple[str, ...] = COMPLETE) -> Path:
    for name in files:
        (tmp_path / name).write_text("{}")
    return tmp_path


def test_complete_dir_is_accepted(tmp_path: Path) -> None:
    assert validate_model_dir(_model(tmp_path)) == tmp_path


def test_missing_dir_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"does not exist \(set PDF2MD_MODEL_DIR or PDF2MD_MODEL_URI\)") as err:
        validate_model_dir(tmp_path / "nope")
    assert "\n" not in str(err.value)


def test_incomplete_dir_names_every_missing_part(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"incomplete: missing model\.safetensors, tokenizer\.json$"):
        validate_model_dir(_model(tmp_path, ("config.json", "preprocessor_config.json")))


def test_sharded_weights_need_every_shard(tmp_path: Path) -> None:
    _model(tmp_path, ("config.json", "tokenizer.json", "processor_config.json", "model-1.safetensors"))
    weight_map = {"a": "model-1.safetensors", "b": "model-2.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert missing_files(tmp_path) == ["model-2.safetensors"]


def test_nothing_configured(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="no Dolphin model configured"):
        resolve_model_dir({})
    assert not dolphin_available({})


def test_tiny_model_is_complete(tiny_model_dir: Path) -> None:
    assert missing_files(tiny_model_dir) == []


def test_available_needs_cuda_and_a_complete_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    model = _model(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dolphin_available({ENV_MODEL_DIR: str(model)})
    assert not dolphin_available({ENV_MODEL_DIR: str(tmp_path / "missing")})
    assert dolphin_available({ENV_MODEL_URI: "s3://models/dolphin/"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not dolphin_available({ENV_MODEL_DIR: str(model)})


@pytest.fixture
def models(s3: Any, bucket: str) -> tuple[Any, str]:
    """A model folder in the session's emulator: (client, s3:// prefix of the model folders)."""
    for name in COMPLETE:
        s3.put_object(Bucket=bucket, Key=f"dolphin/v1/{name}", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="dolphin/v1/sub/extra.txt", Body=b"x")
    return s3, f"s3://{bucket}/dolphin"


def test_sync_downloads_once_then_skips_same_size_files(models: tuple[Any, str], tmp_path: Path) -> None:
    s3, root = models
    target = tmp_path / "model"
    assert sync_model(f"{root}/v1", target, s3) == 5
    assert (target / "sub" / "extra.txt").read_bytes() == b"x"
    assert sync_model(f"{root}/v1/", target, s3) == 0
    (target / "config.json").write_text("{ }")
    assert sync_model(f"{root}/v1", target, s3) == 1


def test_concurrent_syncs_copy_each_file_once(models: tuple[Any, str], tmp_path: Path) -> None:
    s3, root = models
    target = tmp_path / "model"
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(sync_model(f"{root}/v1", target, s3))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == [0, 0, 5]


def test_resolve_syncs_then_validates(models: tuple[Any, str], tmp_path: Path) -> None:
    s3, root = models
    target = tmp_path / "model"
    env = {ENV_MODEL_URI: f"{root}/v1", ENV_MODEL_DIR: str(target)}
    assert resolve_model_dir(env, s3) == target
    with pytest.raises(BackendUnavailable, match=rf"no Dolphin model under {re.escape(root)}/nothing/$"):
        resolve_model_dir({ENV_MODEL_URI: f"{root}/nothing", ENV_MODEL_DIR: str(tmp_path / "other")}, s3)
