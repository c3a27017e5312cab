# What the DAG and the Airflow connection need (see README.md, "Wiring Airflow").

output "region" {
  description = "Region: the aws_default connection's extra.region_name."
  value       = local.region
}

output "input_bucket" {
  description = "Input bucket name."
  value       = aws_s3_bucket.input.bucket
}

output "output_bucket" {
  description = "Output bucket name (Markdown and run artefacts)."
  value       = aws_s3_bucket.output.bucket
}

output "input_uri" {
  description = "The DAG's input URI default (s3://<input bucket>/<input prefix>)."
  value       = local.input_uri
}

output "output_uri" {
  description = "The DAG's output URI default (s3://<output bucket>/<output prefix>)."
  value       = local.output_uri
}

output "runs_prefix" {
  description = "Key prefix of the run artefacts in the output bucket (expired after runs_expiration_days)."
  value       = var.runs_prefix
}

output "runs_uri" {
  description = "The DAG's runs root URI default (s3://<output bucket>/<runs prefix>)."
  value       = local.runs_uri
}

output "job_queue_name" {
  description = "Batch job queue name (the DAG's job_queue Param)."
  value       = aws_batch_job_queue.main.name
}

output "job_queue_arn" {
  description = "Batch job queue ARN."
  value       = aws_batch_job_queue.main.arn
}

output "job_definition_name" {
  description = "Batch job definition name (the DAG's job_definition Param; submit by name to get the latest revision)."
  value       = aws_batch_job_definition.worker.name
}

output "job_definition_arn" {
  description = "Batch job definition ARN including the current revision."
  value       = aws_batch_job_definition.worker.arn
}

output "sqs_queue_url" {
  description = "URL of the S3-event queue (the MessageQueueTrigger's sqs_queue)."
  value       = aws_sqs_queue.events.url
}

output "sqs_queue_arn" {
  description = "ARN of the S3-event queue."
  value       = aws_sqs_queue.events.arn
}

output "sqs_dlq_url" {
  description = "URL of the dead-letter queue of the S3-event queue."
  value       = aws_sqs_queue.events_dlq.url
}

output "ecr_repository_url" {
  description = "Where to push the worker image: docker push <url>:<image_tag>."
  value       = aws_ecr_repository.worker.repository_url
}

output "log_group_name" {
  description = "CloudWatch log group of the worker."
  value       = aws_cloudwatch_log_group.worker.name
}

output "kms_key_arn" {
  description = "KMS key of the buckets, queues and logs (uploaders of PDFs need kms:GenerateDataKey on it)."
  value       = aws_kms_key.main.arn
}

output "airflow_policy_arn" {
  description = "IAM policy with everything the DAGs need; attach it to the identity behind aws_default."
  value       = aws_iam_policy.airflow.arn
}

output "airflow_role_arn" {
  description = "Role for aws_default to assume (extra.role_arn), when airflow_role_trusted_principal_arns is set; else null."
  value       = try(aws_iam_role.airflow[0].arn, null)
}

output "job_role_arn" {
  description = "The worker's IAM role."
  value       = aws_iam_role.job.arn
}

output "airflow_environment" {
  description = "Environment of the Airflow processes (scheduler, dag-processor, triggerer, workers): the DAGs' Param defaults and the SQS watcher's queue."
  value = {
    PDF2MD_INPUT_URI      = local.input_uri
    PDF2MD_OUTPUT_URI     = local.output_uri
    PDF2MD_RUNS_URI       = local.runs_uri
    PDF2MD_JOB_QUEUE      = aws_batch_job_queue.main.name
    PDF2MD_JOB_DEFINITION = aws_batch_job_definition.worker.name
    PDF2MD_SQS_QUEUE_URL  = aws_sqs_queue.events.url
    PDF2MD_OUTPUTS        = var.outputs
  }
}

output "airflow_connection_extra" {
  description = "JSON for the aws_default connection's extra field."
  value = jsonencode(merge(
    { region_name = local.region },
    length(aws_iam_role.airflow) > 0 ? { role_arn = aws_iam_role.airflow[0].arn } : {},
  ))
}
