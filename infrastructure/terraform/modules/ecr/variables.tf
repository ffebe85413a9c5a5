variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "repositories" {
  description = "Service names, one repository each."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Environment KMS key."
  type        = string
}

variable "keep_images" {
  description = "Images kept per repository."
  type        = number
  default     = 30
}
