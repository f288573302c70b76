//! The workflow on Step Functions: [`StepFunctionsWorkflowStarter`] starts the
//! order workflow (a Standard state machine) and [`StepFunctionsExecutionLog`]
//! reads executions back.
//!
//! **One execution per order.** The execution's name is the order id, so a
//! retried request can never start a second execution: Step Functions answers
//! `ExecutionAlreadyExists`, which is taken as success (the ARN is the same).
//!
//! **Idempotency keys** live in the idempotency table: `idempotencyKey`, the
//! body's `fingerprint`, the first `orderId`, `createdAtMs` and `expiresAt`
//! (epoch seconds, the table's TTL attribute; an expired record is treated as
//! absent, because DynamoDB deletes expired items only eventually). The
//! record is claimed with a conditional put before the execution starts; a
//! replay starts the execution again under the same name, which heals a
//! request that crashed between the two.

use crate::error::{
    condition_failed, execution_already_exists, execution_does_not_exist, invalid_execution_arn,
    port_error,
};
use crate::store::{n, num_attr, s, str_attr};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use dofs_core::history::{EventKind, ExecutionEvent};
use dofs_core::ports::{
    Clock, ErrorKind, Execution, ExecutionLog, IdempotencyClaim, PortError, Submitted,
    WorkflowStarter,
};
use dofs_core::tasks::{self, workflow_input};
use dofs_core::{NewOrder, Order, OrderId, Timestamp};
use std::sync::Arc;

/// How long an idempotency key is remembered (CONTRACT section 1: 24 hours).
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 24 * 3600;

/// The execution ARN of `name` under `state_machine_arn`.
pub fn execution_arn_of(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// Starts order workflows on Step Functions.
#[derive(Clone)]
pub struct StepFunctionsWorkflowStarter {
    sfn: aws_sdk_sfn::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    state_machine_arn: String,
    idempotency_table: String,
    clock: Arc<dyn Clock>,
}

impl StepFunctionsWorkflowStarter {
    pub fn new(
        sfn: aws_sdk_sfn::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        state_machine_arn: impl Into<String>,
        idempotency_table: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        StepFunctionsWorkflowStarter {
            sfn,
            dynamodb,
            state_machine_arn: state_machine_arn.into(),
            idempotency_table: idempotency_table.into(),
            clock,
        }
    }

    /// Starts the execution named after the order; an existing one is fine.
    async fn start_execution(&self, order: &Order) -> Result<String, PortError> {
        let result = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(order.id.to_string())
            .input(workflow_input(order).to_string())
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.execution_arn),
            Err(e) if execution_already_exists(&e) => Ok(execution_arn_of(
                &self.state_machine_arn,
                &order.id.to_string(),
            )),
            Err(e) => Err(port_error("StartExecution", e)),
        }
    }

    /// Claims the key. `Ok(None)` when claimed now; `Ok(Some(record))` when it
    /// was claimed before (and has not expired).
    async fn claim(
        &self,
        claim: &IdempotencyClaim,
        id: OrderId,
        now: Timestamp,
    ) -> Result<Option<(String, OrderId, Timestamp)>, PortError> {
        let now_secs = now.millis() / 1000;
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.idempotency_table)
            .item("idempotencyKey", s(claim.key.clone()))
            .item("fingerprint", s(claim.fingerprint.clone()))
            .item("orderId", s(id.to_string()))
            .item("createdAtMs", n(now.millis()))
            .item("expiresAt", n(now_secs + IDEMPOTENCY_WINDOW_SECS))
            .condition_expression("attribute_not_exists(idempotencyKey) OR expiresAt < :now")
            .expression_attribute_values(":now", n(now_secs))
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if condition_failed(&e) => {
                let item = self
                    .dynamodb
                    .get_item()
                    .table_name(&self.idempotency_table)
                    .key("idempotencyKey", s(claim.key.clone()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| port_error("GetItem idempotency", e))?
                    .item
                    .ok_or_else(|| {
                        PortError::new(ErrorKind::Transient, "idempotency record vanished")
                    })?;
                let first = OrderId::parse(str_attr(&item, "orderId")?)
                    .map_err(|_| crate::error::corrupt("orderId"))?;
                Ok(Some((
                    str_attr(&item, "fingerprint")?.to_owned(),
                    first,
                    Timestamp(num_attr(&item, "createdAtMs")?),
                )))
            }
            Err(e) => Err(port_error("PutItem idempotency", e)),
        }
    }

    async fn forget(&self, key: &str) {
        let result = self
            .dynamodb
            .delete_item()
            .table_name(&self.idempotency_table)
            .key("idempotencyKey", AttributeValue::S(key.to_owned()))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %port_error("DeleteItem idempotency", e), "could not release an idempotency key after a failed start");
        }
    }
}

#[async_trait]
impl WorkflowStarter for StepFunctionsWorkflowStarter {
    async fn start(
        &self,
        id: OrderId,
        order: NewOrder,
        claim: Option<IdempotencyClaim>,
        _request: Option<String>,
    ) -> Result<Submitted, PortError> {
        let now = self.clock.now();
        if let Some(claim) = &claim {
            if let Some((fingerprint, first, created)) = self.claim(claim, id, now).await? {
                if fingerprint != claim.fingerprint {
                    return Ok(Submitted::KeyReused);
                }
                // Same body: the first order. Starting again under its name is a no-op
                // if the first request got that far, and finishes its work if not.
                let arn = execution_arn_of(&self.state_machine_arn, &first.to_string());
                let replay = Order::new(first, order, arn, created);
                let arn = self.start_execution(&replay).await?;
                return Ok(Submitted::Replayed {
                    order: Order {
                        execution_arn: arn,
                        ..replay
                    },
                });
            }
        }
        let arn = execution_arn_of(&self.state_machine_arn, &id.to_string());
        let new = Order::new(id, order, arn, now);
        match self.start_execution(&new).await {
            Ok(arn) => Ok(Submitted::Started {
                order: Order {
                    execution_arn: arn,
                    ..new
                },
            }),
            Err(e) => {
                if let Some(claim) = &claim {
                    self.forget(&claim.key).await;
                }
                Err(e)
            }
        }
    }
}

/// Reads executions of the order workflow from Step Functions.
///
/// The workflow ends when the order is queued, so a later cancel is not in
/// Step Functions' history: for a `CANCELLED` order (read from `orders`)
/// the history ends with an `OrderCancelled` event, as the embedded shape's does.
#[derive(Clone)]
pub struct StepFunctionsExecutionLog {
    sfn: aws_sdk_sfn::Client,
    state_machine_arn: String,
    orders: crate::DynamoDbOrderStore,
}

impl StepFunctionsExecutionLog {
    pub fn new(
        sfn: aws_sdk_sfn::Client,
        state_machine_arn: impl Into<String>,
        orders: crate::DynamoDbOrderStore,
    ) -> Self {
        StepFunctionsExecutionLog {
            sfn,
            state_machine_arn: state_machine_arn.into(),
            orders,
        }
    }
}

fn millis(t: &aws_sdk_sfn::primitives::DateTime) -> Timestamp {
    Timestamp(t.to_millis().unwrap_or(0))
}

fn json_or_text(text: Option<&str>) -> Option<serde_json::Value> {
    text.map(|t| {
        serde_json::from_str(t).unwrap_or_else(|_| serde_json::Value::String(t.to_owned()))
    })
}

/// The history's kind (the embedded engine's names) of a Step Functions
/// history event type; `None` for event types the history does not show:
/// the steps within a task (`TaskStarted`, `TaskSubmitted`, ...) and any type
/// Step Functions adds later, which are left out rather than failing the read.
fn event_kind(sfn: &str) -> Option<EventKind> {
    Some(match sfn {
        "ExecutionStarted" => EventKind::ExecutionStarted,
        "ExecutionSucceeded" => EventKind::ExecutionSucceeded,
        "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut" => EventKind::ExecutionFailed,
        "TaskScheduled" | "LambdaFunctionScheduled" => EventKind::TaskScheduled,
        "TaskSucceeded" | "LambdaFunctionSucceeded" => EventKind::TaskSucceeded,
        "TaskFailed" | "LambdaFunctionFailed" | "TaskTimedOut" | "LambdaFunctionTimedOut" => {
            EventKind::TaskFailed
        }
        "TaskRetryScheduled" => EventKind::TaskRetryScheduled,
        t if t.ends_with("StateEntered") => EventKind::StateEntered,
        t if t.ends_with("StateExited") => EventKind::StateExited,
        _ => return None,
    })
}

/// One history event as the history shows it, with the details Step
/// Functions gives (state name, resource, error and cause, input and
/// output); `None` for the types [`event_kind`] leaves out.
fn history_event(e: &aws_sdk_sfn::types::HistoryEvent) -> Option<ExecutionEvent> {
    let kind = event_kind(e.r#type.as_str())?;
    let mut details = serde_json::Map::new();
    let mut state = None;
    if let Some(d) = &e.state_entered_event_details {
        state = Some(d.name.clone());
        details.insert("input".into(), json_or_text(d.input.as_deref()).into());
    }
    if let Some(d) = &e.state_exited_event_details {
        state = Some(d.name.clone());
        details.insert("output".into(), json_or_text(d.output.as_deref()).into());
    }
    if let Some(d) = &e.task_scheduled_event_details {
        details.insert("resource".into(), d.resource.clone().into());
    }
    if let Some(d) = &e.task_succeeded_event_details {
        details.insert("resource".into(), d.resource.clone().into());
        details.insert("output".into(), json_or_text(d.output.as_deref()).into());
    }
    if let Some(d) = &e.task_failed_event_details {
        details.insert("resource".into(), d.resource.clone().into());
        details.insert("error".into(), d.error.clone().into());
        details.insert("cause".into(), d.cause.clone().into());
    }
    if let Some(d) = &e.lambda_function_failed_event_details {
        details.insert("error".into(), d.error.clone().into());
        details.insert("cause".into(), d.cause.clone().into());
    }
    if let Some(d) = &e.execution_failed_event_details {
        details.insert("error".into(), d.error.clone().into());
        details.insert("cause".into(), d.cause.clone().into());
    }
    if let Some(d) = &e.execution_started_event_details {
        details.insert("input".into(), json_or_text(d.input.as_deref()).into());
    }
    if let Some(d) = &e.execution_succeeded_event_details {
        details.insert("output".into(), json_or_text(d.output.as_deref()).into());
    }
    Some(ExecutionEvent {
        kind,
        timestamp: millis(&e.timestamp),
        state,
        details: details.into(),
    })
}

#[async_trait]
impl ExecutionLog for StepFunctionsExecutionLog {
    async fn get(&self, id: &str) -> Result<Option<Execution>, PortError> {
        let name = dofs_core::ports::execution_id(id);
        let arn = execution_arn_of(&self.state_machine_arn, name);
        let described = match self
            .sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if execution_does_not_exist(&e) => return Ok(None),
            Err(e) if invalid_execution_arn(&e) => return Ok(None),
            Err(e) => return Err(port_error("DescribeExecution", e)),
        };
        let mut events = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .sfn
                .get_execution_history()
                .execution_arn(&arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| port_error("GetExecutionHistory", e))?;
            events.extend(out.events.iter().filter_map(history_event));
            match out.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        if let Ok(order_id) = OrderId::parse(name) {
            let order = dofs_core::ports::OrderStore::get(&self.orders, order_id).await?;
            events.extend(order.as_ref().and_then(ExecutionEvent::order_cancelled));
        }
        let status = match described.status.as_str() {
            "RUNNING" | "PENDING_REDRIVE" => "RUNNING",
            "SUCCEEDED" => "SUCCEEDED",
            _ => "FAILED",
        };
        Ok(Some(Execution {
            arn: described.execution_arn,
            status: status.to_owned(),
            input: json_or_text(described.input.as_deref()).unwrap_or(serde_json::Value::Null),
            output: json_or_text(described.output.as_deref()),
            started_at: millis(&described.start_date),
            stopped_at: described.stop_date.as_ref().map(millis),
            events,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sfn_event(kind: &str) -> aws_sdk_sfn::types::builders::HistoryEventBuilder {
        aws_sdk_sfn::types::HistoryEvent::builder()
            .id(1)
            .timestamp(aws_sdk_sfn::primitives::DateTime::from_millis(
                1_795_874_400_120,
            ))
            .r#type(aws_sdk_sfn::types::HistoryEventType::from(kind))
    }

    #[test]
    fn a_state_entered_event_shows_its_state_and_input() {
        let e = sfn_event("TaskStateEntered")
            .state_entered_event_details(
                aws_sdk_sfn::types::StateEnteredEventDetails::builder()
                    .name("Validate Order")
                    .input(r#"{"n":1}"#)
                    .build()
                    .expect("details"),
            )
            .build()
            .expect("event");
        let event = history_event(&e).expect("shown");
        assert_eq!(
            serde_json::to_string(&event).expect("json"),
            r#"{"type":"StateEntered","timestamp":"2026-11-28T14:00:00.120Z","state":"Validate Order","details":{"input":{"n":1}}}"#
        );
    }

    #[test]
    fn event_types_the_history_does_not_show_are_left_out_not_failed() {
        for kind in [
            "TaskStarted",
            "TaskSubmitted",
            "MapRunStarted",
            "SomethingNewIn2030",
        ] {
            let e = sfn_event(kind).build().expect("event");
            assert_eq!(history_event(&e), None, "{kind}");
        }
        let aborted = sfn_event("ExecutionAborted").build().expect("event");
        assert_eq!(
            history_event(&aborted).map(|e| e.kind),
            Some(EventKind::ExecutionFailed)
        );
    }

    #[test]
    fn the_execution_arn_is_the_state_machine_arn_with_the_order_id() {
        assert_eq!(
            execution_arn_of(
                "arn:aws:states:us-east-1:123456789012:stateMachine:dofs-dev-order-processing",
                "abc"
            ),
            "arn:aws:states:us-east-1:123456789012:execution:dofs-dev-order-processing:abc"
        );
    }
}

/// The order store the API reads through: the DynamoDB store, plus orders
/// whose execution has started but not yet stored them (`Store Order` runs a
/// moment after the 202). Such an order reads back as `PENDING` from its
/// execution's input, so a client can `GET` what it was just promised.
#[derive(Clone)]
pub struct AcceptedOrderStore {
    pub store: crate::DynamoDbOrderStore,
    pub sfn: aws_sdk_sfn::Client,
    pub state_machine_arn: String,
}

impl AcceptedOrderStore {
    /// `None` when no execution has this order's name; `Some(None)` when one
    /// exists but is not running or has no readable order in its input.
    async fn accepted(&self, id: OrderId) -> Result<Option<Option<Order>>, PortError> {
        let arn = execution_arn_of(&self.state_machine_arn, &id.to_string());
        let described = match self
            .sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if execution_does_not_exist(&e) => return Ok(None),
            Err(e) => return Err(port_error("DescribeExecution", e)),
        };
        if described.status.as_str() != "RUNNING" {
            return Ok(Some(None));
        }
        let input: serde_json::Value = described
            .input
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        // The order as Store Order will write it; the limits were checked at the 202.
        let unlimited = dofs_core::Limits {
            max_quantity: u32::MAX,
            max_price: dofs_core::Price::from_cents(u64::MAX),
        };
        let started = millis(&described.start_date);
        let arn = described.execution_arn;
        match tasks::order_to_store(&input, &unlimited, |_| arn, started) {
            Ok(order) if order.id == id => Ok(Some(Some(order))),
            _ => Ok(Some(None)),
        }
    }
}

#[async_trait]
impl dofs_core::ports::OrderStore for AcceptedOrderStore {
    async fn put_new(&self, order: &Order) -> Result<Order, PortError> {
        self.store.put_new(order).await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, PortError> {
        if let Some(order) = self.store.get(id).await? {
            return Ok(Some(order));
        }
        let accepted = self.accepted(id).await?;
        let Some(accepted) = accepted else {
            // No execution of that name: no such order.
            return Ok(None);
        };
        // Store Order may have run between the two reads (the execution may even
        // have finished): what is stored wins over the execution's input.
        match self.store.get(id).await? {
            Some(order) => Ok(Some(order)),
            None => Ok(accepted),
        }
    }

    async fn list(
        &self,
        status: Option<dofs_core::OrderStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<dofs_core::ports::Page<Order>, PortError> {
        self.store.list(status, limit, cursor).await
    }

    async fn transition(
        &self,
        id: OrderId,
        change: &dofs_core::ports::Transition,
    ) -> Result<Order, PortError> {
        self.store.transition(id, change).await
    }

    async fn record_failure(&self, failed: &dofs_core::FailedOrder) -> Result<bool, PortError> {
        self.store.record_failure(failed).await
    }

    async fn list_failed(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<dofs_core::ports::Page<dofs_core::FailedOrder>, PortError> {
        self.store.list_failed(limit, cursor).await
    }

    async fn count_by_status(&self) -> Result<Vec<(dofs_core::OrderStatus, u64)>, PortError> {
        self.store.count_by_status().await
    }
}
