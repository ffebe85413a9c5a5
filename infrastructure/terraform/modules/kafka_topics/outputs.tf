output "function_name" {
  description = "Name of the topic bootstrap function."
  value       = aws_lambda_function.this.function_name
}

output "result" {
  description = "What the last bootstrap run reported (created / updated / present topics)."
  value       = jsondecode(aws_lambda_invocation.ensure_topics.result)
}
