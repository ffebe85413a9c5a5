# Creates the catalogue's topics on MSK during `terraform apply`.
#
# AWS provider 5.x has no resource for Kafka topics (MSK's own topic API arrived after it), and the
# community Kafka provider would be another registry download that also needs network access to the
# brokers from wherever Terraform runs. Instead a small function inside the VPC runs the project's own
# topic bootstrap (aipx.kafka.admin, the code behind `aipx-topics`) with IAM auth, and Terraform
# invokes it with the topic set it read from topics.yaml. The function (infrastructure/lambda/
# topic_bootstrap) creates what is missing and fails the apply if Terraform's set and the packaged
# catalogue disagree, or if any topic is then absent or has other partitions than the catalogue.
# A change to topics.yaml or to the package re-runs it.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

locals {
  function_name = "${var.name}-topic-bootstrap"
  topic_prefix  = replace(var.cluster_arn, ":cluster/", ":topic/")
  topic_arns    = [for t in keys(var.topics) : "${local.topic_prefix}/${t}"]
}

data "aws_iam_policy_document" "kafka_admin" {
  statement {
    sid       = "ConnectToCluster"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.cluster_arn]
  }

  statement {
    sid = "ManageCatalogueTopicsOnly"
    actions = [
      "kafka-cluster:CreateTopic",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:AlterTopic",
      "kafka-cluster:DescribeTopicDynamicConfiguration",
      "kafka-cluster:AlterTopicDynamicConfiguration",
    ]
    resources = local.topic_arns
  }

  statement {
    sid       = "DecryptEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role" "this" {
  name               = local.function_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "kafka_admin" {
  name   = "kafka-topic-admin"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.kafka_admin.json
}

# ENI management in the VPC and writing its own logs (AWS managed, the minimum for a VPC function).
resource "aws_iam_role_policy_attachment" "vpc" {
  role       = aws_iam_role.this.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the per-environment log_retention_days (dev 14 d to keep cost down, production 365 d).
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_s3_object" "package" {
  bucket      = var.artifacts_bucket
  key         = "lambda/topic-bootstrap.zip"
  source      = var.package_file
  source_hash = filebase64sha256(var.package_file)
  kms_key_id  = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by Terraform only; a failure fails the apply, there is no async event to dead-letter.
  #checkov:skip=CKV_AWS_272:Packages are built from the repository by CI (scripts/build_lambdas.py); no AWS Signer profile is provisioned.
  function_name     = local.function_name
  description       = "Creates the AIPX topic catalogue on MSK (aipx.kafka.admin)."
  role              = aws_iam_role.this.arn
  runtime           = var.runtime
  handler           = "aipx_topic_bootstrap.handler"
  s3_bucket         = aws_s3_object.package.bucket
  s3_key            = aws_s3_object.package.key
  s3_object_version = aws_s3_object.package.version_id
  source_code_hash  = aws_s3_object.package.source_hash
  memory_size       = 256
  timeout           = 300
  architectures     = ["x86_64"]
  kms_key_arn       = var.kms_key_arn

  reserved_concurrent_executions = 1

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [var.security_group_id]
  }

  environment {
    variables = {
      AIPX_KAFKA_BOOTSTRAP_SERVERS = var.bootstrap_brokers
      AIPX_KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
      AIPX_KAFKA_SASL_MECHANISM    = "OAUTHBEARER"
      AIPX_LOG_FORMAT              = "json"
    }
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  depends_on = [aws_iam_role_policy.kafka_admin, aws_iam_role_policy_attachment.vpc]
}

resource "aws_lambda_invocation" "ensure_topics" {
  function_name = aws_lambda_function.this.function_name
  input         = jsonencode({ topics = var.topics })

  triggers = {
    catalogue = sha256(jsonencode(var.topics))
    package   = aws_lambda_function.this.source_code_hash
  }
}
