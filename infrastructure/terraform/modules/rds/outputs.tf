output "endpoint" {
  description = "host:port of the instance."
  value       = aws_db_instance.this.endpoint
}

output "database_name" {
  description = "Database name."
  value       = aws_db_instance.this.db_name
}

output "instance_id" {
  description = "Instance identifier."
  value       = aws_db_instance.this.identifier
}

output "dsn_secret_arn" {
  description = "Secret holding the DSN (AIPX_POSTGRES_DSN)."
  value       = aws_secretsmanager_secret.dsn.arn
}

output "master_password_secret_arn" {
  description = "Secret holding the master password."
  value       = aws_secretsmanager_secret.master_password.arn
}
