# Hot path on ECS Fargate: the ingestion service and the OMS, in private subnets without public IPs.
#
#   service    image command                    ports
#   ingestion  python -m aipx_ingestion         9100 (HTTP /healthz, /metrics)
#   oms        python -m aipx_oms               50051 (gRPC), 9100 (HTTP /healthz, /metrics)
#
# The OMS sits behind an internal ALB that carries gRPC (HTTPS listener, GRPC target group whose
# health check calls the OMS leader check). Settings reach the containers as AIPX_* variables;
# values that embed credentials (AIPX_POSTGRES_DSN, AIPX_REDIS_URL) are injected from Secrets Manager.
# Each service has its own execution role (pull image, read its secrets) and task role (only the
# Kafka topics it writes) and a deployment circuit breaker; ingestion has CPU/memory target-tracking
# autoscaling.
#
# The OMS has ONE active writer (the process holding the PostgreSQL writer lock) and hot standbys; see
# "How the OMS fails over" in aws/README.md. Hence, for the OMS only:
#   - desired count = 1 leader + standbys (oms_desired_count), and no autoscaling: another task adds no
#     throughput, only another standby;
#   - the ALB health check is the leader check (/aipx.oms.Leader/Check: OK only on the leader), so the ALB
#     routes to the leader alone and to a standby as soon as it takes over (<= interval x healthy threshold);
#   - ECS must not replace a task for failing that check (a standby fails it by design), so the service
#     ignores ALB health for task replacement (grace period at its maximum). Liveness stays with the process:
#     a crashed OMS exits and is replaced, a hung or cut-off leader loses its lock within
#     AIPX_OMS_LEADER_SESSION_TIMEOUT_S and a standby takes over;
#   - rolling deploys start the new tasks first (200%: they come up as standbys), then stop the old ones
#     with SIGTERM (100% minimum): the old leader finishes in-flight requests, flushes the outbox, releases
#     the lock, and a new task leads within a lock poll.

locals {
  health_port = 9100
  grpc_port   = 50051

  topic_prefix = replace(var.msk_cluster_arn, ":cluster/", ":topic/")

  services = {
    ingestion = {
      image         = var.ingestion_image
      cpu           = var.ingestion_cpu
      memory        = var.ingestion_memory
      desired_count = var.ingestion_desired_count
      environment   = var.ingestion_environment
      secrets       = var.ingestion_secrets
      produces      = var.ingestion_produces
      ports         = [local.health_port]
      sg            = var.ingestion_security_group_id
    }
    oms = {
      image         = var.oms_image
      cpu           = var.oms_cpu
      memory        = var.oms_memory
      desired_count = var.oms_desired_count
      environment   = var.oms_environment
      secrets       = var.oms_secrets
      produces      = var.oms_produces
      ports         = [local.grpc_port, local.health_port]
      sg            = var.oms_security_group_id
    }
  }

  # Services behind ECS's own autoscaling (min = desired count, max = max_count).
  scaled_services = {
    ingestion = { desired_count = var.ingestion_desired_count, max_count = var.ingestion_max_count }
  }

  # The OMS: ECS ignores ALB health for task replacement (a standby fails the leader check by design).
  oms_health_check_grace_period_s = 2147483647
  # The ALB's leader check: the path served by aipx_oms.server (LEADER_CHECK_PATH), gRPC code 0 = leader.
  oms_leader_check_path = "/aipx.oms.Leader/Check"

  health_command = [
    "CMD", "python", "-c",
    "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:${local.health_port}/healthz', timeout=3).status == 200 else 1)",
  ]
}

# --- Cluster ---------------------------------------------------------------------------------------
resource "aws_cloudwatch_log_group" "exec" {
  #checkov:skip=CKV_AWS_338:Retention is the per-environment log_retention_days (dev 14 d to keep cost down, production 365 d).
  name              = "/aipx/${var.name}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "service" {
  #checkov:skip=CKV_AWS_338:Retention is the per-environment log_retention_days (dev 14 d to keep cost down, production 365 d).
  for_each = local.services

  name              = "/aipx/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- IAM -------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  for_each = local.services

  name               = "${var.name}-${each.key}-execution"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  for_each = local.services

  role       = aws_iam_role.execution[each.key].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  for_each = local.services

  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = values(each.value.secrets)
  }

  statement {
    sid       = "DecryptSecretsAndImages"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  for_each = local.services

  name   = "read-secrets"
  role   = aws_iam_role.execution[each.key].id
  policy = data.aws_iam_policy_document.execution_secrets[each.key].json
}

resource "aws_iam_role" "task" {
  for_each = local.services

  name               = "${var.name}-${each.key}-task"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  for_each = local.services

  statement {
    sid       = "ConnectToKafka"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently"]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid       = "WriteOwnTopics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    resources = [for t in each.value.produces : "${local.topic_prefix}/${t}"]
  }
}

resource "aws_iam_role_policy" "task" {
  for_each = local.services

  name   = "kafka-produce"
  role   = aws_iam_role.task[each.key].id
  policy = data.aws_iam_policy_document.task[each.key].json
}

# --- Task definitions and services -----------------------------------------------------------------
resource "aws_ecs_task_definition" "this" {
  for_each = local.services

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution[each.key].arn
  task_role_arn            = aws_iam_role.task[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode(concat([{
    name                   = each.key
    image                  = each.value.image
    essential              = true
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    stopTimeout            = 30

    portMappings = [for p in each.value.ports : { containerPort = p, protocol = "tcp" }]

    environment = [
      for k, v in merge(var.common_environment, each.value.environment, { AWS_REGION = var.region }) :
      { name = k, value = v }
    ]
    secrets = [for k, arn in each.value.secrets : { name = k, valueFrom = arn }]

    mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]

    linuxParameters = { initProcessEnabled = true }

    healthCheck = {
      command     = local.health_command
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service[each.key].name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }], [local.metrics_sidecar[each.key]]))
}

resource "aws_ecs_service" "this" {
  for_each = local.scaled_services

  name                               = each.key
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this[each.key].arn
  desired_count                      = each.value.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [local.services[each.key].sg]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    # Autoscaling owns the running count once the service exists.
    ignore_changes = [desired_count]
  }
}

# One leader and its standbys: a fixed count, no autoscaling (see the header of this file).
resource "aws_ecs_service" "oms" {
  name                               = "oms"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this["oms"].arn
  desired_count                      = var.oms_desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = local.oms_health_check_grace_period_s

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.oms_security_group_id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.oms_grpc.arn
    container_name   = "oms"
    container_port   = local.grpc_port
  }

  depends_on = [aws_lb_listener.oms_grpc]
}

moved {
  from = aws_ecs_service.this["oms"]
  to   = aws_ecs_service.oms
}

# --- Autoscaling -----------------------------------------------------------------------------------
resource "aws_appautoscaling_target" "this" {
  for_each = local.scaled_services

  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.desired_count
  max_capacity       = each.value.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each = local.scaled_services

  name               = "${var.name}-${each.key}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "memory" {
  for_each = local.scaled_services

  name               = "${var.name}-${each.key}-memory"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.memory_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageMemoryUtilization"
    }
  }
}

# --- OMS gRPC load balancer ------------------------------------------------------------------------
resource "aws_lb" "oms" {
  #checkov:skip=CKV2_AWS_28:Internal load balancer reachable only from the cold-path functions' security group (and optional private CIDRs); no internet traffic to filter with WAF.
  #checkov:skip=CKV2_AWS_76:Internal load balancer without WAF (see CKV2_AWS_28); the OMS speaks gRPC/protobuf, not a Java/Log4j stack.
  name                       = substr("${var.name}-oms", 0, 32)
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [var.alb_security_group_id]
  subnets                    = var.private_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 300

  access_logs {
    bucket  = var.alb_logs_bucket
    prefix  = "alb"
    enabled = true
  }
}

resource "aws_lb_target_group" "oms_grpc" {
  #checkov:skip=CKV_AWS_378:TLS ends at the internal ALB; ALB -> task is HTTP/2 inside private subnets, limited to the ALB's security group.
  name             = substr("${var.name}-oms-grpc", 0, 32)
  port             = local.grpc_port
  protocol         = "HTTP"
  protocol_version = "GRPC"
  target_type      = "ip"
  vpc_id           = var.vpc_id
  # A stopping task is drained this long before ECS sends SIGTERM; the leader keeps the lock meanwhile, so
  # keep it short (unary calls take milliseconds; the OMS itself waits for in-flight calls on SIGTERM).
  deregistration_delay = 5

  # Healthy = this task leads (a standby answers UNAVAILABLE): the ALB sends orders to the leader only and
  # to a new leader after 2 checks 5 s apart.
  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = local.oms_leader_check_path
    matcher             = "0"
    interval            = 5
    timeout             = 2
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "oms_grpc" {
  load_balancer_arn = aws_lb.oms.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.oms_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.oms_grpc.arn
  }
}
