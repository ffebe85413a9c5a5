output "cluster_arn" {
  description = "MSK cluster ARN."
  value       = aws_msk_cluster.this.arn
}

output "cluster_name" {
  description = "MSK cluster name."
  value       = aws_msk_cluster.this.cluster_name
}

output "bootstrap_brokers_sasl_iam" {
  description = "Bootstrap brokers for IAM-authenticated TLS clients (port 9098)."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "topics" {
  description = "Every topic of the catalogue (including DLQs) with partitions, replication factor and configs."
  value       = local.topics
}

output "dlq_of" {
  description = "Topic -> its dead-letter topic (from topics.yaml)."
  value       = { for t in local.catalog.topics : t.name => t.dlq if try(t.dlq, null) != null }
}
