# S3 -> SQS: every new PDF under the input prefix becomes a message that Airflow's
# MessageQueueTrigger (scheme "sqs") reads. Messages received too often go to the dead-letter queue.

locals {
  events_queue_name = "${var.name_prefix}-s3-events"
}

resource "aws_sqs_queue" "events_dlq" {
  name                              = "${var.name_prefix}-s3-events-dlq"
  message_retention_seconds         = 1209600 # 14 days, the SQS maximum
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 3600

  # Only the S3-event queue may use it as its dead-letter queue (ARN built from the name: no cycle).
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.events_queue_name}"]
  })
}

resource "aws_sqs_queue" "events" {
  name                              = local.events_queue_name
  visibility_timeout_seconds        = var.sqs_visibility_timeout_seconds
  message_retention_seconds         = 345600 # 4 days
  receive_wait_time_seconds         = 20     # long polling
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 3600

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq.arn
    maxReceiveCount     = var.sqs_max_receive_count
  })
}

# Only the input bucket of this account may send messages.
data "aws_iam_policy_document" "events_queue" {
  statement {
    sid       = "AllowInputBucketEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.input.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.events.arn]

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

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.events_queue.json
}

resource "aws_s3_bucket_notification" "input" {
  bucket = aws_s3_bucket.input.id

  # One entry per suffix (S3 suffix filters are case-sensitive): .pdf and .PDF by default.
  dynamic "queue" {
    for_each = toset(var.pdf_suffixes)
    content {
      id            = "pdf2md-new-pdf${replace(queue.value, ".", "-")}"
      queue_arn     = aws_sqs_queue.events.arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = var.input_prefix == "" ? null : var.input_prefix
      filter_suffix = queue.value
    }
  }

  # S3 sends a test event when the configuration is saved: the queue policy must be in place.
  depends_on = [aws_sqs_queue_policy.events]
}
