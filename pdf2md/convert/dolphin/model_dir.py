"""Where the model lives: a local dir, or an S3 prefix synced once per instance. Never the Hugging Face hub."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pdf2md.contracts import ENV_MODEL_DIR, ENV_MODEL_URI, S3Uri, safe_rel
from pdf2md.convert.backends import BackendUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

DEFAULT_SYNC_DIR = Path("/tmp/pdf2md-model")
"""Where an S3 model goes when PDF2MD_MODEL_DIR is unset (mount a host path there to share it)."""

SYNC_LOCK = ".sync.lock"
"""Inside the model dir: that dir is the host volume every container on the instance shares."""

REQUIRED: dict[str, tuple[str, ...]] = {
    "config": ("config.json",),
    "weights": ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"),
    "tokenizer": ("tokenizer.json", "sentencepiece.bpe.model", "tokenizer.model"),
    "processor": ("preprocessor_config.json", "processor_config.json"),
}
"""What a Dolphin checkpoint (1.x or v2) needs: any one file of each group."""


def missing_files(model_dir: Path) -> list[str]:
    """The groups a dir lacks, named by their first file; shards listed by an index count too."""
    missing = [names[0] for names in REQUIRED.values() if not any((model_dir / n).is_file() for n in names)]
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        missing += [s for s in shards if not (model_dir / s).is_file()]
    return missing


def validate_model_dir(model_dir: Path) -> Path:
    """The dir itself when complete; a one-line BackendUnavailable naming what is missing otherwise."""
    if not model_dir.is_dir():
        raise BackendUnavailable(f"Dolphin model dir {model_dir} does not exist (set {ENV_MODEL_DIR} or {ENV_MODEL_URI})")
    missing = missing_files(model_dir)
    if missing:
        raise BackendUnavailable(f"Dolphin model dir {model_dir} is incomplete: missing {', '.join(missing)}")
    return model_dir


def checkpoint_type(model_dir: Path) -> str:
    """The architecture a checkpoint declares (config.json model_type), which picks the engine."""
    try:
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise BackendUnavailable(f"Dolphin model dir {model_dir} has no readable config.json: {exc}") from exc
    if not isinstance(model_type, str):
        raise BackendUnavailable(f"{model_dir / 'config.json'} names no model_type")
    return model_type


def configured_model_dir(env: Mapping[str, str]) -> Path | None:
    """The local dir the model is (or will be synced) in, or None when no model is configured."""
    if env.get(ENV_MODEL_DIR):
        return Path(env[ENV_MODEL_DIR])
    return DEFAULT_SYNC_DIR if env.get(ENV_MODEL_URI) else None


def resolve_model_dir(env: Mapping[str, str], s3_client: S3Client | None = None) -> Path:
    """A complete local model dir: synced from PDF2MD_MODEL_URI first when that is set."""
    model_dir = configured_model_dir(env)
    if model_dir is None:
        raise BackendUnavailable(f"no Dolphin model configured: set {ENV_MODEL_DIR} or {ENV_MODEL_URI}")
    if env.get(ENV_MODEL_URI):
        sync_model(env[ENV_MODEL_URI], model_dir, s3_client)
    return validate_model_dir(model_dir)


def sync_model(uri: str, model_dir: Path, s3_client: S3Client | None = None) -> int:
    """Copy the S3 prefix into model_dir under a lock (one copy per instance); returns files downloaded.

    Files already there with the same size are kept, so a restarted or second container syncs nothing.
    """
    from pdf2md import s3 as s3io  # boto3 only where a model is synced: the GPU benchmark machine has none

    source = S3Uri.parse(uri)
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / SYNC_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _download_missing(s3_client or s3io.client(), source, model_dir)
        except BackendUnavailable:
            raise
        except Exception as exc:
            raise BackendUnavailable(f"could not sync the Dolphin model from {uri}: {exc}") from exc


def _download_missing(s3: S3Client, source: S3Uri, model_dir: Path) -> int:
    from pdf2md import s3 as s3io

    folder = S3Uri(source.bucket, source.dir_prefix)
    objects = [o for o in s3io.iter_objects(s3, folder) if not o.key.endswith("/")]
    if not objects:
        raise BackendUnavailable(f"no Dolphin model under {folder}")
    downloaded = 0
    for obj in objects:
        target = model_dir / safe_rel(obj.key[len(folder.prefix):])
        if target.is_file() and target.stat().st_size == obj.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        s3io.download(s3, source.bucket, obj.key, partial)
        os.replace(partial, target)
        downloaded += 1
    log.info("Dolphin model synced from %s: %d of %d file(s) downloaded", folder, downloaded, len(objects))
    return downloaded

