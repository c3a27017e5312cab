"""terraform/: parses, agrees with pdf2md.contracts, and has the shape the platform relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from pdf2md import contracts

from .conftest import TERRAFORM, TF_FILES, Terraform

REQUIRED_JOB_ENV = {
    contracts.ENV_BACKEND,
    contracts.ENV_PDF_TIMEOUT_S,
    contracts.ENV_PDF_MEMORY_MB,
    contracts.ENV_MAX_PAGES,
    contracts.ENV_MODEL_DIR,
    contracts.ENV_MODEL_URI,
}
EXPECTED_RUNS_PREFIX = getattr(contracts, "DEFAULT_RUNS_PREFIX", "pdf2md-runs/")


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=[p.name for p in TF_FILES])
def test_every_tf_file_parses(path: Path) -> None:
    with path.open() as fh:
        doc = hcl2.load(fh)
    assert doc, f"{path.name} parsed to nothing"


def test_expected_files_exist() -> None:
    for name in ("versions.tf", "variables.tf", "outputs.tf", "README.md", "terraform.tfvars.example"):
        assert (TERRAFORM / name).is_file(), f"terraform/{name} is missing"


def test_versions_pinned(tf: Terraform) -> None:
    (block,) = tf.blocks("terraform")
    assert block["required_version"] == ">= 1.6"
    aws = block["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 5\.\d+", aws["version"]), aws["version"]


# --- consistency with pdf2md.contracts -------------------------------------------------------------


def test_job_environment_names_are_contract_names(tf: Terraform) -> None:
    names = set(tf.locals["job_environment"])
    unknown = names - set(contracts.JOB_ENV_NAMES)
    assert not unknown, f"job definition sets names not in contracts.JOB_ENV_NAMES: {sorted(unknown)}"
    missing = REQUIRED_JOB_ENV - names
    assert not missing, f"job definition lacks defaults for {sorted(missing)}"


def test_job_definition_environment_comes_only_from_the_checked_local(tf: Terraform) -> None:
    props = tf.resource("aws_batch_job_definition", "worker")["container_properties"]
    assert "local.job_environment" in props
    # No PDF2MD_* name may sneak in beside the local (e.g. a literal in the jsonencode).
    assert not re.findall(r"PDF2MD_[A-Z0-9_]+", props)
    batch_names = set(re.findall(r"\bPDF2MD_[A-Z0-9_]+", tf.text["batch.tf"]))
    assert batch_names <= set(contracts.JOB_ENV_NAMES), batch_names - set(contracts.JOB_ENV_NAMES)


def test_job_environment_defaults_match_contract_defaults(tf: Terraform) -> None:
    env = tf.locals["job_environment"]
    v = tf.variables
    assert env[contracts.ENV_BACKEND] == "${var.backend}"
    assert v["backend"]["default"] == contracts.DEFAULT_BACKEND
    assert v["pdf_timeout_s"]["default"] == contracts.DEFAULT_PDF_TIMEOUT_S
    assert v["pdf_memory_mb"]["default"] == contracts.DEFAULT_PDF_MEMORY_MB
    assert v["max_pages"]["default"] == contracts.DEFAULT_MAX_PAGES
    backends = re.search(r"contains\(\[(.*?)\]", v["backend"]["validation"][0]["condition"]).group(1)
    assert tuple(re.findall(r'"([a-z]+)"', backends)) == contracts.BACKENDS


def test_default_names_match_contracts(tf: Terraform) -> None:
    v = tf.variables
    assert v["job_queue_name"]["default"] == contracts.DEFAULT_JOB_QUEUE
    assert v["job_definition_name"]["default"] == contracts.DEFAULT_JOB_DEFINITION
    assert v["runs_prefix"]["default"] == EXPECTED_RUNS_PREFIX
    assert tf.resource("aws_batch_job_queue", "main")["name"] == "${var.job_queue_name}"
    assert tf.resource("aws_batch_job_definition", "worker")["name"] == "${var.job_definition_name}"


LOCAL_TUNING = {"ENV_POLL_INTERVAL_S"}
"""Read by the DAGs but no fact of the deployment: `make airflow` shortens the poll for a laptop; AWS keeps the default."""


def test_airflow_environment_output_names_what_the_dags_read(tf: Terraform) -> None:
    names = set(tf.outputs["airflow_environment"]["value"])
    dag_sources = "".join(p.read_text() for p in [*(TERRAFORM.parent / "dags").glob("*.py"),
                                                    *(TERRAFORM.parent / "pdf2md" / "airflow").glob("*.py")])
    constants = set(re.findall(r"os\.environ\.get\((ENV_[A-Z_]+)", dag_sources)) - LOCAL_TUNING
    read = {getattr(contracts, name) for name in constants}
    assert read, "the DAGs read no PDF2MD_* defaults from the environment any more: update this test"
    assert read <= names, f"terraform's airflow_environment output lacks {sorted(read - names)}"


# --- variables and outputs -------------------------------------------------------------------------

NO_VALIDATION = {"tags", "airflow_policy_attach_role_names"}  # free-form maps/names


def test_every_variable_has_a_description_and_non_trivial_ones_a_validation(tf: Terraform) -> None:
    for name, body in tf.variables.items():
        assert body.get("description", "").strip(), f"variable {name} has no description"
        if body.get("type") != "bool" and name not in NO_VALIDATION:
            assert body.get("validation"), f"variable {name} has no validation block"


def test_outputs_the_dag_needs(tf: Terraform) -> None:
    needed = {"input_uri", "output_uri", "runs_uri", "runs_prefix", "job_queue_name", "job_definition_name",
              "sqs_queue_url", "region", "airflow_policy_arn", "airflow_role_arn", "airflow_connection_extra",
              "airflow_environment", "ecr_repository_url"}
    outputs = tf.outputs
    assert needed <= set(outputs), sorted(needed - set(outputs))
    for name, body in outputs.items():
        assert body.get("description"), f"output {name} has no description"


# --- storage ----------------------------------------------------------------------------------------


def test_buckets_block_public_access_encrypt_and_version(tf: Terraform) -> None:
    assert set(tf.resources("aws_s3_bucket")) == {"input", "output"}
    pab = tf.resource("aws_s3_bucket_public_access_block", "this")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert pab[flag] is True
    assert "local.buckets" in pab["for_each"]
    sse = tf.resource("aws_s3_bucket_server_side_encryption_configuration", "this")["rule"][0]
    assert sse["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    assert sse["bucket_key_enabled"] is True
    versioning = tf.resource("aws_s3_bucket_versioning", "this")
    assert "local.buckets" in versioning["for_each"]
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    assert "aws_s3_bucket.output" in tf.text["s3.tf"].split("buckets = {")[1].split("}")[0]


def test_run_artefacts_expire(tf: Terraform) -> None:
    rules = tf.resource("aws_s3_bucket_lifecycle_configuration", "output")["rule"]
    runs = [r for r in rules if r.get("filter") and r["filter"][0].get("prefix") == "${var.runs_prefix}"]
    assert len(runs) == 1 and runs[0]["status"] == "Enabled"
    assert runs[0]["expiration"][0]["days"] == "${var.runs_expiration_days}"


def test_ecr_scans_on_push_with_immutable_tags(tf: Terraform) -> None:
    repo = tf.resource("aws_ecr_repository", "worker")
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert repo["image_scanning_configuration"][0]["scan_on_push"] is True


# --- compute ----------------------------------------------------------------------------------------


def test_spot_compute_environment(tf: Terraform) -> None:
    ce = tf.resource("aws_batch_compute_environment", "spot")
    res = ce["compute_resources"][0]
    assert ce["type"] == "MANAGED"
    assert res["type"] == "SPOT"
    assert res["allocation_strategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert res["min_vcpus"] == 0
    assert res["max_vcpus"] == "${var.spot_max_vcpus}"
    assert res["instance_type"] == "${var.instance_types}"
    assert tf.variables["instance_types"]["default"] == ["g4dn.xlarge", "g4dn.2xlarge"]
    assert res["ec2_configuration"][0]["image_type"] == "ECS_AL2_NVIDIA"
    assert "aws_launch_template.worker" in res["launch_template"][0]["launch_template_id"]
    assert tf.variables["gpu_ami_ssm_parameter"]["default"] == \
        "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"


def test_launch_template_root_disk_is_a_variable(tf: Terraform) -> None:
    lt = tf.resource("aws_launch_template", "worker")
    ebs = lt["block_device_mappings"][0]["ebs"][0]
    assert ebs["volume_size"] == "${var.root_volume_size_gib}"
    assert ebs["encrypted"] is True
    assert lt["metadata_options"][0]["http_tokens"] == "required"


def test_on_demand_is_optional_and_ordered_after_spot(tf: Terraform) -> None:
    od = tf.resource("aws_batch_compute_environment", "on_demand")
    assert od["count"] == "${var.enable_on_demand ? 1 : 0}"
    assert od["compute_resources"][0]["type"] == "EC2"
    assert tf.variables["enable_on_demand"]["default"] is False
    order = tf.resource("aws_batch_job_queue", "main")["dynamic"][0]["compute_environment_order"]
    spot_at = order["for_each"].index("aws_batch_compute_environment.spot")
    od_at = order["for_each"].index("aws_batch_compute_environment.on_demand")
    assert spot_at < od_at, "Spot must come first in the job queue"
    assert order["content"][0]["order"] == "${compute_environment_order.key + 1}"


def test_job_definition(tf: Terraform) -> None:
    jd = tf.resource("aws_batch_job_definition", "worker")
    props = jd["container_properties"]
    assert jd["type"] == "container"
    assert re.search(r'type\s*=\s*"GPU",\s*value\s*=\s*"1"', props)
    assert re.search(r'type\s*=\s*"VCPU",\s*value\s*=\s*tostring\(var\.job_vcpus\)', props)
    assert re.search(r'type\s*=\s*"MEMORY",\s*value\s*=\s*tostring\(var\.job_memory_mib\)', props)
    assert re.search(r'command\s*=\s*\["pdf2md",\s*"worker"\]', props)
    assert re.search(r'logDriver\s*=\s*"awslogs"', props)
    assert "aws_cloudwatch_log_group.worker.name" in props
    assert re.search(r"jobRoleArn\s*=\s*aws_iam_role\.job\.arn", props)
    assert not re.search(r"secrets\s*=", props), "no secrets in the job definition"
    retry = jd["retry_strategy"][0]
    assert retry["attempts"] == "${var.retry_attempts}"
    assert tf.variables["retry_attempts"]["default"] == 3
    assert retry["evaluate_on_exit"] == [
        {"on_status_reason": "Host EC2*", "action": "RETRY"},
        {"on_reason": "*", "action": "EXIT"},
    ]
    assert jd["timeout"][0]["attempt_duration_seconds"] == "${var.attempt_duration_seconds}"
    log_group = tf.resource("aws_cloudwatch_log_group", "worker")
    assert log_group["retention_in_days"] == "${var.log_retention_days}"


def test_no_credentials_in_terraform(tf: Terraform) -> None:
    text = "\n".join(tf.text.values())
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert not re.search(r"(?i)(secret_key|access_key|password)\s*=\s*\"[^\"]+\"", text)


# --- S3 events, IAM, budget ----------------------------------------------------------------------------


def test_pdf_uploads_notify_the_queue(tf: Terraform) -> None:
    notif = tf.resource("aws_s3_bucket_notification", "input")
    queue = notif["dynamic"][0]["queue"]
    assert queue["content"][0]["events"] == ["s3:ObjectCreated:*"]
    assert queue["content"][0]["filter_suffix"] == "${queue.value}"
    assert "var.input_prefix" in queue["content"][0]["filter_prefix"]
    assert ".pdf" in tf.variables["pdf_suffixes"]["default"]
    assert notif["bucket"] == "${aws_s3_bucket.input.id}"

    events = tf.resource("aws_sqs_queue", "events")
    dlq = tf.resource("aws_sqs_queue", "events_dlq")
    assert "aws_sqs_queue.events_dlq.arn" in events["redrive_policy"]
    assert "maxReceiveCount" in events["redrive_policy"]
    for q in (events, dlq):
        assert q["kms_master_key_id"] == "${aws_kms_key.main.arn}"

    policy = tf.data("aws_iam_policy_document", "events_queue")["statement"]
    allow = [s for s in policy if s.get("effect", "Allow") == "Allow"]
    assert len(allow) == 1 and allow[0]["actions"] == ["sqs:SendMessage"]
    conditions = {c["variable"]: c["values"] for c in allow[0]["condition"]}
    assert conditions["aws:SourceArn"] == ["${aws_s3_bucket.input.arn}"]


def _statements(tf: Terraform, name: str) -> dict[str, dict]:
    return {s["sid"]: s for s in tf.data("aws_iam_policy_document", name)["statement"]}


def test_job_role_is_scoped_to_its_prefixes(tf: Terraform) -> None:
    s = _statements(tf, "job")
    assert s["ReadInputPdfs"]["actions"] == ["s3:GetObject"]
    assert s["ReadInputPdfs"]["resources"] == ["${local.input_objects}"]
    assert "s3:PutObject" in s["WriteOutputsAndRunArtefacts"]["actions"]
    assert s["WriteOutputsAndRunArtefacts"]["resources"] == ["${local.output_objects}", "${local.runs_objects}"]
    iam_locals = tf.locals
    assert iam_locals["input_objects"] == "${local.input_bucket_arn}/${var.input_prefix}*"
    assert iam_locals["output_objects"] == "${local.output_bucket_arn}/${var.output_prefix}*"
    assert iam_locals["runs_objects"] == "${local.output_bucket_arn}/${var.runs_prefix}*"


def test_airflow_policy_is_scoped(tf: Terraform) -> None:
    s = _statements(tf, "airflow")
    submit = s["SubmitToThisQueueAndDefinition"]
    assert submit["actions"] == ["batch:SubmitJob"]
    assert "${aws_batch_job_queue.main.arn}" in submit["resources"]
    assert any("job-definition/${var.job_definition_name}" in r for r in submit["resources"])
    assert "*" not in submit["resources"]
    assert set(s["ControlJobs"]["actions"]) >= {"batch:TerminateJob"}
    observe = set(s["ObserveBatchAndSpotPrices"]["actions"])
    assert {"batch:DescribeJobs", "batch:ListJobs", "ec2:DescribeSpotPriceHistory"} <= observe
    assert set(s["ConsumeS3Events"]["actions"]) >= {"sqs:ReceiveMessage", "sqs:DeleteMessage",
                                                    "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    assert s["ConsumeS3Events"]["resources"] == ["${aws_sqs_queue.events.arn}"]
    assert s["ReadWriteRunArtefacts"]["resources"] == ["${local.runs_objects}"]
    for statement in s.values():
        for action in statement["actions"]:
            assert not action.endswith(":*"), f"wildcard action {action} in the Airflow policy"


def test_budget_alerts(tf: Terraform) -> None:
    budget = tf.resource("aws_budgets_budget", "monthly")
    assert budget["time_unit"] == "MONTHLY" and budget["budget_type"] == "COST"
    assert "var.monthly_budget_usd" in budget["limit_amount"]
    kinds = {d["notification"]["content"][0]["notification_type"]: d["notification"]["for_each"]
             for d in budget["dynamic"] if "notification" in d}
    assert kinds == {"ACTUAL": "${var.budget_actual_thresholds_percent}",
                     "FORECASTED": "${var.budget_forecast_thresholds_percent}"}
    assert tf.variables["budget_actual_thresholds_percent"]["default"] == [50, 80, 100]
    assert tf.variables["budget_forecast_thresholds_percent"]["default"] == [100]


# --- terraform itself, where it and a provider mirror are installed ------------------------------------


def _plugin_dir() -> Path | None:
    for candidate in (os.environ.get("TF_PLUGIN_DIR"), "/opt/tf-plugins"):
        if candidate and (Path(candidate) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return Path(candidate)
    return None


@pytest.mark.skipif(shutil.which("terraform") is None or _plugin_dir() is None,
                    reason="needs the terraform CLI and an offline hashicorp/aws mirror (TF_PLUGIN_DIR)")
def test_terraform_validate_and_fmt(tmp_path: Path) -> None:
    for f in TF_FILES:
        shutil.copy(f, tmp_path / f.name)
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    run = lambda *args: subprocess.run(["terraform", *args], cwd=tmp_path, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=240)
    init = run("init", "-backend=false", "-input=false", f"-plugin-dir={_plugin_dir()}")
    assert init.returncode == 0, init.stdout + init.stderr
    validate = run("validate", "-no-color")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    fmt = subprocess.run(["terraform", "fmt", "-check", "-diff", str(TERRAFORM)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert fmt.returncode == 0, f"terraform fmt would change:\n{fmt.stdout}"
