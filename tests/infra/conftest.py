"""Parsed terraform for the infra tests (python-hcl2 8 keeps HCL quotes: `unquote` strips them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))


def unquote(value: Any) -> Any:
    """Strip python-hcl2's quotes from keys and string literals, recursively; drop its __is_block__ and __comments__ entries."""
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("__"))}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


class Terraform:
    """All .tf files of terraform/, merged by block type."""

    def __init__(self, files: list[Path]) -> None:
        self.files = {f.name: unquote(hcl2.load(f.open())) for f in files}
        self.text = {f.name: f.read_text() for f in files}

    def blocks(self, kind: str) -> list[dict[str, Any]]:
        return [b for doc in self.files.values() for b in doc.get(kind, [])]

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return {name: body for block in self.blocks("variable") for name, body in block.items()}

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: body for block in self.blocks("output") for name, body in block.items()}

    @property
    def locals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for block in self.blocks("locals"):
            merged.update(block)
        return merged

    def resources(self, rtype: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for block in self.blocks("resource"):
            for name, body in block.get(rtype, {}).items():
                found[name] = body
        return found

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        resources = self.resources(rtype)
        assert name in resources, f"terraform has no {rtype}.{name} (has {sorted(resources)})"
        return resources[name]

    def data(self, dtype: str, name: str) -> dict[str, Any]:
        for block in self.blocks("data"):
            if name in block.get(dtype, {}):
                return block[dtype][name]
        raise AssertionError(f"terraform has no data.{dtype}.{name}")


@pytest.fixture(scope="session")
def tf() -> Terraform:
    assert TF_FILES, f"no .tf files in {TERRAFORM}"
    return Terraform(TF_FILES)
