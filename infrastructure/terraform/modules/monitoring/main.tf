# Alarms of an environment, all publishing to one encrypted SNS topic (optionally e-mailed), and one
# CloudWatch dashboard showing the hot path (ECS, OMS load balancer), the stores (MSK, Redis, RDS)
# and the cold path (Lambda errors, throttles and Kafka offset lag).

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  actions = [aws_sns_topic.alarms.arn]

  # ElastiCache names a replication group's nodes <group>-001, <group>-002, ... (known at plan time).
  redis_nodes = [for i in range(1, var.redis_num_nodes + 1) : format("%s-%03d", var.redis_replication_id, i)]

  lambda_functions = merge(var.lambda_function_names, { topic-bootstrap = var.topic_bootstrap_lambda })

  ecs_alarms = merge([
    for key, service in var.ecs_service_names : {
      "ecs-${key}-cpu"    = { service = service, metric = "CPUUtilization", threshold = 80, unit = "%" }
      "ecs-${key}-memory" = { service = service, metric = "MemoryUtilization", threshold = 85, unit = "%" }
    }
  ]...)
}

# --- Hot path --------------------------------------------------------------------------------------
resource "aws_cloudwatch_metric_alarm" "ecs" {
  for_each = local.ecs_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "${each.value.service}: ${each.value.metric} above ${each.value.threshold}${each.value.unit} for 10 minutes."
  namespace           = "AWS/ECS"
  metric_name         = each.value.metric
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    ClusterName = var.ecs_cluster_name
    ServiceName = each.value.service
  }
}

resource "aws_cloudwatch_metric_alarm" "ecs_running" {
  for_each = var.ecs_service_names

  alarm_name          = "${var.name}-ecs-${each.key}-not-running"
  alarm_description   = "${each.value}: no running task."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    ClusterName = var.ecs_cluster_name
    ServiceName = each.value
  }
}

# Standbys fail the OMS target group's leader check by design, so "unhealthy targets" is the normal state;
# what matters is that one target leads.
resource "aws_cloudwatch_metric_alarm" "oms_no_leader" {
  alarm_name          = "${var.name}-oms-no-leader"
  alarm_description   = "No OMS task passes the leader check (/aipx.oms.Leader/Check): orders cannot be placed."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    LoadBalancer = var.oms_alb_arn_suffix
    TargetGroup  = var.oms_target_group_arn
  }
}

resource "aws_cloudwatch_metric_alarm" "oms_5xx" {
  alarm_name          = "${var.name}-oms-alb-5xx"
  alarm_description   = "OMS load balancer returned more than 10 5xx responses in 5 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_ELB_5XX_Count"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 10
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions

  dimensions = {
    LoadBalancer = var.oms_alb_arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "oms_latency" {
  alarm_name          = "${var.name}-oms-p99-latency"
  alarm_description   = "OMS p99 response time above 1 s for 10 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p99"
  period              = 300
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions

  dimensions = {
    LoadBalancer = var.oms_alb_arn_suffix
  }
}

# --- Stores ----------------------------------------------------------------------------------------
resource "aws_cloudwatch_metric_alarm" "rds_cpu" {
  alarm_name          = "${var.name}-rds-cpu"
  alarm_description   = "PostgreSQL CPU above 80% for 10 minutes."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    DBInstanceIdentifier = var.rds_instance_id
  }
}

resource "aws_cloudwatch_metric_alarm" "rds_storage" {
  alarm_name          = "${var.name}-rds-free-storage"
  alarm_description   = "PostgreSQL free storage below 2 GiB."
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 2147483648
  comparison_operator = "LessThanThreshold"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    DBInstanceIdentifier = var.rds_instance_id
  }
}

resource "aws_cloudwatch_metric_alarm" "redis_memory" {
  for_each = toset(local.redis_nodes)

  alarm_name          = "${var.name}-redis-memory-${each.value}"
  alarm_description   = "Redis ${each.value} memory above 85%."
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 85
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    CacheClusterId = each.value
  }
}

resource "aws_cloudwatch_metric_alarm" "msk_disk" {
  for_each = toset([for i in range(1, var.msk_broker_count + 1) : tostring(i)])

  alarm_name          = "${var.name}-msk-disk-broker-${each.value}"
  alarm_description   = "MSK broker ${each.value} data log disk above 80%."
  namespace           = "AWS/Kafka"
  metric_name         = "KafkaDataLogsDiskUsed"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    "Cluster Name" = var.msk_cluster_name
    "Broker ID"    = each.value
  }
}

# --- Cold path -------------------------------------------------------------------------------------
resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = local.lambda_functions

  alarm_name          = "${var.name}-lambda-${each.key}-errors"
  alarm_description   = "${each.value} returned errors (whole-batch failures) in the last 5 minutes."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    FunctionName = each.value
  }
}

resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  for_each = var.lambda_function_names

  alarm_name          = "${var.name}-lambda-${each.key}-throttles"
  alarm_description   = "${each.value} was throttled (reserved concurrency reached)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions

  dimensions = {
    FunctionName = each.value
  }
}

resource "aws_cloudwatch_metric_alarm" "lambda_offset_lag" {
  for_each = var.lambda_function_names

  alarm_name          = "${var.name}-lambda-${each.key}-offset-lag"
  alarm_description   = "${each.value} is more than ${var.offset_lag_threshold} records behind its topics for 15 minutes."
  namespace           = "AWS/Lambda"
  metric_name         = "OffsetLag"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.offset_lag_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    FunctionName = each.value
  }
}

# --- Dashboard -------------------------------------------------------------------------------------
resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat([
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "ECS CPU / memory"
          region = var.region
          stat   = "Average"
          period = 300
          metrics = flatten([
            for key, service in var.ecs_service_names : [
              ["AWS/ECS", "CPUUtilization", "ClusterName", var.ecs_cluster_name, "ServiceName", service],
              ["AWS/ECS", "MemoryUtilization", "ClusterName", var.ecs_cluster_name, "ServiceName", service],
            ]
          ])
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "OMS gRPC load balancer"
          region = var.region
          period = 60
          metrics = [
            ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", var.oms_alb_arn_suffix, { stat = "Sum" }],
            ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", var.oms_alb_arn_suffix, { stat = "p99" }],
            ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", var.oms_alb_arn_suffix, { stat = "Sum" }],
            ["AWS/ApplicationELB", "HealthyHostCount", "TargetGroup", var.oms_target_group_arn, "LoadBalancer", var.oms_alb_arn_suffix, { stat = "Minimum" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 8, height = 6
        properties = {
          title  = "MSK disk used (%)"
          region = var.region
          stat   = "Maximum"
          period = 300
          metrics = [
            for i in range(1, var.msk_broker_count + 1) :
            ["AWS/Kafka", "KafkaDataLogsDiskUsed", "Cluster Name", var.msk_cluster_name, "Broker ID", tostring(i)]
          ]
        }
      },
      {
        type = "metric", x = 8, y = 6, width = 8, height = 6
        properties = {
          title  = "PostgreSQL"
          region = var.region
          stat   = "Average"
          period = 300
          metrics = [
            ["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", var.rds_instance_id],
            ["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", var.rds_instance_id],
          ]
        }
      },
      {
        type = "metric", x = 16, y = 6, width = 8, height = 6
        properties = {
          title  = "Redis"
          region = var.region
          stat   = "Maximum"
          period = 300
          metrics = flatten([
            for c in local.redis_nodes : [
              ["AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "CacheClusterId", c],
              ["AWS/ElastiCache", "EngineCPUUtilization", "CacheClusterId", c],
            ]
          ])
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "Lambda errors and throttles"
          region = var.region
          stat   = "Sum"
          period = 300
          metrics = flatten([
            for key, fn in var.lambda_function_names : [
              ["AWS/Lambda", "Errors", "FunctionName", fn],
              ["AWS/Lambda", "Throttles", "FunctionName", fn],
            ]
          ])
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Kafka offset lag per function"
          region = var.region
          stat   = "Maximum"
          period = 300
          metrics = [
            for key, fn in var.lambda_function_names : ["AWS/Lambda", "OffsetLag", "FunctionName", fn]
          ]
        }
      },
    ], local.application_widgets)
  })
}
