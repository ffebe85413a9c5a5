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

variable "lake_prefix" {
  description = "Key prefix of the lake inside the bucket (the recorder's AIPX_RECORDER_PREFIX); empty or ending in '/'."
  type        = string
  default     = ""

  validation {
    condition     = var.lake_prefix == "" || endswith(var.lake_prefix, "/")
    error_message = "lake_prefix must be empty or end with '/'."
  }
}

variable "partition_by_symbol" {
  description = "The recorder writes a symbol=<symbol> level below hour= (AIPX_RECORDER_PARTITION_BY_SYMBOL): project it too."
  type        = bool
  default     = false
}

variable "projection_start_date" {
  description = "First date (YYYY-MM-DD) the Glue tables' partition projection covers."
  type        = string
  default     = "2024-01-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.projection_start_date))
    error_message = "projection_start_date must be YYYY-MM-DD."
  }
}

variable "tables_file" {
  description = "The lake's table columns (JSON from scripts/gen_lake_catalog.py); empty: the module's lake_tables.json."
  type        = string
  default     = ""
}
