terraform {
  # >= 1.9: variable validations refer to other variables (kafka_broker_count vs az_count).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.80+: provisioned_poller_config on Kafka event source mappings. Stays below 6.0.
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = "aipx"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
