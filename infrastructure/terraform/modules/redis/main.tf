# ElastiCache Redis replication group: TLS in transit, encryption at rest with the environment key,
# an AUTH token kept in Secrets Manager, automatic failover + multi-AZ when it has replicas
# (production), slow log to CloudWatch.
#
# Secrets: <name>/redis-auth holds the token; <name>/redis-url holds the full rediss:// URL that the
# services receive as AIPX_REDIS_URL. The token is generated once by Secrets Manager and then kept
# (ignore_changes), so plans stay clean; rotate it by replacing the secret version (see README).

data "aws_secretsmanager_random_password" "auth" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "auth" {
  #checkov:skip=CKV2_AWS_57:Rotating the AUTH token needs a coordinated ElastiCache modify (ROTATE then SET); done by hand as described in the README.
  name                    = "${var.name}/redis-auth"
  description             = "AUTH token of the ${var.name} Redis replication group."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "auth" {
  secret_id     = aws_secretsmanager_secret.auth.id
  secret_string = data.aws_secretsmanager_random_password.auth.random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_elasticache_parameter_group" "this" {
  name   = "${var.name}-redis7"
  family = "redis7"

  parameter {
    name  = "maxmemory-policy"
    value = "volatile-lru"
  }
}

resource "aws_cloudwatch_log_group" "slow_log" {
  #checkov:skip=CKV_AWS_338:Retention is the per-environment log_retention_days (dev 14 d to keep cost down, production 365 d).
  name              = "/aipx/${var.name}/redis-slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV2_AWS_50:Failover and multi-AZ follow redis_num_nodes: enabled in production (2 nodes); dev runs one node, where failover is impossible.
  replication_group_id = var.name
  description          = "AIPX cache and state (${var.name})"
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  num_cache_clusters   = var.num_nodes
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.this.name
  subnet_group_name    = aws_elasticache_subnet_group.this.name
  security_group_ids   = [var.security_group_id]

  automatic_failover_enabled = var.num_nodes > 1
  multi_az_enabled           = var.num_nodes > 1

  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = aws_secretsmanager_secret_version.auth.secret_string
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = "17:00-18:00"
  maintenance_window         = "sun:18:00-sun:19:00"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.slow_log.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  lifecycle {
    ignore_changes = [auth_token]
  }
}

resource "aws_secretsmanager_secret" "url" {
  #checkov:skip=CKV2_AWS_57:Derived from redis-auth; rewritten by Terraform whenever the token or endpoint changes.
  name                    = "${var.name}/redis-url"
  description             = "rediss:// URL (with AUTH token) of the ${var.name} Redis, injected as AIPX_REDIS_URL."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "url" {
  secret_id     = aws_secretsmanager_secret.url.id
  secret_string = local.url
}

locals {
  url = "rediss://:${aws_secretsmanager_secret_version.auth.secret_string}@${aws_elasticache_replication_group.this.primary_endpoint_address}:6379/0"
}
