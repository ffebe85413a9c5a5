variable "name" {
  description = "Cluster name (aipx-<env>)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets, one per AZ."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the brokers."
  type        = string
}

variable "kafka_version" {
  description = "Kafka version."
  type        = string
}

variable "instance_type" {
  description = "Broker instance type."
  type        = string
}

variable "broker_count" {
  description = "Number of brokers."
  type        = number
}

variable "ebs_volume_size" {
  description = "Storage per broker (GiB)."
  type        = number
}

variable "enhanced_monitoring" {
  description = "MSK monitoring level (DEFAULT is free)."
  type        = string
  default     = "DEFAULT"
}

variable "kms_key_arn" {
  description = "KMS key for data at rest and the broker log group."
  type        = string
}

variable "log_retention_days" {
  description = "Broker log retention (days)."
  type        = number
}

variable "topics_file" {
  description = "Path of the topic catalogue (topics.yaml)."
  type        = string
}
