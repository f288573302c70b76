//! What the campaign runs outside the server, so that it outlives every
//! kill: the event webhook, an operator cancelling orders as they come, and
//! (without `--simulated`) the user's fulfillment service
//! (`fulfillment.mode = http`).

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

/// A cancel that the server answered 200.
#[derive(Clone, Debug)]
pub(super) struct Cancel {
    pub(super) order: String,
    /// When the answer came.
    pub(super) returned: Instant,
    /// Whether the order was picked as a `FAILED` one (else as the latest acknowledged).
    pub(super) of_failed: bool,
}

/// The cancels answered 200, in the order they were answered.
pub(super) type Cancelled = Arc<Mutex<Vec<Cancel>>>;

/// Every `every`, until the load stops, cancels the order acknowledged
/// last, and every other time also a `FAILED` order; records the cancels
/// answered 200. The latest order may still wait for its first attempt:
/// that cancel races the workers. A `FAILED` order can always be cancelled
/// (its message leaves the DLQ); with simulated fulfillment and no delay,
/// where an order is terminal within milliseconds, those are most of the
/// cancels that win. Cancels cut by a kill (no answer) are not recorded:
/// their outcome is unknown.
pub(super) async fn canceller(shared: Arc<Shared>, every: Duration, done: Cancelled) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut also_failed = false;
    while !shared.stop_load.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        let Some(base) = shared.base() else { continue };
        let latest = shared.acked.lock().ok().and_then(|a| a.last().cloned());
        also_failed = !also_failed;
        let failed = if also_failed {
            a_failed_order(&http, &base).await
        } else {
            None
        };
        let picks = latest
            .map(|id| (id, false))
            .into_iter()
            .chain(failed.map(|id| (id, true)));
        for (order, of_failed) in picks {
            let answer = http
                .post(format!("{base}/orders/{order}/cancel"))
                .header("content-type", "application/json")
                .body(r#"{"reason": "kill campaign"}"#)
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().as_u16() == 200) {
                if let Ok(mut d) = done.lock() {
                    d.push(Cancel {
                        order,
                        returned: Instant::now(),
                        of_failed,
                    });
                }
            }
        }
    }
}

/// The newest `FAILED` order (`GET /orders?status=FAILED`), if any: one
/// not cancelled yet.
async fn a_failed_order(http: &reqwest::Client, base: &str) -> Option<String> {
    let page: Value = http
        .get(format!("{base}/orders?status=FAILED&limit=1"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    page["items"][0]["orderId"].as_str().map(str::to_owned)
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

/// The events the webhook took for each order, once each, in the order
/// they were recorded (their ids, the `webhook-id`s, are the events'
/// sequence numbers): (event id, type); and how many deliveries lacked a
/// numeric id, an order or a type.
fn delivered_by_order(hook: &Receiver) -> (HashMap<String, Vec<(u64, String)>>, usize) {
    let mut by_order: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    let mut unreadable = 0;
    for r in hook.requests().iter().filter(|r| r.taken()) {
        let (Some(id), Some(order), Some(kind)) = (
            r.header("webhook-id").and_then(|e| e.parse::<u64>().ok()),
            r.body["orderId"].as_str(),
            r.body["type"].as_str(),
        ) else {
            unreadable += 1;
            continue;
        };
        by_order
            .entry(order.to_owned())
            .or_default()
            .push((id, kind.to_owned()));
    }
    for events in by_order.values_mut() {
        events.sort();
        events.dedup();
    }
    (by_order, unreadable)
}

/// The checks of what happened outside the server: every order cancelled
/// with a 200 is CANCELLED and never begun again after its
/// `order.cancelled` event (which also catches one that was begun and
/// cancelled again), and, with a fulfillment service, never attempted after
/// its cancel returned; and each order's last event delivered to the
/// webhook.
pub(super) fn outside_checks(
    data_dir: &Path,
    service: Option<&Receiver>,
    hook: &Receiver,
    cancelled: &[Cancel],
    checks: &mut Vec<checks::Check>,
) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(data_dir.join("dofs.db"))?;
    let (events, unreadable) = delivered_by_order(hook);
    let orders: HashSet<&str> = cancelled.iter().map(|c| c.order.as_str()).collect();
    let of_failed: HashSet<&str> = cancelled
        .iter()
        .filter(|c| c.of_failed)
        .map(|c| c.order.as_str())
        .collect();
    let mut begun_after = Vec::new();
    let mut not_cancelled = Vec::new();
    for id in &orders {
        let order_events = events.get(*id).map(Vec::as_slice).unwrap_or_default();
        let mut after_cancel = order_events
            .iter()
            .skip_while(|(_, kind)| kind != "order.cancelled")
            .skip(1);
        if let Some((_, kind)) =
            after_cancel.find(|(_, kind)| kind == "order.processing" || kind == "order.fulfilled")
        {
            begun_after.push(format!("{id}: {kind}"));
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
    let won = format!(
        "{} orders cancelled with a 200: {} of them the latest acknowledged, {} FAILED",
        orders.len(),
        orders.len() - of_failed.len(),
        of_failed.len()
    );
    check(
        checks,
        "no order cancelled with a 200 begun or fulfilled after its order.cancelled event",
        begun_after.is_empty(),
        format!(
            "{won}; {} with such an event{}",
            begun_after.len(),
            begun_after
                .first()
                .map(|l| format!(" (first: {l})"))
                .unwrap_or_default()
        ),
    );
    if let Some(service) = service {
        let attempts = service.requests();
        let late: HashSet<&str> = cancelled
            .iter()
            .filter(|c| {
                attempts.iter().any(|r| {
                    r.header("idempotency-key") == Some(c.order.as_str()) && r.at > c.returned
                })
            })
            .map(|c| c.order.as_str())
            .collect();
        check(
            checks,
            "no cancelled order attempted after its cancel returned 200",
            late.is_empty(),
            format!(
                "{won}; {} attempted later{}",
                late.len(),
                late.iter()
                    .next()
                    .map(|l| format!(" (one: {l})"))
                    .unwrap_or_default()
            ),
        );
    }
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
        "each order's final event delivered to the webhook, every delivery readable",
        undelivered.is_empty() && orders > 0 && unreadable == 0,
        format!(
            "{orders} orders' final events, {} undelivered; {} distinct events delivered, {unreadable} without a numeric webhook-id, an orderId or a type",
            undelivered.len(),
            hook.taken_ids().len()
        ),
    );
    Ok(())
}
