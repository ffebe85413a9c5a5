variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "region" {
  description = "AWS region (dashboard widgets)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the SNS topic."
  type        = string
}

variable "alarm_email" {
  description = "E-mail subscribed to alarms (null = none)."
  type        = string
  default     = null
}

variable "ecs_cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "ecs_service_names" {
  description = "Service key -> ECS service name."
  type        = map(string)
}

variable "oms_alb_arn_suffix" {
  description = "OMS load balancer ARN suffix."
  type        = string
}

variable "oms_target_group_arn" {
  description = "OMS target group ARN suffix."
  type        = string
}

variable "rds_instance_id" {
  description = "RDS instance identifier."
  type        = string
}

variable "redis_replication_id" {
  description = "Redis replication group id (its nodes are <id>-001, <id>-002, ...)."
  type        = string
}

variable "redis_num_nodes" {
  description = "Nodes in the Redis replication group."
  type        = number
}

variable "msk_cluster_name" {
  description = "MSK cluster name."
  type        = string
}

variable "msk_broker_count" {
  description = "Number of MSK brokers."
  type        = number
}

variable "lambda_function_names" {
  description = "Function key -> deployed function name."
  type        = map(string)
}

variable "topic_bootstrap_lambda" {
  description = "Name of the topic bootstrap function."
  type        = string
}

variable "offset_lag_threshold" {
  description = "Records of Kafka offset lag that count as a function falling behind."
  type        = number
  default     = 100000
}

variable "application_metrics_namespace" {
  description = "CloudWatch namespace of the services' Prometheus metrics (the ECS metrics sidecar)."
  type        = string
  default     = "AIPX/Services"
}

variable "function_metrics_namespace" {
  description = "CloudWatch namespace of the functions' powertools metrics (POWERTOOLS_METRICS_NAMESPACE)."
  type        = string
  default     = "AIPX"
}

variable "feed_gaps_per_minute" {
  description = "Market data sequence gaps per minute that count as a degraded feed."
  type        = number
  default     = 5
}

variable "feed_resyncs_per_minute" {
  description = "Order book resynchronisations per minute that count as a degraded feed."
  type        = number
  default     = 3
}

variable "outbox_lag_seconds" {
  description = "Age of the oldest unpublished order event that raises the outbox lag alarm."
  type        = number
  default     = 30
}

variable "oms_error_rate_percent" {
  description = "Share of OMS requests failing on the server side (percent) that raises the error rate alarm."
  type        = number
  default     = 1
}

variable "oms_p99_seconds" {
  description = "OMS p99 request latency (seconds, measured in the server) that raises the latency alarm."
  type        = number
  default     = 0.25
}
