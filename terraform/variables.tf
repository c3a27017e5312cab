# Inputs of the pdf2md stack. Names and defaults that the DAG or the worker also know come from
# pdf2md/contracts.py (tests/infra/test_terraform_contracts.py checks them).

# --- general ------------------------------------------------------------------------------------

variable "region" {
  description = "AWS region of every resource (g4dn Spot capacity and prices differ by region)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "name_prefix" {
  description = "Prefix of resource names (IAM roles, log group, compute environments, SQS queues, KMS alias)."
  type        = string
  default     = "pdf2md"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# --- S3 layout ------------------------------------------------------------------------------------

variable "input_bucket_name" {
  description = "Name of the S3 bucket the PDFs are uploaded to. Null: <name_prefix>-input-<account id>-<region>."
  type        = string
  default     = null

  validation {
    condition     = var.input_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.input_bucket_name))
    error_message = "input_bucket_name must be a valid S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')."
  }
}

variable "output_bucket_name" {
  description = "Name of the S3 bucket the Markdown and the run artefacts go to. Null: <name_prefix>-output-<account id>-<region>."
  type        = string
  default     = null

  validation {
    condition     = var.output_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.output_bucket_name))
    error_message = "output_bucket_name must be a valid S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')."
  }
}

variable "input_prefix" {
  description = "Key prefix of the PDFs in the input bucket ('' for the whole bucket, else ending in '/'). The job role may read only under it; S3 events fire only under it."
  type        = string
  default     = "pdfs/"

  validation {
    condition     = var.input_prefix == "" || can(regex("^[^/].*/$", var.input_prefix))
    error_message = "input_prefix must be '' or a prefix that does not start with '/' and ends with '/'."
  }
}

variable "output_prefix" {
  description = "Key prefix of the Markdown in the output bucket ('' or ending in '/'): outputs at <prefix><rel>.md (conversion metadata as the object's x-amz-meta-* headers), permanent-failure markers at <prefix>_pdf2md/failed/<rel>.json."
  type        = string
  default     = "markdown/"

  validation {
    condition     = var.output_prefix == "" || can(regex("^[^/].*/$", var.output_prefix))
    error_message = "output_prefix must be '' or a prefix that does not start with '/' and ends with '/'."
  }
}

variable "runs_prefix" {
  description = "Key prefix of the run artefacts (manifests, failure records, progress, reports) in the output bucket; a lifecycle rule expires it. Must equal contracts.DEFAULT_RUNS_PREFIX for the DAG's default runs URI."
  type        = string
  default     = "pdf2md-runs/"

  validation {
    condition     = can(regex("^[^/].*/$", var.runs_prefix))
    error_message = "runs_prefix must be non-empty, must not start with '/' and must end with '/'."
  }
}

variable "runs_expiration_days" {
  description = "Days after which run artefacts under runs_prefix expire (reports included: copy what you keep)."
  type        = number
  default     = 30

  validation {
    condition     = var.runs_expiration_days >= 1 && var.runs_expiration_days <= 3650 && floor(var.runs_expiration_days) == var.runs_expiration_days
    error_message = "runs_expiration_days must be a whole number of days between 1 and 3650."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten or deleted object versions expire in both buckets (versioning keeps them until then)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 3650 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of days between 1 and 3650."
  }
}

variable "access_log_bucket_name" {
  description = "Optional existing bucket that receives S3 server access logs of both buckets (it must allow logging.s3.amazonaws.com to write). Null: no access logging."
  type        = string
  default     = null

  validation {
    condition     = var.access_log_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.access_log_bucket_name))
    error_message = "access_log_bucket_name must be null or a valid S3 bucket name."
  }
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete non-empty buckets (for throw-away environments only)."
  type        = bool
  default     = false
}

variable "pdf_suffixes" {
  description = "Key suffixes that trigger an S3 event to the SQS queue (S3 suffix filters are case-sensitive; the DAG filters again)."
  type        = list(string)
  default     = [".pdf", ".PDF"]

  validation {
    condition     = length(var.pdf_suffixes) >= 1 && alltrue([for s in var.pdf_suffixes : can(regex("^\\.[A-Za-z]+$", s))])
    error_message = "pdf_suffixes must hold at least one suffix like '.pdf'."
  }
}

# --- model and worker settings (job definition defaults; the DAG overrides per run) ---------------

variable "model_uri" {
  description = "Optional s3:// prefix of the model weights (PDF2MD_MODEL_URI), synced once per instance into model_dir. '' for none. The job role may read it."
  type        = string
  default     = ""

  validation {
    condition     = var.model_uri == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", var.model_uri))
    error_message = "model_uri must be '' or an s3://bucket/prefix URI."
  }
}

variable "model_dir" {
  description = "Directory inside the container the model lives in (PDF2MD_MODEL_DIR; the GPU image's default is /opt/model). It is a host volume, so a model from model_uri is synced once per instance, not once per job; it hides a model baked into the image at the same path."
  type        = string
  default     = "/opt/model"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.model_dir))
    error_message = "model_dir must be an absolute path."
  }
}

variable "passwords_uri" {
  description = "Optional s3:// URI of a JSON list of passwords for encrypted PDFs. Only the job role may read it; its URI is passed per run (PDF2MD_PASSWORDS_URI), never the passwords. '' for none."
  type        = string
  default     = ""

  validation {
    condition     = var.passwords_uri == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+[^/]$", var.passwords_uri))
    error_message = "passwords_uri must be '' or an s3://bucket/key URI of one object."
  }
}

variable "backend" {
  description = "Default converter backend (PDF2MD_BACKEND): one of contracts.BACKENDS."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "text", "ocr", "dolphin"], var.backend)
    error_message = "backend must be one of auto, text, ocr, dolphin."
  }
}

variable "pdf_timeout_s" {
  description = "Default time limit per PDF in seconds (PDF2MD_PDF_TIMEOUT_S)."
  type        = number
  default     = 600

  validation {
    condition     = var.pdf_timeout_s >= 10 && var.pdf_timeout_s <= 86400 && floor(var.pdf_timeout_s) == var.pdf_timeout_s
    error_message = "pdf_timeout_s must be a whole number between 10 and 86400."
  }
}

variable "pdf_memory_mb" {
  description = "Default memory limit per PDF conversion in MiB (PDF2MD_PDF_MEMORY_MB); keep it below job_memory_mib."
  type        = number
  default     = 4096

  validation {
    condition     = var.pdf_memory_mb >= 256 && floor(var.pdf_memory_mb) == var.pdf_memory_mb
    error_message = "pdf_memory_mb must be a whole number >= 256."
  }
}

variable "max_pages" {
  description = "Default page limit per PDF (PDF2MD_MAX_PAGES); longer PDFs fail as too-many-pages."
  type        = number
  default     = 5000

  validation {
    condition     = var.max_pages >= 1 && floor(var.max_pages) == var.max_pages
    error_message = "max_pages must be a whole number >= 1."
  }
}

# --- container image and job definition -----------------------------------------------------------

variable "ecr_repository_name" {
  description = "Name of the ECR repository of the worker image."
  type        = string
  default     = "pdf2md-worker"

  validation {
    condition     = can(regex("^[a-z0-9]+([._/-][a-z0-9]+)*$", var.ecr_repository_name)) && length(var.ecr_repository_name) <= 256
    error_message = "ecr_repository_name must be a valid ECR repository name."
  }
}

variable "image_tag" {
  description = "Tag of the worker image in the ECR repository (tags are immutable: push a new tag per release, e.g. the git sha)."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid image tag."
  }
}

variable "ecr_keep_images" {
  description = "How many tagged images the ECR lifecycle policy keeps (older ones expire; untagged ones after 7 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_keep_images >= 1 && floor(var.ecr_keep_images) == var.ecr_keep_images
    error_message = "ecr_keep_images must be a whole number >= 1."
  }
}

variable "job_queue_name" {
  description = "Name of the Batch job queue (must equal contracts.DEFAULT_JOB_QUEUE unless the DAG's Param says otherwise)."
  type        = string
  default     = "pdf2md-spot"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$", var.job_queue_name))
    error_message = "job_queue_name must be 1-128 characters of letters, digits, '-' and '_'."
  }
}

variable "job_definition_name" {
  description = "Name of the Batch job definition (must equal contracts.DEFAULT_JOB_DEFINITION unless the DAG's Param says otherwise)."
  type        = string
  default     = "pdf2md-worker"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$", var.job_definition_name))
    error_message = "job_definition_name must be 1-128 characters of letters, digits, '-' and '_'."
  }
}

variable "job_vcpus" {
  description = "vCPUs per array child. 4 fits g4dn.xlarge (4 vCPU); every child also takes one GPU, so one child runs per g4dn instance."
  type        = number
  default     = 4

  validation {
    condition     = var.job_vcpus >= 1 && var.job_vcpus <= 8 && floor(var.job_vcpus) == var.job_vcpus
    error_message = "job_vcpus must be a whole number between 1 and 8 (g4dn.2xlarge has 8)."
  }
}

variable "job_memory_mib" {
  description = "Memory per array child in MiB. ECS reserves some memory: a g4dn.xlarge (16 GiB) offers about 15,300 MiB to jobs, so 14,336 leaves a margin."
  type        = number
  default     = 14336

  validation {
    condition     = var.job_memory_mib >= 1024 && var.job_memory_mib <= 30720 && floor(var.job_memory_mib) == var.job_memory_mib
    error_message = "job_memory_mib must be a whole number between 1024 and 30720 (g4dn.2xlarge has 32 GiB)."
  }
}

variable "attempt_duration_seconds" {
  description = "Time limit of one attempt of one array child (Batch timeout.attemptDurationSeconds); Batch stops the child after it."
  type        = number
  default     = 21600

  validation {
    condition     = var.attempt_duration_seconds >= 60 && floor(var.attempt_duration_seconds) == var.attempt_duration_seconds
    error_message = "attempt_duration_seconds must be a whole number >= 60 (the Batch minimum)."
  }
}

variable "retry_attempts" {
  description = "Attempts per array child; only 'Host EC2*' status reasons (Spot reclaim, host failure) are retried."
  type        = number
  default     = 3

  validation {
    condition     = var.retry_attempts >= 1 && var.retry_attempts <= 10 && floor(var.retry_attempts) == var.retry_attempts
    error_message = "retry_attempts must be a whole number between 1 and 10."
  }
}

variable "log_retention_days" {
  description = "Retention of the worker's CloudWatch log group in days (run reports live in S3, logs are for debugging)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

# --- compute ------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the compute environments (their security group is created in it)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Subnets of the compute environments: private subnets with a NAT gateway or S3/ECR/Logs VPC endpoints; several AZs widen the Spot pool."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids must hold at least one subnet id like subnet-0123456789abcdef0."
  }
}

variable "additional_security_group_ids" {
  description = "Extra security groups for the instances (e.g. one that reaches VPC interface endpoints)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.additional_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "additional_security_group_ids must hold security group ids like sg-0123456789abcdef0."
  }
}

variable "instance_types" {
  description = "Instance types of the compute environments: one NVIDIA GPU each (g4dn: T4 16 GB)."
  type        = list(string)
  default     = ["g4dn.xlarge", "g4dn.2xlarge"]

  validation {
    condition     = length(var.instance_types) >= 1 && alltrue([for t in var.instance_types : can(regex("^g[0-9][a-z]*\\.[0-9]*x?large$", t))])
    error_message = "instance_types must list GPU instance types (g4dn.xlarge, g4dn.2xlarge, ...): the job definition asks for one GPU."
  }
}

variable "spot_max_vcpus" {
  description = "Maximum vCPUs of the Spot compute environment (caps the fleet and the spend: 64 = 16 g4dn.xlarge). Minimum is 0, so it scales to nothing when idle."
  type        = number
  default     = 64

  validation {
    condition     = var.spot_max_vcpus >= 4 && var.spot_max_vcpus <= 10000 && floor(var.spot_max_vcpus) == var.spot_max_vcpus
    error_message = "spot_max_vcpus must be a whole number between 4 and 10000."
  }
}

variable "spot_bid_percentage" {
  description = "Highest Spot price as a percentage of the on-demand price (100: never pay more than on-demand)."
  type        = number
  default     = 100

  validation {
    condition     = var.spot_bid_percentage >= 1 && var.spot_bid_percentage <= 100 && floor(var.spot_bid_percentage) == var.spot_bid_percentage
    error_message = "spot_bid_percentage must be a whole number between 1 and 100."
  }
}

variable "enable_on_demand" {
  description = "Also create an on-demand compute environment, ordered after Spot in the job queue (used only when Spot has no capacity left within spot_max_vcpus)."
  type        = bool
  default     = false
}

variable "on_demand_max_vcpus" {
  description = "Maximum vCPUs of the optional on-demand compute environment."
  type        = number
  default     = 16

  validation {
    condition     = var.on_demand_max_vcpus >= 4 && var.on_demand_max_vcpus <= 10000 && floor(var.on_demand_max_vcpus) == var.on_demand_max_vcpus
    error_message = "on_demand_max_vcpus must be a whole number between 4 and 10000."
  }
}

variable "root_volume_size_gib" {
  description = "Root EBS volume of each instance in GiB: the ECS GPU AMI (~30 GiB), the worker image (CUDA + torch, ~10-15 GiB), the model and scratch space for PDFs."
  type        = number
  default     = 100

  validation {
    condition     = var.root_volume_size_gib >= 40 && var.root_volume_size_gib <= 16384 && floor(var.root_volume_size_gib) == var.root_volume_size_gib
    error_message = "root_volume_size_gib must be a whole number between 40 and 16384."
  }
}

variable "pin_ami_from_ssm" {
  description = "true: pin the instances to the AMI id in the SSM parameter gpu_ami_ssm_parameter at apply time (reproducible; re-apply to update). false: Batch picks the current ECS_AL2_NVIDIA AMI itself."
  type        = bool
  default     = false
}

variable "gpu_ami_ssm_parameter" {
  description = "SSM parameter with the recommended ECS-optimised GPU AMI id (used when pin_ami_from_ssm)."
  type        = string
  default     = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"

  validation {
    condition     = startswith(var.gpu_ami_ssm_parameter, "/aws/service/ecs/optimized-ami/")
    error_message = "gpu_ami_ssm_parameter must be one of the public ECS-optimised AMI parameters."
  }
}

variable "container_imds_access" {
  description = "Let containers reach the instance metadata service (hop limit 2), e.g. to poll spot/instance-action. false (hop limit 1) keeps the instance role's credentials away from the jobs; the worker still gets SIGTERM on a Spot reclaim."
  type        = bool
  default     = false
}

variable "batch_service_role_arn" {
  description = "Optional IAM role for Batch to act through. Null (recommended): Batch uses its service-linked role AWSServiceRoleForBatch."
  type        = string
  default     = null

  validation {
    condition     = var.batch_service_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.batch_service_role_arn))
    error_message = "batch_service_role_arn must be null or an IAM role ARN."
  }
}

variable "create_batch_service_linked_role" {
  description = "Create the AWSServiceRoleForBatch service-linked role (false if it already exists in the account: Batch creates it on first use)."
  type        = bool
  default     = false
}

# --- S3 events --------------------------------------------------------------------------------------

variable "sqs_visibility_timeout_seconds" {
  description = "Visibility timeout of the S3-event queue: how long a received message stays hidden before Airflow must delete it."
  type        = number
  default     = 300

  validation {
    condition     = var.sqs_visibility_timeout_seconds >= 0 && var.sqs_visibility_timeout_seconds <= 43200
    error_message = "sqs_visibility_timeout_seconds must be between 0 and 43200."
  }
}

variable "sqs_max_receive_count" {
  description = "Receives before an S3-event message moves to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.sqs_max_receive_count >= 1 && var.sqs_max_receive_count <= 1000 && floor(var.sqs_max_receive_count) == var.sqs_max_receive_count
    error_message = "sqs_max_receive_count must be a whole number between 1 and 1000."
  }
}

# --- Airflow access -------------------------------------------------------------------------------

variable "airflow_role_trusted_principal_arns" {
  description = "IAM principals (e.g. the MWAA execution role, an EC2/EKS role, an SSO role) allowed to assume the Airflow role this module creates. Empty: no role is created; attach the output airflow_policy_arn yourself."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.airflow_role_trusted_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+)$", a))])
    error_message = "airflow_role_trusted_principal_arns must hold IAM role, user or account root ARNs."
  }
}

variable "airflow_policy_attach_role_names" {
  description = "Existing IAM role names to attach the Airflow policy to (e.g. an MWAA execution role)."
  type        = list(string)
  default     = []
}

# --- cost control ---------------------------------------------------------------------------------

variable "monthly_budget_usd" {
  description = "Monthly cost budget in USD that alerts go out against."
  type        = number
  default     = 500

  validation {
    condition     = var.monthly_budget_usd > 0
    error_message = "monthly_budget_usd must be positive."
  }
}

variable "budget_alert_emails" {
  description = "Email addresses that receive the budget alerts (1-10; AWS Budgets allows 10 email subscribers per notification)."
  type        = list(string)

  validation {
    condition     = length(var.budget_alert_emails) >= 1 && length(var.budget_alert_emails) <= 10 && alltrue([for e in var.budget_alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "budget_alert_emails must hold 1-10 email addresses."
  }
}

variable "budget_actual_thresholds_percent" {
  description = "Percentages of the budget at which an alert on ACTUAL spend goes out."
  type        = list(number)
  default     = [50, 80, 100]

  validation {
    condition     = alltrue([for p in var.budget_actual_thresholds_percent : p > 0 && p <= 1000])
    error_message = "budget thresholds must be percentages between 0 and 1000."
  }
}

variable "budget_forecast_thresholds_percent" {
  description = "Percentages of the budget at which an alert on FORECASTED spend goes out."
  type        = list(number)
  default     = [100]

  validation {
    condition     = alltrue([for p in var.budget_forecast_thresholds_percent : p > 0 && p <= 1000])
    error_message = "budget thresholds must be percentages between 0 and 1000."
  }
}

variable "budget_project_tag_only" {
  description = "Limit the budget to costs tagged Project=<name_prefix> (activate 'Project' as a cost allocation tag first); false: the whole account."
  type        = bool
  default     = false
}

variable "outputs" {
  description = "What every run writes unless its trigger conf says otherwise (comma-separated: markdown, json, figures, page-markers); S3-event runs take it as is."
  type        = string
  default     = "markdown"

  validation {
    condition     = contains(split(",", var.outputs), "markdown") && alltrue([for o in split(",", var.outputs) : contains(["markdown", "json", "figures", "page-markers"], o)])
    error_message = "outputs must list markdown and only markdown, json, figures, page-markers (comma-separated)."
  }
}
