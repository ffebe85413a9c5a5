variable "name" {
  description = "Name prefix (aipx-<env>)."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "oms_allowed_cidrs" {
  description = "Private CIDRs allowed to reach the OMS load balancer on 443."
  type        = list(string)
  default     = []
}
