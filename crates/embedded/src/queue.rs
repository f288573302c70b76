//! `SqliteQueue`: the orders queue and its dead-letter queue, with SQS
//! semantics, in the SQLite file.
//!
//! A receipt is `<message id>#<receive count>`: it stays valid until the
//! message is received again. A message whose `visible_at` is NULL is held:
//! databases written by the first release held each order's message until
//! its execution ran; [`crate::engine::finish_running`] releases them.

use crate::db::{sql_err, Db, Tx};
use async_trait::async_trait;
use dofs_core::ports::{DeadLetter, Page, PortError, Queue, QueueDepth, Received};
use dofs_core::{Clock, OrderId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The durable queue with its DLQ.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    clock: Arc<dyn Clock>,
    max_receive_count: u32,
    /// Woken when messages become receivable now (the workers wait on it).
    pub(crate) ready: Arc<Notify>,
    /// Woken when messages were moved to the dead-letter queue (the
    /// dead-letter recorder waits on it). Apart from `ready`, which every
    /// submit wakes: the recorder would otherwise read the DLQ once per
    /// submit batch.
    pub(crate) dead: Arc<Notify>,
}

impl SqliteQueue {
    pub fn new(db: Db, clock: Arc<dyn Clock>, max_receive_count: u32) -> Self {
        SqliteQueue {
            db,
            clock,
            max_receive_count,
            ready: Arc::new(Notify::new()),
            dead: Arc::new(Notify::new()),
        }
    }

    /// Waits until a message may have become receivable, or `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.ready.notified()).await;
    }

    /// Waits until messages may have been dead-lettered, or `timeout` passes.
    pub async fn wait_dead(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.dead.notified()).await;
    }
}

fn parse_receipt(receipt: &str) -> Result<(String, u32), PortError> {
    receipt
        .rsplit_once('#')
        .and_then(|(id, n)| Some((id.to_owned(), n.parse().ok()?)))
        .ok_or_else(|| PortError::not_found("receipt is not valid"))
}

/// Sends a message inside the writer's transaction (see [`Queue::send`]).
pub(crate) fn send_in(
    conn: &Tx<'_>,
    id: &str,
    body: &str,
    now: Timestamp,
) -> Result<(), PortError> {
    if in_dlq(conn, id)? {
        return Ok(());
    }
    send_new_in(conn, id, body, now)
}

/// Whether a dead letter has the id `id`.
fn in_dlq(conn: &Tx<'_>, id: &str) -> Result<bool, PortError> {
    static IN_DLQ: &str = "SELECT 1 FROM dlq WHERE id = ?1";
    conn.held(IN_DLQ, |st| st.query_row([id], |_| Ok(())).optional())
        .map(|found| found.is_some())
        .map_err(sql_err)
}

/// [`send_in`] without looking at the dead-letter queue, for a message that
/// cannot be there: the one named by the id of the order inserted in this
/// transaction. A message id is its order's id (or, for a retry, that id and
/// a suffix), and orders are never deleted, so no message with a new order's
/// id was ever sent. Debug builds (the tests) check it.
pub(crate) fn send_new_in(
    conn: &Tx<'_>,
    id: &str,
    body: &str,
    now: Timestamp,
) -> Result<(), PortError> {
    debug_assert!(
        !in_dlq(conn, id).unwrap_or(false),
        "a new order's message {id} is in the DLQ"
    );
    static INSERT: &str =
        "INSERT INTO queue (id, body, sent_at, visible_at) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT (id) DO UPDATE SET visible_at = ?3 WHERE visible_at IS NULL";
    conn.held(INSERT, |st| st.execute(params![id, body, now.millis()]))
        .map_err(sql_err)?;
    Ok(())
}

/// Moves every dead letter back to the queue (inside the writer's transaction).
pub(crate) fn redrive_in(conn: &Connection, now: Timestamp) -> Result<Vec<String>, PortError> {
    let bodies: Vec<String> = conn
        .prepare_cached("SELECT body FROM dlq ORDER BY seq")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(sql_err)?;
    conn.prepare_cached(
        "INSERT INTO queue (id, body, sent_at, visible_at, receive_count) \
         SELECT id, body, sent_at, ?1, 0 FROM dlq ORDER BY seq ON CONFLICT (id) DO NOTHING",
    )
    .and_then(|mut st| st.execute([now.millis()]))
    .map_err(sql_err)?;
    conn.execute("DELETE FROM dlq", []).map_err(sql_err)?;
    Ok(bodies)
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, id: &str, body: &str) -> Result<(), PortError> {
        let (id, body, now) = (id.to_owned(), body.to_owned(), self.clock.now());
        self.db
            .write(move |conn| send_in(conn, &id, &body, now))
            .await?;
        self.ready.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, PortError> {
        let now = self.clock.now();
        let limit = self.max_receive_count;
        let (out, dead) = self
            .db
            .write(move |conn| receive_in(conn, now, max, visibility, limit))
            .await?;
        if dead > 0 {
            crate::failpoint::hit(crate::failpoint::AFTER_DLQ_MOVE);
            self.dead.notify_waiters();
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> Result<(), PortError> {
        let receipt = receipt.to_owned();
        self.db.write(move |conn| delete_in(conn, &receipt)).await
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), PortError> {
        let receipt = receipt.to_owned();
        let visible_at = self.clock.now().plus_millis(ms(timeout));
        self.db
            .write(move |conn| change_visibility_in(conn, &receipt, visible_at))
            .await?;
        if timeout.is_zero() {
            self.ready.notify_waiters();
        }
        Ok(())
    }

    async fn dead_letter(&self, receipt: &str) -> Result<(), PortError> {
        let receipt = receipt.to_owned();
        let now = self.clock.now();
        self.db
            .write(move |conn| dead_letter_in(conn, &receipt, now, false))
            .await?;
        self.dead.notify_waiters();
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, PortError> {
        let now = self.clock.now();
        self.db
            .read(move |conn| {
                // One pass over the queue (the overload guard reads this ten
                // times a second under load): in flight is a message received
                // and still hidden; every other one is waiting.
                conn.query_row(
                    "SELECT COUNT(*), COALESCE(SUM(visible_at > ?1 AND receive_count > 0), 0), \
                       (SELECT COUNT(*) FROM dlq), MIN(sent_at) FROM queue",
                    [now.millis()],
                    |r| {
                        let all = r.get::<_, i64>(0)?;
                        let in_flight = r.get::<_, i64>(1)?;
                        Ok(QueueDepth {
                            waiting: (all - in_flight) as u64,
                            in_flight: in_flight as u64,
                            dead: r.get::<_, i64>(2)? as u64,
                            oldest_age_ms: r
                                .get::<_, Option<i64>>(3)?
                                .map(|t| (now.millis() - t).max(0)),
                        })
                    },
                )
                .map_err(sql_err)
            })
            .await
    }

    async fn dead_letters(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeadLetter>, PortError> {
        let after = match cursor {
            Some(c) => c
                .parse::<i64>()
                .map_err(|_| PortError::not_found("cursor is not valid"))?,
            None => 0,
        };
        let limit = limit.clamp(1, 1000);
        self.db
            .read(move |conn| {
                let rows = dead_letters_after(conn, after, limit + 1)?;
                let more = rows.len() > limit;
                let mut items: Vec<(i64, DeadLetter)> = rows;
                items.truncate(limit);
                let next_cursor = match (more, items.last()) {
                    (true, Some((seq, _))) => Some(seq.to_string()),
                    _ => None,
                };
                Ok(Page {
                    items: items.into_iter().map(|(_, d)| d).collect(),
                    next_cursor,
                })
            })
            .await
    }

    async fn redrive(&self) -> Result<u64, PortError> {
        let now = self.clock.now();
        let moved = self.db.write(move |conn| redrive_in(conn, now)).await?;
        self.ready.notify_waiters();
        Ok(moved.len() as u64)
    }

    async fn purge_dead_letters(&self) -> Result<u64, PortError> {
        self.db
            .write(|conn| {
                conn.execute("DELETE FROM dlq", [])
                    .map(|n| n as u64)
                    .map_err(sql_err)
            })
            .await
    }
}

/// Receives up to `max` visible messages inside the writer's transaction
/// (see [`Queue::receive`]), hiding each for `visibility`. A message already
/// received `limit` times moves to the dead-letter queue instead. Returns the
/// messages and how many moved.
pub(crate) fn receive_in(
    conn: &Connection,
    now: Timestamp,
    max: usize,
    visibility: Duration,
    limit: u32,
) -> Result<(Vec<Received>, usize), PortError> {
    let hide_until = now.plus_millis(ms(visibility));
    let (receivable, dead) = receivable_in(conn, now, max, limit)?;
    let out = receivable
        .into_iter()
        .map(|visible| mark_received_in(conn, visible, hide_until, now))
        .collect::<Result<_, _>>()?;
    Ok((out, dead))
}

/// Up to `max` messages visible at `now`, less those already received
/// `limit` times, which move to the dead-letter queue here. Returns the
/// messages that may be received once more (not yet marked received) and
/// how many moved.
pub(crate) fn receivable_in(
    conn: &Connection,
    now: Timestamp,
    max: usize,
    limit: u32,
) -> Result<(Vec<Visible>, usize), PortError> {
    let mut receivable = Vec::new();
    let mut dead = 0usize;
    for visible in visible_in(conn, now, max)? {
        if visible.receive_count >= limit {
            dead += 1;
            move_to_dlq(conn, &visible.id, now)?;
        } else {
            receivable.push(visible);
        }
    }
    Ok((receivable, dead))
}

/// A message that may be received now, as the queue holds it (its receive
/// count not yet raised by this receive).
#[derive(Clone, Debug)]
pub(crate) struct Visible {
    pub id: String,
    pub body: String,
    pub sent_at: Timestamp,
    pub receive_count: u32,
}

impl Visible {
    /// The receipt this message's next receive gets.
    pub fn next_receipt(&self) -> String {
        format!("{}#{}", self.id, self.receive_count + 1)
    }
}

/// Up to `max` messages visible at `now`, the longest visible first.
fn visible_in(conn: &Connection, now: Timestamp, max: usize) -> Result<Vec<Visible>, PortError> {
    conn.prepare_cached(
        "SELECT id, body, sent_at, receive_count FROM queue \
         WHERE visible_at IS NOT NULL AND visible_at <= ?1 ORDER BY visible_at LIMIT ?2",
    )
    .and_then(|mut st| {
        st.query_map(params![now.millis(), max as i64], |r| {
            Ok(Visible {
                id: r.get(0)?,
                body: r.get(1)?,
                sent_at: Timestamp(r.get(2)?),
                receive_count: r.get(3)?,
            })
        })?
        .collect()
    })
    .map_err(sql_err)
}

/// Receives `visible` (one more receive, hidden until `visible_at`).
pub(crate) fn mark_received_in(
    conn: &Connection,
    visible: Visible,
    visible_at: Timestamp,
    now: Timestamp,
) -> Result<Received, PortError> {
    let n = visible.receive_count + 1;
    conn.prepare_cached(
        "UPDATE queue SET receive_count = ?2, visible_at = ?3, \
         first_received_at = COALESCE(first_received_at, ?4) WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![visible.id, n, visible_at.millis(), now.millis()]))
    .map_err(sql_err)?;
    Ok(Received {
        receipt: visible.next_receipt(),
        id: visible.id,
        body: visible.body,
        receive_count: n,
        sent_at: visible.sent_at,
    })
}

/// Moves the message `id` from the queue to the dead-letter queue.
fn move_to_dlq(conn: &Connection, id: &str, now: Timestamp) -> Result<(), PortError> {
    conn.prepare_cached(
        "INSERT INTO dlq (id, body, sent_at, receive_count, first_received_at, dead_at) \
         SELECT id, body, sent_at, receive_count, first_received_at, ?2 FROM queue WHERE id = ?1 \
         ON CONFLICT (id) DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![id, now.millis()]))
    .map_err(sql_err)?;
    conn.prepare_cached("DELETE FROM queue WHERE id = ?1")
        .and_then(|mut st| st.execute([id]))
        .map_err(sql_err)?;
    Ok(())
}

/// Moves a received message to the dead-letter queue now, inside the
/// writer's transaction (see [`Queue::dead_letter`]).
/// With `stale_too`, a message received again since this receipt moves all
/// the same (the order it names has failed for good, whoever holds it now).
pub(crate) fn dead_letter_in(
    conn: &Connection,
    receipt: &str,
    now: Timestamp,
    stale_too: bool,
) -> Result<(), PortError> {
    let (id, n) = parse_receipt(receipt)?;
    match message_count(conn, &id)? {
        Some(count) if count == n || stale_too => move_to_dlq(conn, &id, now),
        Some(_) => Err(PortError::conflict(
            "the receipt is stale: the message was received again",
        )),
        None => Err(PortError::not_found("the message was deleted")),
    }
}

/// Removes every message of `order` from the queue and the dead-letter
/// queue (a cancel). Its messages' ids start with the order id (the
/// submit's, and each retry's `{id}.retry-{ms}`), so the queue's primary
/// key finds them; the dead-letter queue, small by nature, is searched by body.
pub(crate) fn remove_order_messages_in(
    conn: &Connection,
    order: OrderId,
) -> Result<usize, PortError> {
    let id = order.text();
    let id = id.as_str();
    let from_queue = conn
        .prepare_cached("DELETE FROM queue WHERE id >= ?1 AND id < ?1 || '/'")
        .and_then(|mut st| st.execute([&id]))
        .map_err(sql_err)?;
    let from_dlq = conn
        .prepare_cached("DELETE FROM dlq WHERE json_extract(body, '$.orderId') = ?1")
        .and_then(|mut st| st.execute([&id]))
        .map_err(sql_err)?;
    Ok(from_queue + from_dlq)
}

/// Deletes a received message inside the writer's transaction (see [`Queue::delete`]).
pub(crate) fn delete_in(conn: &Tx<'_>, receipt: &str) -> Result<(), PortError> {
    let (id, n) = parse_receipt(receipt)?;
    delete_held_in(conn, &id, n)
}

/// Deletes message `id` while its receive count is still `n` (the receipt
/// `{id}#{n}`, already taken apart).
pub(crate) fn delete_held_in(conn: &Tx<'_>, id: &str, n: u32) -> Result<(), PortError> {
    static DELETE: &str = "DELETE FROM queue WHERE id = ?1 AND receive_count = ?2";
    let deleted = conn
        .held(DELETE, |st| st.execute(params![id, n]))
        .map_err(sql_err)?;
    if deleted == 0 && message_count(conn, id)?.is_some() {
        return Err(PortError::conflict(
            "the receipt is stale: the message was received again",
        ));
    }
    Ok(())
}

/// Makes a received message visible at `visible_at`, inside the writer's
/// transaction (see [`Queue::change_visibility`]).
pub(crate) fn change_visibility_in(
    conn: &Connection,
    receipt: &str,
    visible_at: Timestamp,
) -> Result<(), PortError> {
    let (id, n) = parse_receipt(receipt)?;
    let changed = conn
        .prepare_cached("UPDATE queue SET visible_at = ?3 WHERE id = ?1 AND receive_count = ?2")
        .and_then(|mut st| st.execute(params![id, n, visible_at.millis()]))
        .map_err(sql_err)?;
    match (changed, message_count(conn, &id)?) {
        (0, Some(_)) => Err(PortError::conflict(
            "the receipt is stale: the message was received again",
        )),
        (0, None) => Err(PortError::not_found("the message was deleted")),
        _ => Ok(()),
    }
}

/// `d` in whole milliseconds.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Dead letters after sequence number `after`, oldest first, with their sequence numbers.
pub(crate) fn dead_letters_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, DeadLetter)>, PortError> {
    conn.prepare_cached(
        "SELECT seq, id, body, receive_count, sent_at, dead_at FROM dlq WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )
    .and_then(|mut st| {
        st.query_map(params![after, limit as i64], |r| {
            Ok((
                r.get(0)?,
                DeadLetter {
                    id: r.get(1)?,
                    body: r.get(2)?,
                    receive_count: r.get(3)?,
                    sent_at: Timestamp(r.get(4)?),
                    dead_at: Timestamp(r.get(5)?),
                },
            ))
        })?
        .collect()
    })
    .map_err(sql_err)
}

fn message_count(conn: &Connection, id: &str) -> Result<Option<u32>, PortError> {
    conn.prepare_cached("SELECT receive_count FROM queue WHERE id = ?1")
        .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
        .map_err(sql_err)
}
