# DOFS tables: orders, failed_orders (the dead letters' history), idempotency and
# order_events (the outbox of order events, CONTRACT section 9).
# All on-demand (PAY_PER_REQUEST: no capacity to plan, nothing billed while idle),
# encrypted with the environment's KMS key, point-in-time recovery and deletion
# protection per environment (off in dev so that dev can be destroyed).
#
# The key schema is fixed by the Lambda code (crates/aws):
#   orders         orderId (S); GSI status-createdAt (status S, createdAt S);
#                  GSI all-createdAt (listPartition S, createdAt S) for newest-first listing
#   failed_orders  orderId (S); GSI all-failedAt (listPartition S, failedAt S)
#   idempotency    idempotencyKey (S); TTL attribute expiresAt (epoch seconds)
#   order_events   feed (S, "<UTC day>#<shard>") + eventId (S, "<ms>-<orderId>-<seq>");
#                  GSI unpublished-eventId (publishShard S, eventId S): sparse, the events
#                  not yet on the EventBridge bus; GSI order-eventId (orderId S, eventId S):
#                  one order's events (GET /events?orderId=); TTL attribute expiresAt
#                  (events.max_age_s after the change, DOFS_EVENTS_MAX_AGE_S)

resource "aws_dynamodb_table" "orders" {
  #checkov:skip=CKV_AWS_28:Point-in-time recovery is a per-environment variable: on in staging and prod, off in dev so that dev is cheap and can be destroyed.
  name                        = "${var.name_prefix}-orders"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "orderId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "orderId"
    type = "S"
  }
  attribute {
    name = "status"
    type = "S"
  }
  attribute {
    name = "createdAt"
    type = "S"
  }
  attribute {
    name = "listPartition"
    type = "S"
  }

  global_secondary_index {
    name            = "status-createdAt"
    hash_key        = "status"
    range_key       = "createdAt"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "all-createdAt"
    hash_key        = "listPartition"
    range_key       = "createdAt"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = { Name = "${var.name_prefix}-orders" }
}

resource "aws_dynamodb_table" "failed_orders" {
  #checkov:skip=CKV_AWS_28:Point-in-time recovery is a per-environment variable: on in staging and prod, off in dev so that dev is cheap and can be destroyed.
  name                        = "${var.name_prefix}-failed-orders"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "orderId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "orderId"
    type = "S"
  }
  attribute {
    name = "listPartition"
    type = "S"
  }
  attribute {
    name = "failedAt"
    type = "S"
  }

  global_secondary_index {
    name            = "all-failedAt"
    hash_key        = "listPartition"
    range_key       = "failedAt"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = { Name = "${var.name_prefix}-failed-orders" }
}

resource "aws_dynamodb_table" "idempotency" {
  #checkov:skip=CKV_AWS_28:Point-in-time recovery is a per-environment variable: on in staging and prod, off in dev so that dev is cheap and can be destroyed.
  name                        = "${var.name_prefix}-idempotency"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "idempotencyKey"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "idempotencyKey"
    type = "S"
  }

  # Idempotency records live 24 hours (CONTRACT section 1); DynamoDB deletes them
  # some time after expiresAt, and the code treats an expired record as absent.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = { Name = "${var.name_prefix}-idempotency" }
}

resource "aws_dynamodb_table" "order_events" {
  #checkov:skip=CKV_AWS_28:Point-in-time recovery is a per-environment variable: on in staging and prod, off in dev so that dev is cheap and can be destroyed.
  name                        = "${var.name_prefix}-order-events"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "feed"
  range_key                   = "eventId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "feed"
    type = "S"
  }
  attribute {
    name = "eventId"
    type = "S"
  }
  attribute {
    name = "publishShard"
    type = "S"
  }
  attribute {
    name = "orderId"
    type = "S"
  }

  # Every item is written with publishShard, which the publisher removes once
  # EventBridge accepted the event: the index holds only what is left to publish.
  # ALL: the publisher sends the whole event from the index.
  global_secondary_index {
    name            = "unpublished-eventId"
    hash_key        = "publishShard"
    range_key       = "eventId"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "order-eventId"
    hash_key        = "orderId"
    range_key       = "eventId"
    projection_type = "ALL"
  }

  # Events are kept events.max_age_s; DynamoDB deletes them some time after expiresAt,
  # and the feed hides expired items itself.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = { Name = "${var.name_prefix}-order-events" }
}
