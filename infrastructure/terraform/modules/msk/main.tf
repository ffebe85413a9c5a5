# MSK cluster: TLS in transit (client-broker and in-cluster), IAM client authentication only,
# encryption at rest with the environment key, broker logs to CloudWatch, auto topic creation off.
#
# The topic set is read from the topic catalogue (libs/aipx/src/aipx/catalog/topics.yaml) - the same
# file the code and the local stack read - and handed to the kafka_topics module, which creates the
# topics on the cluster. Provider 5.x has no MSK topic resource; see ../kafka_topics.

locals {
  catalog  = yamldecode(file(var.topics_file))
  defaults = local.catalog.defaults
  dead     = local.catalog.dead_letter

  main_topics = {
    for t in local.catalog.topics : t.name => {
      partitions         = t.partitions
      replication_factor = try(t.replication_factor, local.defaults.replication_factor)
      config = merge(
        {
          "retention.ms"        = tostring(t.retention_ms)
          "cleanup.policy"      = try(t.cleanup_policy, local.defaults.cleanup_policy)
          "min.insync.replicas" = tostring(try(t.min_insync_replicas, local.defaults.min_insync_replicas))
        },
        { for k, v in try(t.config, {}) : k => tostring(v) },
      )
    }
  }

  # A DLQ keeps its topic's replication and configs (less max.message.bytes: a dead letter carries
  # error headers on top of the original bytes), with the dead_letter partitions and retention.
  dlq_topics = {
    for t in local.catalog.topics : t.dlq => {
      partitions         = local.dead.partitions
      replication_factor = local.main_topics[t.name].replication_factor
      config = merge(
        { for k, v in local.main_topics[t.name].config : k => v if k != "max.message.bytes" },
        { "retention.ms" = tostring(local.dead.retention_ms) },
      )
    } if try(t.dlq, null) != null
  }

  topics = merge(local.main_topics, local.dlq_topics)

  max_replication_factor = max([for t in values(local.topics) : t.replication_factor]...)
}

resource "aws_cloudwatch_log_group" "broker" {
  #checkov:skip=CKV_AWS_338:Retention is the per-environment log_retention_days (dev 14 d to keep cost down, production 365 d).
  name              = "/aipx/${var.name}/msk-brokers"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_msk_configuration" "this" {
  name           = "${var.name}-kafka"
  kafka_versions = [var.kafka_version]
  description    = "AIPX broker settings: topics only from the catalogue, durable writes."

  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=${local.defaults.replication_factor}
    min.insync.replicas=${local.defaults.min_insync_replicas}
    unclean.leader.election.enable=false
    num.partitions=3
  PROPERTIES

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = var.enhanced_monitoring

  broker_node_group_info {
    instance_type   = var.instance_type
    client_subnets  = var.subnet_ids
    security_groups = [var.security_group_id]

    storage_info {
      ebs_storage_info {
        volume_size = var.ebs_volume_size
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  client_authentication {
    unauthenticated = false

    sasl {
      iam   = true
      scram = false
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.broker.name
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.broker_count % length(var.subnet_ids) == 0
      error_message = "The MSK broker count must be a multiple of the number of client subnets (AZs)."
    }

    precondition {
      condition     = var.broker_count >= local.max_replication_factor
      error_message = "The MSK broker count must be at least the largest replication_factor in topics.yaml."
    }
  }
}
