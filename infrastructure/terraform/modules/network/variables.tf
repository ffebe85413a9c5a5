variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "cidr" {
  description = "VPC CIDR."
  type        = string
}

variable "az_count" {
  description = "Number of AZs."
  type        = number
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (true) or one per AZ (false)."
  type        = bool
}

variable "log_retention_days" {
  description = "Flow log retention (days)."
  type        = number
}

variable "kms_key_arn" {
  description = "KMS key encrypting the flow log group."
  type        = string
}
