variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "region" {
  description = "AWS region (log driver, SDKs)."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for tasks and the internal load balancer."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Environment KMS key."
  type        = string
}

variable "log_retention_days" {
  description = "Log retention (days)."
  type        = number
}

variable "deletion_protection" {
  description = "Deletion protection of the OMS load balancer."
  type        = bool
}

variable "alb_logs_bucket" {
  description = "Bucket receiving the load balancer's access logs."
  type        = string
}

variable "alb_security_group_id" {
  description = "Security group of the OMS load balancer."
  type        = string
}

variable "ingestion_security_group_id" {
  description = "Security group of the ingestion tasks."
  type        = string
}

variable "oms_security_group_id" {
  description = "Security group of the OMS tasks."
  type        = string
}

variable "oms_certificate_arn" {
  description = "ACM certificate of the OMS HTTPS listener."
  type        = string
}

variable "ingestion_image" {
  description = "Ingestion image (repository:tag)."
  type        = string
}

variable "oms_image" {
  description = "OMS image (repository:tag)."
  type        = string
}

variable "ingestion_cpu" {
  description = "Ingestion CPU units."
  type        = number
}

variable "ingestion_memory" {
  description = "Ingestion memory (MiB)."
  type        = number
}

variable "ingestion_desired_count" {
  description = "Ingestion tasks (autoscaling minimum)."
  type        = number
}

variable "ingestion_max_count" {
  description = "Ingestion autoscaling maximum."
  type        = number
}

variable "oms_cpu" {
  description = "OMS CPU units."
  type        = number
}

variable "oms_memory" {
  description = "OMS memory (MiB)."
  type        = number
}

variable "oms_desired_count" {
  description = "OMS tasks: one leader plus standbys (not autoscaled: there is one active writer)."
  type        = number
}

variable "cpu_target_percent" {
  description = "Target average CPU for autoscaling."
  type        = number
  default     = 70
}

variable "memory_target_percent" {
  description = "Target average memory for autoscaling."
  type        = number
  default     = 80
}

variable "common_environment" {
  description = "AIPX_* settings shared by both services."
  type        = map(string)
}

variable "ingestion_environment" {
  description = "AIPX_INGESTION_* settings."
  type        = map(string)
}

variable "oms_environment" {
  description = "AIPX_OMS_* settings."
  type        = map(string)
}

variable "ingestion_secrets" {
  description = "Env var name -> Secrets Manager ARN for ingestion."
  type        = map(string)
}

variable "oms_secrets" {
  description = "Env var name -> Secrets Manager ARN for the OMS."
  type        = map(string)
}

variable "msk_cluster_arn" {
  description = "MSK cluster ARN (IAM resource prefix for topics)."
  type        = string
}

variable "ingestion_produces" {
  description = "Topics the ingestion service writes."
  type        = list(string)
}

variable "oms_produces" {
  description = "Topics the OMS writes."
  type        = list(string)
}

variable "metrics_collector_image" {
  description = "ADOT collector image of the metrics sidecar (scrapes /metrics, writes CloudWatch EMF)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"
}
