# --- Network ---------------------------------------------------------------------------------------
output "vpc_id" {
  description = "VPC id."
  value       = module.network.vpc_id
}

output "public_subnets" {
  description = "Public subnet ids (NAT gateways)."
  value       = module.network.public_subnet_ids
}

output "private_subnets" {
  description = "Private subnet ids (tasks, functions, stores)."
  value       = module.network.private_subnet_ids
}

# --- Data layer ------------------------------------------------------------------------------------
output "kafka_bootstrap_brokers" {
  description = "MSK bootstrap brokers for TLS + IAM clients (port 9098)."
  value       = module.msk.bootstrap_brokers_sasl_iam
  sensitive   = true
}

output "kafka_topics" {
  description = "Topics created on MSK from topics.yaml, as reported by the topic bootstrap."
  value       = module.kafka_topics.result
}

output "redis_endpoint" {
  description = "Redis primary endpoint (TLS, AUTH token in Secrets Manager)."
  value       = module.redis.primary_endpoint
  sensitive   = true
}

output "database_endpoint" {
  description = "PostgreSQL endpoint (host:port)."
  value       = module.rds.endpoint
  sensitive   = true
}

output "database_name" {
  description = "PostgreSQL database name."
  value       = module.rds.database_name
}

output "data_lake_bucket" {
  description = "S3 data lake bucket."
  value       = module.data_lake.bucket_name
}

# --- Hot path --------------------------------------------------------------------------------------
output "oms_grpc_endpoint" {
  description = "OMS gRPC endpoint (internal load balancer, TLS on 443)."
  value       = "${coalesce(var.oms_grpc_hostname, module.ecs.oms_grpc_endpoint)}:443"
}

output "oms_load_balancer_dns" {
  description = "DNS name of the OMS load balancer (target of the oms_grpc_hostname CNAME)."
  value       = module.ecs.oms_grpc_endpoint
}

output "ingestion_service_name" {
  description = "ECS service name of the ingestion service."
  value       = module.ecs.service_names["ingestion"]
}

output "ecs_cluster_name" {
  description = "ECS cluster name."
  value       = module.ecs.cluster_name
}

output "ecr_repositories" {
  description = "Service -> ECR repository URL."
  value       = module.ecr.repository_urls
}

# --- Cold path -------------------------------------------------------------------------------------
output "function_arns" {
  description = "Function -> Lambda ARN."
  value       = module.lambda.function_arns
}

output "function_names" {
  description = "Function -> deployed Lambda name."
  value       = module.lambda.function_names
}

output "strategy_worker_arn" {
  description = "Lambda ARN of the strategy function."
  value       = module.lambda.function_arns["strategy"]
}

output "cognitive_api_url" {
  description = "Function URL of the cognitive function (IAM-authenticated)."
  value       = module.lambda.function_urls["cognitive"]
}

output "event_source_mappings" {
  description = "<function>-<topic> -> MSK event source mapping (uuid, topic, consumer group)."
  value       = module.lambda.event_source_mappings
}

# --- Operations ------------------------------------------------------------------------------------
output "alarm_topic_arn" {
  description = "SNS topic receiving every alarm."
  value       = module.monitoring.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}
