//! The embedded workflow engine: runs `workflow/order-processing.asl.json`
//! with the [`dofs_workflow`] interpreter, inside the order's own submit
//! transaction.
//!
//! The three Task resources the workflow names run in process and touch
//! nothing but the order in hand: Validate Order checks it, Store Order and
//! Queue For Fulfillment each ask for a write (the order row, its queue
//! message). So a run needs no I/O of its own. It runs before the submit
//! transaction, which then makes the writes the run asked for, together with
//! the order, before the 202 is sent: an order is accepted, stored and queued
//! in one commit, or not at all.
//!
//! A run is a pure function of the definition, the order and the moment it
//! was accepted. So the history of a run that succeeded (stored the order and
//! queued it) is not stored: the order names its definition (table
//! `workflows`) and `GET /executions/{id}` runs it again to show the history
//! ([`replay`]). Runs that ended otherwise keep their whole history in the
//! `executions` table, as do executions of databases written before.

use crate::db::{sql_err, Db, Tx};
use crate::store::{get_order, record_failure_in};
use async_trait::async_trait;
use dofs_core::history::{EventKind, ExecutionEvent};
use dofs_core::ports::{Execution, PortError};
use dofs_core::tasks::{self, workflow_input};
use dofs_core::validation::Limits;
use dofs_core::{FailedOrder, Order, OrderId, Timestamp};
use dofs_workflow::{
    Definition, Event, EventKind as WorkflowEventKind, EventSink, NoHistory, Outcome, TaskError,
    TaskHandler, Timer,
};
use rusqlite::{params, OptionalExtension};
use std::sync::Mutex;
use std::time::Duration;

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

/// The workflow the engine runs: its definition, the validation limits its
/// Validate Order task applies, and the definition's row in `workflows`.
pub struct Workflow {
    pub def: Definition,
    pub limits: Limits,
    /// The `workflows` row holding the definition's text.
    pub id: i64,
}

impl Workflow {
    /// Parses `source` and records it in `workflows` (once per distinct text).
    pub async fn load(db: &Db, source: &str, limits: Limits) -> anyhow::Result<Workflow> {
        let def = load_definition(source)?;
        let text = source.to_owned();
        let id = db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO workflows (definition) VALUES (?1) ON CONFLICT (definition) DO NOTHING",
                    [&text],
                )
                .and_then(|_| {
                    conn.query_row("SELECT id FROM workflows WHERE definition = ?1", [&text], |r| r.get(0))
                })
                .map_err(sql_err)
            })
            .await?;
        Ok(Workflow { def, limits, id })
    }

    /// Runs the workflow for `order`, accepted at `at`. With `history`, the
    /// run's events are kept.
    pub async fn run(&self, order: &Order, at: Timestamp, history: bool) -> Run {
        run_definition(&self.def, &self.limits, order, at, history).await
    }
}

/// The writes a run's tasks asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    /// Store Order ran.
    pub stored: bool,
    /// Queue For Fulfillment ran: the message's id and body.
    pub sent: Option<(String, String)>,
}

/// One run of the workflow for one order.
#[derive(Clone, Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub effects: Effects,
    /// The history, when it was asked for.
    pub events: Option<Vec<Event>>,
}

impl Run {
    /// Whether the run can be made again to show its history instead of
    /// storing it: it succeeded, stored the order and queued its message.
    pub fn replayable(&self, order: OrderId) -> bool {
        matches!(self.outcome, Outcome::Succeeded { .. })
            && self.effects.stored
            && self
                .effects
                .sent
                .as_ref()
                .is_some_and(|(id, _)| id == order.text().as_str())
    }

    /// `SUCCEEDED` or `FAILED`.
    pub fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::Succeeded { .. } => "SUCCEEDED",
            Outcome::Failed { .. } => "FAILED",
        }
    }
}

async fn run_definition(
    def: &Definition,
    limits: &Limits,
    order: &Order,
    at: Timestamp,
    history: bool,
) -> Run {
    let tasks = OrderTasks {
        order,
        limits,
        effects: Mutex::new(Effects::default()),
    };
    let timer = At(at);
    let input = workflow_input(order);
    let (outcome, events) = if history {
        let mut events: Vec<Event> = Vec::new();
        let outcome = dofs_workflow::execute(def, input, &tasks, &timer, &mut events).await;
        (outcome, Some(events))
    } else {
        let mut none = NoHistory;
        let sink: &mut dyn EventSink = &mut none;
        (
            dofs_workflow::execute(def, input, &tasks, &timer, sink).await,
            None,
        )
    };
    let effects = tasks
        .effects
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Run {
        outcome,
        effects,
        events,
    }
}

/// The in-process tasks of one run. They read only their input and record
/// the writes they ask for.
struct OrderTasks<'a> {
    /// The order the run is for.
    order: &'a Order,
    limits: &'a Limits,
    effects: Mutex<Effects>,
}

impl OrderTasks<'_> {
    fn effects(&self) -> std::sync::MutexGuard<'_, Effects> {
        self.effects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl TaskHandler for OrderTasks<'_> {
    async fn invoke(
        &self,
        resource: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        match resource {
            VALIDATE_RESOURCE => {
                tasks::validate(input, self.limits, Some(self.order)).map_err(task_error)
            }
            STORE_RESOURCE => {
                let answer =
                    tasks::store_known(input, self.limits, self.order).map_err(task_error)?;
                self.effects().stored = true;
                Ok(answer)
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
                let reply = serde_json::json!({ "MessageId": id });
                self.effects().sent = Some((id, body));
                Ok(reply)
            }
            other => Err(TaskError::new(
                "States.TaskFailed",
                format!("no task for resource {other}"),
            )),
        }
    }
}

/// A task's failure as the workflow engine names it.
fn task_error(f: tasks::TaskFailure) -> TaskError {
    TaskError::new(f.error_type, f.message)
}

/// The clock of a run that does no I/O: every event carries the moment the
/// order was accepted, and a retry's wait takes no time (the tasks never
/// fail for a reason that time would cure).
struct At(Timestamp);

#[async_trait]
impl Timer for At {
    fn now_millis(&self) -> i64 {
        self.0.millis()
    }
    async fn sleep(&self, _duration: Duration) {}
}

/// A run's event as the execution's history shows it.
pub fn history_event(e: &Event) -> ExecutionEvent {
    let kind = match e.kind {
        WorkflowEventKind::ExecutionStarted => EventKind::ExecutionStarted,
        WorkflowEventKind::StateEntered => EventKind::StateEntered,
        WorkflowEventKind::TaskScheduled => EventKind::TaskScheduled,
        WorkflowEventKind::TaskSucceeded => EventKind::TaskSucceeded,
        WorkflowEventKind::TaskFailed => EventKind::TaskFailed,
        WorkflowEventKind::TaskRetryScheduled => EventKind::TaskRetryScheduled,
        WorkflowEventKind::StateExited => EventKind::StateExited,
        WorkflowEventKind::ExecutionSucceeded => EventKind::ExecutionSucceeded,
        WorkflowEventKind::ExecutionFailed => EventKind::ExecutionFailed,
    };
    ExecutionEvent {
        kind,
        timestamp: Timestamp(e.timestamp_ms),
        state: e.state.clone(),
        details: e.details.clone(),
    }
}

/// A stored history (column `executions.events`), each event as
/// [`ExecutionEvent`] writes it. An entry that does not read as one is left
/// out (and logged) rather than hiding the rest of the history.
fn stored_history(id: &str, text: &str) -> Vec<ExecutionEvent> {
    let entries: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(execution = id, error = %e, "stored execution history is not a JSON array");
        Vec::new()
    });
    entries
        .into_iter()
        .filter_map(|entry| match serde_json::from_value(entry) {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::warn!(execution = id, error = %e, "stored history event left out");
                None
            }
        })
        .collect()
}

fn output_text(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Succeeded { output } => Some(output.to_string()),
        Outcome::Failed { .. } => None,
    }
}

/// Makes the writes of `run` for `order` inside the transaction that
/// inserted the order (the row itself is the caller's): the queue message,
/// and for a run that cannot be replayed, its history; a run that failed
/// fails the order. Returns whether the order was failed.
pub(crate) fn apply_run(
    conn: &Tx<'_>,
    order: &Order,
    run: &Run,
    now: Timestamp,
) -> Result<bool, PortError> {
    send_message_of(conn, run, Some(order.id), now)?;
    if run.replayable(order.id) {
        return Ok(false);
    }
    record_run(conn, order, run, now)
}

/// Sends the message the run's Queue For Fulfillment asked for (releasing it,
/// when an earlier release's submit transaction wrote it held). `inserted`
/// is the order this transaction inserted, if it did: a message named by
/// its id cannot have been dead-lettered, and the DLQ is not looked at.
fn send_message_of(
    conn: &Tx<'_>,
    run: &Run,
    inserted: Option<OrderId>,
    now: Timestamp,
) -> Result<(), PortError> {
    match &run.effects.sent {
        Some((id, body)) if inserted.is_some_and(|o| id == o.text().as_str()) => {
            crate::queue::send_new_in(conn, id, body, now)
        }
        Some((id, body)) => crate::queue::send_in(conn, id, body, now),
        None => Ok(()),
    }
}

/// Stores a run's whole history (a new row, or the row of an execution an
/// earlier release left `RUNNING`); a run that failed fails its order.
/// Returns whether the order was failed.
fn record_run(conn: &Tx<'_>, order: &Order, run: &Run, now: Timestamp) -> Result<bool, PortError> {
    conn.prepare_cached(
        "INSERT INTO executions (id, arn, status, input, output, started_at, stopped_at, events) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7) \
         ON CONFLICT (id) DO UPDATE SET status = ?3, output = ?5, stopped_at = ?6, events = ?7",
    )
    .and_then(|mut st| {
        st.execute(params![
            order.id.text().as_str(),
            order.execution_arn,
            run.status(),
            workflow_input(order).to_string(),
            output_text(&run.outcome),
            now.millis(),
            history_text(run)
        ])
    })
    .map_err(sql_err)?;
    fail_order_of(conn, order.id, run, now)
}

fn history_text(run: &Run) -> String {
    let events: Vec<ExecutionEvent> = run.events.iter().flatten().map(history_event).collect();
    serde_json::to_string(&events).unwrap_or_else(|_| "[]".to_owned())
}

/// A failed run fails its order: a failed-orders row and the order `FAILED`.
fn fail_order_of(
    conn: &Tx<'_>,
    order: OrderId,
    run: &Run,
    now: Timestamp,
) -> Result<bool, PortError> {
    let Outcome::Failed { error, cause } = &run.outcome else {
        return Ok(false);
    };
    conn.prepare_cached("DELETE FROM queue WHERE id = ?1 AND visible_at IS NULL")
        .and_then(|mut st| st.execute([order.to_string()]))
        .map_err(sql_err)?;
    let Some(stored) = get_order(conn, order)? else {
        return Ok(false);
    };
    let failed = FailedOrder {
        order_id: order,
        reason: format!("workflow failed: {error}: {cause}"),
        attempts: 0,
        failed_at: now,
        order: stored.submitted_json(),
    };
    record_failure_in(conn, &failed)
}

/// Finishes the executions that a database written by an earlier release
/// left `RUNNING` (their orders stored, their messages held): each is run
/// again and recorded, and its message released, in one transaction.
/// Returns how many were finished.
pub async fn finish_running(
    db: &Db,
    workflow: &Workflow,
    now: Timestamp,
) -> Result<usize, PortError> {
    let ids: Vec<String> = db
        .read(|conn| {
            conn.prepare("SELECT id FROM executions WHERE status = 'RUNNING' ORDER BY started_at")
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                .map_err(sql_err)
        })
        .await?;
    let mut finished = 0;
    for id in ids {
        let Ok(order_id) = OrderId::parse(&id) else {
            continue;
        };
        let Some(order) = db.read(move |conn| get_order(conn, order_id)).await? else {
            continue;
        };
        let run = workflow.run(&order, now, true).await;
        let accepted_at = order.created_at;
        let failed = db
            .write(move |conn| {
                send_message_of(conn, &run, None, now)?;
                record_run(conn, &order, &run, now)
            })
            .await?;
        if failed {
            crate::workers::record_terminal("FAILED", accepted_at, now);
        }
        finished += 1;
    }
    Ok(finished)
}

/// Definitions parsed from `workflows` rows, by row id.
pub type Definitions = Mutex<Vec<(i64, std::sync::Arc<Definition>)>>;

/// Shows an execution: the stored one, or for an order whose run was not
/// stored, that run made again from its definition.
pub(crate) async fn read_execution(
    db: &Db,
    definitions: &Definitions,
    id: &str,
) -> Result<Option<Execution>, PortError> {
    let key = id.to_owned();
    let (stored, order) = db
        .read(move |conn| {
            let stored = conn
                .prepare_cached(
                    "SELECT arn, status, input, output, started_at, stopped_at, events FROM executions WHERE id = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([&key], |r| {
                        let input: String = r.get(2)?;
                        let output: Option<String> = r.get(3)?;
                        let events: String = r.get(6)?;
                        Ok(Execution {
                            arn: r.get(0)?,
                            status: r.get(1)?,
                            input: serde_json::from_str(&input).unwrap_or(serde_json::Value::Null),
                            output: output.and_then(|o| serde_json::from_str(&o).ok()),
                            started_at: Timestamp(r.get(4)?),
                            stopped_at: r.get::<_, Option<i64>>(5)?.map(Timestamp),
                            events: stored_history(&key, &events),
                        })
                    })
                    .optional()
                })
                .map_err(sql_err)?;
            if stored.is_some() {
                return Ok((stored, None));
            }
            let Ok(order_id) = OrderId::parse(&key) else {
                return Ok((None, None));
            };
            let Some(order) = get_order(conn, order_id)? else {
                return Ok((None, None));
            };
            let workflow: Option<(i64, String)> = conn
                .prepare_cached(
                    "SELECT w.id, w.definition FROM orders o JOIN workflows w ON w.id = o.workflow WHERE o.id = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([order_id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(sql_err)?;
            Ok((None, workflow.map(|w| (order, w))))
        })
        .await?;
    if stored.is_some() {
        return Ok(stored);
    }
    let Some((order, (workflow_id, text))) = order else {
        return Ok(None);
    };
    let def = definition(definitions, workflow_id, &text)?;
    Ok(Some(replay(&def, &order).await))
}

/// The parsed definition of `workflows` row `id`, parsed once.
fn definition(
    cache: &Definitions,
    id: i64,
    text: &str,
) -> Result<std::sync::Arc<Definition>, PortError> {
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, def)) = cache.iter().find(|(i, _)| *i == id) {
        return Ok(def.clone());
    }
    let def = std::sync::Arc::new(Definition::parse(text).map_err(|e| {
        PortError::new(
            dofs_core::ports::ErrorKind::Internal,
            format!("stored workflow definition {id}: {e}"),
        )
    })?);
    cache.push((id, def.clone()));
    Ok(def)
}

/// The execution of an order accepted by `def`, made again: the same input,
/// tasks and clock give the same history.
pub async fn replay(def: &Definition, order: &Order) -> Execution {
    // The run succeeded when the order was accepted, under the limits of that
    // day; whatever they are now, its Validate Order passed.
    let limits = Limits {
        max_quantity: u32::MAX,
        max_price: dofs_core::Price::from_cents(u64::MAX),
    };
    let run = run_definition(def, &limits, order, order.created_at, true).await;
    Execution {
        arn: order.execution_arn.clone(),
        status: run.status().to_owned(),
        input: workflow_input(order),
        output: match &run.outcome {
            Outcome::Succeeded { output } => Some(output.clone()),
            Outcome::Failed { .. } => None,
        },
        started_at: order.created_at,
        stopped_at: Some(order.created_at),
        events: run.events.iter().flatten().map(history_event).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_history_reads_back_as_written_leaving_out_what_does_not_read() {
        let event = history_event(&Event {
            kind: WorkflowEventKind::TaskFailed,
            state: Some("Validate Order".into()),
            timestamp_ms: 1_795_874_400_120,
            details: serde_json::json!({"error": "Transient", "cause": "busy", "attempt": 1}),
        });
        let written = serde_json::to_string(&[&event]).expect("json");
        assert_eq!(
            written,
            r#"[{"type":"TaskFailed","timestamp":"2026-11-28T14:00:00.120Z","state":"Validate Order","details":{"error":"Transient","cause":"busy","attempt":1}}]"#
        );
        assert_eq!(stored_history("x", &written), std::slice::from_ref(&event));
        let damaged = format!(
            r#"[{{"type":"NoSuchKind","timestamp":"2026-11-28T14:00:00.120Z","details":{{}}}},{}]"#,
            &written[1..written.len() - 1]
        );
        assert_eq!(stored_history("x", &damaged), [event]);
        assert!(stored_history("x", "not json").is_empty());
    }
}
