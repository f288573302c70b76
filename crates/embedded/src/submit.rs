//! The submit transaction (a transactional outbox), the execution log and the
//! operator actions, each one transaction on the SQLite file.
//!
//! `SqliteWorkflowStarter::start` runs the order's workflow (see
//! [`crate::engine`]), then writes the order, its queue message and, when
//! the run cannot be made again, its history, in one group-committed
//! transaction before the 202 is sent, so there is no moment in which one
//! exists without the others.

use crate::db::{sql_err, Db, Tx};
use crate::engine::{apply_run, read_execution, Definitions, Workflow};
use crate::queue::{redrive_in, remove_order_messages_in, SqliteQueue};
use crate::store::{apply_transition, get_order, insert_order};
use async_trait::async_trait;
use dofs_core::history::ExecutionEvent;
use dofs_core::metric_names as names;
use dofs_core::ports::{
    DlqProgress, ErrorKind, Execution, ExecutionLog, IdempotencyClaim, Operations, PortError,
    Submitted, Transition, WorkflowStarter,
};
use dofs_core::service::OrderMessage;
use dofs_core::{Clock, NewOrder, Order, OrderId, OrderStatus, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use std::time::Instant;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Starts executions: runs each order's workflow and records the order with
/// what the run asked for, in one transaction.
#[derive(Clone)]
pub struct SqliteWorkflowStarter {
    db: Db,
    clock: Arc<dyn Clock>,
    state_machine: String,
    workflow: Arc<Workflow>,
    queue: SqliteQueue,
}

impl SqliteWorkflowStarter {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        state_machine: String,
        workflow: Arc<Workflow>,
        queue: SqliteQueue,
    ) -> Self {
        SqliteWorkflowStarter {
            db,
            clock,
            state_machine,
            workflow,
            queue,
        }
    }
}

/// The replay of an idempotent request, if `claim`'s key was seen within the
/// window; records the key otherwise.
fn claim_key(
    conn: &Connection,
    claim: &IdempotencyClaim,
    id: OrderId,
    now: Timestamp,
) -> Result<Option<Submitted>, PortError> {
    let seen: Option<(String, [u8; 16])> = conn
        .prepare_cached(
            "SELECT fingerprint, order_id FROM idempotency_keys WHERE key = ?1 AND created_at > ?2",
        )
        .and_then(|mut st| {
            st.query_row(
                params![claim.key, now.millis() - IDEMPOTENCY_WINDOW_MS],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .map_err(sql_err)?;
    if let Some((fingerprint, first)) = seen {
        if fingerprint != claim.fingerprint {
            return Ok(Some(Submitted::KeyReused));
        }
        return match get_order(conn, OrderId::from_bytes(first))? {
            Some(order) => Ok(Some(Submitted::Replayed { order })),
            None => Err(PortError::new(
                ErrorKind::Internal,
                "idempotency record without its order",
            )),
        };
    }
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (key, fingerprint, order_id, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (key) DO UPDATE SET fingerprint = ?2, order_id = ?3, created_at = ?4",
    )
    .and_then(|mut st| st.execute(params![claim.key, claim.fingerprint, id.as_bytes(), now.millis()]))
    .map_err(sql_err)?;
    Ok(None)
}

#[async_trait]
impl WorkflowStarter for SqliteWorkflowStarter {
    async fn start(
        &self,
        id: OrderId,
        order: NewOrder,
        claim: Option<IdempotencyClaim>,
        request: Option<String>,
    ) -> Result<Submitted, PortError> {
        let now = self.clock.now();
        let arn = crate::store::local_execution_arn(&self.state_machine, id.text().as_str());
        let order = Order::new(id, order, arn, now);
        // Only the outcome is needed; the history too when the run cannot be made again.
        let mut run = self.workflow.run(&order, now, false).await;
        let replayable = run.replayable(id);
        if !replayable {
            run = self.workflow.run(&order, now, true).await;
        }
        let status = run.status();
        let workflow = replayable.then_some(self.workflow.id);
        let submitted = self
            .db
            .write(move |conn| {
                if let Some(claim) = &claim {
                    if let Some(earlier) = claim_key(conn, claim, id, now)? {
                        return Ok((earlier, false));
                    }
                }
                insert_order(conn, &order, workflow, request.as_deref())?;
                let failed = apply_run(conn, &order, &run, now)?;
                Ok((Submitted::Started { order }, failed))
            })
            .await;
        let (submitted, failed) = submitted?;
        crate::failpoint::hit(crate::failpoint::AFTER_ORDER_COMMIT);
        if let Submitted::Started { order } = &submitted {
            metrics::counter!(names::WORKFLOW_EXECUTIONS, "status" => status).increment(1);
            if failed {
                crate::workers::record_terminal("FAILED", order.created_at, now);
            } else {
                self.queue.ready.notify_waiters();
            }
        }
        Ok(submitted)
    }
}

/// Reads executions from the SQLite file.
#[derive(Clone)]
pub struct SqliteExecutionLog {
    db: Db,
    definitions: Arc<Definitions>,
}

impl SqliteExecutionLog {
    pub fn new(db: Db) -> Self {
        SqliteExecutionLog {
            db,
            definitions: Arc::default(),
        }
    }
}

#[async_trait]
impl ExecutionLog for SqliteExecutionLog {
    async fn get(&self, id: &str) -> Result<Option<Execution>, PortError> {
        let id = dofs_core::ports::execution_id(id);
        let Some(mut execution) = read_execution(&self.db, &self.definitions, id).await? else {
            return Ok(None);
        };
        // The workflow ended when the order was queued; a cancel after that
        // is shown at the end of its history.
        if let Ok(order_id) = OrderId::parse(id) {
            let order = self.db.read(move |conn| get_order(conn, order_id)).await?;
            execution
                .events
                .extend(order.as_ref().and_then(ExecutionEvent::order_cancelled));
        }
        Ok(Some(execution))
    }
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
        attempts: Some(0),
        failure_reason: Some(None),
        ..Transition::new(&[OrderStatus::Failed], OrderStatus::Pending, at)
    }
}

fn requeue_in(conn: &Tx<'_>, order: OrderId, now: Timestamp) -> Result<(), PortError> {
    conn.prepare_cached("DELETE FROM dlq WHERE json_extract(body, '$.orderId') = ?1")
        .and_then(|mut st| st.execute([order.to_string()]))
        .map_err(sql_err)?;
    let id = format!("{order}.retry-{}", now.millis());
    crate::queue::send_in(conn, &id, &OrderMessage { order_id: order }.to_body(), now)
}

#[async_trait]
impl Operations for SqliteOperations {
    async fn retry(&self, id: OrderId, _until: Instant) -> Result<Order, PortError> {
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

    /// One transaction, however many dead letters: never `more`.
    async fn redrive(&self, _until: Instant) -> Result<DlqProgress, PortError> {
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
        Ok(DlqProgress {
            count: moved,
            more: false,
        })
    }

    /// Acknowledges every dead letter. One the recorder has not reached yet
    /// is recorded first, in the same transaction (its order `FAILED` with
    /// its failed-orders row): a purge never leaves an order waiting for a
    /// message that is gone. One transaction: never `more`.
    async fn purge(&self, _until: Instant) -> Result<DlqProgress, PortError> {
        let now = self.clock.now();
        let purged = self
            .db
            .write(move |conn| {
                for (_, dead) in crate::queue::dead_letters_after(conn, 0, usize::MAX >> 1)? {
                    crate::workers::record_dead_letter_in(conn, &dead, now)?;
                }
                conn.execute("DELETE FROM dlq", [])
                    .map(|n| n as u64)
                    .map_err(sql_err)
            })
            .await?;
        Ok(DlqProgress {
            count: purged,
            more: false,
        })
    }

    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<String>,
        _until: Instant,
    ) -> Result<Order, PortError> {
        let now = self.clock.now();
        self.db
            .write(move |conn| {
                let Some(order) = get_order(conn, id)? else {
                    return Err(PortError::not_found(format!("no order {id}")));
                };
                if order.status == OrderStatus::Cancelled {
                    return Ok(order);
                }
                // Conditional: PROCESSING and FULFILLED are a Conflict, and
                // nothing below runs.
                let order = apply_transition(conn, id, &Transition::cancel(reason, now))?;
                remove_order_messages_in(conn, id)?;
                Ok(order)
            })
            .await
    }

    async fn ready(&self) -> Result<(), PortError> {
        self.db
            .read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(sql_err))
            .await?;
        // A real write: an empty transaction commits even on a full disk.
        match self.db.probe_write().await {
            Ok(()) => Ok(()),
            Err(e) => match self.db.unwritable() {
                Some(reason) => Err(PortError::with_source(
                    ErrorKind::Transient,
                    "the store cannot take writes",
                    dofs_core::ports::StoreNotWritable(reason),
                )),
                None => Err(e),
            },
        }
    }
}
