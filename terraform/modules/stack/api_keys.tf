# The API keys of the usage plan. They live here and not in the api_gateway module
# because api_handler must know which keys are operator keys: API Gateway only checks
# that a request on a keyed route carries some valid key, and passes that key's id
# (requestContext.identity.apiKeyId) to api_handler, which answers 403 on the operator
# routes (retry, redrive, purge) unless the id is one of DOFS_OPERATOR_API_KEY_IDS.
# Key ids are not secrets; no key value or digest is given to the function.

resource "aws_api_gateway_api_key" "this" {
  for_each    = toset(var.api_key_names)
  name        = "${local.name_prefix}-api-${var.environment}-${each.key}"
  description = "DOFS ${var.environment} API key: ${each.key}${contains(var.operator_api_key_names, each.key) ? " (operator)" : ""}"
  enabled     = true

  lifecycle {
    precondition {
      condition     = alltrue([for n in var.operator_api_key_names : contains(var.api_key_names, n)])
      error_message = "every name in operator_api_key_names must also be in api_key_names."
    }
  }
}

# The keys used to be created by the api_gateway module: keep them (and their values).
moved {
  from = module.api_gateway.aws_api_gateway_api_key.this
  to   = aws_api_gateway_api_key.this
}

locals {
  api_key_ids          = { for k, v in aws_api_gateway_api_key.this : k => v.id }
  operator_api_key_ids = [for n in var.operator_api_key_names : aws_api_gateway_api_key.this[n].id]
}
