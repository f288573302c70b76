variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts the tables."
  type        = string
}

variable "point_in_time_recovery" {
  description = "Continuous backups (35 days of point-in-time restore). On in staging and prod."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse DeleteTable until switched off. On in staging and prod, off in dev so dev can be destroyed."
  type        = bool
  default     = true
}
