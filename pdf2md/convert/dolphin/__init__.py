"""Dolphin (ByteDance's two-stage document parser; 1.0, 1.5 and v2) as a page backend for the GPU workers."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

from pdf2md.contracts import ENV_MODEL_URI
from pdf2md.convert.dolphin.backend import DolphinBackend
from pdf2md.convert.dolphin.model_dir import configured_model_dir, missing_files

__all__ = ["DolphinBackend", "dolphin_available"]


def dolphin_available(env: Mapping[str, str] | None = None) -> bool:
    """A CUDA GPU and a configured model (a complete dir, or an S3 prefix to sync): no model load."""
    env = os.environ if env is None else env
    model_dir = configured_model_dir(env)
    if model_dir is None or importlib.util.find_spec("torch") is None:
        return False
    if not env.get(ENV_MODEL_URI) and (not model_dir.is_dir() or missing_files(model_dir)):
        return False
    import torch

    return torch.cuda.is_available()
