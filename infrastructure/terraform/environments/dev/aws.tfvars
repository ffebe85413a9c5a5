# dev: the smallest sizes of the phase-0 plan, one NAT gateway, no standbys.
# Plan + apply: see ../../aws/README.md. oms_certificate_arn is passed separately
# (-var or TF_VAR_oms_certificate_arn) because it is account specific.

aws_region  = "ap-northeast-2"
environment = "dev"

vpc_cidr           = "10.10.0.0/16"
az_count           = 3
single_nat_gateway = true
log_retention_days = 14

# ECS Fargate
ingestion_cpu           = 256 # 0.25 vCPU
ingestion_memory        = 512 # 512 MB
ingestion_desired_count = 1
ingestion_max_count     = 1
oms_cpu                 = 512  # 0.5 vCPU
oms_memory              = 1024 # 1 GB
oms_desired_count       = 1

# MSK: the plan's single kafka.t3.small is not possible - MSK needs a broker count that is a multiple
# of the client subnets (3 AZs), and the catalogue's replication factor is 3.
kafka_instance_type   = "kafka.t3.small"
kafka_broker_count    = 3
kafka_ebs_volume_size = 20

# Redis
redis_node_type = "cache.t3.micro"
redis_num_nodes = 1

# RDS
database_instance_class        = "db.t3.micro"
database_allocated_storage     = 20
database_multi_az              = false
database_backup_retention_days = 3
database_deletion_protection   = false

# Lambda: memory and timeout per function come from functions.yaml (set lambda_memory_size /
# lambda_timeout here to override all of them).
lambda_reserved_concurrency = 5

# On-demand pollers in dev: no event poller units billed, but no bounded retries / bisect /
# partial batch responses on the MSK mappings (see README, "Event source mappings").
kafka_esm_provisioned_mode = false

tags = {
  CostCenter = "aipx-dev"
}
