# One customer-managed key for the buckets, the SQS queues and the worker's logs.
#
# Why KMS and not AES256 (SSE-S3):
# - S3 cannot publish events to an SQS queue encrypted with the AWS-managed aws/sqs key; an encrypted
#   queue needs a customer-managed key whose policy lets s3.amazonaws.com use it (below).
# - The documents may be confidential: reading them needs both an S3 grant and a KMS grant, every
#   decrypt is in CloudTrail, and disabling the key locks all copies at once.
# - S3 Bucket Keys cut the KMS requests to a few per object batch, so a run over millions of PDFs
#   does not pay one KMS call per GET/PUT. The key itself costs about 1 USD a month.

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A KMS key policy's Resource is always "*" (the key itself); account-root administration is the AWS default so IAM policies can grant use.
  #checkov:skip=CKV_AWS_111:A KMS key policy's Resource is always "*" (the key itself); write access is limited to the account root and the named services.
  #checkov:skip=CKV_AWS_356:A KMS key policy's Resource is always "*" and means only this key.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "S3EventsToEncryptedQueue"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.input_bucket_arn]
    }
  }

  statement {
    sid       = "CloudWatchLogsWorkerLogGroup"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"]
    }
  }
}

resource "aws_kms_key" "main" {
  description             = "${var.name_prefix}: S3 buckets, S3-event queues and worker logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.main.key_id
}
