variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "archive_retention_days" {
  description = "Keep the bus's DOFS events this many days in an archive, for replay; null: no archive. 0 would keep them forever, so it is refused."
  type        = number
  default     = null
  validation {
    condition     = var.archive_retention_days == null || try(var.archive_retention_days >= 1 && var.archive_retention_days <= 3650 && floor(var.archive_retention_days) == var.archive_retention_days, false)
    error_message = "archive_retention_days must be null (no archive) or a whole number of days from 1 to 3650."
  }
}
