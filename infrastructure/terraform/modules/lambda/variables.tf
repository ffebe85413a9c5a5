variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "manifest_file" {
  description = "Path of the function manifest (functions.yaml)."
  type        = string
}

variable "topics" {
  description = "Every catalogue topic (from the msk module), used to check the manifest."
  type        = map(any)
}

variable "package_dir" {
  description = "Directory with <function>.zip packages."
  type        = string
}

variable "runtime" {
  description = "Python runtime."
  type        = string
}

variable "memory_override" {
  description = "Memory for every function instead of the manifest's memory_mb (null = manifest)."
  type        = number
  default     = null
}

variable "timeout_override" {
  description = "Timeout for every function instead of the manifest's timeout_s (null = manifest)."
  type        = number
  default     = null
}

variable "reserved_capacity" {
  description = "Reserved concurrency per function."
  type        = number
}

variable "subnet_ids" {
  description = "Private subnets of the functions."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the functions."
  type        = string
}

variable "kms_key_arn" {
  description = "Environment KMS key (environment variables, logs)."
  type        = string
}

variable "log_retention_days" {
  description = "Log retention (days)."
  type        = number
}

variable "msk_cluster_arn" {
  description = "MSK cluster ARN (event source and IAM resource prefix)."
  type        = string
}

variable "function_produces" {
  description = "Function -> topics it writes (besides the DLQs of the topics it reads)."
  type        = map(list(string))
}

variable "provisioned_mode" {
  description = "Provisioned pollers (enables bounded retries, bisect and partial batch responses)."
  type        = bool
}

variable "min_pollers" {
  description = "Minimum pollers per mapping (provisioned mode)."
  type        = number
}

variable "max_pollers" {
  description = "Maximum pollers per mapping (provisioned mode)."
  type        = number
}

variable "failure_bucket_arn" {
  description = "On-failure destination bucket of the mappings."
  type        = string
}

variable "data_lake_bucket" {
  description = "Data lake bucket ARN."
  type        = string
}

variable "data_lake_writers" {
  description = "Functions allowed to write the data lake."
  type        = list(string)
  default     = ["recorder"]
}

variable "environment" {
  description = "AIPX_* settings shared by every function."
  type        = map(string)
}

variable "function_environment" {
  description = "Function -> extra environment variables (may hold credentials)."
  type        = map(map(string))
  default     = {}
}

variable "artifacts_bucket" {
  description = "Bucket the deployment packages are uploaded to."
  type        = string
}
