//! The failed-orders table: a failure recorded with its order's change,
//! and the table read a page at a time, newest first.

use super::{apply_transition, get_order, page, row::corrupt};
use crate::db::{sql_err, Tx};
use dofs_core::ports::{Page, PortError, Transition};
use dofs_core::{FailedOrder, OrderId, Timestamp};
use rusqlite::{params, Connection, Row};

/// Records a failure inside the writer's transaction: once per failure, gated
/// on the order not being `FAILED` or `FULFILLED` already.
pub(crate) fn record_failure_in(conn: &Tx<'_>, failed: &FailedOrder) -> Result<bool, PortError> {
    let Some(order) = get_order(conn, failed.order_id)? else {
        return Ok(false);
    };
    if order.status.is_terminal() {
        return Ok(false);
    }
    apply_transition(
        conn,
        failed.order_id,
        &Transition::failure(failed, order.status),
    )?;
    insert_failed_row(conn, failed)?;
    Ok(true)
}

/// Adds `failed` to the failed-orders table (its order's change is the caller's).
pub(crate) fn insert_failed_row(conn: &Connection, failed: &FailedOrder) -> Result<(), PortError> {
    conn.prepare_cached(
        "INSERT INTO failed_orders (order_id, reason, attempts, failed_at, order_json) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| {
        st.execute(params![
            failed.order_id.as_bytes(),
            failed.reason,
            failed.attempts,
            failed.failed_at.millis(),
            failed.order.to_string()
        ])
    })
    .map_err(sql_err)?;
    Ok(())
}

/// A page of failed orders, newest first, before the cursor `?1` (none:
/// from the newest). The cursor is a bound on the primary key, so a page
/// deep in the table is found by a search, not a scan from the newest
/// (an `?1 IS NULL OR seq < ?1` form scans).
const FAILED_PAGE: &str =
    "SELECT seq, order_id, reason, attempts, failed_at, order_json FROM failed_orders \
     WHERE seq < COALESCE(?1, 9223372036854775807) ORDER BY seq DESC LIMIT ?2";

/// The page of failed orders before `cursor` (a `seq`), at most `limit`.
pub(super) fn page_in(
    conn: &Connection,
    cursor: Option<i64>,
    limit: usize,
) -> Result<Page<FailedOrder>, PortError> {
    let mut st = conn.prepare_cached(FAILED_PAGE).map_err(sql_err)?;
    let rows = st
        .query_map(params![cursor, limit as i64 + 1], failed_from_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(sql_err)?;
    let p = page(rows, limit, |(seq, _)| seq.to_string());
    Ok(Page {
        items: p.items.into_iter().map(|(_, f)| f).collect(),
        next_cursor: p.next_cursor,
    })
}

fn failed_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, FailedOrder)> {
    let order_id = OrderId::from_bytes(row.get(1)?);
    let order_json: String = row.get(5)?;
    Ok((
        row.get(0)?,
        FailedOrder {
            order_id,
            reason: row.get(2)?,
            attempts: row.get(3)?,
            failed_at: Timestamp(row.get(4)?),
            order: serde_json::from_str(&order_json)
                .map_err(|_| corrupt("failed_orders.order_json"))?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    #[tokio::test]
    async fn a_page_of_failed_orders_is_found_by_its_cursor_not_by_a_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let plan: Vec<String> = db
            .read(|conn| {
                conn.prepare(&format!("EXPLAIN QUERY PLAN {FAILED_PAGE}"))
                    .and_then(|mut st| {
                        st.query_map(params![7_i64, 10_i64], |r| r.get(3))?
                            .collect()
                    })
                    .map_err(sql_err)
            })
            .await
            .expect("plan");
        assert!(
            plan.iter()
                .any(|step| step.contains("SEARCH failed_orders USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
    }
}
