//! CONTRACT §7: the `http` fulfillment mode, against a real receiver that
//! the test starts and scripts.

use super::*;
use crate::receiver::{Receiver, Reply, Request, Script};
use crate::HttpSettings;
use std::sync::Arc;

/// The signing secret the `http` tests configure.
pub const FULFILLMENT_SECRET: &str = "whsec_ZG9mcy1ibGFja2JveC1mdWxmaWxsbWVudC1rZXk=";

/// Settings for the `http` mode against `receiver`, signed, with `timeout_ms`.
pub fn http_settings(receiver: &Receiver, timeout_ms: u64) -> Settings {
    Settings {
        http: Some(HttpSettings {
            url: format!("{}/fulfill", receiver.base),
            secret: Some(FULFILLMENT_SECRET.into()),
            timeout_ms,
        }),
        ..Settings::default()
    }
}

/// The seed order with `metadata.case` set: the receiver's scripts answer by it.
pub fn order_for(case: &str) -> Value {
    let mut order = seed_order();
    order["metadata"] = json!({ "case": case });
    order
}

/// The order id a request is about (its `Idempotency-Key`).
pub fn key_of(r: &Request) -> String {
    r.header("idempotency-key").unwrap_or_default().to_owned()
}

/// The requests about `order`, in arrival order.
pub fn requests_for(receiver: &Receiver, order: &str) -> Vec<Request> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| key_of(r) == order)
        .collect()
}

/// How many requests about the same order came before `r`.
pub fn earlier_attempts(r: &Request, before: &[Request]) -> usize {
    let key = key_of(r);
    before.iter().filter(|b| key_of(b) == key).count()
}

/// Answers by the order's `metadata.case`; `n` is how many attempts came before.
fn by_case(case: &str, n: usize) -> Reply {
    match (case, n) {
        ("ok", _) => Reply::ok(json!({"reference": "ref-ok"})),
        ("reject", _) => Reply::Status(400, "no such product".into(), Vec::new()),
        ("flaky", 0) => Reply::status(503),
        ("slow", 0) => Reply::Hang(Duration::from_millis(2_000)),
        ("later", 0) => Reply::Status(429, "slow down".into(), vec![("retry-after", "2".into())]),
        _ => Reply::ok(json!({})),
    }
}

fn script_by_case() -> Script {
    Arc::new(|r: &Request, before: &[Request]| {
        let case = r.body["metadata"]["case"]
            .as_str()
            .unwrap_or("ok")
            .to_owned();
        by_case(&case, earlier_attempts(r, before))
    })
}

/// Checks what every request carried: the order and its attempt number,
/// the order id as `Idempotency-Key` on every attempt, `webhook-id`
/// `{orderId}.{attempt}`, and a Standard Webhooks signature that verifies.
pub fn check_attempt_requests(requests: &[Request], order: &Value) {
    let id = order["orderId"].as_str().expect("orderId");
    for (n, r) in requests.iter().enumerate() {
        let attempt = n + 1;
        assert_eq!(
            r.header("idempotency-key"),
            Some(id),
            "the same key on every attempt"
        );
        assert_eq!(r.body["attempt"], json!(attempt), "{}", r.raw);
        assert_eq!(r.body["orderId"], order["orderId"], "{}", r.raw);
        for field in [
            "customerId",
            "productId",
            "quantity",
            "price",
            "metadata",
            "executionArn",
        ] {
            assert_eq!(r.body[field], order[field], "{field} of attempt {attempt}");
        }
        let msg_id = r.header("webhook-id").expect("webhook-id");
        assert_eq!(msg_id, format!("{id}.{attempt}"));
        let verified = r.verify(FULFILLMENT_SECRET);
        assert!(
            verified.is_ok(),
            "attempt {attempt} of {id} is signed: {verified:?}"
        );
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "JSON body"
        );
    }
}

pub async fn http_mode_posts_each_attempt_signed_and_follows_the_answers<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    let receiver = Receiver::start(script_by_case()).await;
    let Some(app) = start(f, &http_settings(&receiver, 500)) else {
        return;
    };
    let cases = ["ok", "reject", "flaky", "slow", "later"];
    let mut ids = Vec::new();
    for case in cases {
        ids.push(app.submit(&order_for(case)).await);
    }
    let orders = app.wait_all_terminal(&ids, app.target.patience()).await;
    let by = |case: &str| &orders[cases.iter().position(|c| *c == case).expect("case")];

    let ok = by("ok");
    assert_eq!(
        (&ok["status"], &ok["attempts"], &ok["fulfillmentReference"]),
        (&json!("FULFILLED"), &json!(1), &json!("ref-ok")),
        "a 2xx fulfills and records the reference: {ok}"
    );
    let reject = by("reject");
    assert_eq!(
        (&reject["status"], &reject["attempts"]),
        (&json!("FAILED"), &json!(1)),
        "a 400 fails the order at once: {reject}"
    );
    let reason = reject["failureReason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("HTTP 400") && reason.contains("no such product"),
        "{reason}"
    );
    for case in ["flaky", "slow", "later"] {
        let o = by(case);
        assert_eq!(
            (&o["status"], &o["attempts"]),
            (&json!("FULFILLED"), &json!(2)),
            "{case}: a failed attempt is retried: {o}"
        );
        assert_eq!(o["failureReason"], Value::Null, "{case}: {o}");
    }

    // The rejected order is a dead letter like any other.
    let failed = app.all_pages("/failed-orders").await;
    assert!(
        failed
            .iter()
            .any(|f| f["orderId"] == reject["orderId"] && f["attempts"] == 1),
        "{failed:?}"
    );
    let reject_id = reject["orderId"].as_str().expect("id").to_owned();
    app.wait_in_dlq(&reject_id).await;

    for (case, order) in cases.iter().zip(&orders) {
        let id = order["orderId"].as_str().expect("id");
        let requests = requests_for(&receiver, id);
        let expected = match *case {
            "ok" | "reject" => 1,
            _ => 2,
        };
        assert_eq!(requests.len(), expected, "{case}: one request per attempt");
        check_attempt_requests(&requests, order);
    }
    let later = requests_for(&receiver, by("later")["orderId"].as_str().expect("id"));
    let gap = later[1].at.duration_since(later[0].at);
    assert!(
        gap >= Duration::from_millis(1_900),
        "Retry-After: 2 holds the next attempt back (it came after {gap:?})"
    );
}
