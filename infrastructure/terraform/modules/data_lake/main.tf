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

# --- Glue Data Catalog: one table per topic over the lake, with partition projection -------------------
# Athena (or any engine using the Glue catalogue) queries the lake without crawlers or partition loading:
# the partitions are computed from the recorder's layout (aipx_recorder.layout),
#   s3://<bucket>/<prefix>topic=<topic>/date=YYYY-MM-DD/hour=HH/[symbol=<symbol>/]*.parquet
# and the columns are the recorder's Parquet schema of each topic's message, generated from the code into
# lake_tables.json (scripts/gen_lake_catalog.py; tests/infrastructure check it is fresh).

locals {
  lake_tables = jsondecode(file(var.tables_file != "" ? var.tables_file : "${path.module}/lake_tables.json"))
  # Glue names: lower case, letters, digits and underscores.
  glue_database = replace(lower("${var.name}_lake"), "-", "_")
  table_names   = { for topic, _ in local.lake_tables : topic => replace(topic, "-", "_") }
  lake_prefix   = "s3://${var.name}-data-lake-${var.account_id}/${var.lake_prefix}"
  symbol_level  = var.partition_by_symbol ? "/symbol=$${symbol}" : ""
  projection = {
    "projection.enabled"            = "true"
    "projection.date.type"          = "date"
    "projection.date.format"        = "yyyy-MM-dd"
    "projection.date.range"         = "${var.projection_start_date},NOW"
    "projection.date.interval"      = "1"
    "projection.date.interval.unit" = "DAYS"
    "projection.hour.type"          = "integer"
    "projection.hour.range"         = "0,23"
    "projection.hour.digits"        = "2"
  }
  symbol_projection = var.partition_by_symbol ? { "projection.symbol.type" = "injected" } : {}
  locations = {
    for topic, _ in local.lake_tables : topic => {
      root     = "${local.lake_prefix}topic=${topic}/"
      template = "${local.lake_prefix}topic=${topic}/date=$${date}/hour=$${hour}${local.symbol_level}/"
    }
  }
}

resource "aws_glue_catalog_database" "lake" {
  name        = local.glue_database
  description = "AIPX data lake: one table per Kafka topic, written by the recorder function."
}

resource "aws_glue_catalog_table" "topic" {
  for_each = local.lake_tables

  name          = local.table_names[each.key]
  database_name = aws_glue_catalog_database.lake.name
  description   = "Topic ${each.key} as recorded in the data lake (Parquet, zstd)."
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(local.projection, local.symbol_projection, {
    EXTERNAL                    = "TRUE"
    classification              = "parquet"
    "parquet.compression"       = "ZSTD"
    "storage.location.template" = local.locations[each.key].template
  })

  partition_keys {
    name = "date"
    type = "string"
  }

  partition_keys {
    name = "hour"
    type = "int"
  }

  dynamic "partition_keys" {
    for_each = var.partition_by_symbol ? ["symbol"] : []
    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = local.locations[each.key].root
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters            = { "serialization.format" = "1" }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}
