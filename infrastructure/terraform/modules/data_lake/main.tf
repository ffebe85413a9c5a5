# Buckets of an environment:
#   <name>-data-lake-<account>     Parquet (zstd) written by the recorder function; SSE-KMS, versioned,
#                                  moved to cheaper storage as it ages, events to EventBridge.
#   <name>-esm-failures-<account>  Batches the MSK event source mappings gave up on (on-failure
#                                  destination); kept as long as the topics' DLQs (14 days).
#   <name>-artifacts-<account>     Lambda deployment packages (zips can exceed the 50 MB direct upload).
#   <name>-logs-<account>          S3 server access logs and the OMS load balancer's access logs.

data "aws_elb_service_account" "this" {}

locals {
  logs_bucket = "${var.name}-logs-${var.account_id}"
}

data "aws_iam_policy_document" "log_delivery" {
  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["arn:aws:s3:::${local.logs_bucket}/s3/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }

  statement {
    sid       = "LoadBalancerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["arn:aws:s3:::${local.logs_bucket}/alb/AWSLogs/${var.account_id}/*"]

    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this.arn]
    }
  }
}

module "logs" {
  source = "../s3_bucket"

  bucket_name = local.logs_bucket
  purpose     = "access-logs"
  # S3 server access logs and ALB access logs can only be delivered to SSE-S3 buckets.
  kms_key_arn       = null
  extra_policy_json = data.aws_iam_policy_document.log_delivery.json
  lifecycle_rules = [{
    id                         = "expire-logs"
    prefix                     = ""
    transitions                = [{ days = 30, storage_class = "STANDARD_IA" }]
    expiration_days            = 365
    noncurrent_expiration_days = 7
  }]
}

module "data_lake" {
  source = "../s3_bucket"

  bucket_name    = "${var.name}-data-lake-${var.account_id}"
  purpose        = "data-lake"
  kms_key_arn    = var.kms_key_arn
  logging_bucket = module.logs.id
  eventbridge    = true
  lifecycle_rules = [{
    id     = "tiering"
    prefix = ""
    transitions = [
      { days = var.infrequent_access_after_days, storage_class = "STANDARD_IA" },
      { days = var.glacier_after_days, storage_class = "GLACIER_IR" },
    ]
    noncurrent_expiration_days = 30
  }]
}

module "esm_failures" {
  source = "../s3_bucket"

  bucket_name    = "${var.name}-esm-failures-${var.account_id}"
  purpose        = "event-source-mapping-failures"
  kms_key_arn    = var.kms_key_arn
  logging_bucket = module.logs.id
  lifecycle_rules = [{
    id                         = "expire-failures"
    prefix                     = ""
    transitions                = []
    expiration_days            = 14
    noncurrent_expiration_days = 1
  }]
}

module "artifacts" {
  source = "../s3_bucket"

  bucket_name    = "${var.name}-artifacts-${var.account_id}"
  purpose        = "deployment-artifacts"
  kms_key_arn    = var.kms_key_arn
  logging_bucket = module.logs.id
  lifecycle_rules = [{
    id                         = "expire-old-packages"
    prefix                     = ""
    transitions                = []
    noncurrent_expiration_days = 30
  }]
}
