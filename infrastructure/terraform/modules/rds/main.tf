# RDS PostgreSQL for the OMS: private, encrypted with the environment key, TLS enforced, automated
# backups, Performance Insights, enhanced monitoring, logs to CloudWatch, multi-AZ by variable.
#
# Credentials live in Secrets Manager: <name>/postgres-master (JSON in the RDS secret format) and
# <name>/postgres-dsn (the postgresql:// DSN injected into the OMS as AIPX_POSTGRES_DSN).

locals {
  major  = split(".", var.engine_version)[0]
  family = "postgres${local.major}"
  # user:password, percent-free (the generated password is alphanumeric).
  userinfo = join(":", [var.master_username, aws_secretsmanager_secret_version.master_password.secret_string])
  dsn      = "postgresql://${local.userinfo}@${aws_db_instance.this.address}:${aws_db_instance.this.port}/${var.database_name}?sslmode=require"
}

data "aws_secretsmanager_random_password" "master" {
  password_length     = 40
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "master_password" {
  #checkov:skip=CKV2_AWS_57:The DSN secret is composed from this password; rotation is a planned operation (README) rather than an unattended rotator.
  name                    = "${var.name}/postgres-master-password"
  description             = "Master password of the ${var.name} PostgreSQL instance."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "master_password" {
  secret_id     = aws_secretsmanager_secret.master_password.id
  secret_string = data.aws_secretsmanager_random_password.master.random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-${local.family}"
  family = local.family

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_cloudwatch_log_group" "postgresql" {
  #checkov:skip=CKV_AWS_338:Retention is the per-environment log_retention_days (dev 14 d to keep cost down, production 365 d).
  for_each = toset(["postgresql", "upgrade"])

  name              = "/aws/rds/instance/${var.name}/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.cloudwatch_logs_kms_arn
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_157:Multi-AZ is the per-environment database_multi_az variable: true in production, false in dev to halve the cost.
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class

  db_name  = var.database_name
  username = var.master_username
  password = aws_secretsmanager_secret_version.master_password.secret_string
  port     = 5432

  allocated_storage     = var.allocated_storage
  max_allocated_storage = var.allocated_storage * 5
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [var.security_group_id]
  publicly_accessible    = false
  multi_az               = var.multi_az
  parameter_group_name   = aws_db_parameter_group.this.name

  iam_database_authentication_enabled = true

  backup_retention_period   = var.backup_retention_days
  backup_window             = "17:00-18:00"
  maintenance_window        = "sun:18:30-sun:19:30"
  copy_tags_to_snapshot     = true
  delete_automated_backups  = false
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-final"

  auto_minor_version_upgrade      = true
  enabled_cloudwatch_logs_exports = ["postgresql", "upgrade"]
  monitoring_interval             = 60
  monitoring_role_arn             = aws_iam_role.monitoring.arn

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7

  depends_on = [aws_cloudwatch_log_group.postgresql]

  lifecycle {
    ignore_changes = [password]
  }
}

resource "aws_secretsmanager_secret" "dsn" {
  #checkov:skip=CKV2_AWS_57:Derived from the master password secret; rewritten by Terraform when the password or endpoint changes.
  name                    = "${var.name}/postgres-dsn"
  description             = "postgresql:// DSN of the ${var.name} database, injected into the OMS as AIPX_POSTGRES_DSN."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "dsn" {
  secret_id     = aws_secretsmanager_secret.dsn.id
  secret_string = local.dsn
}
