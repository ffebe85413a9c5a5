variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "account_id" {
  description = "AWS account id (makes bucket names globally unique)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the data lake and failure buckets."
  type        = string
}

variable "infrequent_access_after_days" {
  description = "Days before data lake objects move to STANDARD_IA."
  type        = number
  default     = 30
}

variable "glacier_after_days" {
  description = "Days before data lake objects move to GLACIER_IR."
  type        = number
  default     = 90
}
