# Input bucket (PDFs) and output bucket (Markdown, metadata and run artefacts).
# Both: public access blocked, ACLs disabled, SSE-KMS with a Bucket Key, TLS only, versioning with
# expiring noncurrent versions, incomplete multipart uploads cleaned up; access logs optional.

locals {
  buckets = {
    input  = aws_s3_bucket.input
    output = aws_s3_bucket.output
  }
}

resource "aws_s3_bucket" "input" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is out of scope: the PDFs are the caller's source data, kept versioned in one region.
  #checkov:skip=CKV_AWS_18:Access logging is optional (variable access_log_bucket_name, aws_s3_bucket_logging below); CloudTrail data events are the alternative.
  bucket        = local.input_bucket_name
  force_destroy = var.force_destroy_buckets
}

resource "aws_s3_bucket" "output" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is out of scope: the Markdown can be regenerated from the input.
  #checkov:skip=CKV_AWS_18:Access logging is optional (variable access_log_bucket_name, aws_s3_bucket_logging below); CloudTrail data events are the alternative.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the output bucket; the DAG reads the run report directly.
  bucket        = local.output_bucket_name
  force_destroy = var.force_destroy_buckets
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "input" {
  bucket = aws_s3_bucket.input.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "output" {
  bucket = aws_s3_bucket.output.id

  # Run artefacts (manifests, failure records, progress, reports) are working state: expire them.
  rule {
    id     = "expire-run-artefacts"
    status = "Enabled"
    filter {
      prefix = var.runs_prefix
    }

    expiration {
      days = var.runs_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]

  lifecycle {
    precondition {
      condition     = var.output_prefix == "" || !startswith(var.output_prefix, var.runs_prefix)
      error_message = "output_prefix lies under runs_prefix: the run-artefact expiry would delete the Markdown."
    }
  }
}

# TLS only: deny any request over plain HTTP.
data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_logging" "this" {
  for_each = var.access_log_bucket_name == null ? {} : local.buckets

  bucket        = each.value.id
  target_bucket = var.access_log_bucket_name
  target_prefix = "s3-access/${each.value.id}/"
}
