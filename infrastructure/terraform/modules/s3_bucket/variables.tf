variable "bucket_name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "purpose" {
  description = "What the bucket holds (tag)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS; null = SSE-S3 (required for S3 server access log and ALB log targets)."
  type        = string
  default     = null
}

variable "versioning" {
  description = "Keep object versions."
  type        = bool
  default     = true
}

variable "logging_bucket" {
  description = "Bucket receiving this bucket's server access logs (null = none, for the log bucket itself)."
  type        = string
  default     = null
}

variable "eventbridge" {
  description = "Send object events to EventBridge."
  type        = bool
  default     = false
}

variable "lifecycle_rules" {
  description = "Lifecycle rules by prefix."
  type = list(object({
    id     = string
    prefix = string
    transitions = list(object({
      days          = number
      storage_class = string
    }))
    expiration_days            = optional(number)
    noncurrent_expiration_days = optional(number)
  }))

  validation {
    condition     = length(var.lifecycle_rules) > 0
    error_message = "Give at least one lifecycle rule (each one also aborts incomplete multipart uploads after 7 days)."
  }
}

variable "extra_policy_json" {
  description = "Extra bucket policy statements (JSON policy document) merged with the TLS-only statement."
  type        = string
  default     = null
}
