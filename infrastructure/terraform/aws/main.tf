# AIPX on AWS: one VPC with a hot path on ECS Fargate (ingestion, OMS), a cold path on Lambda fed by
# MSK event source mappings, and the data stores (MSK, ElastiCache Redis, RDS PostgreSQL, S3 data lake).
#
# Topics and functions are not listed here: they are read from the same catalogue files the code uses
# (libs/aipx/src/aipx/catalog/{topics,functions}.yaml), so Terraform, the local stack and the runner agree.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name       = "aipx-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id

  catalog_dir   = "${path.root}/../../../libs/aipx/src/aipx/catalog"
  topics_file   = "${local.catalog_dir}/topics.yaml"
  manifest_file = "${local.catalog_dir}/functions.yaml"

  # Topics each function writes to (besides the DLQs of the topics it reads, which every function may
  # write to). Reads come from functions.yaml event_sources; writes are not in the manifest yet.
  function_produces = {
    strategy     = ["trading-signals"]
    cognitive    = ["trading-decisions"]
    notification = []
    recorder     = []
  }

  # The topics each hot-path service writes to (plus each one's DLQ, for records it cannot encode).
  ingestion_produces = ["market-data-raw"]
  oms_produces       = ["order-events", "admin-events"]

  # Settings every AIPX process shares (aipx.settings). Kafka on MSK: TLS + IAM (SASL/OAUTHBEARER).
  kafka_client_env = {
    AIPX_KAFKA_BOOTSTRAP_SERVERS = module.msk.bootstrap_brokers_sasl_iam
    AIPX_KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
    AIPX_KAFKA_SASL_MECHANISM    = "OAUTHBEARER"
  }
  common_env = merge(local.kafka_client_env, {
    AIPX_LOG_LEVEL  = var.environment == "production" ? "INFO" : "DEBUG"
    AIPX_LOG_FORMAT = "json"
    AIPX_S3_BUCKET  = module.data_lake.bucket_name
    AIPX_S3_REGION  = var.aws_region
    # Empty: the real S3 endpoint (the default points at the local moto server).
    AIPX_S3_ENDPOINT_URL = ""
  })
}

# ---------------------------------------------------------------------------------------------------
# Encryption key for everything this environment stores (logs, MSK, RDS, Redis, S3, secrets, SNS, ECR).
# ---------------------------------------------------------------------------------------------------
module "kms" {
  source = "../modules/kms"

  name       = local.name
  account_id = local.account_id
  region     = var.aws_region
  partition  = data.aws_partition.current.partition
}

# ---------------------------------------------------------------------------------------------------
# Network and security groups
# ---------------------------------------------------------------------------------------------------
module "network" {
  source = "../modules/network"

  name               = local.name
  cidr               = var.vpc_cidr
  az_count           = var.az_count
  single_nat_gateway = var.single_nat_gateway
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.kms.key_arn
}

module "security_groups" {
  source = "../modules/security_groups"

  name              = local.name
  vpc_id            = module.network.vpc_id
  oms_allowed_cidrs = var.oms_allowed_cidrs
}

# ---------------------------------------------------------------------------------------------------
# Data layer
# ---------------------------------------------------------------------------------------------------
module "data_lake" {
  source = "../modules/data_lake"

  name        = local.name
  account_id  = local.account_id
  kms_key_arn = module.kms.key_arn
}

module "msk" {
  source = "../modules/msk"

  name               = local.name
  subnet_ids         = module.network.private_subnet_ids
  security_group_id  = module.security_groups.msk_id
  kafka_version      = var.kafka_version
  instance_type      = var.kafka_instance_type
  broker_count       = var.kafka_broker_count
  ebs_volume_size    = var.kafka_ebs_volume_size
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
  topics_file        = local.topics_file
}

module "kafka_topics" {
  source = "../modules/kafka_topics"

  name               = local.name
  cluster_arn        = module.msk.cluster_arn
  bootstrap_brokers  = module.msk.bootstrap_brokers_sasl_iam
  topics             = module.msk.topics
  subnet_ids         = module.network.private_subnet_ids
  security_group_id  = module.security_groups.topic_bootstrap_id
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
  runtime            = var.lambda_runtime
  package_file       = "${var.lambda_package_dir}/topic-bootstrap.zip"
  artifacts_bucket   = module.data_lake.artifacts_bucket_name
}

module "redis" {
  source = "../modules/redis"

  name               = local.name
  subnet_ids         = module.network.private_subnet_ids
  security_group_id  = module.security_groups.redis_id
  node_type          = var.redis_node_type
  num_nodes          = var.redis_num_nodes
  engine_version     = var.redis_engine_version
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
}

module "rds" {
  source = "../modules/rds"

  name                    = local.name
  subnet_ids              = module.network.private_subnet_ids
  security_group_id       = module.security_groups.rds_id
  instance_class          = var.database_instance_class
  allocated_storage       = var.database_allocated_storage
  multi_az                = var.database_multi_az
  engine_version          = var.database_engine_version
  backup_retention_days   = var.database_backup_retention_days
  deletion_protection     = var.database_deletion_protection
  kms_key_arn             = module.kms.key_arn
  database_name           = "aipx"
  master_username         = "aipx"
  cloudwatch_logs_kms_arn = module.kms.key_arn
  log_retention_days      = var.log_retention_days
}

# ---------------------------------------------------------------------------------------------------
# Hot path: images and ECS services
# ---------------------------------------------------------------------------------------------------
module "ecr" {
  source = "../modules/ecr"

  name         = local.name
  repositories = ["ingestion", "oms"]
  kms_key_arn  = module.kms.key_arn
}

module "ecs" {
  source = "../modules/ecs"

  name                = local.name
  region              = var.aws_region
  vpc_id              = module.network.vpc_id
  private_subnet_ids  = module.network.private_subnet_ids
  kms_key_arn         = module.kms.key_arn
  log_retention_days  = var.log_retention_days
  deletion_protection = var.database_deletion_protection
  alb_logs_bucket     = module.data_lake.logs_bucket_name

  alb_security_group_id       = module.security_groups.oms_alb_id
  ingestion_security_group_id = module.security_groups.ingestion_id
  oms_security_group_id       = module.security_groups.oms_id
  oms_certificate_arn         = var.oms_certificate_arn

  ingestion_image = "${module.ecr.repository_urls["ingestion"]}:${var.image_tag}"
  oms_image       = "${module.ecr.repository_urls["oms"]}:${var.image_tag}"

  ingestion_cpu           = var.ingestion_cpu
  ingestion_memory        = var.ingestion_memory
  ingestion_desired_count = var.ingestion_desired_count
  ingestion_max_count     = var.ingestion_max_count
  oms_cpu                 = var.oms_cpu
  oms_memory              = var.oms_memory
  oms_desired_count       = var.oms_desired_count

  common_environment    = local.common_env
  ingestion_environment = var.ingestion_environment
  oms_environment       = var.oms_environment
  # Values that embed credentials come from Secrets Manager, injected by ECS at task start.
  ingestion_secrets = {
    AIPX_REDIS_URL = module.redis.url_secret_arn
  }
  oms_secrets = {
    AIPX_POSTGRES_DSN = module.rds.dsn_secret_arn
    AIPX_REDIS_URL    = module.redis.url_secret_arn
  }

  msk_cluster_arn    = module.msk.cluster_arn
  ingestion_produces = concat(local.ingestion_produces, [for t in local.ingestion_produces : module.msk.dlq_of[t]])
  oms_produces       = concat(local.oms_produces, [for t in local.oms_produces : module.msk.dlq_of[t]])
}

# ---------------------------------------------------------------------------------------------------
# Cold path: the four functions and their MSK event source mappings (from functions.yaml)
# ---------------------------------------------------------------------------------------------------
module "lambda" {
  source = "../modules/lambda"

  name               = local.name
  manifest_file      = local.manifest_file
  topics             = module.msk.topics
  package_dir        = var.lambda_package_dir
  artifacts_bucket   = module.data_lake.artifacts_bucket_name
  runtime            = var.lambda_runtime
  memory_override    = var.lambda_memory_size
  timeout_override   = var.lambda_timeout
  reserved_capacity  = var.lambda_reserved_concurrency
  subnet_ids         = module.network.private_subnet_ids
  security_group_id  = module.security_groups.lambda_id
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days

  msk_cluster_arn   = module.msk.cluster_arn
  function_produces = local.function_produces

  provisioned_mode = var.kafka_esm_provisioned_mode
  min_pollers      = var.kafka_esm_min_pollers
  max_pollers      = var.kafka_esm_max_pollers

  failure_bucket_arn = module.data_lake.esm_failures_bucket_arn
  data_lake_bucket   = module.data_lake.bucket_arn

  environment = merge(local.common_env, {
    AIPX_REDIS_URL = module.redis.url
  })
  function_environment = merge(var.function_environment, {
    cognitive = merge(
      {
        AIPX_COGNITIVE_OMS_TARGET = "${coalesce(var.oms_grpc_hostname, module.ecs.oms_grpc_endpoint)}:443"
        AIPX_COGNITIVE_OMS_TLS    = "true"
      },
      lookup(var.function_environment, "cognitive", {}),
    )
  })
}

# ---------------------------------------------------------------------------------------------------
# Monitoring: SNS alarm topic, CloudWatch alarms and one dashboard
# ---------------------------------------------------------------------------------------------------
module "monitoring" {
  source = "../modules/monitoring"

  name        = local.name
  region      = var.aws_region
  kms_key_arn = module.kms.key_arn
  alarm_email = var.alarm_email

  ecs_cluster_name       = module.ecs.cluster_name
  ecs_service_names      = module.ecs.service_names
  oms_alb_arn_suffix     = module.ecs.alb_arn_suffix
  oms_target_group_arn   = module.ecs.oms_target_group_arn_suffix
  rds_instance_id        = module.rds.instance_id
  redis_replication_id   = local.name
  redis_num_nodes        = var.redis_num_nodes
  msk_cluster_name       = module.msk.cluster_name
  msk_broker_count       = var.kafka_broker_count
  lambda_function_names  = module.lambda.function_names
  topic_bootstrap_lambda = module.kafka_topics.function_name

  application_metrics_namespace = module.ecs.metrics_namespace
}
