//! What operators read and do: failed orders, the dead-letter queue, workflow
//! executions, the probes and the alert rules.

use serde::Serialize;
use utoipa::ToSchema;

/// A row of the failed-orders table, recorded once per dead letter.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedOrder {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub order_id: String,
    pub reason: String,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub failed_at: String,
    /// The order as submitted.
    #[schema(value_type = Object)]
    pub order: serde_json::Value,
}

impl From<&dofs_core::FailedOrder> for FailedOrder {
    fn from(f: &dofs_core::FailedOrder) -> FailedOrder {
        FailedOrder {
            order_id: f.order_id.to_string(),
            reason: f.reason.clone(),
            attempts: f.attempts,
            failed_at: f.failed_at.to_string(),
            order: f.order.clone(),
        }
    }
}

/// A page of the failed-orders table, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedOrderPage {
    pub items: Vec<FailedOrder>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A message in the dead-letter queue, awaiting an operator.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub message_id: String,
    /// Null when the message names no order.
    #[schema(required = true)]
    pub order_id: Option<String>,
    /// How many times the message was received.
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub sent_at: String,
    #[schema(format = DateTime)]
    pub dead_at: String,
    /// The order's last failure, when known.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// A page of dead letters, oldest first, and the DLQ depth.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Dead letters awaiting an operator.
    pub depth: u64,
}

/// How many dead letters went back on the orders queue, and whether more remain.
#[derive(Serialize, ToSchema)]
pub struct Redriven {
    /// Dead letters this request moved back on the orders queue.
    pub moved: u64,
    /// True when the request stopped at its time limit with dead letters left
    /// that were there when it began: send it again to go on. Each dead letter
    /// is moved by exactly one request.
    pub more: bool,
}

impl From<dofs_core::ports::DlqProgress> for Redriven {
    fn from(p: dofs_core::ports::DlqProgress) -> Redriven {
        Redriven {
            moved: p.count,
            more: p.more,
        }
    }
}

/// How many dead letters were acknowledged, and whether more remain.
#[derive(Serialize, ToSchema)]
pub struct Purged {
    /// Dead letters this request acknowledged.
    pub purged: u64,
    /// True when the request stopped at its time limit with dead letters left
    /// that were there when it began: send it again to go on.
    pub more: bool,
}

impl From<dofs_core::ports::DlqProgress> for Purged {
    fn from(p: dofs_core::ports::DlqProgress) -> Purged {
        Purged {
            purged: p.count,
            more: p.more,
        }
    }
}

/// Where a workflow execution is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
}

/// A workflow execution and its state-by-state history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub execution_arn: String,
    /// As the execution log reports it (Step Functions' own names on AWS).
    #[schema(value_type = ExecutionStatus)]
    pub status: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// Null until the execution succeeded.
    #[schema(value_type = Option<Object>, required = true)]
    pub output: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime, required = true)]
    pub stopped_at: Option<String>,
    /// Oldest first; a cancelled order's ends with `OrderCancelled`.
    pub events: Vec<ExecutionEvent>,
}

impl From<dofs_core::ports::Execution> for Execution {
    fn from(e: dofs_core::ports::Execution) -> Execution {
        Execution {
            execution_arn: e.arn,
            status: e.status,
            input: e.input,
            output: e.output,
            started_at: e.started_at.to_string(),
            stopped_at: e.stopped_at.map(|t| t.to_string()),
            events: e.events.into_iter().map(ExecutionEvent::from).collect(),
        }
    }
}

/// The kinds of history events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum EventType {
    ExecutionStarted,
    StateEntered,
    TaskScheduled,
    TaskSucceeded,
    TaskFailed,
    TaskRetryScheduled,
    StateExited,
    ExecutionSucceeded,
    ExecutionFailed,
    /// The order was cancelled (after the workflow ended, when it was queued).
    OrderCancelled,
}

impl From<dofs_core::history::EventKind> for EventType {
    fn from(kind: dofs_core::history::EventKind) -> EventType {
        use dofs_core::history::EventKind as K;
        match kind {
            K::ExecutionStarted => EventType::ExecutionStarted,
            K::StateEntered => EventType::StateEntered,
            K::TaskScheduled => EventType::TaskScheduled,
            K::TaskSucceeded => EventType::TaskSucceeded,
            K::TaskFailed => EventType::TaskFailed,
            K::TaskRetryScheduled => EventType::TaskRetryScheduled,
            K::StateExited => EventType::StateExited,
            K::ExecutionSucceeded => EventType::ExecutionSucceeded,
            K::ExecutionFailed => EventType::ExecutionFailed,
            K::OrderCancelled => EventType::OrderCancelled,
        }
    }
}

/// One entry of an execution's history.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ExecutionEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// The state it happened in; absent for events outside any state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Kind-specific data: inputs, outputs, errors, the attempt or retry number, a cancel's reason.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<dofs_core::history::ExecutionEvent> for ExecutionEvent {
    fn from(e: dofs_core::history::ExecutionEvent) -> ExecutionEvent {
        ExecutionEvent {
            kind: e.kind.into(),
            timestamp: e.timestamp.to_string(),
            state: e.state,
            details: e.details,
        }
    }
}

/// Liveness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Readiness: `ready`, or `not ready` with the reason.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Readiness {
    pub fn ready() -> Readiness {
        Readiness {
            status: "ready".into(),
            reason: None,
        }
    }

    pub fn not_ready(reason: impl Into<String>) -> Readiness {
        Readiness {
            status: "not ready".into(),
            reason: Some(reason.into()),
        }
    }
}

/// The alert rules.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertList {
    pub alerts: Vec<Alert>,
    /// How many rules are firing.
    pub firing: u64,
    /// The last evaluation; null before the first.
    #[schema(format = DateTime, required = true)]
    pub evaluated_at: Option<String>,
}

/// One alert rule and its state.
#[derive(Serialize, ToSchema)]
pub struct Alert {
    #[schema(example = "dlq_depth")]
    pub name: String,
    /// `ok` or `firing`.
    #[schema(pattern = "^(ok|firing)$")]
    pub state: String,
    /// When the rule entered its state.
    #[schema(format = DateTime)]
    pub since: String,
    /// The last value measured; null before the first evaluation.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub description: Option<String>,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_core::history::EventKind;

    #[test]
    fn history_events_answer_the_json_the_domain_writes() {
        for kind in EventKind::ALL {
            for state in [None, Some("Validate Order".to_owned())] {
                let event = dofs_core::history::ExecutionEvent {
                    kind,
                    timestamp: dofs_core::Timestamp(1_795_874_400_120),
                    state,
                    details: serde_json::json!({"input": {"n": 1}}),
                };
                let domain = serde_json::to_string(&event).expect("json");
                let wire = serde_json::to_string(&ExecutionEvent::from(event)).expect("json");
                assert_eq!(wire, domain);
            }
        }
    }
}
