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
