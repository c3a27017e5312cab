"""The images run the CLI's worker as a non-root user, carry no secrets, and keep the context clean."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from pdf2md.contracts import ENV_MODEL_DIR

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "containers" / name for name in ("cpu.Dockerfile", "gpu.Dockerfile")]
"""The worker images (containers/airflow.Dockerfile is the laptop Airflow stack's, checked with compose)."""
SECRET = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL)", re.IGNORECASE)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.MULTILINE)]


def _last(path: Path, name: str) -> str:
    values = [args for instr, args in _instructions(path) if instr == name]
    assert values, f"{path.name} has no {name}"
    return values[-1]


def test_both_images_exist() -> None:
    assert all(p.is_file() for p in DOCKERFILES)


def _argv(dockerfile: Path) -> list[str]:
    entrypoint = [args for instr, args in _instructions(dockerfile) if instr == "ENTRYPOINT"]
    return (json.loads(entrypoint[-1]) if entrypoint else []) + json.loads(_last(dockerfile, "CMD"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_command_is_the_cli_worker(dockerfile: Path) -> None:
    from pdf2md.cli import build_parser

    argv = _argv(dockerfile)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[argv[0]] == "pdf2md.cli:main"
    assert build_parser().parse_args(argv[1:]).command == "worker"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_job_definition_command_replaces_cmd_cleanly(dockerfile: Path) -> None:
    """Batch's `command` replaces CMD but not ENTRYPOINT: an ENTRYPOINT would run `pdf2md pdf2md worker`."""
    batch_tf = REPO / "terraform" / "batch.tf"
    if not batch_tf.is_file():
        pytest.skip("no terraform job definition")
    found = re.search(r"^\s*command\s*=\s*(\[[^\]]*\])", batch_tf.read_text(), re.MULTILINE)
    assert found, "the job definition sets no command"
    assert not [args for instr, args in _instructions(dockerfile) if instr == "ENTRYPOINT"]
    assert json.loads(found.group(1)) == _argv(dockerfile)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_non_root(dockerfile: Path) -> None:
    assert _last(dockerfile, "USER") not in ("root", "0", "0:0")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_sets_no_secrets(dockerfile: Path) -> None:
    for instr, args in _instructions(dockerfile):
        if instr in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            assert not [n for n in names if SECRET.search(n)], f"{dockerfile.name}: {instr} {args}"
    assert "aws_access_key_id" not in dockerfile.read_text().lower()


def test_gpu_image_has_the_model_dir_and_the_dolphin_extra() -> None:
    gpu = REPO / "containers" / "gpu.Dockerfile"
    envs = " ".join(args for instr, args in _instructions(gpu) if instr == "ENV")
    assert f"{ENV_MODEL_DIR}=/opt/model" in envs and "HF_HUB_OFFLINE=1" in envs
    assert ".[dolphin,ocr]" in gpu.read_text()


def test_cpu_image_has_no_torch() -> None:
    runs = " ".join(args for instr, args in _instructions(REPO / "containers" / "cpu.Dockerfile") if instr == "RUN")
    assert ".[ocr]" in runs and "torch" not in runs and "dolphin" not in runs


def test_context_leaves_out_venvs_git_tests_weights_and_secrets() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {"**/.venv", "**/.git", "tests", "test-artifacts", "**/*.safetensors", "**/*.bin", "**/.env", "**/.aws"} <= ignored
    for dockerfile in DOCKERFILES:
        copies = [args.split()[:-1] for instr, args in _instructions(dockerfile) if instr == "COPY" and "--from" not in args]
        sources = {source for sources in copies for source in sources}
        assert sources == {"pyproject.toml", "constraints.txt", "README.md", "pdf2md", "batch_jobs"}
        assert not sources & ignored
