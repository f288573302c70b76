//! CONTRACT §8: cancellation.

use super::fulfillment::{earlier_attempts, http_settings, order_for, requests_for};
use super::*;
use crate::receiver::{Receiver, Reply, Request};
use std::sync::Arc;

/// Posts a cancel with `body` (none when `None`). A 503 (the cancel ran out
/// of its time, CONTRACT §1: retry later) is sent again, as a client would,
/// for as long as the target's patience lasts.
async fn cancel<T: Target>(app: &Sut<T>, id: &str, body: Option<&str>) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let mut request = app.client.post(app.url(&format!("/orders/{id}/cancel")));
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = request.send().await.expect("POST cancel");
        let status = r.status().as_u16();
        let answer = r.json().await.unwrap_or(Value::Null);
        if status != 503 || started.elapsed() > app.target.patience() {
            return (status, answer);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until `id` reads back in `status`.
async fn wait_status<T: Target>(app: &Sut<T>, id: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let (_, order) = app.get_json(&format!("/orders/{id}")).await;
        if order["status"] == status {
            return order;
        }
        assert!(
            started.elapsed() < app.target.patience(),
            "order {id} never became {status}: {order}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until an attempt of order `id` has reached the receiver.
async fn wait_attempt<T: Target>(app: &Sut<T>, receiver: &Receiver, id: &str) {
    let started = Instant::now();
    while requests_for(receiver, id).is_empty() {
        assert!(
            started.elapsed() < app.target.patience(),
            "no attempt of {id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn cancel_ends_pending_and_failed_orders_and_refuses_the_others<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    // "wait": every attempt fails with Retry-After: 3, so the order waits
    // PENDING for its retry; "reject" fails at once; "hang" holds its first
    // attempt (PROCESSING) past the 8 s timeout, then succeeds.
    let receiver = Receiver::start(Arc::new(|r: &Request, before: &[Request]| {
        match (
            r.body["metadata"]["case"].as_str(),
            earlier_attempts(r, before),
        ) {
            (Some("wait"), _) => {
                Reply::Status(503, "busy".into(), vec![("retry-after", "3".into())])
            }
            (Some("reject"), _) => Reply::status(404),
            (Some("hang"), 0) => Reply::Hang(Duration::from_millis(10_000)),
            _ => Reply::ok(json!({"reference": "done"})),
        }
    }))
    .await;
    // The hanging attempt keeps its order PROCESSING for 8 s: time enough
    // for the cancels below on a loaded machine.
    let Some(app) = start(f, &http_settings(&receiver, 8_000)) else {
        return;
    };
    let waiting = app.submit(&order_for("wait")).await;
    let other = app.submit(&order_for("wait")).await;
    let rejected = app.submit(&order_for("reject")).await;
    let fulfilled = app.submit(&order_for("ok")).await;
    let hanging = app.submit(&order_for("hang")).await;

    // PROCESSING (its attempt is held for 8 s): 409, nothing changes. First,
    // while the attempt surely runs, however slow the machine.
    wait_attempt(&app, &receiver, &hanging).await;
    let (status, body) = cancel(&app, &hanging, None).await;
    assert_eq!(status, 409, "a running attempt cannot be cancelled: {body}");

    // PENDING, waiting for its retry: cancelled, with the reason, once and for all.
    // On a slow machine its next attempt may have started when the cancel
    // arrives: that is a 409 naming PROCESSING, and the client tries again.
    wait_attempt(&app, &receiver, &waiting).await;
    let started = Instant::now();
    wait_status(&app, &waiting, "PENDING").await;
    let (status, order) = loop {
        let (status, order) =
            cancel(&app, &waiting, Some(r#"{"reason": "customer withdrew"}"#)).await;
        let running = order["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("order is PROCESSING"));
        if status != 409 || !running || started.elapsed() > app.target.patience() {
            break (status, order);
        }
        // Its attempt ends PENDING again, or FAILED after the last: both cancellable.
        while app.get_json(&format!("/orders/{waiting}")).await.1["status"] == "PROCESSING"
            && started.elapsed() < app.target.patience()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["cancelReason"], "customer withdrew");
    let (status, again) = cancel(&app, &waiting, None).await;
    assert_eq!(status, 200, "a second cancel answers 200 again: {again}");
    assert_eq!(again["cancelReason"], "customer withdrew", "{again}");

    // FULFILLED: 409, nothing changes.
    wait_status(&app, &fulfilled, "FULFILLED").await;
    let (status, body) = cancel(&app, &fulfilled, None).await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("Conflict")),
        "{body}"
    );

    // FAILED (and dead-lettered): cancelled, and gone from the DLQ.
    wait_status(&app, &rejected, "FAILED").await;
    app.wait_in_dlq(&rejected).await;
    let (status, order) = cancel(&app, &rejected, None).await;
    assert_eq!(
        (status, &order["status"]),
        (200, &json!("CANCELLED")),
        "{order}"
    );
    assert!(
        !app.in_dlq(&rejected).await,
        "a cancelled order's dead letter leaves the DLQ"
    );

    // Bad input: a clear 400 or 404, and nothing changed.
    for (body, error) in [
        ("{not json", "MalformedJson"),
        (r#"["reason"]"#, "MalformedJson"),
        (r#"{"reason": 7}"#, "ValidationError"),
        (r#"{"reason": ""}"#, "ValidationError"),
        (r#"{"reason": "x", "force": true}"#, "ValidationError"),
    ] {
        let (status, reply) = cancel(&app, &other, Some(body)).await;
        assert_eq!(
            (status, &reply["error"]),
            (400, &json!(error)),
            "{body}: {reply}"
        );
    }
    let long = json!({ "reason": "r".repeat(257) }).to_string();
    let (status, reply) = cancel(&app, &other, Some(&long)).await;
    assert_eq!(status, 400, "a reason over 256 characters: {reply}");
    let (status, _) = cancel(&app, &OrderId::generate().to_string(), None).await;
    assert_eq!(status, 404, "an unknown order");
    let (status, _) = cancel(&app, "not-an-id", None).await;
    assert_eq!(status, 400, "a malformed id");
    let (_, still) = app.get_json(&format!("/orders/{other}")).await;
    assert_ne!(
        still["status"], "CANCELLED",
        "a refused cancel changes nothing: {still}"
    );

    // No further attempt starts once the cancel returned, retry time or not.
    let attempts_then = requests_for(&receiver, &waiting).len();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(
        requests_for(&receiver, &waiting).len(),
        attempts_then,
        "a cancelled order is not attempted again"
    );
    let (_, order) = app.get_json(&format!("/orders/{waiting}")).await;
    assert_eq!(order["status"], "CANCELLED", "{order}");
    let listed = app.all_pages("/orders?status=CANCELLED").await;
    for id in [&waiting, &rejected] {
        assert!(
            listed.iter().any(|o| o["orderId"] == json!(id)),
            "{id} is listed"
        );
    }
    let arn = order["executionArn"].as_str().expect("arn");
    let (status, exec) = app
        .get_json(&format!(
            "/executions/{}",
            arn.rsplit(':').next().unwrap_or(arn)
        ))
        .await;
    assert_eq!(status, 200, "{exec}");
    let last = exec["events"].as_array().and_then(|e| e.last()).cloned();
    assert_eq!(
        last.as_ref().map(|e| &e["type"]),
        Some(&json!("OrderCancelled")),
        "the cancel ends the execution's history: {exec}"
    );
    let done = app
        .wait_all_terminal(&[hanging], app.target.patience())
        .await;
    assert_eq!(done[0]["status"], "FULFILLED", "{done:?}");
}

pub async fn a_cancel_racing_an_attempt_never_leaves_an_order_both_cancelled_and_fulfilled<
    T: Target,
>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    // Every attempt succeeds after a short, varying wait.
    let receiver = Receiver::start(Arc::new(|r: &Request, _: &[Request]| {
        let spread = r.raw.len() as u64 % 7;
        Reply::Hang(Duration::from_millis(spread * 3))
    }))
    .await;
    let Some(app) = start(f, &http_settings(&receiver, 5_000)) else {
        return;
    };
    const ORDERS: u64 = 40;
    let mut races = tokio::task::JoinSet::new();
    for i in 0..ORDERS {
        let id = app.submit(&seed_order()).await;
        let (client, url) = (app.client.clone(), app.url(&format!("/orders/{id}/cancel")));
        races.spawn(async move {
            // Cancels land before, during and after the attempt.
            tokio::time::sleep(Duration::from_millis(i % 10 * 2)).await;
            let r = client.post(url).send().await.expect("cancel");
            (id, r.status().as_u16(), Instant::now())
        });
    }
    let mut results = Vec::new();
    while let Some(r) = races.join_next().await {
        results.push(r.expect("race"));
    }
    let ids: Vec<String> = results.iter().map(|(id, _, _)| id.clone()).collect();
    let orders = app.wait_all_terminal(&ids, app.target.patience()).await;
    let (mut won, mut lost) = (0, 0);
    for ((id, status, returned), order) in results.iter().zip(&orders) {
        match status {
            200 => {
                won += 1;
                assert_eq!(order["status"], "CANCELLED", "{order}");
                assert_eq!(order["fulfillmentReference"], Value::Null, "{order}");
                let late = requests_for(&receiver, id)
                    .into_iter()
                    .filter(|r| r.at > *returned)
                    .count();
                assert_eq!(late, 0, "{id} was attempted after its cancel returned");
            }
            409 => {
                lost += 1;
                assert_eq!(order["status"], "FULFILLED", "{order}");
            }
            other => panic!("cancel of {id} answered {other}"),
        }
    }
    eprintln!("{won} cancels won the race, {lost} came too late");
}
