"""Every S3 call each role makes is allowed by terraform's IAM policy for that role.

Real AWS answers a call the policy lacks with 403; the emulator allows everything, so only this test can
see it. Nothing here is a list that can silently go stale:

- which modules run under which role is the import closure of the role's entry points (the DAG and
  plugin files for Airflow, batch_jobs/worker.py for the Batch job);
- which S3 calls a module makes is read from its source: calls of pdf2md.s3's functions and direct
  calls of any boto3 S3 client method (botocore's own list of S3 operations);
- which IAM actions a pdf2md.s3 function needs is read from its body the same way.

The one declared fact is SITES: where each call site points (input, output, runs, ...). The test fails
when a call site appears that SITES does not place, or SITES places one that is gone, so a new call
cannot pass unnoticed; then every (action, place) of a role must be granted by its policy document.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from .conftest import REPO, Terraform


class Place(Enum):
    INPUT = "input"
    OUTPUT = "output"
    RUNS = "runs"
    MODEL = "model"
    PASSWORDS = "passwords"
    INVENTORY = "inventory"


ROLE_ENTRIES = {
    "airflow": [*sorted((REPO / "dags").glob("*.py")), *sorted((REPO / "plugins").glob("*.py"))],
    "job": [REPO / "batch_jobs" / "worker.py"],
}
"""What each role runs: the Airflow policy serves the DAGs and the status page the plugin mounts; the job
role serves the array child's entrypoint."""
ROLE_POLICY = {"airflow": "airflow", "job": "job"}
"""The aws_iam_policy_document each role's attached policy is built from (checked below)."""

S3_MODULE = "pdf2md.s3"
OPERATION_ACTIONS = {
    "ListObjectsV2": ("s3:ListBucket",),
    "GetObject": ("s3:GetObject",),
    "HeadObject": ("s3:GetObject",),  # HEAD is authorised as GetObject (403, not 404, without it)
    "PutObject": ("s3:PutObject",),
    "DeleteObject": ("s3:DeleteObject",),
    "DeleteObjects": ("s3:DeleteObject",),  # a batch delete is authorised per key, as DeleteObject
    "upload_fileobj": ("s3:PutObject", "s3:AbortMultipartUpload"),  # multipart above 8 MB, aborted on failure
    "download_fileobj": ("s3:GetObject",),
}
"""The IAM actions each S3 operation (or boto3 transfer method) needs; an operation missing here fails the test."""
TRANSFER_METHODS = {"upload_file": "upload_file", "upload_fileobj": "upload_fileobj",
                    "download_file": "download_file", "download_fileobj": "download_fileobj"}

P = Place
SITES: dict[tuple[str, str, str], set[Place]] = {
    ("pdf2md.plan", "_owner", "head"): {P.OUTPUT},
    ("pdf2md.plan", "recorded_outputs", "head"): {P.OUTPUT},
    ("pdf2md.run_state", "preflight", "read_passwords"): {P.PASSWORDS},
    ("pdf2md.worker", "_mark_failed", "delete"): {P.OUTPUT},
    ("pdf2md.worker", "_remove", "delete_keys"): {P.OUTPUT},
    ("pdf2md.worker", "_source_changed", "head"): {P.INPUT},
    ("pdf2md.worker", "_withdraw", "delete"): {P.OUTPUT},
    ("pdf2md.worker", "_write_sidecars", "put_bytes"): {P.OUTPUT},
    # Airflow: tasks, planner, reducer, inventory reader, status page
    ("pdf2md.airflow.tasks", "_summary", "get_json"): {P.RUNS},
    ("pdf2md.airflow.tasks", "halt", "put_json"): {P.RUNS},
    ("pdf2md.airflow.tasks", "report_task", "get_json"): {P.RUNS},
    ("pdf2md.airflow.tasks", "report_task", "put_json"): {P.RUNS},
    ("pdf2md.inventory", "_csv_rows", "GetObject"): {P.INVENTORY},
    ("pdf2md.inventory", "_parquet_rows", "download_fileobj"): {P.INVENTORY},
    ("pdf2md.inventory", "find_report", "list_folder"): {P.INVENTORY},
    ("pdf2md.inventory", "read_report", "get_bytes"): {P.INVENTORY},
    ("pdf2md.plan", "_upload_shards.put", "put_bytes"): {P.RUNS},
    ("pdf2md.plan", "_write_dealt", "JsonlUpload"): {P.RUNS},
    ("pdf2md.plan", "list_pdfs", "iter_objects_parallel"): {P.INPUT},
    ("pdf2md.plan", "plan_round", "JsonlUpload"): {P.RUNS},
    ("pdf2md.plan", "plan_round", "iter_objects_parallel"): {P.OUTPUT},
    ("pdf2md.plan", "record_collisions", "write_jsonl"): {P.RUNS},
    ("pdf2md.plan", "write_manifest", "put_json"): {P.RUNS},
    ("pdf2md.reduce", "_ShardReducer._manifest", "get_bytes"): {P.RUNS},
    ("pdf2md.reduce", "_ShardReducer._unreported", "head"): {P.OUTPUT},
    ("pdf2md.reduce", "_converted", "read_jsonl"): {P.RUNS},
    ("pdf2md.reduce", "_failures", "read_jsonl"): {P.RUNS},
    ("pdf2md.reduce", "failures_of_run", "read_jsonl"): {P.RUNS},
    ("pdf2md.reduce", "reduce_round", "get_json"): {P.RUNS},
    ("pdf2md.reduce", "reduce_round", "put_json"): {P.RUNS},
    ("pdf2md.reduce", "round_files", "iter_objects"): {P.RUNS},
    ("pdf2md.status", "_round_view", "get_json"): {P.RUNS},
    ("pdf2md.status", "_subfolders", "ListObjectsV2"): {P.RUNS},
    ("pdf2md.status", "latest_run_id", "ListObjectsV2"): {P.RUNS},
    ("pdf2md.status", "run_status", "get_json"): {P.RUNS},
    # both: progress bands (the child writes them, the status page reads them)
    ("pdf2md.progress", "publish", "get_json_with_etag"): {P.RUNS},
    ("pdf2md.progress", "publish", "put_json"): {P.RUNS},
    ("pdf2md.progress", "read_round", "get_json"): {P.RUNS},
    ("pdf2md.progress", "read_round", "iter_objects"): {P.RUNS},
    # the Batch job
    ("pdf2md.convert.dolphin.model_dir", "_download_missing", "download"): {P.MODEL},
    ("pdf2md.convert.dolphin.model_dir", "_download_missing", "iter_objects"): {P.MODEL},
    ("pdf2md.worker", "_download", "download"): {P.INPUT},
    ("pdf2md.worker", "_fetch", "head"): {P.OUTPUT},
    ("pdf2md.worker", "_mark_failed", "put_json"): {P.OUTPUT},
    ("pdf2md.worker", "run", "read_passwords"): {P.PASSWORDS},
    ("pdf2md.worker", "_publish", "head"): {P.OUTPUT},
    ("pdf2md.worker", "_publish", "put_conditional"): {P.OUTPUT},
    ("pdf2md.worker", "_write_records", "write_jsonl"): {P.RUNS},
    ("pdf2md.worker", "read_shard", "get_bytes"): {P.RUNS},
    ("pdf2md.worker", "read_shard", "read_jsonl"): {P.RUNS},
}
"""(module, enclosing function, callee: a pdf2md.s3 function or an S3 operation) → where it points."""

NOT_IN_TERRAFORM = {Place.INVENTORY: "an inventory bucket is named per run (inventory_uri): the deployer grants its read"}

OBJECT_RESOURCES = {
    Place.INPUT: "${local.input_objects}",
    Place.OUTPUT: "${local.output_objects}",
    Place.RUNS: "${local.runs_objects}",
    Place.MODEL: "arn:${local.partition}:s3:::${local.model_bucket}/${local.model_key_glob}",
    Place.PASSWORDS: "arn:${local.partition}:s3:::${local.passwords_bucket}/${local.passwords_key}",
}
LIST_RESOURCES = {
    Place.INPUT: ("${local.input_bucket_arn}", "${var.input_prefix}*"),
    Place.OUTPUT: ("${local.output_bucket_arn}", "${var.output_prefix}*"),
    Place.RUNS: ("${local.output_bucket_arn}", "${var.runs_prefix}*"),
    Place.MODEL: ("arn:${local.partition}:s3:::${local.model_bucket}", "${local.model_prefix}"),
}
"""A ListBucket grant: the bucket ARN and the s3:prefix value that scopes it to the place."""


# --- reading the code ------------------------------------------------------------------------------


@functools.cache
def _s3_methods() -> dict[str, str]:
    """boto3 S3 client method → operation name, from botocore's model, plus the transfer methods."""
    model = botocore.session.get_session().get_service_model("s3")
    return {**{xform_name(op): op for op in model.operation_names}, **TRANSFER_METHODS}


def _module_path(name: str) -> Path | None:
    for path in (REPO / (name.replace(".", "/") + ".py"), REPO / name.replace(".", "/") / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """Every pdf2md module a file imports, function-level imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return {m for m in found if m.split(".")[0] == "pdf2md" and _module_path(m)}


def role_modules(entries: Iterable[Path]) -> dict[str, Path]:
    """The import closure of a role's entry points."""
    seen: dict[str, Path] = {}
    todo = list(entries)
    while todo:
        for name in _imports(todo.pop()):
            if name not in seen:
                path = _module_path(name)
                assert path is not None
                seen[name] = path
                todo.append(path)
    return seen


def _s3_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to the pdf2md.s3 module, and names imported from it."""
    modules, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "pdf2md":
            modules |= {a.asname or a.name for a in node.names if a.name == "s3"}
        elif isinstance(node, ast.ImportFrom) and node.module == S3_MODULE:
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == S3_MODULE and a.asname}
    return modules, names


def call_sites(module: str, path: Path) -> Iterator[tuple[str, str]]:
    """(enclosing function, callee) for each S3 call: pdf2md.s3 functions by name, client methods by operation."""
    tree = ast.parse(path.read_text())
    modules, names = _s3_aliases(tree)
    methods = _s3_methods()

    def callee(call: ast.Call) -> str | None:
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
            return func.attr
        if isinstance(func, ast.Name) and func.id in names:
            return func.id
        if isinstance(func, ast.Attribute) and func.attr == "get_paginator":
            arg = call.args[0] if call.args else None
            op = methods.get(arg.value) if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            return op  # a paginator of another service (Batch's list_jobs) is no S3 call
        if isinstance(func, ast.Attribute) and func.attr in methods:
            return methods[func.attr]
        return None

    def walk(node: ast.AST, qual: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            inner = qual
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = f"{qual}.{child.name}" if qual else child.name
            if isinstance(child, ast.Call) and (name := callee(child)):
                yield qual, name
            yield from walk(child, inner)

    yield from walk(tree, "")


def s3_function_actions() -> dict[str, set[str]]:
    """The IAM actions each top-level name of pdf2md.s3 needs, through the other names it calls."""
    path = _module_path(S3_MODULE)
    assert path is not None
    tree = ast.parse(path.read_text())
    top = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    direct: dict[str, set[str]] = {name: set() for name in top}
    calls: dict[str, set[str]] = {name: set() for name in top}
    for qual, name in call_sites(S3_MODULE, path):
        owner = qual.split(".")[0]
        if owner not in top:
            continue
        if name in OPERATION_ACTIONS:
            direct[owner] |= set(OPERATION_ACTIONS[name])
        elif name in top:
            calls[owner].add(name)
        else:
            pytest.fail(f"pdf2md.s3.{qual} calls S3 operation {name}: add its IAM actions to OPERATION_ACTIONS")
    for owner in top:  # names used as plain calls (JsonlUpload(...), read_jsonl(...)) inside pdf2md.s3
        for node in ast.walk(next(n for n in tree.body if getattr(n, "name", None) == owner)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in top:
                calls[owner].add(node.func.id)
    resolved: dict[str, set[str]] = {}

    def actions(name: str, stack: tuple[str, ...] = ()) -> set[str]:
        if name not in resolved:
            found = set(direct[name])
            for other in calls[name] - {name, *stack}:
                found |= actions(other, (*stack, name))
            resolved[name] = found
        return resolved[name]

    return {name: actions(name) for name in top}


def role_sites(role: str) -> dict[tuple[str, str, str], set[str]]:
    """Every S3 call site a role runs, outside pdf2md.s3, with the IAM actions it needs."""
    by_function = s3_function_actions()
    sites: dict[tuple[str, str, str], set[str]] = {}
    for module, path in sorted(role_modules(ROLE_ENTRIES[role]).items()):
        if module == S3_MODULE:
            continue
        for qual, name in call_sites(module, path):
            needed = by_function.get(name) if name in by_function else set(OPERATION_ACTIONS.get(name, ()))
            if name not in by_function and name not in OPERATION_ACTIONS:
                pytest.fail(f"{module}.{qual} calls S3 operation {name}: add its IAM actions to OPERATION_ACTIONS")
            if needed:
                sites[(module, qual, name)] = needed
    return sites


# --- reading terraform -------------------------------------------------------------------------------


def statements(tf: Terraform, document: str) -> list[dict[str, Any]]:
    """A policy document's statements, its dynamic (optional) ones included."""
    doc = tf.data("aws_iam_policy_document", document)
    found = list(doc.get("statement", []))
    for block in doc.get("dynamic", []):
        if "statement" in block:
            found.extend(block["statement"]["content"])
    return found


def granted(tf: Terraform, document: str, action: str, place: Place) -> bool:
    for statement in statements(tf, document):
        if action not in statement["actions"] or statement.get("effect", "Allow") != "Allow":
            continue
        if action == "s3:ListBucket":
            bucket, prefix = LIST_RESOURCES[place]
            scoped = [v for c in statement.get("condition", []) if c["variable"] == "s3:prefix" for v in c["values"]]
            if bucket in statement["resources"] and any(prefix in v for v in scoped):
                return True
        elif OBJECT_RESOURCES[place] in statement["resources"]:
            return True
    return False


# --- the tests ------------------------------------------------------------------------------------------


def test_every_s3_call_site_is_placed_and_every_placed_site_exists() -> None:
    found = {site for role in ROLE_ENTRIES for site in role_sites(role)}
    assert found - SITES.keys() == set(), "S3 calls SITES does not place (say where each points)"
    assert SITES.keys() - found == set(), "SITES places calls the code no longer makes"


def test_each_role_is_bound_to_the_policy_document_checked(tf: Terraform) -> None:
    assert tf.resource("aws_iam_role_policy", "job")["policy"] == "${data.aws_iam_policy_document.job.json}"
    assert tf.resource("aws_iam_role_policy", "job")["role"] == "${aws_iam_role.job.id}"
    assert tf.resource("aws_iam_policy", "airflow")["policy"] == "${data.aws_iam_policy_document.airflow.json}"


@pytest.mark.parametrize("role", sorted(ROLE_ENTRIES))
def test_terraform_grants_every_s3_call_of_the_role(tf: Terraform, role: str) -> None:
    missing = sorted(
        f"{action} on {place.value} ({module}.{qual} → {name})"
        for (module, qual, name), actions in role_sites(role).items()
        for place in SITES.get((module, qual, name), set())
        if place not in NOT_IN_TERRAFORM
        for action in sorted(actions)
        if not granted(tf, ROLE_POLICY[role], action, place)
    )
    assert not missing, f"terraform's {role} policy lacks:\n" + "\n".join(missing)


def test_the_scan_sees_the_calls_it_must() -> None:
    """The reader itself: a HEAD is a GetObject, a JSON Lines upload is a (multipart) PutObject, and the
    role closures hold the modules that make the run's calls."""
    actions = s3_function_actions()
    assert actions["head"] == {"s3:GetObject"}
    assert actions["write_jsonl"] == {"s3:PutObject", "s3:AbortMultipartUpload"}
    assert actions["iter_objects_parallel"] == {"s3:ListBucket"}
    assert actions["is_not_found"] == set()
    assert {"pdf2md.plan", "pdf2md.reduce", "pdf2md.airflow.tasks", "pdf2md.status"} <= set(role_modules(ROLE_ENTRIES["airflow"]))
    assert "pdf2md.worker" in role_modules(ROLE_ENTRIES["job"])
    assert "pdf2md.worker" not in role_modules(ROLE_ENTRIES["airflow"])
