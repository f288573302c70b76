//! The submit transaction (a transactional outbox), the execution log and the
//! operator actions, each one transaction on the SQLite file.
//!
//! `SqliteWorkflowStarter::start` writes the order (`PENDING`), its execution
//! (`RUNNING`) and its queue message (held until the workflow's enqueue step)
//! in one group-committed transaction before the 202 is sent, so there is no
//! moment in which one exists without the others.

use crate::db::{sql_err, Db};
use crate::queue::{insert_held, redrive_in, SqliteQueue};
use crate::store::{apply_transition, get_order, insert_order};
use async_trait::async_trait;
use dofs_core::ports::{
    ErrorKind, Execution, ExecutionLog, IdempotencyClaim, Operations, PortError, Submitted,
    Transition, WorkflowStarter,
};
use dofs_core::service::OrderMessage;
use dofs_core::{Clock, NewOrder, Order, OrderId, OrderStatus, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// An execution to run (new, or resumed after a restart).
#[derive(Clone, Debug)]
pub struct PendingExecution {
    pub id: String,
    pub arn: String,
    pub input: serde_json::Value,
}

/// Starts executions by recording them durably, then hands them to the engine.
#[derive(Clone)]
pub struct SqliteWorkflowStarter {
    db: Db,
    clock: Arc<dyn Clock>,
    state_machine: String,
    engine: mpsc::UnboundedSender<PendingExecution>,
}

impl SqliteWorkflowStarter {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        state_machine: String,
        engine: mpsc::UnboundedSender<PendingExecution>,
    ) -> Self {
        SqliteWorkflowStarter {
            db,
            clock,
            state_machine,
            engine,
        }
    }
}

/// The workflow input for an order.
pub fn workflow_input(order: &Order) -> serde_json::Value {
    serde_json::json!({ "order": order.submitted_json() })
}

fn started_event(at: Timestamp, input: &serde_json::Value) -> serde_json::Value {
    serde_json::json!([{ "type": "ExecutionStarted", "timestamp": at.to_string(), "details": { "input": input } }])
}

#[async_trait]
impl WorkflowStarter for SqliteWorkflowStarter {
    async fn start(
        &self,
        id: OrderId,
        order: NewOrder,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Submitted, PortError> {
        let now = self.clock.now();
        let arn = dofs_core::ports::execution_arn(
            "local",
            "000000000000",
            &self.state_machine,
            &id.to_string(),
        );
        let order = Order::new(id, order, arn.clone(), now);
        let submitted = self
            .db
            .write(move |conn| {
                if let Some(claim) = &claim {
                    let seen: Option<(String, String)> = conn
                        .prepare_cached(
                            "SELECT fingerprint, order_id FROM idempotency_keys WHERE key = ?1 AND created_at > ?2",
                        )
                        .and_then(|mut st| {
                            st.query_row(params![claim.key, now.millis() - IDEMPOTENCY_WINDOW_MS], |r| {
                                Ok((r.get(0)?, r.get(1)?))
                            })
                            .optional()
                        })
                        .map_err(sql_err)?;
                    if let Some((fingerprint, first)) = seen {
                        if fingerprint != claim.fingerprint {
                            return Ok(Submitted::KeyReused);
                        }
                        let first = OrderId::parse(&first)
                            .map_err(|_| PortError::new(ErrorKind::Internal, "corrupt idempotency record"))?;
                        return match get_order(conn, first)? {
                            Some(order) => Ok(Submitted::Replayed { order }),
                            None => Err(PortError::new(ErrorKind::Internal, "idempotency record without its order")),
                        };
                    }
                    conn.prepare_cached(
                        "INSERT INTO idempotency_keys (key, fingerprint, order_id, created_at) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (key) DO UPDATE SET fingerprint = ?2, order_id = ?3, created_at = ?4",
                    )
                    .and_then(|mut st| st.execute(params![claim.key, claim.fingerprint, id.to_string(), now.millis()]))
                    .map_err(sql_err)?;
                }
                insert_order(conn, &order)?;
                let input = workflow_input(&order);
                conn.prepare_cached(
                    "INSERT INTO executions (id, arn, status, input, started_at, events) \
                     VALUES (?1, ?2, 'RUNNING', ?3, ?4, ?5)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        id.to_string(),
                        order.execution_arn,
                        input.to_string(),
                        now.millis(),
                        started_event(now, &input).to_string()
                    ])
                })
                .map_err(sql_err)?;
                insert_held(conn, &id.to_string(), &OrderMessage { order_id: id }.to_body(), now)?;
                Ok(Submitted::Started { order })
            })
            .await?;
        crate::failpoint::hit(crate::failpoint::AFTER_ORDER_COMMIT);
        if let Submitted::Started { order } = &submitted {
            let pending = PendingExecution {
                id: order.id.to_string(),
                arn: order.execution_arn.clone(),
                input: workflow_input(order),
            };
            // If the engine has stopped (shutting down), the execution stays
            // RUNNING in the file and resumes at the next start.
            let _ = self.engine.send(pending);
        }
        Ok(submitted)
    }
}

/// Reads executions from the SQLite file.
#[derive(Clone)]
pub struct SqliteExecutionLog {
    db: Db,
}

impl SqliteExecutionLog {
    pub fn new(db: Db) -> Self {
        SqliteExecutionLog { db }
    }
}

#[async_trait]
impl ExecutionLog for SqliteExecutionLog {
    async fn get(&self, id: &str) -> Result<Option<Execution>, PortError> {
        let id = dofs_core::ports::execution_id(id).to_owned();
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT arn, status, input, output, started_at, stopped_at, events FROM executions WHERE id = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([id], |r| {
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
                            events: serde_json::from_str(&events).unwrap_or_default(),
                        })
                    })
                    .optional()
                })
                .map_err(sql_err)
            })
            .await
    }
}

/// Lists executions left `RUNNING` (to resume them at start-up).
pub async fn running_executions(db: &Db) -> Result<Vec<PendingExecution>, PortError> {
    db.read(|conn| {
        conn.prepare(
            "SELECT id, arn, input FROM executions WHERE status = 'RUNNING' ORDER BY started_at",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                let input: String = r.get(2)?;
                Ok(PendingExecution {
                    id: r.get(0)?,
                    arn: r.get(1)?,
                    input: serde_json::from_str(&input).unwrap_or(serde_json::Value::Null),
                })
            })?
            .collect()
        })
        .map_err(sql_err)
    })
    .await
}

/// Operator actions on the SQLite file: each is one transaction.
#[derive(Clone)]
pub struct SqliteOperations {
    db: Db,
    clock: Arc<dyn Clock>,
    queue: SqliteQueue,
}

impl SqliteOperations {
    pub fn new(db: Db, clock: Arc<dyn Clock>, queue: SqliteQueue) -> Self {
        SqliteOperations { db, clock, queue }
    }
}

fn back_to_pending(at: Timestamp) -> Transition {
    Transition {
        from: vec![OrderStatus::Failed],
        to: OrderStatus::Pending,
        attempts: Some(0),
        failure_reason: Some(None),
        at,
    }
}

fn requeue_in(conn: &Connection, order: OrderId, now: Timestamp) -> Result<(), PortError> {
    conn.prepare_cached("DELETE FROM dlq WHERE json_extract(body, '$.orderId') = ?1")
        .and_then(|mut st| st.execute([order.to_string()]))
        .map_err(sql_err)?;
    let id = format!("{order}.retry-{}", now.millis());
    crate::queue::send_in(conn, &id, &OrderMessage { order_id: order }.to_body(), now)
}

#[async_trait]
impl Operations for SqliteOperations {
    async fn retry(&self, id: OrderId) -> Result<Order, PortError> {
        let now = self.clock.now();
        let order = self
            .db
            .write(move |conn| {
                let order = apply_transition(conn, id, &back_to_pending(now))?;
                requeue_in(conn, id, now)?;
                Ok(order)
            })
            .await?;
        self.queue.ready.notify_waiters();
        Ok(order)
    }

    async fn redrive(&self) -> Result<u64, PortError> {
        let now = self.clock.now();
        let moved = self
            .db
            .write(move |conn| {
                let bodies = redrive_in(conn, now)?;
                for body in &bodies {
                    if let Some(OrderMessage { order_id }) = OrderMessage::parse(body) {
                        match apply_transition(conn, order_id, &back_to_pending(now)) {
                            Ok(_) => {}
                            Err(e)
                                if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(bodies.len() as u64)
            })
            .await?;
        self.queue.ready.notify_waiters();
        Ok(moved)
    }

    async fn purge(&self) -> Result<u64, PortError> {
        use dofs_core::ports::Queue;
        self.queue.purge_dead_letters().await
    }

    async fn ready(&self) -> Result<(), PortError> {
        self.db
            .read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(sql_err))
            .await?;
        self.db.write(|_| Ok(())).await
    }
}
