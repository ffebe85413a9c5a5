variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the instance."
  type        = string
}

variable "instance_class" {
  description = "Instance class."
  type        = string
}

variable "allocated_storage" {
  description = "Initial storage (GiB)."
  type        = number
}

variable "multi_az" {
  description = "Synchronous standby in a second AZ."
  type        = bool
}

variable "engine_version" {
  description = "PostgreSQL version (major.minor)."
  type        = string
}

variable "backup_retention_days" {
  description = "Backup retention (days)."
  type        = number
}

variable "deletion_protection" {
  description = "Deletion protection."
  type        = bool
}

variable "kms_key_arn" {
  description = "Environment KMS key."
  type        = string
}

variable "cloudwatch_logs_kms_arn" {
  description = "KMS key of the exported log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Exported log retention (days)."
  type        = number
}

variable "database_name" {
  description = "Database name."
  type        = string
}

variable "master_username" {
  description = "Master user name."
  type        = string
}
