# Alarms on what the services measure themselves (their Prometheus metrics, published to CloudWatch by the
# ECS metrics sidecar in the AIPX/Services namespace, and the functions' powertools EMF metrics in AIPX):
# ingestion drops, feed gaps and resyncs per minute, stale feeds, OMS outbox lag, dead-lettered records, OMS
# error rate and p99 latency. All go to the alarm SNS topic and are shown on the dashboard (main.tf).
# tests/infrastructure/test_application_alarms.py checks each exists and names a metric the code defines.

locals {
  app_ns = var.application_metrics_namespace

  # name -> metric alarm on one application metric of one service
  application_alarms = {
    "ingestion-dropped" = {
      description = "Ingestion lost envelopes it could not deliver to Kafka."
      metric      = "aipx_ingestion_dropped_total", service = "ingestion", statistic = "Sum"
      period      = 60, evaluation_periods = 1, threshold = 0
    }
    "feed-gaps" = {
      description = "Market data sequence gaps above ${var.feed_gaps_per_minute} a minute for 3 minutes."
      metric      = "aipx_ingestion_gaps_total", service = "ingestion", statistic = "Sum"
      period      = 60, evaluation_periods = 3, threshold = var.feed_gaps_per_minute
    }
    "feed-resyncs" = {
      description = "Order book resynchronisations above ${var.feed_resyncs_per_minute} a minute for 3 minutes."
      metric      = "aipx_ingestion_resyncs_total", service = "ingestion", statistic = "Sum"
      period      = 60, evaluation_periods = 3, threshold = var.feed_resyncs_per_minute
    }
    "feed-stale" = {
      description = "A market data stream has been silent too long (ingestion's stale_after) for 3 minutes."
      metric      = "aipx_ingestion_stale_streams", service = "ingestion", statistic = "Maximum"
      period      = 60, evaluation_periods = 3, threshold = 0
    }
    "oms-outbox-lag" = {
      description = "Order events committed but not on Kafka for more than ${var.outbox_lag_seconds} s."
      metric      = "aipx_oms_outbox_lag_seconds", service = "oms", statistic = "Maximum"
      period      = 60, evaluation_periods = 2, threshold = var.outbox_lag_seconds
    }
  }

  # gRPC codes that count as OMS errors (the client's fault - INVALID_ARGUMENT, NOT_FOUND, ... - does not).
  oms_error_codes = ["INTERNAL", "UNAVAILABLE", "UNKNOWN", "DEADLINE_EXCEEDED", "DATA_LOSS"]
}

resource "aws_cloudwatch_metric_alarm" "application" {
  for_each = local.application_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = local.app_ns
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    Service = each.value.service
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_lettered" {
  for_each = var.lambda_function_names

  alarm_name          = "${var.name}-lambda-${each.key}-dead-lettered"
  alarm_description   = "${each.value} sent records to its dead-letter topic in the last 5 minutes."
  namespace           = var.function_metrics_namespace
  metric_name         = "RecordsDeadLettered"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    service = each.key
  }
}

resource "aws_cloudwatch_metric_alarm" "oms_error_rate" {
  alarm_name          = "${var.name}-oms-error-rate"
  alarm_description   = "More than ${var.oms_error_rate_percent}% of OMS requests failed on the server side for 3 minutes."
  evaluation_periods  = 3
  threshold           = var.oms_error_rate_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id          = "rate"
    expression  = "100 * (${join(" + ", [for i, _ in local.oms_error_codes : "FILL(e${i}, 0)"])}) / IF(total > 0, total, 1)"
    label       = "OMS server errors (% of requests)"
    return_data = true
  }

  metric_query {
    id = "total"
    metric {
      namespace   = local.app_ns
      metric_name = "aipx_oms_requests_total"
      stat        = "Sum"
      period      = 60
      dimensions  = { Service = "oms" }
    }
  }

  dynamic "metric_query" {
    for_each = local.oms_error_codes
    content {
      id = "e${metric_query.key}"
      metric {
        namespace   = local.app_ns
        metric_name = "aipx_oms_requests_total"
        stat        = "Sum"
        period      = 60
        dimensions  = { Service = "oms", code = metric_query.value }
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "oms_request_p99" {
  alarm_name          = "${var.name}-oms-request-p99"
  alarm_description   = "OMS p99 request latency (measured in the server) above ${var.oms_p99_seconds} s for 5 minutes."
  namespace           = local.app_ns
  metric_name         = "aipx_oms_request_seconds"
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.oms_p99_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    Service = "oms"
  }
}

locals {
  # Dashboard rows for the application metrics, appended to the dashboard of main.tf.
  application_widgets = [
    {
      type = "metric", x = 0, y = 18, width = 12, height = 6
      properties = {
        title  = "Ingestion: dropped, gaps and resyncs per minute, stale streams"
        region = var.region
        period = 60
        metrics = [
          [local.app_ns, "aipx_ingestion_dropped_total", "Service", "ingestion", { stat = "Sum" }],
          [local.app_ns, "aipx_ingestion_gaps_total", "Service", "ingestion", { stat = "Sum" }],
          [local.app_ns, "aipx_ingestion_resyncs_total", "Service", "ingestion", { stat = "Sum" }],
          [local.app_ns, "aipx_ingestion_stale_streams", "Service", "ingestion", { stat = "Maximum" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 18, width = 12, height = 6
      properties = {
        title  = "OMS: p99 latency (s), outbox lag (s), requests"
        region = var.region
        period = 60
        metrics = [
          [local.app_ns, "aipx_oms_request_seconds", "Service", "oms", { stat = "p99" }],
          [local.app_ns, "aipx_oms_outbox_lag_seconds", "Service", "oms", { stat = "Maximum" }],
          [local.app_ns, "aipx_oms_requests_total", "Service", "oms", { stat = "Sum", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 24, width = 12, height = 6
      properties = {
        title   = "Functions: records dead-lettered"
        region  = var.region
        stat    = "Sum"
        period  = 300
        metrics = [for key, _ in var.lambda_function_names : [var.function_metrics_namespace, "RecordsDeadLettered", "service", key]]
      }
    },
    {
      type = "alarm", x = 12, y = 24, width = 12, height = 6
      properties = {
        title = "Application alarms"
        alarms = concat(
          [for a in aws_cloudwatch_metric_alarm.application : a.arn],
          [for a in aws_cloudwatch_metric_alarm.dead_lettered : a.arn],
          [aws_cloudwatch_metric_alarm.oms_error_rate.arn, aws_cloudwatch_metric_alarm.oms_request_p99.arn],
        )
      }
    },
  ]
}
