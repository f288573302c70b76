# The EventBridge bus of the order events (CONTRACT section 9), and an optional archive.
#
# Every status change is written to the order_events table in the change's own DynamoDB
# transaction (the outbox); dlq_processor, which runs every minute, publishes the events
# not yet published to this bus and marks them (crates/aws/src/events/publish.rs). So an
# event reaches the bus within about a minute of its change, at least once: consumers
# de-duplicate by detail.eventId and order one order's events by it.
#
# Each entry: source "dofs", detail-type the event type ("order.fulfilled", ...), detail
# the event JSON ({"eventId", "type", "orderId", "status", "attempts", "occurredAt",
# "order"}). Users route them with their own rules and targets on this bus.
#
# The archive, when archive_retention_days is set, keeps the bus's DOFS events so they
# can be replayed to the bus (for example to a target added later).

resource "aws_cloudwatch_event_bus" "orders" {
  name = "${var.name_prefix}-order-events"
  tags = { Name = "${var.name_prefix}-order-events" }
}

resource "aws_cloudwatch_event_archive" "orders" {
  count            = var.archive_retention_days == null ? 0 : 1
  name             = "${var.name_prefix}-order-events"
  description      = "DOFS order events of ${var.name_prefix}, kept ${var.archive_retention_days} days for replay."
  event_source_arn = aws_cloudwatch_event_bus.orders.arn
  retention_days   = var.archive_retention_days
  event_pattern    = jsonencode({ source = ["dofs"] })
}
