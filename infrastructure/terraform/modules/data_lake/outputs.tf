output "bucket_name" {
  description = "Data lake bucket name."
  value       = module.data_lake.id
}

output "bucket_arn" {
  description = "Data lake bucket ARN."
  value       = module.data_lake.arn
}

output "esm_failures_bucket_arn" {
  description = "Bucket receiving batches the MSK event source mappings gave up on."
  value       = module.esm_failures.arn
}

output "logs_bucket_name" {
  description = "Access log bucket name."
  value       = module.logs.id
}

output "artifacts_bucket_name" {
  description = "Bucket holding the Lambda deployment packages."
  value       = module.artifacts.id
}

output "glue_database_name" {
  description = "Glue database of the lake tables (one per topic, partition projection on: Athena needs no crawler)."
  value       = aws_glue_catalog_database.lake.name
}

output "glue_table_names" {
  description = "Glue table per topic: topic name -> table name."
  value       = { for topic, table in aws_glue_catalog_table.topic : topic => table.name }
}
