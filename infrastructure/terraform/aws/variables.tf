# Inputs of the AIPX AWS root. Sizes per environment live in ../environments/<env>/aws.tfvars.

# ---------------------------------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------------------------------
variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "ap-northeast-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like an AWS region name, e.g. ap-northeast-2."
  }
}

variable "environment" {
  description = "Deployment environment."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be one of: dev, staging, production."
  }
}

variable "tags" {
  description = "Extra tags added to every resource (Project/Environment/ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group (VPC flow logs, services, functions, brokers)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm SNS topic (null = no subscription)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address or null."
  }
}

# ---------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------
variable "vpc_cidr" {
  description = "CIDR block of the VPC (/16 to /20; subnets are carved as /(prefix+4))."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR with a prefix between /16 and /20."
  }
}

variable "az_count" {
  description = "Number of availability zones used (public + private subnet per AZ)."
  type        = number
  default     = 3

  validation {
    condition     = contains([2, 3], var.az_count)
    error_message = "az_count must be 2 or 3."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (dev) instead of one per AZ (production)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------------
# Hot path: ECS Fargate services
# ---------------------------------------------------------------------------------------------------
variable "image_tag" {
  description = "Image tag (git SHA) of the ingestion and OMS images in ECR. Set by the deploy workflow."
  type        = string
  default     = "bootstrap"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid Docker tag."
  }
}

variable "ingestion_cpu" {
  description = "Fargate CPU units of the ingestion task (256 = 0.25 vCPU)."
  type        = number
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.ingestion_cpu)
    error_message = "ingestion_cpu must be a Fargate CPU size: 256, 512, 1024, 2048 or 4096."
  }
}

variable "ingestion_memory" {
  description = "Fargate memory (MiB) of the ingestion task."
  type        = number
  default     = 512

  validation {
    condition     = var.ingestion_memory >= 512 && var.ingestion_memory <= 30720 && var.ingestion_memory % 512 == 0
    error_message = "ingestion_memory must be a multiple of 512 between 512 and 30720 MiB."
  }

  validation {
    condition     = var.ingestion_memory >= var.ingestion_cpu * 2 && var.ingestion_memory <= var.ingestion_cpu * 8
    error_message = "ingestion_memory must be between 2x and 8x ingestion_cpu (Fargate CPU/memory combinations)."
  }
}

variable "oms_cpu" {
  description = "Fargate CPU units of the OMS task."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.oms_cpu)
    error_message = "oms_cpu must be a Fargate CPU size: 256, 512, 1024, 2048 or 4096."
  }
}

variable "oms_memory" {
  description = "Fargate memory (MiB) of the OMS task."
  type        = number
  default     = 1024

  validation {
    condition     = var.oms_memory >= 512 && var.oms_memory <= 30720 && var.oms_memory % 512 == 0
    error_message = "oms_memory must be a multiple of 512 between 512 and 30720 MiB."
  }

  validation {
    condition     = var.oms_memory >= var.oms_cpu * 2 && var.oms_memory <= var.oms_cpu * 8
    error_message = "oms_memory must be between 2x and 8x oms_cpu (Fargate CPU/memory combinations)."
  }
}

variable "ingestion_desired_count" {
  description = "Ingestion tasks. Each task subscribes to every configured venue, so > 1 duplicates records unless ingestion shards its symbols."
  type        = number
  default     = 1

  validation {
    condition     = var.ingestion_desired_count >= 0 && var.ingestion_desired_count <= 10
    error_message = "ingestion_desired_count must be between 0 and 10."
  }
}

variable "ingestion_max_count" {
  description = "Upper bound of ingestion autoscaling."
  type        = number
  default     = 1

  validation {
    condition     = var.ingestion_max_count >= var.ingestion_desired_count && var.ingestion_max_count <= 10
    error_message = "ingestion_max_count must be >= ingestion_desired_count and <= 10."
  }
}

variable "oms_desired_count" {
  description = "OMS tasks: 1 leader + standbys (2 = one hot standby). Not autoscaled: one process writes at a time, so more tasks add only standbys."
  type        = number
  default     = 2

  validation {
    condition     = var.oms_desired_count >= 1 && var.oms_desired_count <= 3
    error_message = "oms_desired_count must be between 1 and 3 (one leader, up to two standbys; the OMS is not scaled out)."
  }
}

variable "oms_certificate_arn" {
  description = "ACM certificate of the OMS gRPC load balancer listener (gRPC on an ALB needs HTTPS). No default: pass it with -var or TF_VAR_oms_certificate_arn."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.oms_certificate_arn))
    error_message = "oms_certificate_arn must be an ACM certificate ARN."
  }
}

variable "ingestion_environment" {
  description = "Ingestion settings (AIPX_INGESTION_*). Empty URL maps: the venue adapters' real endpoints instead of the local exchange simulator."
  type        = map(string)
  default = {
    AIPX_INGESTION_WS_URLS   = "{}"
    AIPX_INGESTION_REST_URLS = "{}"
  }

  validation {
    condition     = alltrue([for k in keys(var.ingestion_environment) : startswith(k, "AIPX_INGESTION_")])
    error_message = "ingestion_environment takes AIPX_INGESTION_* settings only."
  }
}

variable "oms_environment" {
  description = "OMS settings (AIPX_OMS_*), e.g. venues. Credentials do not go here."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.oms_environment) : startswith(k, "AIPX_OMS_")])
    error_message = "oms_environment takes AIPX_OMS_* settings only."
  }
}

variable "oms_grpc_hostname" {
  description = "DNS name clients dial for the OMS (covered by oms_certificate_arn, CNAME to the load balancer). null = the load balancer's own DNS name."
  type        = string
  default     = null
}

variable "oms_allowed_cidrs" {
  description = "Extra private CIDRs (VPN, peered VPCs) allowed to call the OMS gRPC endpoint on 443."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.oms_allowed_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "oms_allowed_cidrs must be valid CIDRs and must not contain 0.0.0.0/0."
  }
}

# ---------------------------------------------------------------------------------------------------
# Kafka (MSK)
# ---------------------------------------------------------------------------------------------------
variable "kafka_version" {
  description = "Apache Kafka version of the MSK cluster."
  type        = string
  default     = "3.6.0"
}

variable "kafka_instance_type" {
  description = "MSK broker instance type."
  type        = string
  default     = "kafka.t3.small"

  validation {
    condition     = can(regex("^kafka\\.[a-z0-9]+\\.[a-z0-9]+$", var.kafka_instance_type))
    error_message = "kafka_instance_type must be an MSK broker type such as kafka.t3.small or kafka.m7g.large."
  }
}

variable "kafka_broker_count" {
  description = "MSK brokers: a multiple of az_count (MSK spreads brokers evenly over the client subnets) and at least 3 (the catalogue's replication factor)."
  type        = number
  default     = 3

  validation {
    condition     = var.kafka_broker_count >= 3 && var.kafka_broker_count % var.az_count == 0
    error_message = "kafka_broker_count must be a multiple of az_count and at least 3 (topics.yaml replication_factor)."
  }
}

variable "kafka_ebs_volume_size" {
  description = "EBS storage per broker (GiB)."
  type        = number
  default     = 100

  validation {
    condition     = var.kafka_ebs_volume_size >= 1 && var.kafka_ebs_volume_size <= 16384
    error_message = "kafka_ebs_volume_size must be between 1 and 16384 GiB."
  }
}

# ---------------------------------------------------------------------------------------------------
# Redis (ElastiCache)
# ---------------------------------------------------------------------------------------------------
variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t3.micro"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.redis_node_type))
    error_message = "redis_node_type must be an ElastiCache node type such as cache.t3.micro."
  }
}

variable "redis_num_nodes" {
  description = "Cache nodes in the replication group (1 = no replica; >= 2 enables automatic failover and multi-AZ)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_num_nodes >= 1 && var.redis_num_nodes <= 6
    error_message = "redis_num_nodes must be between 1 and 6."
  }
}

variable "redis_engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL (RDS)
# ---------------------------------------------------------------------------------------------------
variable "database_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t3.micro"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.database_instance_class))
    error_message = "database_instance_class must be an RDS class such as db.t3.micro."
  }
}

variable "database_allocated_storage" {
  description = "Initial gp3 storage (GiB); storage autoscaling may grow it to 5x."
  type        = number
  default     = 20

  validation {
    condition     = var.database_allocated_storage >= 20 && var.database_allocated_storage <= 65536
    error_message = "database_allocated_storage must be between 20 and 65536 GiB."
  }
}

variable "database_multi_az" {
  description = "Run a synchronous standby in a second AZ."
  type        = bool
  default     = false
}

variable "database_engine_version" {
  description = "PostgreSQL major.minor version."
  type        = string
  default     = "16.4"

  validation {
    condition     = can(regex("^1[5-9]\\.[0-9]+$", var.database_engine_version))
    error_message = "database_engine_version must be PostgreSQL 15 or newer, as major.minor."
  }
}

variable "database_backup_retention_days" {
  description = "Automated backup retention (days)."
  type        = number
  default     = 7

  validation {
    condition     = var.database_backup_retention_days >= 1 && var.database_backup_retention_days <= 35
    error_message = "database_backup_retention_days must be between 1 and 35."
  }
}

variable "database_deletion_protection" {
  description = "Refuse to delete the database (and the OMS load balancer) from Terraform."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------
# Cold path: Lambda functions (defaults per function come from functions.yaml)
# ---------------------------------------------------------------------------------------------------
variable "lambda_memory_size" {
  description = "When set, overrides every function's memory_mb from functions.yaml (MB)."
  type        = number
  default     = null

  validation {
    condition     = var.lambda_memory_size == null || (coalesce(var.lambda_memory_size, 128) >= 128 && coalesce(var.lambda_memory_size, 128) <= 10240)
    error_message = "lambda_memory_size must be null or between 128 and 10240 MB."
  }
}

variable "lambda_timeout" {
  description = "When set, overrides every function's timeout_s from functions.yaml (seconds)."
  type        = number
  default     = null

  validation {
    condition     = var.lambda_timeout == null || (coalesce(var.lambda_timeout, 1) >= 1 && coalesce(var.lambda_timeout, 1) <= 900)
    error_message = "lambda_timeout must be null or between 1 and 900 seconds."
  }
}

variable "lambda_runtime" {
  description = "Python runtime of the functions; build the packages for the same one (scripts/build_lambdas.py --runtime). python3.12 because locked wheels (cramjam) are manylinux_2_28, which python3.11's Amazon Linux 2 cannot load."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 or python3.13 (manylinux_2_28 wheels need Amazon Linux 2023)."
  }
}

variable "lambda_package_dir" {
  description = "Directory holding <function>.zip built by `uv run python scripts/build_lambdas.py` (relative to this root)."
  type        = string
  default     = "../../../dist/lambda"
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrent executions per function (caps fan-out onto the OMS and Redis)."
  type        = number
  default     = 10

  validation {
    condition     = var.lambda_reserved_concurrency >= 1 && var.lambda_reserved_concurrency <= 1000
    error_message = "lambda_reserved_concurrency must be between 1 and 1000."
  }
}

variable "function_environment" {
  description = "Extra environment per function (function name from functions.yaml -> AIPX_<FUNCTION>_* settings), e.g. notification channel tokens or LLM API keys. Sensitive: pass it with TF_VAR_function_environment or a git-ignored *.auto.tfvars; it is stored KMS-encrypted in the function configuration and in the encrypted state."
  type        = map(map(string))
  default     = {}
  sensitive   = true

  validation {
    condition = alltrue(flatten([
      for fn, env in var.function_environment : [for k in keys(env) : startswith(k, "AIPX_${upper(fn)}_")]
    ]))
    error_message = "function_environment[<function>] takes AIPX_<FUNCTION>_* settings only."
  }
}

variable "kafka_esm_provisioned_mode" {
  description = "Provisioned-mode pollers on the MSK event source mappings. Required for bounded retries, bisect-on-error and partial batch responses on Kafka mappings; costs event poller units."
  type        = bool
  default     = true
}

variable "kafka_esm_min_pollers" {
  description = "Minimum provisioned pollers per event source mapping (provisioned mode)."
  type        = number
  default     = 1

  validation {
    condition     = var.kafka_esm_min_pollers >= 1 && var.kafka_esm_min_pollers <= 200
    error_message = "kafka_esm_min_pollers must be between 1 and 200."
  }
}

variable "kafka_esm_max_pollers" {
  description = "Maximum provisioned pollers per event source mapping (provisioned mode)."
  type        = number
  default     = 3

  validation {
    condition     = var.kafka_esm_max_pollers >= var.kafka_esm_min_pollers && var.kafka_esm_max_pollers <= 2000
    error_message = "kafka_esm_max_pollers must be >= kafka_esm_min_pollers and <= 2000."
  }
}
