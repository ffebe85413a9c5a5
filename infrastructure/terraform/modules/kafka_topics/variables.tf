variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "cluster_arn" {
  description = "MSK cluster ARN."
  type        = string
}

variable "bootstrap_brokers" {
  description = "IAM/TLS bootstrap brokers."
  type        = string
}

variable "topics" {
  description = "Topic name -> { partitions, replication_factor, config } (from topics.yaml via the msk module)."
  type = map(object({
    partitions         = number
    replication_factor = number
    config             = map(string)
  }))
}

variable "subnet_ids" {
  description = "Private subnets the function runs in."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the function."
  type        = string
}

variable "kms_key_arn" {
  description = "Environment KMS key."
  type        = string
}

variable "log_retention_days" {
  description = "Log retention (days)."
  type        = number
}

variable "runtime" {
  description = "Python runtime."
  type        = string
}

variable "package_file" {
  description = "Path of topic-bootstrap.zip built by scripts/build_lambdas.py."
  type        = string
}

variable "artifacts_bucket" {
  description = "Bucket the deployment package is uploaded to."
  type        = string
}
