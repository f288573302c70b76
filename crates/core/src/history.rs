//! A workflow execution's history, as both shapes show it: the embedded
//! engine's run and Step Functions' history become the same
//! [`ExecutionEvent`]s, and both end a cancelled order's history with the
//! one [`ExecutionEvent::order_cancelled`].
//!
//! The serde form is the JSON `GET /executions/{id}` answers (`dofs_wire`
//! describes it) and the embedded shape stores (table `executions`), so the
//! names below are stable.

use crate::{Order, OrderStatus, Timestamp};
use serde::{Deserialize, Serialize};

/// What happened. The workflow's own kinds are the embedded engine's
/// (`dofs_workflow::EventKind`), which Step Functions' event types map onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// `{"input"}`: the execution's input.
    ExecutionStarted,
    /// `{"input"}`: the state's input.
    StateEntered,
    /// `{"resource", ...}`: a Task is about to be invoked.
    TaskScheduled,
    /// `{"resource", "output"}`.
    TaskSucceeded,
    /// `{"resource", "error", "cause", ...}`.
    TaskFailed,
    /// `{"error", ...}`: the wait before a Task's next attempt.
    TaskRetryScheduled,
    /// `{"output", ...}`.
    StateExited,
    /// `{"output"}`.
    ExecutionSucceeded,
    /// `{"error", "cause"}`; `state` is where it failed, if in a state.
    ExecutionFailed,
    /// `{"orderId", "reason"}`: the order was cancelled. Not the workflow's:
    /// the workflow ends when the order is queued, so a cancel comes after.
    OrderCancelled,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::ExecutionStarted,
        EventKind::StateEntered,
        EventKind::TaskScheduled,
        EventKind::TaskSucceeded,
        EventKind::TaskFailed,
        EventKind::TaskRetryScheduled,
        EventKind::StateExited,
        EventKind::ExecutionSucceeded,
        EventKind::ExecutionFailed,
        EventKind::OrderCancelled,
    ];
}

/// One entry of an execution's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    #[serde(deserialize_with = "crate::time::deserialize_printed")]
    pub timestamp: Timestamp,
    /// The state it happened in; `None` (and absent from the JSON) for
    /// events outside any state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Kind-specific data (see [`EventKind`]).
    #[serde(default)]
    pub details: serde_json::Value,
}

impl ExecutionEvent {
    /// The event that ends `order`'s history once it is `CANCELLED`: when it
    /// was cancelled and why. `None` for an order in any other status.
    pub fn order_cancelled(order: &Order) -> Option<ExecutionEvent> {
        (order.status == OrderStatus::Cancelled).then(|| ExecutionEvent {
            kind: EventKind::OrderCancelled,
            timestamp: order.updated_at,
            state: None,
            details: serde_json::json!({
                "orderId": order.id.to_string(),
                "reason": order.cancel_reason,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderId;
    use serde_json::json;

    fn order() -> Order {
        let new = crate::validation::decode_order(
            br#"{"customerId": "CUST-1001", "productId": "PROD-2001", "quantity": 2, "price": 29.99}"#,
            &crate::Limits::default(),
        )
        .expect("order");
        Order::new(OrderId::generate(), new, "arn".into(), Timestamp(1_000))
    }

    #[test]
    fn a_cancelled_order_ends_its_history_with_the_cancel_and_its_reason() {
        let mut order = order();
        assert_eq!(ExecutionEvent::order_cancelled(&order), None, "PENDING");
        order.status = OrderStatus::Cancelled;
        order.updated_at = Timestamp(2_000);
        order.cancel_reason = Some("customer withdrew".into());
        let event = ExecutionEvent::order_cancelled(&order).expect("an event");
        assert_eq!(
            serde_json::to_string(&event).expect("json"),
            json!({
                "type": "OrderCancelled",
                "timestamp": "1970-01-01T00:00:02.000Z",
                "details": {"orderId": order.id.to_string(), "reason": "customer withdrew"},
            })
            .to_string()
        );
        order.cancel_reason = None;
        let event = ExecutionEvent::order_cancelled(&order).expect("an event");
        assert_eq!(event.details["reason"], serde_json::Value::Null);
    }

    #[test]
    fn events_print_as_the_engine_wrote_them_and_read_back() {
        let stored = r#"{"type":"StateEntered","timestamp":"2026-12-04T15:06:29.289Z","state":"Validate Order","details":{"input":{"n":1}}}"#;
        let event: ExecutionEvent = serde_json::from_str(stored).expect("read");
        assert_eq!(event.kind, EventKind::StateEntered);
        assert_eq!(event.timestamp.to_string(), "2026-12-04T15:06:29.289Z");
        assert_eq!(serde_json::to_string(&event).expect("json"), stored);
        for kind in EventKind::ALL {
            let name = serde_json::to_value(kind).expect("json");
            assert_eq!(serde_json::from_value::<EventKind>(name).ok(), Some(kind));
        }
    }
}
