# IAM: the job role (what the worker may touch), the execution and instance roles (image pulls,
# logs, ECS agent), the Batch service-linked role, and the Airflow policy (what the DAG may do).
#
# No Spot fleet role: with SPOT_PRICE_CAPACITY_OPTIMIZED Batch launches Spot through EC2 Fleet under
# its service-linked role (a spot_iam_fleet_role is only needed for the BEST_FIT strategy).

locals {
  input_objects  = "${local.input_bucket_arn}/${var.input_prefix}*"
  output_objects = "${local.output_bucket_arn}/${var.output_prefix}*"
  runs_objects   = "${local.output_bucket_arn}/${var.runs_prefix}*"

  # KMS may only be used through S3 and SQS in this region.
  kms_via_services = ["s3.${local.region}.amazonaws.com", "sqs.${local.region}.amazonaws.com"]
}

# --- Batch service-linked role (Batch also creates it on first use) ------------------------------

resource "aws_iam_service_linked_role" "batch" {
  count            = var.create_batch_service_linked_role ? 1 : 0
  aws_service_name = "batch.amazonaws.com"
}

# --- trust policies -------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

data "aws_iam_policy_document" "ec2_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# --- job role: the worker ---------------------------------------------------------------------------

# The job and Airflow both read and write KMS-encrypted objects, through S3 and SQS only.
data "aws_iam_policy_document" "use_data_key" {
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
  }
}

data "aws_iam_policy_document" "job" {
  source_policy_documents = [data.aws_iam_policy_document.use_data_key.json]

  statement {
    sid       = "ReadInputPdfs"
    actions   = ["s3:GetObject"]
    resources = [local.input_objects]
  }

  statement {
    sid       = "ListInputPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.input_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.input_prefix}*"]
    }
  }

  statement {
    sid = "WriteOutputsAndRunArtefacts"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.output_objects, local.runs_objects]
  }

  # A child deletes what it must not leave: the Markdown of a PDF replaced while it converted, the sidecars
  # of a PDF that failed, a failure marker its success replaces.
  statement {
    sid       = "DeleteOwnOutputs"
    actions   = ["s3:DeleteObject"]
    resources = [local.output_objects]
  }

  statement {
    sid       = "ListOutputAndRunsPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [local.output_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.output_prefix}*", "${var.runs_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.model_uri == "" ? [] : [1]
    content {
      sid       = "ReadModel"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.model_bucket}/${local.model_key_glob}"]
    }
  }

  dynamic "statement" {
    for_each = var.model_uri == "" ? [] : [1]
    content {
      sid       = "ListModel"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${local.partition}:s3:::${local.model_bucket}"]

      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [local.model_prefix == "" ? "*" : "${local.model_prefix}/*", local.model_prefix]
      }
    }
  }

  dynamic "statement" {
    for_each = var.passwords_uri == "" ? [] : [1]
    content {
      sid       = "ReadPasswordList"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.passwords_bucket}/${local.passwords_key}"]
    }
  }

}

resource "aws_iam_role" "job" {
  name               = "${var.name_prefix}-job"
  description        = "pdf2md worker: read the input prefix, write the output and runs prefixes"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

resource "aws_iam_role_policy" "job" {
  name   = "s3-access"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}

# --- execution role: image pull and logs ----------------------------------------------------------

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }

  statement {
    sid       = "PullWorkerImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.worker.arn]
  }

  statement {
    sid       = "WriteWorkerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:log-stream:*"]
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-execution"
  description        = "pdf2md: pull the worker image and write its logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "ecr-and-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- instance role: the ECS agent on the GPU instances -----------------------------------------------

resource "aws_iam_role" "instance" {
  name               = "${var.name_prefix}-batch-instance"
  description        = "pdf2md: ECS container instances of the Batch compute environments"
  assume_role_policy = data.aws_iam_policy_document.ec2_trust.json
}

resource "aws_iam_role_policy_attachment" "instance_ecs" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name_prefix}-batch-instance"
  role = aws_iam_role.instance.name
}

# --- Airflow: submit/observe/terminate on this queue and definition; S3 and SQS -----------------------

data "aws_iam_policy_document" "airflow" {
  source_policy_documents = [data.aws_iam_policy_document.use_data_key.json]

  statement {
    sid     = "SubmitToThisQueueAndDefinition"
    actions = ["batch:SubmitJob"]
    resources = [
      aws_batch_job_queue.main.arn,
      "${local.batch_arn_prefix}:job-definition/${var.job_definition_name}",
      "${local.batch_arn_prefix}:job-definition/${var.job_definition_name}:*",
    ]
  }

  # Job ARNs carry no queue or definition: terminate/cancel/tag are limited to jobs of this
  # account and region (the DAG only ever passes the ids it submitted).
  statement {
    sid       = "ControlJobs"
    actions   = ["batch:TerminateJob", "batch:CancelJob", "batch:TagResource"]
    resources = ["${local.batch_arn_prefix}:job/*"]
  }

  statement {
    sid = "ObserveBatchAndSpotPrices"
    actions = [
      "batch:DescribeJobs",
      "batch:ListJobs",
      "batch:DescribeJobQueues",
      "batch:DescribeJobDefinitions",
      "batch:DescribeComputeEnvironments",
      "ec2:DescribeSpotPriceHistory",
    ]
    resources = ["*"] # these actions have no resource-level permissions
  }

  statement {
    sid       = "ReadWorkerLogs"
    actions   = ["logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.worker.arn, "${aws_cloudwatch_log_group.worker.arn}:log-stream:*"]
  }

  statement {
    sid       = "ReadInput"
    actions   = ["s3:GetObject"]
    resources = [local.input_objects]
  }

  statement {
    sid       = "ListInput"
    actions   = ["s3:ListBucket"]
    resources = [local.input_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.input_prefix}*"]
    }
  }

  # reduce HEADs the Markdown of a child that never reported (OOM, Spot reclaim) to tell done from lost:
  # a HEAD is authorised as s3:GetObject, and without it S3 answers 403 and the whole reduce fails.
  statement {
    sid       = "ReadOutputs"
    actions   = ["s3:GetObject"]
    resources = [local.output_objects]
  }

  # the plan task reads the passwords object back before it submits (a child would find a bad one too late)
  dynamic "statement" {
    for_each = var.passwords_uri == "" ? [] : [1]
    content {
      sid       = "ReadPasswordList"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.passwords_bucket}/${local.passwords_key}"]
    }
  }

  statement {
    sid       = "ReadWriteRunArtefacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.runs_objects]
  }

  statement {
    sid       = "ListOutputAndRuns"
    actions   = ["s3:ListBucket"]
    resources = [local.output_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.output_prefix}*", "${var.runs_prefix}*"]
    }
  }

  statement {
    sid = "ConsumeS3Events"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
    ]
    resources = [aws_sqs_queue.events.arn]
  }

}

resource "aws_iam_policy" "airflow" {
  name        = "${var.name_prefix}-airflow"
  description = "pdf2md DAGs: run the Batch queue/definition, read spot prices, read input, read/write runs, list and read outputs, consume S3 events"
  policy      = data.aws_iam_policy_document.airflow.json
}

data "aws_iam_policy_document" "airflow_trust" {
  count = length(var.airflow_role_trusted_principal_arns) > 0 ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.airflow_role_trusted_principal_arns
    }
  }
}

resource "aws_iam_role" "airflow" {
  count = length(var.airflow_role_trusted_principal_arns) > 0 ? 1 : 0

  name               = "${var.name_prefix}-airflow"
  description        = "pdf2md: the role Airflow's aws_default connection assumes"
  assume_role_policy = data.aws_iam_policy_document.airflow_trust[0].json
}

resource "aws_iam_role_policy_attachment" "airflow" {
  count = length(var.airflow_role_trusted_principal_arns) > 0 ? 1 : 0

  role       = aws_iam_role.airflow[0].name
  policy_arn = aws_iam_policy.airflow.arn
}

resource "aws_iam_role_policy_attachment" "airflow_existing" {
  for_each = toset(var.airflow_policy_attach_role_names)

  role       = each.value
  policy_arn = aws_iam_policy.airflow.arn
}
