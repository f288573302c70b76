//! What the campaign runs outside the server, so that it outlives every
//! kill: the user's fulfillment service (`fulfillment.mode = http`), the
//! event webhook, and an operator cancelling orders as they come.

use super::*;
use dofs_blackbox::receiver::{Receiver, Reply, Request};

/// The fulfillment service: each attempt succeeds with probability 0.7,
/// decided by a hash of (seed, order, attempt) so a replayed plan answers
/// alike; failures are 503s.
pub(super) async fn fulfillment_service(seed: u64) -> Receiver {
    Receiver::start(Arc::new(move |r: &Request, _: &[Request]| {
        let id = r.header("webhook-id").unwrap_or_default();
        let mut h: u64 = seed ^ 0xcbf2_9ce4_8422_2325;
        for b in id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        if h % 10 < 7 {
            Reply::ok(serde_json::json!({ "reference": format!("ref-{id}") }))
        } else {
            Reply::status(503)
        }
    }))
    .await
}

/// The event webhook: takes every delivery.
pub(super) async fn webhook() -> Receiver {
    Receiver::start(Arc::new(|_: &Request, _: &[Request]| {
        Reply::ok(serde_json::json!({}))
    }))
    .await
}

/// A cancel that the server answered 200: the order and when the answer came.
pub(super) type Cancelled = Arc<Mutex<Vec<(String, Instant)>>>;

/// Cancels one recently acknowledged order every `every`, until the load
/// stops; records the cancels answered 200. Cancels cut by a kill (no
/// answer) are not recorded: their outcome is unknown.
pub(super) async fn canceller(shared: Arc<Shared>, seed: u64, every: Duration, done: Cancelled) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut rng = Rng::new(seed ^ 0xca9c);
    while !shared.stop_load.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        let Some(base) = shared.base() else { continue };
        let pick = match shared.acked.lock() {
            Ok(a) if !a.is_empty() => {
                let from = a.len().saturating_sub(64) as u64;
                Some(a[rng.range(from, a.len() as u64 - 1) as usize].clone())
            }
            _ => None,
        };
        let Some(id) = pick else { continue };
        let answer = http
            .post(format!("{base}/orders/{id}/cancel"))
            .header("content-type", "application/json")
            .body(r#"{"reason": "kill campaign"}"#)
            .send()
            .await;
        if let Ok(r) = answer {
            if r.status().as_u16() == 200 {
                if let Ok(mut d) = done.lock() {
                    d.push((id, Instant::now()));
                }
            }
        }
    }
}

/// Each order's last event id, and those of them the webhook has not taken.
fn final_events(conn: &rusqlite::Connection, hook: &Receiver) -> anyhow::Result<(usize, Vec<i64>)> {
    let taken = hook.taken_ids();
    let mut st = conn.prepare("SELECT MAX(seq) FROM events GROUP BY order_id")?;
    let last = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let undelivered = last
        .iter()
        .copied()
        .filter(|seq| !taken.contains(&seq.to_string()))
        .collect();
    Ok((last.len(), undelivered))
}

/// Waits until the webhook has taken each order's last event, or `limit`.
pub(super) async fn wait_delivered(data_dir: &Path, hook: &Receiver, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        let pending = rusqlite::Connection::open(data_dir.join("dofs.db"))
            .map_err(anyhow::Error::from)
            .and_then(|conn| final_events(&conn, hook));
        if matches!(pending, Ok((_, ref undelivered)) if undelivered.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The checks of what happened outside the server: no cancelled order
/// attempted after its cancel returned or left other than CANCELLED, and
/// each order's last event delivered to the webhook.
pub(super) fn outside_checks(
    data_dir: &Path,
    service: &Receiver,
    hook: &Receiver,
    cancelled: &[(String, Instant)],
    checks: &mut Vec<checks::Check>,
) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(data_dir.join("dofs.db"))?;
    let attempts = service.requests();
    let mut late = Vec::new();
    let mut not_cancelled = Vec::new();
    for (id, returned) in cancelled {
        if attempts
            .iter()
            .any(|r| r.header("idempotency-key") == Some(id.as_str()) && r.at > *returned)
        {
            late.push(id.clone());
        }
        let status: Option<String> = conn
            .query_row(
                "SELECT status FROM orders WHERE id = unhex(?1, '-')",
                [id],
                |r| r.get(0),
            )
            .ok();
        if status.as_deref() != Some("CANCELLED") {
            not_cancelled.push(format!("{id} is {status:?}"));
        }
    }
    check(
        checks,
        "no cancelled order attempted after its cancel returned 200",
        late.is_empty(),
        format!(
            "{} cancels answered 200, {} attempted later{}",
            cancelled.len(),
            late.len(),
            late.first()
                .map(|l| format!(" (first: {l})"))
                .unwrap_or_default()
        ),
    );
    check(
        checks,
        "every order cancelled with a 200 is CANCELLED",
        not_cancelled.is_empty(),
        not_cancelled.first().cloned().unwrap_or_default(),
    );
    let both = checks::count(
        &conn,
        "SELECT COUNT(*) FROM orders o JOIN fulfillments f ON f.order_id = o.id WHERE o.status = 'CANCELLED'",
    )?;
    let cancelled_count = checks::count(
        &conn,
        "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'",
    )?;
    check(
        checks,
        "no order both CANCELLED and fulfilled",
        both == 0,
        format!("{cancelled_count} CANCELLED, {both} of them with a fulfillment"),
    );
    let (orders, undelivered) = final_events(&conn, hook)?;
    check(
        checks,
        "each order's final event delivered to the webhook",
        undelivered.is_empty() && orders > 0,
        format!(
            "{orders} orders' final events, {} undelivered; {} distinct events delivered",
            undelivered.len(),
            hook.taken_ids().len()
        ),
    );
    Ok(())
}
