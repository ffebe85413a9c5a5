output "oms_alb_id" {
  description = "Security group of the OMS load balancer."
  value       = aws_security_group.this["oms_alb"].id
}

output "oms_id" {
  description = "Security group of the OMS tasks."
  value       = aws_security_group.this["oms"].id
}

output "ingestion_id" {
  description = "Security group of the ingestion tasks."
  value       = aws_security_group.this["ingestion"].id
}

output "lambda_id" {
  description = "Security group of the cold-path functions."
  value       = aws_security_group.this["lambda"].id
}

output "topic_bootstrap_id" {
  description = "Security group of the topic bootstrap function."
  value       = aws_security_group.this["topic_bootstrap"].id
}

output "msk_id" {
  description = "Security group of the MSK brokers."
  value       = aws_security_group.this["msk"].id
}

output "redis_id" {
  description = "Security group of Redis."
  value       = aws_security_group.this["redis"].id
}

output "rds_id" {
  description = "Security group of PostgreSQL."
  value       = aws_security_group.this["rds"].id
}
