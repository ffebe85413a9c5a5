variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the cache."
  type        = string
}

variable "node_type" {
  description = "Node type."
  type        = string
}

variable "num_nodes" {
  description = "Nodes in the replication group (primary + replicas)."
  type        = number
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
}

variable "snapshot_retention_days" {
  description = "Daily snapshot retention (days)."
  type        = number
  default     = 5
}

variable "kms_key_arn" {
  description = "Environment KMS key."
  type        = string
}

variable "log_retention_days" {
  description = "Slow log retention (days)."
  type        = number
}
