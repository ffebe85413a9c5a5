# The cold-path functions and their MSK event source mappings, generated from the function manifest
# (libs/aipx/src/aipx/catalog/functions.yaml) - the same file the local runner (aipx_runner) reads.
#
# Per manifest function: a Lambda function (package <package_dir>/<name>.zip built by
# scripts/build_lambdas.py), its log group, and an execution role that may only read its own topics
# as its own consumer groups and write the topics it produces plus the DLQs of what it reads.
# Per event source: one aws_lambda_event_source_mapping with the manifest's fixed consumer group id,
# starting position, batch size and batching window.
#
# Error handling on MSK mappings (what AWS and provider ~> 5.x allow):
#   - maximum_retry_attempts, bisect_batch_on_function_error and function_response_types =
#     ["ReportBatchItemFailures"] apply to Kafka mappings only in provisioned mode (provisioned_poller_config).
#     With provisioned_mode = false (cheaper) Lambda retries a failing batch until the records
#     expire, and the handler's own DLQ write (aipx.serde DLQ headers) is the only bound.
#   - every function gets AIPX_LAMBDA_ESM_MODE ("provisioned" | "on-demand") from the same
#     var.provisioned_mode, so aipx.lambda_kit knows which contract applies: in on-demand mode a batch with
#     a failed record raises (the whole invocation fails and Lambda retries it) instead of returning a
#     partial batch response that AWS would ignore (losing the records), and a record that failed more than
#     its max_retries times is dead-lettered to <topic>.dlq by the handler so it cannot block its partition.
#     Those attempts are counted before each record runs, in Redis (AIPX_LAMBDA_ATTEMPT_STORE = "redis",
#     on the AIPX_REDIS_URL the root module passes in var.environment), keyed by function, topic, partition
#     and offset with an expiry: a record that crashes the function or times it out is counted, across
#     instances and cold starts.
#   - on-failure destination: AWS can send failed Kafka records to a Kafka topic (`kafka://<topic>`),
#     but provider 5.x validates destination_arn as an ARN and rejects that form
#     (hashicorp/terraform-provider-aws#45662). The mappings therefore send failed batches to the
#     S3 failure bucket (which, for Kafka sources, receives the records themselves plus metadata), and
#     the manifest's on_failure_topic is kept as the mapping's OnFailureTopic tag so a replay tool
#     knows where each batch belongs. Switch destination_arn to "kafka://<on_failure_topic>" once
#     the provider accepts it.

locals {
  manifest  = yamldecode(file(var.manifest_file))
  functions = { for f in local.manifest.functions : f.name => f }

  # "<function>-<topic>" -> event source (plus the function name).
  mappings = merge([
    for f in local.manifest.functions : {
      for es in f.event_sources : "${f.name}-${es.topic}" => merge(es, { function = f.name })
    }
  ]...)

  topic_prefix = replace(var.msk_cluster_arn, ":cluster/", ":topic/")
  group_prefix = replace(var.msk_cluster_arn, ":cluster/", ":group/")

  reads = {
    for name, f in local.functions : name => distinct([for es in f.event_sources : es.topic])
  }
  groups = {
    for name, f in local.functions : name => distinct([for es in f.event_sources : es.consumer_group])
  }
  writes = {
    for name, f in local.functions : name => distinct(concat(
      lookup(var.function_produces, name, []),
      [for es in f.event_sources : es.on_failure_topic],
    ))
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# Event source mapping plumbing (kafka:DescribeClusterV2/GetBootstrapBrokers, VPC ENIs, own logs).
resource "aws_iam_role_policy_attachment" "msk_execution" {
  for_each = local.functions

  role       = aws_iam_role.this[each.key].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaMSKExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  for_each = local.functions

  role       = aws_iam_role.this[each.key].name
  policy_arn = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "ConnectToKafka"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid       = "ReadOwnTopics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = [for t in local.reads[each.key] : "${local.topic_prefix}/${t}"]
  }

  statement {
    sid       = "OwnConsumerGroups"
    actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
    resources = [for g in local.groups[each.key] : "${local.group_prefix}/${g}"]
  }

  statement {
    sid       = "WriteOutputsAndDeadLetters"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    resources = [for t in local.writes[each.key] : "${local.topic_prefix}/${t}"]
  }

  statement {
    sid       = "OnFailureDestination"
    actions   = ["s3:PutObject", "s3:ListBucket"]
    resources = [var.failure_bucket_arn, "${var.failure_bucket_arn}/*"]
  }

  statement {
    sid       = "UseEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = contains(var.data_lake_writers, each.key) ? [1] : []
    content {
      sid       = "WriteDataLake"
      actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket"]
      resources = [var.data_lake_bucket, "${var.data_lake_bucket}/*"]
    }
  }

}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "aipx-${each.key}"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the per-environment log_retention_days (dev 14 d to keep cost down, production 365 d).
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# Packages go through S3: a zip with pyarrow exceeds the 50 MB limit of a direct upload.
resource "aws_s3_object" "package" {
  for_each = local.functions

  bucket      = var.artifacts_bucket
  key         = "lambda/${each.key}.zip"
  source      = "${var.package_dir}/${each.key}.zip"
  source_hash = filebase64sha256("${var.package_dir}/${each.key}.zip")
  kms_key_id  = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by MSK event source mappings (failures go to the mapping's on-failure destination) or the IAM-authenticated function URL; there is no async invocation to dead-letter.
  #checkov:skip=CKV_AWS_272:Packages are built from the repository by CI (scripts/build_lambdas.py); no AWS Signer profile is provisioned.
  for_each = local.functions

  function_name     = "${var.name}-${each.key}"
  description       = each.value.description
  role              = aws_iam_role.this[each.key].arn
  runtime           = var.runtime
  handler           = each.value.handler
  s3_bucket         = aws_s3_object.package[each.key].bucket
  s3_key            = aws_s3_object.package[each.key].key
  s3_object_version = aws_s3_object.package[each.key].version_id
  source_code_hash  = aws_s3_object.package[each.key].source_hash
  memory_size       = coalesce(var.memory_override, each.value.memory_mb)
  timeout           = coalesce(var.timeout_override, each.value.timeout_s)
  architectures     = ["x86_64"]
  kms_key_arn       = var.kms_key_arn

  reserved_concurrent_executions = var.reserved_capacity

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [var.security_group_id]
  }

  environment {
    variables = merge(
      var.environment,
      {
        POWERTOOLS_SERVICE_NAME      = "aipx-${each.key}"
        POWERTOOLS_METRICS_NAMESPACE = "AIPX"
      },
      lookup(var.function_environment, each.key, {}),
      # Last, so that nothing overrides them: the mappings' mode decides how handlers report failures, and
      # in on-demand mode they count each failing record's attempts in the shared Redis (AIPX_REDIS_URL,
      # the ElastiCache every function already reaches), so crashes and timeouts count and every instance
      # sees the same count.
      {
        AIPX_LAMBDA_ESM_MODE      = var.provisioned_mode ? "provisioned" : "on-demand"
        AIPX_LAMBDA_ATTEMPT_STORE = "redis"
      },
    )
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  depends_on = [
    aws_iam_role_policy.function,
    aws_iam_role_policy_attachment.msk_execution,
  ]

  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(var.function_environment), keys(local.functions))) == 0
      error_message = "function_environment names a function that is not in functions.yaml."
    }
  }
}

resource "aws_lambda_event_source_mapping" "msk" {
  for_each = local.mappings

  event_source_arn                   = var.msk_cluster_arn
  function_name                      = aws_lambda_function.this[each.value.function].arn
  topics                             = [each.value.topic]
  starting_position                  = each.value.starting_position
  batch_size                         = each.value.batch_size
  maximum_batching_window_in_seconds = each.value.batching_window_s
  enabled                            = true

  amazon_managed_kafka_event_source_config {
    consumer_group_id = each.value.consumer_group
  }

  destination_config {
    on_failure {
      destination_arn = var.failure_bucket_arn
    }
  }

  dynamic "provisioned_poller_config" {
    for_each = var.provisioned_mode ? [1] : []
    content {
      minimum_pollers = var.min_pollers
      maximum_pollers = var.max_pollers
    }
  }

  # Kafka error-handling controls exist in provisioned mode only (see the header).
  maximum_retry_attempts         = var.provisioned_mode ? each.value.max_retries : null
  bisect_batch_on_function_error = var.provisioned_mode ? each.value.bisect_on_error : null
  function_response_types        = var.provisioned_mode ? ["ReportBatchItemFailures"] : null

  tags = {
    Topic          = each.value.topic
    ConsumerGroup  = each.value.consumer_group
    OnFailureTopic = each.value.on_failure_topic
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.topics), each.value.topic)
      error_message = "functions.yaml: ${each.key} reads a topic that is not in topics.yaml."
    }

    precondition {
      condition     = contains(keys(var.topics), each.value.on_failure_topic)
      error_message = "functions.yaml: ${each.key} has an on_failure_topic that is not in topics.yaml."
    }
  }

  depends_on = [aws_iam_role_policy.function]
}

resource "aws_lambda_function_url" "this" {
  for_each = { for name, f in local.functions : name => f if try(f.function_url, false) }

  function_name      = aws_lambda_function.this[each.key].function_name
  authorization_type = "AWS_IAM"
}
