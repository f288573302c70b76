//! The order events (the outbox): one row per status change, written by the
//! change's own transaction ([`record_in`], called from the store), served
//! by [`SqliteEventLog`] and delivered to webhooks by
//! [`crate::webhooks`].
//!
//! An event row keeps what changed (type, attempts, failure reason, time);
//! the rest of the order, which never changes, is read from its row when
//! the event is read, so an event costs tens of bytes, not a copy of the order.

use crate::db::{sql_err, Db, Tx};
use crate::store::{order_from_row, ORDER_COLUMNS, ORDER_COLUMN_COUNT};
use async_trait::async_trait;
use dofs_core::ports::{ErrorKind, EventLog, Page, PortError};
use dofs_core::{EventType, Order, OrderEvent, OrderId, OrderStatus, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::sync::OnceLock;

/// The most events one page of the feed holds.
pub const MAX_PAGE: usize = 1000;

fn type_code(kind: EventType) -> i64 {
    EventType::ALL.iter().position(|t| *t == kind).unwrap_or(0) as i64
}

/// The sequence number the next event will take: one past the newest (the
/// writer's own transaction is the only one adding events, and pruning
/// never deletes the newest, so a number is never used twice). The
/// transaction reads the newest once; each event [`record_in`] writes then
/// moves the number on ([`Tx`]'s `next_seq`, forgotten when the transaction
/// ends, so a rolled-back transaction's numbers are read again).
pub(crate) fn next_seq(conn: &Tx<'_>) -> Result<i64, PortError> {
    if let Some(next) = conn.next_seq.get() {
        return Ok(next);
    }
    let next = last_seq(conn)? + 1;
    conn.next_seq.set(Some(next));
    Ok(next)
}

/// Records the event of `order`'s change (the order as it is after it) as
/// event `seq` (from [`next_seq`], already listed in the order's row),
/// inside the writer's transaction.
pub(crate) fn record_in(
    conn: &Tx<'_>,
    seq: i64,
    kind: EventType,
    order: &Order,
) -> Result<(), PortError> {
    static INSERT: &str =
        "INSERT INTO events (seq, order_id, type, attempts, occurred_at, failure_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    conn.held(INSERT, |st| {
        st.execute(params![
            seq,
            order.id.as_bytes(),
            type_code(kind),
            order.attempts,
            order.updated_at.millis(),
            order.failure_reason,
        ])
    })
    .map_err(sql_err)?;
    if let Some(next) = conn.next_seq.get() {
        conn.next_seq.set(Some(next.max(seq + 1)));
    }
    Ok(())
}

/// The select list for events joined with their orders: the order's
/// columns first (as [`order_from_row`] reads them), then the event's.
fn select_list() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| {
        let order: Vec<String> = ORDER_COLUMNS
            .split(',')
            .map(|c| format!("o.{}", c.trim()))
            .collect();
        format!(
            "{}, e.seq, e.type, e.attempts, e.occurred_at, e.failure_reason",
            order.join(", ")
        )
    })
}

fn corrupt() -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, "events.type".into(), rusqlite::types::Type::Integer)
}

/// An event from a row of [`select_list`]: the order as it was right after the change.
fn event_from_row(row: &Row<'_>) -> rusqlite::Result<OrderEvent> {
    event_of(order_from_row(row)?, row, ORDER_COLUMN_COUNT)
}

/// The event whose columns (seq, type, attempts, occurred_at,
/// failure_reason) start at column `n` of `row`, of `order` (its row as it
/// is now): the order as it was right after the change.
fn event_of(mut order: Order, row: &Row<'_>, n: usize) -> rusqlite::Result<OrderEvent> {
    let seq: i64 = row.get(n)?;
    let kind = usize::try_from(row.get::<_, i64>(n + 1)?)
        .ok()
        .and_then(|i| EventType::ALL.get(i).copied())
        .ok_or_else(corrupt)?;
    let occurred_at = Timestamp(row.get(n + 3)?);
    order.status = match kind {
        EventType::Accepted | EventType::Retried => OrderStatus::Pending,
        EventType::Processing => OrderStatus::Processing,
        EventType::Fulfilled => OrderStatus::Fulfilled,
        EventType::Failed => OrderStatus::Failed,
        EventType::Cancelled => OrderStatus::Cancelled,
    };
    order.attempts = row.get(n + 2)?;
    order.failure_reason = row.get(n + 4)?;
    order.updated_at = occurred_at;
    if order.status != OrderStatus::Fulfilled {
        order.fulfillment_reference = None;
    }
    if order.status != OrderStatus::Cancelled {
        order.cancel_reason = None;
    }
    Ok(OrderEvent {
        id: seq.to_string(),
        kind,
        order,
        occurred_at,
    })
}

/// Events after sequence number `after`, oldest first, at most `limit`.
pub(crate) fn events_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<OrderEvent>, PortError> {
    let sql = format!(
        "SELECT {} FROM events e JOIN orders o ON o.id = e.order_id WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
        select_list()
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(params![after, limit as i64], event_from_row)?
                .collect()
        })
        .map_err(sql_err)
}

const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM events";

/// The sequence number of the newest event (0 when there is none).
pub(crate) fn last_seq(conn: &Connection) -> Result<i64, PortError> {
    conn.prepare_cached(LAST_SEQ)
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(sql_err)
}

/// Parses a feed cursor (an event id).
pub fn parse_cursor(cursor: &str) -> Result<i64, PortError> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0 && !cursor.starts_with('+'))
        .ok_or_else(|| PortError::not_found("cursor is not an event id"))
}

/// Deletes up to `batch` of the oldest events that occurred before
/// `cutoff`, never the newest one (so event ids are never used again) and
/// never one a webhook has yet to take or drop (its deliverer counts what it
/// drops; an event pruned under it would vanish uncounted).
/// Returns how many it deleted; call again while that is `batch`.
pub(crate) fn prune_in(
    conn: &Connection,
    cutoff: Timestamp,
    batch: usize,
) -> Result<usize, PortError> {
    let undelivered: Option<i64> = conn
        .prepare_cached("SELECT MIN(after_seq) FROM event_deliveries")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(sql_err)?;
    let newest = match undelivered {
        Some(after) => last_seq(conn)?.min(after + 1),
        None => last_seq(conn)?,
    };
    let upto: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(seq) FROM (SELECT seq, occurred_at FROM events WHERE seq < ?1 ORDER BY seq LIMIT ?2) \
             WHERE occurred_at < ?3",
        )
        .and_then(|mut st| st.query_row(params![newest, batch as i64, cutoff.millis()], |r| r.get(0)))
        .map_err(sql_err)?;
    let Some(upto) = upto else { return Ok(0) };
    conn.prepare_cached("DELETE FROM events WHERE seq <= ?1 AND occurred_at < ?2")
        .and_then(|mut st| st.execute(params![upto, cutoff.millis()]))
        .map_err(sql_err)
}

/// The event feed on the SQLite file.
#[derive(Clone)]
pub struct SqliteEventLog {
    db: Db,
}

impl SqliteEventLog {
    pub fn new(db: Db) -> Self {
        SqliteEventLog { db }
    }
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<OrderEvent>, PortError> {
        let from = after.map(parse_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let items = self
            .db
            .read(move |conn| events_after(conn, from.unwrap_or(0), limit))
            .await?;
        let next_cursor = match items.last() {
            Some(e) => Some(e.id.clone()),
            None => from.map(|n| n.to_string()),
        };
        Ok(Page { items, next_cursor })
    }

    async fn of_order(&self, id: OrderId) -> Result<Vec<OrderEvent>, PortError> {
        self.db.read(move |conn| events_of_order(conn, id)).await
    }
}

/// How many orders' rows list other events than the file holds for them
/// (their `event_seqs` is not the numbers of their events, oldest first):
/// none while the store keeps its lists. One pass over `events`, for
/// checks after the fact (the tests, an upgrade), not for the hot path.
pub fn orders_listing_other_events(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM orders o LEFT JOIN \
         (SELECT order_id, group_concat(seq, ',' ORDER BY seq) AS seqs FROM events GROUP BY order_id) e \
         ON e.order_id = o.id WHERE o.event_seqs IS NOT e.seqs",
        [],
        |r| r.get(0),
    )
}

/// How an order's row lists `count` event numbers from `first`
/// (`orders.event_seqs`, as [`events_of_order`] reads it): comma-separated,
/// oldest first.
pub(crate) fn seq_list(first: i64, count: usize) -> String {
    let mut list = first.to_string();
    for seq in first + 1..first + count as i64 {
        list.push(',');
        list.push_str(&seq.to_string());
    }
    list
}

/// The most events [`events_of_order`] returns.
const MAX_OF_ORDER: usize = 100;

/// The events of order `id`, oldest first (at most [`MAX_OF_ORDER`]): its
/// row lists their numbers (`event_seqs`), so each is read by its key
/// rather than found through an index on `events.order_id` that every event
/// would also write. Numbers of events pruned since are passed over.
fn events_of_order(conn: &Connection, id: OrderId) -> Result<Vec<OrderEvent>, PortError> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS}, event_seqs FROM orders WHERE id = ?1"
        ))
        .and_then(|mut st| {
            st.query_row([id.as_bytes()], |row| {
                Ok((
                    order_from_row(row)?,
                    row.get::<_, Option<String>>(ORDER_COLUMN_COUNT)?,
                ))
            })
            .optional()
        })
        .map_err(sql_err)?;
    let Some((order, Some(listed))) = found else {
        return Ok(Vec::new());
    };
    let mut st = conn
        .prepare_cached(
            "SELECT seq, type, attempts, occurred_at, failure_reason FROM events \
             WHERE seq = ?1 AND order_id = ?2",
        )
        .map_err(sql_err)?;
    let mut events = Vec::new();
    for seq in listed.split(',') {
        let seq: i64 = seq.parse().map_err(|_| {
            PortError::new(
                ErrorKind::Internal,
                format!("order {id}: its event list {listed:?} is not a list of numbers"),
            )
        })?;
        let event = st
            .query_row(params![seq, id.as_bytes()], |row| {
                event_of(order.clone(), row, 0)
            })
            .optional()
            .map_err(sql_err)?;
        if let Some(event) = event {
            events.push(event);
            if events.len() == MAX_OF_ORDER {
                break;
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_core::conformance::sample_order;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .expect("count")
    }

    /// The number of events each of `ids` lists and still has.
    fn listed(conn: &Connection, ids: &[OrderId]) -> Result<Vec<usize>, PortError> {
        ids.iter()
            .map(|id| events_of_order(conn, *id).map(|e| e.len()))
            .collect()
    }

    /// The event numbers in the table, and the list of each order's row.
    fn numbers(conn: &Connection) -> (Vec<i64>, Vec<String>) {
        let seqs = conn
            .prepare("SELECT seq FROM events ORDER BY seq")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("events");
        let lists = conn
            .prepare("SELECT event_seqs FROM orders ORDER BY event_seqs")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("orders");
        (seqs, lists)
    }

    #[tokio::test]
    async fn the_writer_counts_event_numbers_within_a_transaction_and_reads_them_again_after_a_rollback(
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        db.write(|conn| {
            for at in 1..=3 {
                crate::store::insert_order(conn, &sample_order(0, Timestamp(at)), None, None)?;
            }
            Ok(())
        })
        .await
        .expect("three orders in one transaction");
        let failed = db
            .write(|conn| {
                crate::store::insert_order(conn, &sample_order(0, Timestamp(4)), None, None)?;
                Err::<(), _>(PortError::new(ErrorKind::Conflict, "fails after a write"))
            })
            .await
            .expect_err("the failing job");
        assert_eq!(failed.kind, ErrorKind::Conflict, "{failed:?}");
        db.write(|conn| {
            crate::store::insert_order(conn, &sample_order(0, Timestamp(5)), None, None)
        })
        .await
        .expect("an order after the rollback");
        let (seqs, lists) = db.read(|conn| Ok(numbers(conn))).await.expect("read");
        assert_eq!(
            seqs,
            [1, 2, 3, 4],
            "the rolled-back event's number is taken again"
        );
        assert_eq!(lists, ["1", "2", "3", "4"]);
        let reads = db
            .write(|conn| {
                conn.prepare_cached(LAST_SEQ)
                    .map(|st| st.get_status(rusqlite::StatementStatus::Run))
                    .map_err(sql_err)
            })
            .await
            .expect("the writer's statement");
        assert_eq!(
            reads, 3,
            "the newest event read once per transaction, not per order"
        );
    }

    #[tokio::test]
    async fn pruning_keeps_the_newest_event_and_what_a_webhook_has_yet_to_take() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let (left, of_orders) = db
            .write(|conn| {
                let mut ids = Vec::new();
                for at in 1..=10 {
                    let order = sample_order(0, Timestamp(at * 1000));
                    crate::store::insert_order(conn, &order, None, None)?;
                    ids.push(order.id);
                }
                let before = listed(conn, &ids)?;
                // A webhook that has taken events 1 to 4.
                conn.execute(
                    "INSERT INTO event_deliveries (url, after_seq) VALUES ('http://hook', 4)",
                    [],
                )
                .map_err(sql_err)?;
                // All ten are old, but only 1 to 4 were taken.
                let pruned = prune_in(conn, Timestamp(1_000_000), 100)?;
                let left_then = count(conn);
                conn.execute("DELETE FROM event_deliveries", [])
                    .map_err(sql_err)?;
                let pruned_after = prune_in(conn, Timestamp(1_000_000), 100)?;
                Ok((
                    (
                        pruned,
                        left_then,
                        pruned_after,
                        count(conn),
                        last_seq(conn)?,
                    ),
                    (before, listed(conn, &ids)?),
                ))
            })
            .await
            .expect("write");
        // An order's list keeps a pruned event's number; reading passes it over.
        assert_eq!(of_orders.0, [1; 10]);
        assert_eq!(of_orders.1, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            left,
            (4, 6, 5, 1, 10),
            "(pruned, left, pruned, left, newest)"
        );
    }
}
