# Application metrics to CloudWatch: an AWS Distro for OpenTelemetry (ADOT) collector beside each service's
# container. It scrapes the service's own /metrics (127.0.0.1:9100, the Prometheus endpoint every service
# already serves; no code change, no port opened) and writes CloudWatch embedded metric format (EMF) records
# to the log group below, which CloudWatch turns into metrics in the AIPX/Services namespace with the
# dimension Service (and venue / code where the alarms need them). Counters arrive as per-scrape deltas, so a
# Sum over a period is the count in that period; histograms arrive as distributions, so alarms can use p99.
# The metric names stay the Prometheus sample names (trim_metric_suffixes: false), the ones the code defines:
# modules/monitoring/application.tf alarms on them and tests/infrastructure/test_application_alarms.py checks.

locals {
  metrics_namespace = "AIPX/Services"

  # Prometheus series -> the dimension sets CloudWatch keeps for them (every other series is not published).
  metric_declarations = [
    {
      dimensions = [["Service"], ["Service", "venue"]]
      metric_name_selectors = [
        "^aipx_ingestion_(messages_in|messages_out|gaps|resyncs|reconnects|malformed_frames)_total$",
        "^aipx_ingestion_(stale_streams|connections)$",
      ]
    },
    {
      dimensions            = [["Service"]]
      metric_name_selectors = ["^aipx_ingestion_dropped_total$", "^aipx_ingestion_buffer_depth$", "^aipx_ingestion_produce_latency_seconds$"]
    },
    {
      dimensions            = [["Service"], ["Service", "code"]]
      metric_name_selectors = ["^aipx_oms_requests_total$"]
    },
    {
      dimensions = [["Service"]]
      metric_name_selectors = [
        "^aipx_oms_request_seconds$", "^aipx_oms_outbox_lag_(events|seconds)$", "^aipx_oms_open_orders$",
        "^aipx_oms_risk_denials_total$", "^aipx_oms_commit_seconds$",
      ]
    },
  ]

  collector_config = {
    for key in keys(local.services) : key => yamlencode({
      receivers = {
        prometheus = {
          trim_metric_suffixes = false
          config = {
            scrape_configs = [{
              job_name        = key
              scrape_interval = "30s"
              static_configs  = [{ targets = ["127.0.0.1:${local.health_port}"], labels = { Service = key } }]
            }]
          }
        }
      }
      processors = { batch = { timeout = "30s" } }
      exporters = {
        awsemf = {
          namespace                            = local.metrics_namespace
          log_group_name                       = aws_cloudwatch_log_group.metrics.name
          log_stream_name                      = "${key}/{TaskId}"
          region                               = var.region
          dimension_rollup_option              = "NoDimensionRollup"
          resource_to_telemetry_conversion     = { enabled = false }
          detailed_metrics                     = false
          metric_declarations                  = local.metric_declarations
          output_destination                   = "cloudwatch"
          retain_initial_value_of_delta_metric = false
        }
      }
      service = {
        pipelines = { metrics = { receivers = ["prometheus"], processors = ["batch"], exporters = ["awsemf"] } }
      }
    })
  }

  # The sidecar of each task definition (appended to the service's container in main.tf).
  metrics_sidecar = {
    for key in keys(local.services) : key => {
      name                   = "metrics-collector"
      image                  = var.metrics_collector_image
      essential              = false
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      command                = ["--config=env:AOT_CONFIG_CONTENT"]
      environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.collector_config[key] }]
      mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      cpu                    = 64
      memoryReservation      = 64
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service[key].name
          awslogs-region        = var.region
          awslogs-stream-prefix = "metrics-collector"
        }
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "metrics" {
  #checkov:skip=CKV_AWS_338:EMF records only carry metrics CloudWatch already extracted; 14 days is enough to replay them.
  name              = "/aipx/${var.name}/metrics"
  retention_in_days = 14
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "metrics" {
  statement {
    sid       = "WriteEmfRecords"
    actions   = ["logs:PutLogEvents", "logs:CreateLogStream", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.metrics.arn, "${aws_cloudwatch_log_group.metrics.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "metrics" {
  for_each = local.services

  name   = "write-metrics"
  role   = aws_iam_role.task[each.key].id
  policy = data.aws_iam_policy_document.metrics.json
}
