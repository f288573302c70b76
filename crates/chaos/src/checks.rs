//! The final checks: every acknowledged order terminal in time, and the
//! database file's own checks.

use super::*;

/// Polls until no stored order is PENDING or PROCESSING; returns when that was seen.
pub(super) async fn wait_all_terminal(base: &str, limit: Duration) -> Option<Instant> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let started = Instant::now();
    while started.elapsed() < limit {
        let mut open = 0;
        for status in ["PENDING", "PROCESSING"] {
            let page = http
                .get(format!("{base}/orders?status={status}&limit=1"))
                .send()
                .await;
            match page {
                Ok(r) => match r.json::<Value>().await {
                    Ok(v) => open += v["items"].as_array().map_or(1, |a| a.len()),
                    Err(_) => open += 1,
                },
                Err(_) => open += 1,
            }
        }
        if open == 0 {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

pub(super) struct Check {
    pub(super) name: String,
    pub(super) ok: bool,
    pub(super) detail: String,
}

pub(super) fn check(checks: &mut Vec<Check>, name: &str, ok: bool, detail: String) {
    checks.push(Check {
        name: name.to_owned(),
        ok,
        detail,
    });
}

pub(super) fn count(conn: &rusqlite::Connection, sql: &str) -> anyhow::Result<i64> {
    conn.query_row(sql, [], |r| r.get(0))
        .with_context(|| sql.to_owned())
}

pub(super) fn file_checks(
    data_dir: &Path,
    acked: &[String],
    seen: &HashMap<String, Seen>,
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(data_dir.join("dofs.db"))?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    check(
        checks,
        "PRAGMA integrity_check = ok",
        integrity == "ok",
        integrity,
    );

    // The file keeps an order's id as its 16 bytes: read as 32 hex digits,
    // each is written again in the API's form to be compared with its ids.
    let mut st = conn.prepare("SELECT lower(hex(id)), status FROM orders")?;
    let stored: HashMap<String, String> = st
        .query_map([], |r| Ok((uuid_text(&r.get::<_, String>(0)?), r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    check(
        checks,
        "every acknowledged (202) order exists",
        missing.is_empty(),
        format!(
            "{} acknowledged, {} stored, {} missing{}",
            acked.len(),
            stored.len(),
            missing.len(),
            missing
                .first()
                .map(|m| format!(" (first: {m})"))
                .unwrap_or_default()
        ),
    );
    let unique: HashSet<&String> = acked.iter().collect();
    check(
        checks,
        "no order id acknowledged twice",
        unique.len() == acked.len(),
        format!("{} ids, {} distinct", acked.len(), unique.len()),
    );
    let open = stored.values().filter(|s| !is_terminal(s)).count();
    check(
        checks,
        "every stored order is terminal",
        open == 0,
        format!("{open} not terminal"),
    );
    let fulfilled = count(
        &conn,
        "SELECT COUNT(*) FROM orders WHERE status = 'FULFILLED'",
    )?;
    let effects = count(&conn, "SELECT COUNT(*) FROM fulfillments")?;
    let stray_effects = count(
        &conn,
        "SELECT COUNT(*) FROM fulfillments f LEFT JOIN orders o ON o.id = f.order_id \
         WHERE o.status IS NOT 'FULFILLED'",
    )?;
    check(
        checks,
        "fulfillment effects = FULFILLED orders",
        effects == fulfilled && stray_effects == 0,
        format!("{effects} effects, {fulfilled} FULFILLED, {stray_effects} effects of orders not FULFILLED"),
    );
    // A FAILED order that was then cancelled keeps its row, as history.
    let failed = count(&conn, "SELECT COUNT(*) FROM orders WHERE status = 'FAILED'")?;
    let rows = count(&conn, "SELECT COUNT(*) FROM failed_orders")?;
    let distinct = count(&conn, "SELECT COUNT(DISTINCT order_id) FROM failed_orders")?;
    let rows_of_failed = count(
        &conn,
        "SELECT COUNT(*) FROM failed_orders f JOIN orders o ON o.id = f.order_id WHERE o.status = 'FAILED'",
    )?;
    let stray_rows = count(
        &conn,
        "SELECT COUNT(*) FROM failed_orders f LEFT JOIN orders o ON o.id = f.order_id \
         WHERE o.status IS NULL OR o.status NOT IN ('FAILED', 'CANCELLED')",
    )?;
    check(
        checks,
        "failed-orders rows = FAILED orders (and cancelled ones that had failed)",
        rows_of_failed == failed && distinct == rows && stray_rows == 0,
        format!("{rows} rows ({distinct} orders), {failed} FAILED, {stray_rows} rows of orders neither FAILED nor CANCELLED"),
    );
    let running = count(
        &conn,
        "SELECT COUNT(*) FROM executions WHERE status = 'RUNNING'",
    )?;
    check(
        checks,
        "no workflow execution left RUNNING",
        running == 0,
        format!("{running} RUNNING"),
    );
    // Each order's row lists its events (schema version 7): exactly the
    // numbers of the events the file holds for it, oldest first.
    let events = count(&conn, "SELECT COUNT(*) FROM events")?;
    let mislisted = count(
        &conn,
        "SELECT COUNT(*) FROM orders o LEFT JOIN \
         (SELECT order_id, group_concat(seq, ',' ORDER BY seq) AS seqs FROM events GROUP BY order_id) e \
         ON e.order_id = o.id WHERE o.event_seqs IS NOT e.seqs",
    )?;
    check(
        checks,
        "each order's row lists exactly its events",
        mislisted == 0,
        format!("{events} events, {mislisted} orders listing others"),
    );
    // The last status each sampled order showed must not be undone in the
    // file: a terminal one stays, but for a FAILED order since cancelled.
    let undone: Vec<String> = seen
        .iter()
        .filter(|(id, s)| {
            is_terminal(&s.status)
                && stored
                    .get(*id)
                    .is_none_or(|now| crate::load::backwards(&s.status, now).is_some())
        })
        .map(|(id, s)| format!("{id} was {} and is now {:?}", s.status, stored.get(id)))
        .collect();
    check(
        checks,
        "sampled terminal statuses are final in the file (a FAILED one may be CANCELLED since)",
        undone.is_empty(),
        format!(
            "{} sampled orders, {} changed{}",
            seen.len(),
            undone.len(),
            undone
                .first()
                .map(|u| format!(" (first: {u})"))
                .unwrap_or_default()
        ),
    );
    Ok(())
}

/// A UUID's 32 hex digits in its hyphenated form (8-4-4-4-12); other text as it is.
fn uuid_text(digits: &str) -> String {
    if digits.len() != 32 || !digits.is_ascii() {
        return digits.to_owned();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &digits[..8],
        &digits[8..12],
        &digits[12..16],
        &digits[16..20],
        &digits[20..]
    )
}
