//! The names of the metrics DOFS records (CONTRACT.md section 3 and the
//! additions the README lists), in one place: the server's catalogue
//! describes them, the embedded workers and the Lambdas record by them.

/// Counter: orders answered 202 (replays excluded).
pub const ORDERS_ACCEPTED: &str = "dofs_orders_accepted_total";
/// Counter by `reason` (the error code of the answer).
pub const ORDERS_REJECTED: &str = "dofs_orders_rejected_total";
/// Gauge by `status`, read from the store at scrape time.
pub const ORDERS: &str = "dofs_orders";
/// Counter by `outcome` (`success`, `failure`).
pub const FULFILLMENT_ATTEMPTS: &str = "dofs_fulfillment_attempts_total";
/// Gauge by `queue` (`orders`, `dlq`), read from the queue at scrape time.
pub const QUEUE_MESSAGES: &str = "dofs_queue_messages";
/// Gauge by `queue`: the age of the oldest message, 0 when the queue is empty.
pub const QUEUE_OLDEST_AGE: &str = "dofs_queue_oldest_message_age_seconds";
/// Counter by `status` (`SUCCEEDED`, `FAILED`).
pub const WORKFLOW_EXECUTIONS: &str = "dofs_workflow_executions_total";
/// Counter by `method`, `route`, `status`.
pub const HTTP_REQUESTS: &str = "dofs_http_requests_total";
/// Histogram by `method`, `route`.
pub const HTTP_DURATION: &str = "dofs_http_request_duration_seconds";
/// Gauge by `alert`: 1 while the rule fires.
pub const ALERTS_FIRING: &str = "dofs_alerts_firing";
/// Histogram by `status` (`FULFILLED`, `FAILED`): accept to terminal status.
pub const TIME_TO_TERMINAL: &str = "dofs_order_time_to_terminal_seconds";
/// Counter by `outcome` (`delivered`, `failed`, `dropped`): alert webhook deliveries.
pub const ALERT_NOTIFICATIONS: &str = "dofs_alert_notifications_total";
/// Counter by `reason` (`rate_limit`, `in_flight`, `backlog`): requests refused 429.
pub const OVERLOAD_REJECTIONS: &str = "dofs_overload_rejections_total";
/// Counter by `outcome` (`success`, `failure`, `dropped`): order event webhook deliveries.
pub const EVENTS_DELIVERED: &str = "dofs_events_delivered_total";
/// Gauge by `webhook` (its place in `events.webhook_urls`, from 0): events not yet delivered.
pub const EVENTS_PENDING: &str = "dofs_events_pending";
/// Gauge: 1 while the store's last commit reached the disk, 0 after one that
/// could not (a full disk); set by the embedded store's writer.
pub const STORAGE_WRITABLE: &str = "dofs_storage_writable";
