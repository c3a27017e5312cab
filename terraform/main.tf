# Names, ARNs and the S3 layout shared by the other files.

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  input_bucket_name  = coalesce(var.input_bucket_name, "${var.name_prefix}-input-${local.account_id}-${var.region}")
  output_bucket_name = coalesce(var.output_bucket_name, "${var.name_prefix}-output-${local.account_id}-${var.region}")

  input_bucket_arn  = "arn:${local.partition}:s3:::${local.input_bucket_name}"
  output_bucket_arn = "arn:${local.partition}:s3:::${local.output_bucket_name}"

  # s3:// URIs in the form the DAG's Params take them (contracts.S3Uri).
  input_uri  = "s3://${local.input_bucket_name}/${var.input_prefix}"
  output_uri = "s3://${local.output_bucket_name}/${var.output_prefix}"
  runs_uri   = "s3://${local.output_bucket_name}/${var.runs_prefix}"

  # Optional model prefix (PDF2MD_MODEL_URI) and passwords object, split for IAM.
  model_bucket     = var.model_uri == "" ? "" : split("/", trimprefix(var.model_uri, "s3://"))[0]
  model_prefix     = var.model_uri == "" ? "" : trimsuffix(join("/", slice(split("/", trimprefix(var.model_uri, "s3://")), 1, length(split("/", trimprefix(var.model_uri, "s3://"))))), "/")
  model_key_glob   = local.model_prefix == "" ? "*" : "${local.model_prefix}/*"
  passwords_bucket = var.passwords_uri == "" ? "" : split("/", trimprefix(var.passwords_uri, "s3://"))[0]
  passwords_key    = var.passwords_uri == "" ? "" : join("/", slice(split("/", trimprefix(var.passwords_uri, "s3://")), 1, length(split("/", trimprefix(var.passwords_uri, "s3://")))))

  log_group_name = "/aws/batch/${var.name_prefix}"

  # The job definition's default environment. Every name is in contracts.JOB_ENV_NAMES (a test
  # checks it); the per-run names (manifest, output, run URI, run id, round, array size, passwords
  # URI) come from the submit call's containerOverrides. Empty values are left out.
  job_environment = {
    PDF2MD_BACKEND       = var.backend
    PDF2MD_PDF_TIMEOUT_S = tostring(var.pdf_timeout_s)
    PDF2MD_PDF_MEMORY_MB = tostring(var.pdf_memory_mb)
    PDF2MD_MAX_PAGES     = tostring(var.max_pages)
    PDF2MD_MODEL_DIR     = var.model_dir
    PDF2MD_MODEL_URI     = var.model_uri
  }

  # Host directory that holds the model across the jobs one instance runs.
  host_model_dir = "/var/lib/${var.name_prefix}/models"

  batch_arn_prefix = "arn:${local.partition}:batch:${local.region}:${local.account_id}"
}
