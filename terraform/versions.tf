terraform {
  # check blocks and startswith() need >= 1.5; 1.6 is the oldest version this module is tested with.
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: compute_environment_order on job queues, update_policy on compute environments and
      # job_state_time_limit_action need a recent 5.x; 6.x renames several arguments.
      version = "~> 5.70"
    }
  }
}
