variable "aws_region" {
  description = "AWS region whose API Gateway account setting is managed."
  type        = string
  default     = "us-east-1"
}

variable "project_name" {
  description = "Project name, first part of the role's name."
  type        = string
  default     = "dofs"
}

variable "aws_endpoint_url" {
  description = "Send every AWS call to this endpoint (an emulator such as moto); null for real AWS."
  type        = string
  default     = null
}
