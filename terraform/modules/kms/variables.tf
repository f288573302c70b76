variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Days a deleted key stays recoverable (7 to 30)."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be from 7 to 30."
  }
}
