output "primary_endpoint" {
  description = "Primary endpoint address."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "replication_group_id" {
  description = "Replication group id."
  value       = aws_elasticache_replication_group.this.id
}

output "url_secret_arn" {
  description = "Secret holding the rediss:// URL (AIPX_REDIS_URL)."
  value       = aws_secretsmanager_secret.url.arn
}

output "auth_secret_arn" {
  description = "Secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth.arn
}

output "url" {
  description = "rediss:// URL with the AUTH token (for Lambda environments, which cannot reference secrets)."
  value       = local.url
  sensitive   = true
}
