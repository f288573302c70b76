//! `SqliteOrderStore`: orders, their status counts, fulfillments and failed orders.
//! How an order is read back from its row, and its execution ARN stored, is in [`row`];
//! the failed-orders table in [`failed`].

use crate::db::{sql_err, Db, Tx};
use async_trait::async_trait;
use dofs_core::ports::{ErrorKind, OrderStore, Page, PortError, Transition};
use dofs_core::{EventType, FailedOrder, Order, OrderId, OrderStatus};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::LazyLock;

mod failed;
mod row;

pub(crate) use failed::{insert_failed_row, record_failure_in};
use row::arn_to_store;
pub(crate) use row::{local_execution_arn, order_from_row, ORDER_COLUMNS, ORDER_COLUMN_COUNT};

/// The order store on the SQLite file.
#[derive(Clone)]
pub struct SqliteOrderStore {
    db: Db,
}

impl SqliteOrderStore {
    pub fn new(db: Db) -> Self {
        SqliteOrderStore { db }
    }
}

/// Inserts a new order, counts it and records its `order.accepted` event
/// (listed in the row's `event_seqs`). Fails on a duplicate id. `workflow`
/// names the definition whose run for it can be made again (see
/// [`crate::engine`]); `request` is the id of the request that sent it.
pub(crate) fn insert_order(
    conn: &Tx<'_>,
    o: &Order,
    workflow: Option<i64>,
    request: Option<&str>,
) -> Result<(), PortError> {
    let metadata = o
        .metadata
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| PortError::new(ErrorKind::Internal, format!("order metadata: {e}")))?;
    let id = o.id.text();
    let arn = arn_to_store(&o.execution_arn, id.as_str())?;
    let seq = crate::events::next_seq(conn)?;
    static INSERT: &str =
        "INSERT INTO orders (id, customer_id, product_id, quantity, price_cents, metadata, \
         status, attempts, created_at, updated_at, execution_arn, failure_reason, workflow, \
         fulfillment_reference, cancel_reason, request_id, event_seqs) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
    conn.held(INSERT, |st| {
        st.execute(params![
            o.id.as_bytes(),
            o.customer_id.as_str(),
            o.product_id.as_str(),
            o.quantity,
            o.price.cents() as i64,
            metadata,
            o.status.as_str(),
            o.attempts,
            o.created_at.millis(),
            o.updated_at.millis(),
            arn,
            o.failure_reason,
            workflow,
            o.fulfillment_reference,
            o.cancel_reason,
            request,
            crate::events::seq_list(seq, 1),
        ])
    })
    .map_err(sql_err)?;
    bump_count(conn, o.status, 1);
    crate::events::record_in(conn, seq, EventType::Accepted, o)
}

/// Counts an order into (or out of) `status`. The count is kept with the
/// writer's transaction ([`Tx`]'s `counts`) and written by [`flush_counts`]
/// before it commits.
fn bump_count(conn: &Tx<'_>, status: OrderStatus, delta: i64) {
    let i = OrderStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or_default();
    let mut counts = conn.counts.get();
    counts[i] += delta;
    conn.counts.set(counts);
}

/// Writes the counts the current transaction changed (called by the writer
/// just before COMMIT).
pub(crate) fn flush_counts(conn: &Tx<'_>) -> Result<(), PortError> {
    let counts = conn.counts.replace([0; OrderStatus::ALL.len()]);
    for (status, delta) in OrderStatus::ALL.iter().zip(counts) {
        if delta != 0 {
            conn.prepare_cached(
                "INSERT INTO order_counts (status, n) VALUES (?1, ?2) ON CONFLICT (status) DO UPDATE SET n = n + ?2",
            )
            .and_then(|mut st| st.execute(params![status.as_str(), delta]))
            .map_err(sql_err)?;
        }
    }
    Ok(())
}

/// Reads one order inside a connection (reader or writer).
pub(crate) fn get_order(conn: &Connection, id: OrderId) -> Result<Option<Order>, PortError> {
    static SELECT: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"));
    conn.prepare_cached(SELECT.as_str())
        .and_then(|mut st| st.query_row([id.as_bytes()], order_from_row).optional())
        .map_err(sql_err)
}

/// The order `id` and the id of the request that accepted it (none for
/// orders accepted before schema version 4, or not through the API).
pub(crate) fn get_order_and_request(
    conn: &Tx<'_>,
    id: OrderId,
) -> Result<Option<(Order, Option<String>)>, PortError> {
    static SELECT: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {ORDER_COLUMNS}, request_id FROM orders WHERE id = ?1"));
    conn.held(SELECT.as_str(), |st| {
        st.query_row([id.as_bytes()], |row| {
            Ok((order_from_row(row)?, row.get(ORDER_COLUMN_COUNT)?))
        })
        .optional()
    })
    .map_err(sql_err)
}

/// Applies a conditional status change inside the writer's transaction, and
/// records its event in the same transaction.
pub(crate) fn apply_transition(
    conn: &Tx<'_>,
    id: OrderId,
    change: &Transition,
) -> Result<Order, PortError> {
    let Some(current) = get_order(conn, id)? else {
        return Err(PortError::not_found(format!("no order {id}")));
    };
    apply_transition_to(conn, &current, change)
}

/// As [`apply_transition`], to `current`, the order as this same transaction
/// read it (so it is not read again).
pub(crate) fn apply_transition_to(
    conn: &Tx<'_>,
    current: &Order,
    change: &Transition,
) -> Result<Order, PortError> {
    let order = change.apply(current)?;
    write_steps(conn, current, &[&order])?;
    Ok(order)
}

/// Writes an order that went through `steps` in this transaction, each a
/// change of the one before it and the first a change of `before` (the row
/// as this transaction read it), with one write of its row: the row takes
/// the last step, and each step records what [`apply_transition_to`] would
/// have recorded for it (its event, the status counts, a fulfillment's row).
pub(crate) fn write_steps(
    conn: &Tx<'_>,
    before: &Order,
    steps: &[&Order],
) -> Result<(), PortError> {
    if !write_steps_over(conn, before, steps)? {
        // `before` was read in this same transaction, which nothing else writes.
        return Err(PortError::new(
            ErrorKind::Internal,
            format!("order {} changed under its own transaction", before.id),
        ));
    }
    Ok(())
}

/// As [`write_steps`], only while the row still holds `before`: false,
/// with nothing written, when it does not. The steps' events take the next
/// numbers, listed in the row as it is written.
fn write_steps_over(conn: &Tx<'_>, before: &Order, steps: &[&Order]) -> Result<bool, PortError> {
    let Some(last) = steps.last() else {
        return Ok(true);
    };
    let first = crate::events::next_seq(conn)?;
    if write_change(conn, before, last, first, steps.len())? == 0 {
        return Ok(false);
    }
    let mut from = before.status;
    for (seq, step) in (first..).zip(steps) {
        record_change(conn, seq, from, step)?;
        from = step.status;
    }
    Ok(true)
}

/// As [`apply_transition`], for an order this writer last saw as `seen` (an
/// attempt's order, as its begin wrote it), without reading the row: the
/// change is written only while the row still holds `seen`. When it has
/// changed since (a cancel, a newer attempt), the row is read and the change
/// applied to what it holds, as [`apply_transition`] does.
pub(crate) fn apply_transition_from(
    conn: &Tx<'_>,
    seen: &Order,
    change: &Transition,
) -> Result<Order, PortError> {
    let Ok(order) = change.apply(seen) else {
        return apply_transition(conn, seen.id, change);
    };
    if !write_steps_over(conn, seen, &[&order])? {
        return apply_transition(conn, seen.id, change);
    }
    Ok(order)
}

/// Writes `order`'s changeable fields over the row of `before`, only while
/// the row still holds every one of `before`'s, and adds the `events` event
/// numbers from `first_seq` to the row's list (`event_seqs`); the rows
/// changed (0 or 1).
fn write_change(
    conn: &Tx<'_>,
    before: &Order,
    order: &Order,
    first_seq: i64,
    events: usize,
) -> Result<usize, PortError> {
    let seqs = crate::events::seq_list(first_seq, events);
    static UPDATE: &str = "UPDATE orders SET status = ?2, attempts = ?3, failure_reason = ?4, \
         updated_at = ?5, fulfillment_reference = ?6, cancel_reason = ?7, \
         event_seqs = COALESCE(event_seqs || ',', '') || ?14 WHERE id = ?1 AND status = ?8 \
         AND attempts = ?9 AND failure_reason IS ?10 AND updated_at = ?11 \
         AND fulfillment_reference IS ?12 AND cancel_reason IS ?13";
    conn.held(UPDATE, |st| {
        st.execute(params![
            order.id.as_bytes(),
            order.status.as_str(),
            order.attempts,
            order.failure_reason,
            order.updated_at.millis(),
            order.fulfillment_reference,
            order.cancel_reason,
            before.status.as_str(),
            before.attempts,
            before.failure_reason,
            before.updated_at.millis(),
            before.fulfillment_reference,
            before.cancel_reason,
            seqs,
        ])
    })
    .map_err(sql_err)
}

/// What goes with a status change of an order that was `before`: its
/// event `seq`, the status counts, and the fulfillment's row.
fn record_change(
    conn: &Tx<'_>,
    seq: i64,
    before: OrderStatus,
    order: &Order,
) -> Result<(), PortError> {
    crate::events::record_in(
        conn,
        seq,
        EventType::for_change(Some(before), order.status),
        order,
    )?;
    if before != order.status {
        bump_count(conn, before, -1);
        bump_count(conn, order.status, 1);
    }
    if order.status == OrderStatus::Fulfilled {
        static INSERT: &str = "INSERT INTO fulfillments (order_id, fulfilled_at) VALUES (?1, ?2)";
        conn.held(INSERT, |st| {
            st.execute(params![order.id.as_bytes(), order.updated_at.millis()])
        })
        .map_err(sql_err)?;
    }
    Ok(())
}

fn same_content(a: &Order, b: &Order) -> bool {
    a.id == b.id
        && a.customer_id == b.customer_id
        && a.product_id == b.product_id
        && a.quantity == b.quantity
        && a.price == b.price
        && a.metadata == b.metadata
}

fn bad_cursor() -> PortError {
    PortError::not_found("cursor is not valid")
}

#[async_trait]
impl OrderStore for SqliteOrderStore {
    async fn put_new(&self, order: &Order) -> Result<Order, PortError> {
        let order = order.clone();
        self.db
            .write(move |conn| match get_order(conn, order.id)? {
                Some(existing) if same_content(&existing, &order) => Ok(existing),
                Some(_) => Err(PortError::conflict(format!(
                    "order {} exists with other content",
                    order.id
                ))),
                None => {
                    insert_order(conn, &order, None, None)?;
                    Ok(order)
                }
            })
            .await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, PortError> {
        self.db.read(move |conn| get_order(conn, id)).await
    }

    async fn list(
        &self,
        status: Option<OrderStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, PortError> {
        let cursor = match cursor {
            Some(c) => Some(OrderId::parse(c).map_err(|_| bad_cursor())?),
            None => None,
        };
        let limit = limit.clamp(1, 500);
        self.db
            .read(move |conn| {
                // One statement per shape, so SQLite can use orders_by_status
                // (an `?1 IS NULL OR status = ?1` form would scan the table).
                let filter = match (status.is_some(), cursor.is_some()) {
                    (true, true) => "WHERE status = ?1 AND id < ?2",
                    (true, false) => "WHERE status = ?1 AND ?2 IS NULL",
                    (false, true) => "WHERE ?1 IS NULL AND id < ?2",
                    (false, false) => "WHERE ?1 IS NULL AND ?2 IS NULL",
                };
                let sql = format!(
                    "SELECT {ORDER_COLUMNS} FROM orders {filter} ORDER BY id DESC LIMIT ?3"
                );
                let mut st = conn.prepare_cached(&sql).map_err(sql_err)?;
                let rows = st
                    .query_map(
                        params![
                            status.map(|s| s.as_str()),
                            cursor.as_ref().map(OrderId::as_bytes),
                            limit as i64 + 1
                        ],
                        order_from_row,
                    )
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Order>>>())
                    .map_err(sql_err)?;
                Ok(page(rows, limit, |o| o.id.to_string()))
            })
            .await
    }

    async fn transition(&self, id: OrderId, change: &Transition) -> Result<Order, PortError> {
        let change = change.clone();
        self.db
            .write(move |conn| apply_transition(conn, id, &change))
            .await
    }

    async fn record_failure(&self, failed: &FailedOrder) -> Result<bool, PortError> {
        let failed = failed.clone();
        self.db
            .write(move |conn| record_failure_in(conn, &failed))
            .await
    }

    async fn list_failed(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<FailedOrder>, PortError> {
        let cursor = match cursor {
            Some(c) => Some(c.parse::<i64>().map_err(|_| bad_cursor())?),
            None => None,
        };
        let limit = limit.clamp(1, 500);
        self.db
            .read(move |conn| failed::page_in(conn, cursor, limit))
            .await
    }

    async fn count_by_status(&self) -> Result<Vec<(OrderStatus, u64)>, PortError> {
        self.db
            .read(|conn| {
                let mut st = conn
                    .prepare_cached("SELECT status, n FROM order_counts")
                    .map_err(sql_err)?;
                let rows = st
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql_err)?;
                Ok(OrderStatus::ALL
                    .into_iter()
                    .map(|s| {
                        let n = rows
                            .iter()
                            .find(|(name, _)| name == s.as_str())
                            .map_or(0, |(_, n)| *n);
                        (s, n.max(0) as u64)
                    })
                    .collect())
            })
            .await
    }
}

/// Cuts `limit + 1` rows to a page, with a cursor when there are more.
fn page<T>(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_core::conformance::sample_order;
    use dofs_core::ports::EventLog;
    use dofs_core::Timestamp;

    fn begin(attempt: u32, at: i64) -> Transition {
        Transition {
            attempts: Some(attempt),
            ..Transition::new(
                &[OrderStatus::Pending, OrderStatus::Processing],
                OrderStatus::Processing,
                Timestamp(at),
            )
        }
    }

    fn fulfilled(attempt: u32, at: i64) -> Transition {
        Transition {
            ends_attempt: Some(attempt),
            ..Transition::new(
                &[OrderStatus::Processing],
                OrderStatus::Fulfilled,
                Timestamp(at),
            )
        }
    }

    /// A new database in a temporary directory (kept while it is used), and
    /// an order not yet stored.
    fn database_and_order() -> (tempfile::TempDir, Db, Order) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        (dir, db, sample_order(1, Timestamp(1_000)))
    }

    /// An order id bound as text by mistake is refused by the table's
    /// `CHECK`, rather than stored where no lookup by its bytes finds it.
    #[tokio::test]
    async fn an_order_id_written_as_text_is_refused() {
        let (_dir, db, order) = database_and_order();
        let written = db
            .write(move |conn| {
                Ok(conn
                    .execute(
                        "INSERT INTO fulfillments (order_id, fulfilled_at) VALUES (?1, 1)",
                        [order.id.to_string()],
                    )
                    .map_err(|e| e.to_string()))
            })
            .await
            .expect("the transaction");
        let refused = written.expect_err("text is not an order id here");
        assert!(refused.contains("CHECK constraint failed"), "{refused}");
    }

    /// An attempt's finish writes with one conditional UPDATE while the row
    /// is as its begin left it, and falls back to reading the row when a
    /// newer attempt has begun since: the stale finish changes nothing.
    #[tokio::test]
    async fn a_finish_applies_to_the_row_as_it_is_not_as_the_attempt_saw_it() {
        let (_dir, db, order) = database_and_order();
        let id = order.id;
        let (stale, current, outcome) = db
            .write(move |conn| {
                insert_order(conn, &order, None, None)?;
                let first = apply_transition_to(conn, &order, &begin(1, 2_000))?;
                // The first attempt's lease ran out; a second one began.
                let second = apply_transition_to(conn, &first, &begin(2, 3_000))?;
                let stale = apply_transition_from(conn, &first, &fulfilled(1, 4_000));
                let current = get_order(conn, id)?;
                let outcome = apply_transition_from(conn, &second, &fulfilled(2, 5_000))?;
                Ok((stale, current, outcome))
            })
            .await
            .expect("write");
        let stale = stale.expect_err("the first attempt was overtaken");
        assert_eq!(stale.kind, ErrorKind::Conflict);
        let current = current.expect("order");
        assert_eq!(
            (current.status, current.attempts),
            (OrderStatus::Processing, 2)
        );
        assert_eq!(outcome.status, OrderStatus::Fulfilled);
        assert_eq!(outcome.updated_at, Timestamp(5_000));
        let fulfillments: i64 = db
            .read(move |conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM fulfillments WHERE order_id = ?1",
                    [id.as_bytes()],
                    |r| r.get(0),
                )
                .map_err(sql_err)
            })
            .await
            .expect("read");
        let events = crate::events::SqliteEventLog::new(db)
            .of_order(id)
            .await
            .expect("events");
        assert_eq!(fulfillments, 1);
        let events: Vec<(EventType, u32)> =
            events.iter().map(|e| (e.kind, e.order.attempts)).collect();
        assert_eq!(
            events,
            [
                (EventType::Accepted, 0),
                (EventType::Processing, 1),
                (EventType::Processing, 2),
                (EventType::Fulfilled, 2)
            ],
            "no event for the stale finish"
        );
    }

    /// An attempt begun and finished in one transaction writes the order's
    /// row once and records both changes as two separate ones would: each
    /// event in turn, the counts, the fulfillment. Over a row that is no
    /// longer as read, it writes nothing.
    #[tokio::test]
    async fn steps_write_the_row_once_with_every_step_recorded() {
        let (_dir, db, order) = database_and_order();
        let id = order.id;
        let (changes, stale, current) = db
            .write(move |conn| {
                insert_order(conn, &order, None, None)?;
                let begun = begin(1, 2_000).apply(&order)?;
                let ended = fulfilled(1, 2_000).apply(&begun)?;
                let at = conn.total_changes();
                write_steps(conn, &order, &[&begun, &ended])?;
                let changes = conn.total_changes() - at;
                // `order` is what the row held before: a second write over it is refused.
                let at = conn.total_changes();
                let stale = write_steps(conn, &order, &[&begun]);
                assert_eq!(conn.total_changes(), at, "a refused write changes nothing");
                Ok((changes, stale, get_order(conn, id)?))
            })
            .await
            .expect("write");
        assert_eq!(changes, 4, "the order's row, two events, the fulfillment");
        assert_eq!(stale.expect_err("stale").kind, ErrorKind::Internal);
        let current = current.expect("order");
        assert_eq!(
            (current.status, current.attempts),
            (OrderStatus::Fulfilled, 1)
        );
        let events = crate::events::SqliteEventLog::new(db.clone())
            .of_order(id)
            .await
            .expect("events");
        let events: Vec<(EventType, OrderStatus)> =
            events.iter().map(|e| (e.kind, e.order.status)).collect();
        assert_eq!(
            events,
            [
                (EventType::Accepted, OrderStatus::Pending),
                (EventType::Processing, OrderStatus::Processing),
                (EventType::Fulfilled, OrderStatus::Fulfilled)
            ]
        );
        let (listed, in_file): (String, String) = db
            .read(move |conn| {
                conn.query_row(
                    "SELECT event_seqs, (SELECT group_concat(seq, ',' ORDER BY seq) FROM events \
                     WHERE order_id = ?1) FROM orders WHERE id = ?1",
                    [id.as_bytes()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql_err)
            })
            .await
            .expect("read");
        assert_eq!(listed, in_file, "the row lists its events, and only them");
        let counts = SqliteOrderStore::new(db)
            .count_by_status()
            .await
            .expect("counts");
        for (status, n) in counts {
            let want = u64::from(status == OrderStatus::Fulfilled);
            assert_eq!(n, want, "{status:?}");
        }
    }
}
