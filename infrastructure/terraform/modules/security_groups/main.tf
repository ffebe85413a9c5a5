# Every security group of the environment and every rule between them, in one table, so the
# least-privilege matrix can be read (and tested) in one place. No group accepts traffic from the
# internet: the only CIDR-sourced ingress is the optional private oms_allowed_cidrs on 443.
#
#   caller            -> target            port   why
#   lambda            -> oms_alb           443    cognitive places orders over gRPC (TLS at the ALB)
#   oms_alb           -> oms               50051  gRPC to the tasks (+ gRPC health checks)
#   oms               -> rds               5432   order store and outbox
#   oms, ingestion,
#   lambda, bootstrap -> msk               9098   Kafka over TLS with IAM auth
#   msk               -> msk               9098   Lambda event source pollers run in the cluster's group
#   oms, ingestion,
#   lambda            -> redis             6379   TLS + auth token
#   all but stores    -> 0.0.0.0/0         443    AWS APIs, ECR, exchanges, webhooks (through NAT / S3 endpoint)

locals {
  ports = {
    https    = 443
    grpc     = 50051
    postgres = 5432
    redis    = 6379
    kafka    = 9098
  }

  groups = {
    oms_alb         = "OMS gRPC load balancer (internal)"
    oms             = "OMS ECS tasks"
    ingestion       = "Ingestion ECS tasks"
    lambda          = "Cold-path Lambda functions"
    topic_bootstrap = "Kafka topic bootstrap function"
    msk             = "MSK brokers and the Lambda event source pollers"
    redis           = "ElastiCache Redis"
    rds             = "RDS PostgreSQL"
  }

  # Group-to-group rules: ingress on `to`, matching egress on `from`.
  flows = {
    lambda_to_oms_alb      = { from = "lambda", to = "oms_alb", port = "https" }
    oms_alb_to_oms         = { from = "oms_alb", to = "oms", port = "grpc" }
    oms_to_rds             = { from = "oms", to = "rds", port = "postgres" }
    oms_to_msk             = { from = "oms", to = "msk", port = "kafka" }
    ingestion_to_msk       = { from = "ingestion", to = "msk", port = "kafka" }
    lambda_to_msk          = { from = "lambda", to = "msk", port = "kafka" }
    topic_bootstrap_to_msk = { from = "topic_bootstrap", to = "msk", port = "kafka" }
    msk_to_msk             = { from = "msk", to = "msk", port = "kafka" }
    oms_to_redis           = { from = "oms", to = "redis", port = "redis" }
    ingestion_to_redis     = { from = "ingestion", to = "redis", port = "redis" }
    lambda_to_redis        = { from = "lambda", to = "redis", port = "redis" }
  }

  # Groups that may open HTTPS to anywhere (AWS service endpoints, container registry, venues, webhooks).
  https_egress = ["oms", "ingestion", "lambda", "topic_bootstrap", "msk"]
}

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:Every group is attached by another module (ECS services, ALB, Lambda, MSK, ElastiCache, RDS) through this module's outputs, which checkov cannot follow across for_each.
  for_each = local.groups

  name        = "${var.name}-${replace(each.key, "_", "-")}"
  description = each.value
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-${replace(each.key, "_", "-")}" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "flow" {
  for_each = local.flows

  security_group_id            = aws_security_group.this[each.value.to].id
  referenced_security_group_id = aws_security_group.this[each.value.from].id
  ip_protocol                  = "tcp"
  from_port                    = local.ports[each.value.port]
  to_port                      = local.ports[each.value.port]
  description                  = "${each.value.port} from ${each.value.from}"
}

resource "aws_vpc_security_group_egress_rule" "flow" {
  for_each = local.flows

  security_group_id            = aws_security_group.this[each.value.from].id
  referenced_security_group_id = aws_security_group.this[each.value.to].id
  ip_protocol                  = "tcp"
  from_port                    = local.ports[each.value.port]
  to_port                      = local.ports[each.value.port]
  description                  = "${each.value.port} to ${each.value.to}"
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = toset(local.https_egress)

  security_group_id = aws_security_group.this[each.value].id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = local.ports.https
  to_port           = local.ports.https
  description       = "HTTPS to AWS APIs and external endpoints"
}

resource "aws_vpc_security_group_ingress_rule" "oms_alb_from_cidr" {
  for_each = toset(var.oms_allowed_cidrs)

  security_group_id = aws_security_group.this["oms_alb"].id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.ports.https
  to_port           = local.ports.https
  description       = "OMS gRPC from an allowed private network"
}
