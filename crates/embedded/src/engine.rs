//! The embedded workflow engine: runs `workflow/order-processing.asl.json`
//! with the [`dofs_workflow`] interpreter, mapping each Task `Resource` to an
//! in-process task, and stores each execution's outcome and history.
//!
//! Tasks are idempotent, so an execution interrupted by a crash is simply run
//! again from the start when the process restarts.

use crate::db::{sql_err, Db};
use crate::store::record_failure_in;
use crate::submit::PendingExecution;
use async_trait::async_trait;
use dofs_core::ports::{OrderStore, PortError, Queue};
use dofs_core::validation::{decode_order, DecodeError, Limits};
use dofs_core::{Clock, FailedOrder, Order, OrderId, Timestamp};
use dofs_workflow::{Definition, Event, Outcome, TaskError, TaskHandler, Timer};
use rusqlite::params;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// The workflow definition built into the binary.
pub const ORDER_WORKFLOW: &str = include_str!("../../../workflow/order-processing.asl.json");

/// Task resource of the Validate Order state (a Lambda ARN on AWS).
pub const VALIDATE_RESOURCE: &str = "${validator_arn}";
/// Task resource of the Store Order state (a Lambda ARN on AWS).
pub const STORE_RESOURCE: &str = "${order_storage_arn}";
/// Task resource of the enqueue state (the SQS integration on AWS).
pub const SEND_RESOURCE: &str = "arn:aws:states:::sqs:sendMessage";

/// Parses the workflow and checks that every Task resource has an in-process task.
pub fn load_definition(source: &str) -> anyhow::Result<Definition> {
    let def = Definition::parse(source).map_err(|e| anyhow::anyhow!("workflow definition: {e}"))?;
    def.require_resources(|r| [VALIDATE_RESOURCE, STORE_RESOURCE, SEND_RESOURCE].contains(&r))
        .map_err(|e| anyhow::anyhow!("workflow definition: {e} (the embedded engine runs {VALIDATE_RESOURCE}, {STORE_RESOURCE} and {SEND_RESOURCE})"))?;
    Ok(def)
}

/// The in-process tasks.
pub struct EmbeddedTasks {
    pub store: Arc<dyn OrderStore>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
}

fn transient(e: PortError) -> TaskError {
    TaskError::new("TransientError", e.to_string())
}

/// Splits the workflow's `order` object into its id and a decoded order.
fn order_from_input(
    input: &serde_json::Value,
    limits: &Limits,
) -> Result<(OrderId, dofs_core::NewOrder), TaskError> {
    let mut order = input
        .get("order")
        .and_then(|o| o.as_object())
        .cloned()
        .ok_or_else(|| TaskError::new("ValidationError", "the input has no order object"))?;
    let id = order
        .remove("orderId")
        .and_then(|v| v.as_str().and_then(|s| OrderId::parse(s).ok()))
        .ok_or_else(|| TaskError::new("ValidationError", "the order has no valid orderId"))?;
    let body = serde_json::Value::Object(order).to_string();
    match decode_order(body.as_bytes(), limits) {
        Ok(o) => Ok((id, o)),
        Err(DecodeError::Malformed(m)) => Err(TaskError::new("ValidationError", m)),
        Err(DecodeError::Invalid(errors)) => Err(TaskError::new(
            "ValidationError",
            errors
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

#[async_trait]
impl TaskHandler for EmbeddedTasks {
    async fn invoke(
        &self,
        resource: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        match resource {
            VALIDATE_RESOURCE => {
                order_from_input(&input, &self.limits)?;
                Ok(serde_json::json!({ "valid": true }))
            }
            STORE_RESOURCE => {
                let (id, new_order) = order_from_input(&input, &self.limits)?;
                let existing = self.store.get(id).await.map_err(transient)?;
                let stored = match existing {
                    Some(o) => o,
                    None => {
                        let arn = dofs_core::ports::execution_arn(
                            "local",
                            "000000000000",
                            "unknown",
                            &id.to_string(),
                        );
                        let order = Order::new(id, new_order, arn, self.clock.now());
                        self.store.put_new(&order).await.map_err(transient)?
                    }
                };
                Ok(
                    serde_json::json!({ "orderId": stored.id.to_string(), "status": stored.status.as_str() }),
                )
            }
            SEND_RESOURCE => {
                let body = input.get("MessageBody").ok_or_else(|| {
                    TaskError::new("States.Runtime", "sendMessage needs a MessageBody")
                })?;
                let id = body
                    .get("orderId")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| {
                        TaskError::new("States.Runtime", "the message body has no orderId")
                    })?
                    .to_owned();
                let body = match body {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.queue.send(&id, &body).await.map_err(transient)?;
                Ok(serde_json::json!({ "MessageId": id }))
            }
            other => Err(TaskError::new(
                "States.TaskFailed",
                format!("no task for resource {other}"),
            )),
        }
    }
}

/// Waits with tokio and reads the injected clock.
struct TokioTimer(Arc<dyn Clock>);

#[async_trait]
impl Timer for TokioTimer {
    fn now_millis(&self) -> i64 {
        self.0.now().millis()
    }
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Runs executions as they arrive, at most `concurrency` at once.
pub async fn run_engine(
    def: Arc<Definition>,
    tasks: Arc<EmbeddedTasks>,
    db: Db,
    mut incoming: mpsc::UnboundedReceiver<PendingExecution>,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let pending = tokio::select! {
            p = incoming.recv() => p,
            _ = stop.changed() => None,
        };
        // Executions still queued here stay RUNNING in the file and resume at the next start.
        let Some(pending) = pending else { break };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (def, tasks, db) = (def.clone(), tasks.clone(), db.clone());
        running.spawn(async move {
            if let Err(e) = run_one(&def, &tasks, &db, pending).await {
                tracing::error!(error = %e, "could not record a workflow execution; it resumes at the next start");
            }
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

fn event_json(e: &Event) -> serde_json::Value {
    let mut v = serde_json::json!({
        "type": e.kind,
        "timestamp": Timestamp(e.timestamp_ms).to_string(),
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(state) = &e.state {
            obj.insert("state".into(), serde_json::Value::String(state.clone()));
        }
        obj.insert("details".into(), e.details.clone());
    }
    v
}

/// Runs one execution to its end and records the outcome in one transaction.
/// (Public so that the deterministic simulation can run executions one at a time.)
pub async fn run_one(
    def: &Definition,
    tasks: &Arc<EmbeddedTasks>,
    db: &Db,
    pending: PendingExecution,
) -> Result<(), PortError> {
    let timer = TokioTimer(tasks.clock.clone());
    let mut events: Vec<Event> = Vec::new();
    let outcome = dofs_workflow::execute(
        def,
        pending.input.clone(),
        tasks.as_ref(),
        &timer,
        &mut events,
    )
    .await;
    let history = serde_json::Value::Array(events.iter().map(event_json).collect()).to_string();
    let now = tasks.clock.now();
    let order = pending
        .input
        .get("order")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let order_id = order
        .get("orderId")
        .and_then(|v| v.as_str())
        .and_then(|s| OrderId::parse(s).ok());
    let (status, output, failure) = match &outcome {
        Outcome::Succeeded { output } => ("SUCCEEDED", Some(output.to_string()), None),
        Outcome::Failed { error, cause } => (
            "FAILED",
            None,
            Some(format!("workflow failed: {error}: {cause}")),
        ),
    };
    let id = pending.id.clone();
    let newly_failed = db
        .write(move |conn| {
            conn.prepare_cached(
                "UPDATE executions SET status = ?2, output = ?3, stopped_at = ?4, events = ?5 \
             WHERE id = ?1 AND status = 'RUNNING'",
            )
            .and_then(|mut st| st.execute(params![id, status, output, now.millis(), history]))
            .map_err(sql_err)?;
            if let (Some(reason), Some(order_id)) = (failure, order_id) {
                conn.prepare_cached("DELETE FROM queue WHERE id = ?1 AND visible_at IS NULL")
                    .and_then(|mut st| st.execute([order_id.to_string()]))
                    .map_err(sql_err)?;
                let failed = FailedOrder {
                    order_id,
                    reason,
                    attempts: 0,
                    failed_at: now,
                    order,
                };
                let accepted_at = crate::store::get_order(conn, order_id)?.map(|o| o.created_at);
                if record_failure_in(conn, &failed)? {
                    return Ok(accepted_at);
                }
            }
            Ok(None)
        })
        .await?;
    metrics::counter!("dofs_workflow_executions_total", "status" => status).increment(1);
    if let Some(accepted_at) = newly_failed {
        crate::workers::record_terminal("FAILED", accepted_at, now);
    }
    let order_text = order_id.map(|o| o.to_string()).unwrap_or_default();
    tracing::debug!(orderId = %order_text, executionId = %pending.id, status, "workflow execution finished");
    Ok(())
}
