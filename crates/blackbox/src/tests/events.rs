//! CONTRACT §9: order events, in the feed (`GET /events`, both shapes) and
//! at webhooks (`events.webhook_urls`, `dofs serve`).

use super::*;
use crate::receiver::{Receiver, Reply, Request};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The signing secret the webhook test configures.
pub const EVENTS_SECRET: &str = "whsec_ZG9mcy1ibGFja2JveC1ldmVudHMta2V5";

/// Every event of the feed, following `nextCursor` until a page is empty.
pub async fn whole_feed<T: Target>(app: &Sut<T>) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/events?limit=1000&after={a}"),
            None => "/events?limit=1000".to_owned(),
        };
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            assert_eq!(
                page["nextCursor"].as_str(),
                after.as_deref(),
                "an empty page hands the cursor back"
            );
            return events;
        }
        after = page["nextCursor"].as_str().map(str::to_owned);
        assert_eq!(
            after.as_ref(),
            items
                .last()
                .and_then(|e| e["eventId"].as_str().map(|s| s.to_owned()))
                .as_ref(),
            "nextCursor is the last event's id"
        );
        events.extend(items);
    }
}

/// The whole feed, once its last event of each of `orders` is that order's
/// status now (a feed may show an event a moment after its change).
pub async fn settled_feed<T: Target>(app: &Sut<T>, orders: &[Value]) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let events = whole_feed(app).await;
        let mut last: BTreeMap<&str, &Value> = BTreeMap::new();
        for e in &events {
            last.insert(e["orderId"].as_str().unwrap_or_default(), e);
        }
        let settled = orders.iter().all(|o| {
            last.get(o["orderId"].as_str().unwrap_or_default())
                .is_some_and(|e| e["status"] == o["status"] && e["attempts"] == o["attempts"])
        });
        if settled {
            return events;
        }
        assert!(
            started.elapsed() < app.target.patience(),
            "the feed never caught up with the orders"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The status an event type leaves the order in.
fn status_of(kind: &str) -> &'static str {
    match kind {
        "order.accepted" | "order.retried" => "PENDING",
        "order.processing" => "PROCESSING",
        "order.fulfilled" => "FULFILLED",
        "order.failed" => "FAILED",
        "order.cancelled" => "CANCELLED",
        other => panic!("unknown event type {other}"),
    }
}

/// Checks the feed against the orders: each order's events start with
/// `order.accepted`, follow the lifecycle, never repeat a change that did
/// not happen, and end in the order's status and attempts; each event's
/// `order` is the order as it was then.
pub fn check_feed(events: &[Value], orders: &[Value]) {
    let mut by_order: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let mut ids = HashSet::new();
    for e in events {
        assert!(
            ids.insert(e["eventId"].to_string()),
            "eventIds are unique: {e}"
        );
        assert_eq!(
            e["status"],
            status_of(e["type"].as_str().unwrap_or_default()),
            "{e}"
        );
        assert_eq!(e["order"]["status"], e["status"], "{e}");
        assert_eq!(e["order"]["attempts"], e["attempts"], "{e}");
        assert_eq!(e["order"]["orderId"], e["orderId"], "{e}");
        assert_eq!(e["order"]["updatedAt"], e["occurredAt"], "{e}");
        by_order
            .entry(e["orderId"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(e);
    }
    for order in orders {
        let id = order["orderId"].as_str().expect("id");
        let mine = by_order
            .get(id)
            .unwrap_or_else(|| panic!("no event of {id}"));
        assert_eq!(mine[0]["type"], "order.accepted", "{id} starts accepted");
        for pair in mine.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let attempted_again =
                b["type"] == "order.processing" && b["attempts"].as_u64() > a["attempts"].as_u64();
            assert!(
                a["status"] != b["status"] || attempted_again,
                "{id}: {} then {} is no change",
                a["type"],
                b["type"]
            );
            assert!(
                b["occurredAt"].as_str() >= a["occurredAt"].as_str(),
                "{id}: events are in the order they happened"
            );
        }
        let last = mine[mine.len() - 1];
        assert_eq!(
            (&last["status"], &last["attempts"]),
            (&order["status"], &order["attempts"]),
            "{id}'s last event is its status now"
        );
        assert_eq!(
            last["order"], *order,
            "{id}: the last event carries the order as it is"
        );
    }
}

pub async fn every_status_change_is_an_event_in_the_feed<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    let settings = Settings {
        success_rate: 0.5,
        seed: Some(20_261_204),
        ..Settings::default()
    };
    let Some(app) = start(f, &settings) else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(app.submit(&seed_order()).await);
    }
    let orders = app.wait_all_terminal(&ids, app.target.patience()).await;
    let events = settled_feed(&app, &orders).await;
    check_feed(&events, &orders);

    // Paging: small pages give the same events.
    let (_, first) = app.get_json("/events?limit=2").await;
    let items = first["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{first}");
    let cursor = first["nextCursor"].as_str().expect("cursor");
    let (_, next) = app
        .get_json(&format!("/events?limit=3&after={cursor}"))
        .await;
    let next_items = next["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(&events[..2], &items[..]);
    assert_eq!(
        &events[2..5],
        &next_items[..],
        "after continues where the page ended"
    );

    // One order's events.
    let (status, mine) = app.get_json(&format!("/events?orderId={}", ids[0])).await;
    assert_eq!(status, 200, "{mine}");
    let expected: Vec<&Value> = events
        .iter()
        .filter(|e| e["orderId"] == json!(ids[0]))
        .collect();
    let got: Vec<&Value> = mine["items"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    assert_eq!(got, expected);

    for (bad, field) in [
        ("/events?after=not-an-event", "after"),
        ("/events?limit=0", "limit"),
        ("/events?limit=1001", "limit"),
        ("/events?since=1", "since"),
        ("/events?orderId=nope", "orderId"),
    ] {
        let (status, body) = app.get_json(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["details"][0]["field"], field, "{bad}: {body}");
    }
}

pub async fn webhooks_receive_every_event_signed_in_order_through_an_outage<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    // Down at first: every delivery answers 503.
    let mut hook = Receiver::start(Arc::new(|_: &Request, _: &[Request]| Reply::status(503))).await;
    let settings = Settings {
        success_rate: 0.7,
        seed: Some(20_261_205),
        webhook_urls: vec![format!("{}/events", hook.base)],
        events_secret: Some(EVENTS_SECRET.into()),
        ..Settings::default()
    };
    let Some(app) = start(f, &settings) else {
        return;
    };
    let n = app.target.bulk_orders();
    let mut ids = Vec::new();
    for _ in 0..n / 2 {
        ids.push(app.submit(&seed_order()).await);
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // Then refusing connections.
    hook.stop().await;
    for _ in n / 2..n {
        ids.push(app.submit(&seed_order()).await);
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // Then back.
    hook.set_script(Arc::new(|_: &Request, _: &[Request]| Reply::ok(json!({}))));
    hook.resume().await;

    let orders = app.wait_all_terminal(&ids, app.target.patience() * 4).await;
    let events = settled_feed(&app, &orders).await;
    check_feed(&events, &orders);
    let feed: BTreeMap<String, &Value> = events
        .iter()
        .map(|e| (e["eventId"].as_str().unwrap_or_default().to_owned(), e))
        .collect();

    // Every event arrives (at least once), signed, as the feed has it.
    let started = Instant::now();
    let requests = loop {
        let ok = hook.taken_ids();
        if feed.keys().all(|id| ok.contains(id)) {
            break hook.requests();
        }
        assert!(
            started.elapsed() < app.target.patience() * 4,
            "{} of {} events never reached the webhook",
            feed.keys().filter(|id| !ok.contains(*id)).count(),
            feed.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let refused = requests.iter().filter(|r| r.answered == 503).count();
    assert!(
        refused > 0,
        "deliveries failed during the outage and were retried ({} requests for {} events)",
        requests.len(),
        feed.len()
    );
    let mut first_seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in &requests {
        assert!(
            r.verify(EVENTS_SECRET).is_ok(),
            "a delivery is signed: {}",
            r.raw
        );
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        let Some(expected) = feed.get(&id) else {
            panic!("a delivery of an event the feed does not have: {}", r.raw);
        };
        assert_eq!(&r.body, *expected, "the webhook and the feed agree");
        if r.taken() && seen.insert(id.clone()) {
            first_seen
                .entry(r.body["orderId"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(id.parse().unwrap_or(0));
        }
    }
    for (order, ids) in &first_seen {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{order}'s events arrived out of order: {ids:?}"
        );
    }

    // The metrics say the same.
    let started = Instant::now();
    loop {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(series)
                        .map(|v| v.trim().parse().unwrap_or(-1.0))
                })
                .unwrap_or(0.0)
        };
        let delivered = value(r#"dofs_events_delivered_total{outcome="success"} "#);
        let failed = value(r#"dofs_events_delivered_total{outcome="failure"} "#);
        let pending = value(r#"dofs_events_pending{webhook="0"} "#);
        if delivered >= feed.len() as f64 && failed > 0.0 && pending == 0.0 {
            break;
        }
        assert!(
            started.elapsed() < app.target.patience(),
            "metrics: {delivered} delivered, {failed} failed, {pending} pending for {} events",
            feed.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
