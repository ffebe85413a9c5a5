output "function_arns" {
  description = "Function -> ARN."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "function_names" {
  description = "Function -> deployed function name."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "function_urls" {
  description = "Function -> function URL (functions with function_url: true)."
  value       = { for k, u in aws_lambda_function_url.this : k => u.function_url }
}

output "event_source_mappings" {
  description = "<function>-<topic> -> mapping UUID, topic and consumer group."
  value = {
    for k, m in aws_lambda_event_source_mapping.msk : k => {
      uuid           = m.uuid
      topic          = local.mappings[k].topic
      consumer_group = local.mappings[k].consumer_group
    }
  }
}
