output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_names" {
  description = "Service key -> ECS service name."
  value       = merge({ for k, s in aws_ecs_service.this : k => s.name }, { oms = aws_ecs_service.oms.name })
}

output "oms_grpc_endpoint" {
  description = "DNS name of the OMS gRPC load balancer (HTTPS/443)."
  value       = aws_lb.oms.dns_name
}

output "alb_arn_suffix" {
  description = "ARN suffix of the OMS load balancer (CloudWatch dimension)."
  value       = aws_lb.oms.arn_suffix
}

output "oms_target_group_arn_suffix" {
  description = "ARN suffix of the OMS target group (CloudWatch dimension)."
  value       = aws_lb_target_group.oms_grpc.arn_suffix
}

output "task_role_arns" {
  description = "Service key -> task role ARN."
  value       = { for k, r in aws_iam_role.task : k => r.arn }
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the services' application metrics (the metrics sidecar)."
  value       = local.metrics_namespace
}
