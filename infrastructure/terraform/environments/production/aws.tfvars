# production: per-AZ NAT, multi-AZ database, Redis with a replica and automatic failover,
# provisioned pollers on the MSK mappings (bounded retries, bisect, partial batch responses).

aws_region  = "ap-northeast-2"
environment = "production"

vpc_cidr           = "10.20.0.0/16"
az_count           = 3
single_nat_gateway = false
log_retention_days = 365

# ECS Fargate
ingestion_cpu           = 512
ingestion_memory        = 1024
ingestion_desired_count = 1
ingestion_max_count     = 1
oms_cpu                 = 1024
oms_memory              = 2048
oms_desired_count       = 2

# MSK
kafka_instance_type   = "kafka.m7g.large"
kafka_broker_count    = 3
kafka_ebs_volume_size = 500

# Redis
redis_node_type = "cache.t4g.small"
redis_num_nodes = 2

# RDS
database_instance_class        = "db.t4g.medium"
database_allocated_storage     = 100
database_multi_az              = true
database_backup_retention_days = 14
database_deletion_protection   = true

# Lambda
lambda_reserved_concurrency = 50

kafka_esm_provisioned_mode = true
kafka_esm_min_pollers      = 1
kafka_esm_max_pollers      = 5

tags = {
  CostCenter = "aipx-production"
}
