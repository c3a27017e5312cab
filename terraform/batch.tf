# AWS Batch: a Spot compute environment of g4dn instances (ECS GPU AMI), an optional on-demand one
# ordered after it, the job queue and the worker's job definition.

data "aws_ssm_parameter" "gpu_ami" {
  count = var.pin_ami_from_ssm ? 1 : 0
  name  = var.gpu_ami_ssm_parameter
}

locals {
  image_id_override = var.pin_ami_from_ssm ? nonsensitive(data.aws_ssm_parameter.gpu_ami[0].value) : null
  security_groups   = concat([aws_security_group.batch.id], var.additional_security_group_ids)
}

resource "aws_security_group" "batch" {
  name        = "${var.name_prefix}-batch"
  description = "pdf2md Batch instances: no inbound, HTTPS out (S3, ECR, CloudWatch Logs, ECS, Batch)"
  vpc_id      = var.vpc_id

  egress {
    description = "HTTPS to AWS APIs (through NAT or VPC endpoints)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_launch_template" "worker" {
  name_prefix = "${var.name_prefix}-worker-"
  description = "pdf2md GPU workers: root disk for the AMI, the worker image, the model and scratch"

  # The ECS GPU AMI's root device is /dev/xvda.
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_size_gib
      volume_type           = "gp3"
      encrypted             = true # the account's aws/ebs key: no key policy to grant the Batch and Auto Scaling roles
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = var.container_imds_access ? 2 : 1
  }

  monitoring {
    enabled = true
  }

  # The directory the model is synced into once per instance (host volume of the job definition).
  user_data = base64encode(<<-EOT
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="==BOUNDARY=="

    --==BOUNDARY==
    Content-Type: text/x-shellscript; charset="us-ascii"

    #!/bin/bash
    mkdir -p ${local.host_model_dir}
    chmod 1777 ${local.host_model_dir}

    --==BOUNDARY==--
  EOT
  )

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name_prefix}-worker" }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = { Name = "${var.name_prefix}-worker" }
  }
}

resource "aws_batch_compute_environment" "spot" {
  compute_environment_name_prefix = "${var.name_prefix}-spot-"
  type                            = "MANAGED"
  state                           = "ENABLED"
  service_role                    = var.batch_service_role_arn # null: the service-linked role AWSServiceRoleForBatch

  compute_resources {
    type                = "SPOT"
    allocation_strategy = "SPOT_PRICE_CAPACITY_OPTIMIZED"
    bid_percentage      = var.spot_bid_percentage
    instance_type       = var.instance_types
    min_vcpus           = 0
    desired_vcpus       = 0
    max_vcpus           = var.spot_max_vcpus
    instance_role       = aws_iam_instance_profile.instance.arn
    subnets             = var.subnet_ids
    security_group_ids  = local.security_groups

    ec2_configuration {
      image_type        = "ECS_AL2_NVIDIA"
      image_id_override = local.image_id_override
    }

    launch_template {
      launch_template_id = aws_launch_template.worker.id
      version            = aws_launch_template.worker.latest_version
    }

    tags = { Name = "${var.name_prefix}-worker-spot" }
  }

  # Infrastructure updates (new launch template version, AMI) replace instances once running jobs end.
  update_policy {
    job_execution_timeout_minutes = 30
    terminate_jobs_on_update      = false
  }

  depends_on = [aws_iam_role_policy_attachment.instance_ecs, aws_iam_service_linked_role.batch]

  lifecycle {
    create_before_destroy = true
    # Batch scales desired_vcpus itself.
    ignore_changes = [compute_resources[0].desired_vcpus]
  }
}

resource "aws_batch_compute_environment" "on_demand" {
  count = var.enable_on_demand ? 1 : 0

  compute_environment_name_prefix = "${var.name_prefix}-ondemand-"
  type                            = "MANAGED"
  state                           = "ENABLED"
  service_role                    = var.batch_service_role_arn

  compute_resources {
    type                = "EC2"
    allocation_strategy = "BEST_FIT_PROGRESSIVE"
    instance_type       = var.instance_types
    min_vcpus           = 0
    desired_vcpus       = 0
    max_vcpus           = var.on_demand_max_vcpus
    instance_role       = aws_iam_instance_profile.instance.arn
    subnets             = var.subnet_ids
    security_group_ids  = local.security_groups

    ec2_configuration {
      image_type        = "ECS_AL2_NVIDIA"
      image_id_override = local.image_id_override
    }

    launch_template {
      launch_template_id = aws_launch_template.worker.id
      version            = aws_launch_template.worker.latest_version
    }

    tags = { Name = "${var.name_prefix}-worker-ondemand" }
  }

  update_policy {
    job_execution_timeout_minutes = 30
    terminate_jobs_on_update      = false
  }

  depends_on = [aws_iam_role_policy_attachment.instance_ecs, aws_iam_service_linked_role.batch]

  lifecycle {
    create_before_destroy = true
    ignore_changes        = [compute_resources[0].desired_vcpus]
  }
}

resource "aws_batch_job_queue" "main" {
  name     = var.job_queue_name
  state    = "ENABLED"
  priority = 1

  # Spot first; on-demand (if enabled) only takes jobs Spot cannot place.
  dynamic "compute_environment_order" {
    for_each = concat(
      [aws_batch_compute_environment.spot.arn],
      [for ce in aws_batch_compute_environment.on_demand : ce.arn],
    )
    content {
      order               = compute_environment_order.key + 1
      compute_environment = compute_environment_order.value
    }
  }

  # Jobs that can never be placed (a job bigger than any instance, or than max vCPUs) fail after
  # 10 minutes instead of waiting in RUNNABLE forever. Missing Spot capacity is not cancelled.
  job_state_time_limit_action {
    action           = "CANCEL"
    max_time_seconds = 600
    reason           = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
    state            = "RUNNABLE"
  }

  job_state_time_limit_action {
    action           = "CANCEL"
    max_time_seconds = 600
    reason           = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    state            = "RUNNABLE"
  }
}

resource "aws_batch_job_definition" "worker" {
  name                  = var.job_definition_name
  type                  = "container"
  platform_capabilities = ["EC2"]
  propagate_tags        = true

  container_properties = jsonencode({
    image            = "${aws_ecr_repository.worker.repository_url}:${var.image_tag}"
    command          = ["pdf2md", "worker"]
    jobRoleArn       = aws_iam_role.job.arn
    executionRoleArn = aws_iam_role.execution.arn

    resourceRequirements = [
      { type = "GPU", value = "1" },
      { type = "VCPU", value = tostring(var.job_vcpus) },
      { type = "MEMORY", value = tostring(var.job_memory_mib) },
    ]

    # Defaults only; the DAG's containerOverrides add the per-run names. No secrets here.
    environment = [
      for name in sort(keys(local.job_environment)) : { name = name, value = local.job_environment[name] }
      if local.job_environment[name] != ""
    ]

    volumes     = [{ name = "models", host = { sourcePath = local.host_model_dir } }]
    mountPoints = [{ sourceVolume = "models", containerPath = var.model_dir, readOnly = false }]

    ulimits = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]

    linuxParameters = {
      initProcessEnabled = true # forward SIGTERM (Spot reclaim, terminate) to the worker, reap children
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.worker.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = var.name_prefix
      }
    }
  })

  retry_strategy {
    attempts = var.retry_attempts

    # Spot reclaims and host failures: run the child again on another instance.
    evaluate_on_exit {
      on_status_reason = "Host EC2*"
      action           = "RETRY"
    }

    # Anything else: the worker already recorded per-PDF failures; do not retry the shard.
    evaluate_on_exit {
      on_reason = "*"
      action    = "EXIT"
    }
  }

  timeout {
    attempt_duration_seconds = var.attempt_duration_seconds
  }
}
