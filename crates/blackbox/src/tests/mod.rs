//! The test bodies of the black-box suite. Each takes the shape's start
//! function; [`crate::suite!`] makes them tests in the shape's crate.

mod cancel;
mod events;
mod fulfillment;

pub use cancel::*;
pub use events::*;
pub use fulfillment::*;

use super::*;
use dofs_core::{FulfillmentPolicy, OrderId};
use std::collections::HashSet;

fn start<T: Target>(f: impl FnOnce(&Settings) -> Option<T>, s: &Settings) -> Option<Sut<T>> {
    f(s).map(Sut::new)
}

pub async fn the_seed_valid_order_is_accepted_with_every_field_and_reaches_a_terminal_status<
    T: Target,
>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    let Some(app) = start(f, &Settings::default()) else {
        return;
    };
    let r = app.post_order(&seed_order()).await;
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let body: Value = r.json().await.expect("json");
    let id = body["orderId"].as_str().expect("orderId").to_owned();
    assert_eq!(location, format!("/orders/{id}"));
    assert_eq!(body["status"], "ACCEPTED");
    assert_eq!(body["message"], "Order received and processing started");
    let arn = body["executionArn"]
        .as_str()
        .expect("executionArn")
        .to_owned();
    assert!(arn.starts_with("arn:") && arn.ends_with(&id), "{arn}");

    // Readable at once: the 202 is a promise the next GET keeps.
    let (status, order) = app.get_json(&location).await;
    assert_eq!(status, 200, "{order}");
    for (field, value) in [
        ("orderId", json!(id)),
        ("customerId", json!("CUST-1001")),
        ("productId", json!("PROD-2001")),
        ("quantity", json!(2)),
        ("price", json!(29.99)),
        ("metadata", json!({"source": "manual-test"})),
        ("executionArn", json!(arn)),
    ] {
        assert_eq!(order[field], value, "{field}");
    }
    for field in [
        "status",
        "attempts",
        "createdAt",
        "updatedAt",
        "failureReason",
    ] {
        assert!(order.get(field).is_some(), "{field} is present");
    }
    let done = app
        .wait_all_terminal(std::slice::from_ref(&id), app.target.patience())
        .await;
    assert!(matches!(
        done[0]["status"].as_str(),
        Some("FULFILLED" | "FAILED")
    ));
    assert_eq!(done[0]["executionArn"], json!(arn));
    // The order's creation time is the moment it was accepted, the same
    // when read before and after the workflow stored it.
    assert_eq!(
        done[0]["createdAt"], order["createdAt"],
        "createdAt is stable"
    );

    let exec_id = arn.rsplit(':').next().expect("id");
    let (status, exec) = app.get_json(&format!("/executions/{exec_id}")).await;
    assert_eq!(status, 200, "{exec}");
    assert_eq!(exec["status"], "SUCCEEDED");
    let states: Vec<&str> = exec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "StateEntered")
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "Validate Order",
            "Store Order",
            "Queue For Fulfillment",
            "Order Queued"
        ]
    );
    let encoded = arn.replace(':', "%3A");
    let (status, _) = app.get_json(&format!("/executions/{encoded}")).await;
    assert_eq!(status, 200, "the URL-encoded whole ARN resolves too");
}

pub async fn the_seed_invalid_order_gets_400_listing_all_three_fields<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    let Some(app) = start(f, &Settings::default()) else {
        return;
    };
    let r = app
        .post_order(&json!({"customerId": "INVALID-FORMAT", "productId": "PROD-2001", "quantity": 0, "price": -10}))
        .await;
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "ValidationError");
    let fields: Vec<&str> = body["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["customerId", "quantity", "price"]);
    let (_, list) = app.get_json("/orders").await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "a rejected order is not stored"
    );
}

pub async fn an_idempotency_key_replays_the_first_response_and_rejects_another_body<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    let Some(app) = start(f, &Settings::default()) else {
        return;
    };
    let send = |body: Value| {
        app.client
            .post(app.url("/order"))
            .header("Idempotency-Key", "order-key-1")
            .json(&body)
            .send()
    };
    let first = send(seed_order()).await.expect("first");
    assert_eq!(first.status().as_u16(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    let again = send(seed_order()).await.expect("again");
    assert_eq!(again.status().as_u16(), 202, "the same status code");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["orderId"], first["orderId"], "the same order");
    assert_eq!(
        again["executionArn"], first["executionArn"],
        "the same execution"
    );
    let mut other = seed_order();
    other["quantity"] = json!(3);
    let reused = send(other).await.expect("reused");
    assert_eq!(reused.status().as_u16(), 422);
    let reused: Value = reused.json().await.expect("json");
    assert_eq!(reused["error"], "IdempotencyKeyReused");
    let id = first["orderId"].as_str().expect("id").to_owned();
    app.wait_all_terminal(&[id], app.target.patience()).await;
    let (_, list) = app.get_json("/orders").await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "no second order exists"
    );
}

pub async fn orders_page_newest_first_with_order_id_cursors<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    let Some(app) = start(f, &Settings::succeeding()) else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.submit(&seed_order()).await);
    }
    app.wait_all_terminal(&ids, app.target.patience()).await;
    let posted: HashSet<&str> = ids.iter().map(String::as_str).collect();

    for path in ["/orders", "/orders?status=FULFILLED"] {
        let (items, pages) = app.pages(path, 2).await;
        assert_eq!(pages, 3, "{path}: 5 orders in pages of 2");
        let listed: Vec<&str> = items.iter().filter_map(|o| o["orderId"].as_str()).collect();
        assert_eq!(
            listed.iter().copied().collect::<HashSet<_>>(),
            posted,
            "{path}: every order once: {listed:?}"
        );
        assert_eq!(listed.len(), 5, "{path}: no order twice: {listed:?}");
        let created: Vec<&str> = items
            .iter()
            .filter_map(|o| o["createdAt"].as_str())
            .collect();
        assert!(
            created.windows(2).all(|w| w[0] >= w[1]),
            "{path}: newest first: {created:?}"
        );
    }
    let (items, pages) = app.pages("/orders?status=FAILED", 2).await;
    assert_eq!((items.len(), pages), (0, 1));
    let (status, body) = app.get_json("/orders?limit=2&cursor=not-an-order").await;
    assert_eq!(status, 400, "{body}");
}

pub async fn bulk_orders_with_a_fixed_seed_end_exactly_as_the_seed_predicts<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    const SEED: u64 = 20_261_128;
    let settings = Settings {
        success_rate: 0.7,
        seed: Some(SEED),
        ..Settings::default()
    };
    let Some(app) = start(f, &settings) else {
        return;
    };
    let n = app.target.bulk_orders();
    const CLIENTS: usize = 8;
    let mut ids = Vec::new();
    let mut sends = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (c, url) = (app.client.clone(), app.url("/order"));
        let count = n / CLIENTS + usize::from(client < n % CLIENTS);
        sends.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..count {
                let r = c.post(&url).json(&seed_order()).send().await.expect("post");
                assert_eq!(r.status().as_u16(), 202, "client {client}");
                let v: Value = r.json().await.expect("json");
                ids.push(v["orderId"].as_str().expect("id").to_owned());
            }
            ids
        });
    }
    while let Some(r) = sends.join_next().await {
        ids.extend(r.expect("client"));
    }
    assert_eq!(ids.len(), n);
    let orders = app.wait_all_terminal(&ids, app.target.patience() * 4).await;

    // With a seed, each order's outcome is known in advance: fulfilled at
    // the first of its three attempts that succeeds, failed when none does.
    let policy = FulfillmentPolicy {
        success_rate: settings.success_rate,
        seed: Some(SEED),
    };
    for order in &orders {
        let id = OrderId::parse(order["orderId"].as_str().expect("id")).expect("id");
        let expected = match (1..=3).find(|a| policy.attempt_succeeds(&id, *a, 0)) {
            Some(a) => ("FULFILLED", a),
            None => ("FAILED", 3),
        };
        if (&order["status"], &order["attempts"]) != (&json!(expected.0), &json!(expected.1)) {
            let logged = app.target.logged_about(&id.to_string());
            panic!(
                "the seed says {} at attempt {}: {order}\nwhat the logs say of it:\n{}",
                expected.0,
                expected.1,
                logged.join("\n")
            );
        }
    }
    let fulfilled = orders.iter().filter(|o| o["status"] == "FULFILLED").count();
    let failed: Vec<&Value> = orders.iter().filter(|o| o["status"] == "FAILED").collect();
    // n × (1 − 0.3³) expected; allow 5 standard deviations.
    let p = 1.0 - 0.3f64.powi(3);
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    let low = (mean - 5.0 * sd).floor() as usize;
    assert!(
        (low..=n).contains(&fulfilled),
        "FULFILLED {fulfilled} of {n}, expected at least {low}"
    );
    assert_eq!(fulfilled + failed.len(), n);

    let dead = app.all_pages("/failed-orders").await;
    assert_eq!(
        dead.len(),
        failed.len(),
        "one failed-orders row per FAILED order, via the DLQ"
    );
    for order in &failed {
        let row = dead
            .iter()
            .find(|d| d["orderId"] == order["orderId"])
            .expect("in failed-orders");
        assert_eq!(row["attempts"], 3);
        assert!(row["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(row["order"]["customerId"], "CUST-1001");
        assert!(order["failureReason"].as_str().is_some());
    }
    let (_, dlq) = app.get_json("/dlq?limit=500").await;
    assert_eq!(
        dlq["items"].as_array().map(Vec::len),
        Some(failed.len()),
        "dead letters wait in the DLQ for an operator: {dlq}"
    );
}

pub async fn failed_orders_can_be_purged_retried_and_redriven_by_an_operator<T: Target>(
    f: impl FnOnce(&Settings) -> Option<T>,
) {
    let Some(mut app) = start(f, &Settings::failing()) else {
        return;
    };
    let patience = app.target.patience();
    let fail_all = |ids: Vec<Value>| {
        assert!(ids.iter().all(|o| o["status"] == "FAILED"), "{ids:?}");
    };

    // Two orders fail and are purged from the DLQ: they stay FAILED.
    let purged = vec![
        app.submit(&seed_order()).await,
        app.submit(&seed_order()).await,
    ];
    fail_all(app.wait_all_terminal(&purged, patience).await);
    let dlq = app.wait_items("/dlq", 2, patience).await;
    assert!(dlq["items"][0]["lastError"].as_str().is_some(), "{dlq}");
    let (status, body) = app.post_json("/dlq/purge").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["purged"], &body["more"]),
        (&json!(2), &json!(false)),
        "{body}"
    );
    let (_, dlq) = app.get_json("/dlq").await;
    assert_eq!(dlq["items"].as_array().map(Vec::len), Some(0), "{dlq}");
    fail_all(app.wait_all_terminal(&purged, patience).await);

    // Three more fail and wait in the DLQ.
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(app.submit(&seed_order()).await);
    }
    fail_all(app.wait_all_terminal(&waiting, patience).await);
    app.wait_items("/dlq", 3, patience).await;
    assert_eq!(app.all_pages("/failed-orders").await.len(), 5);

    // From now on every attempt succeeds.
    app.restart(&Settings::succeeding());
    app.wait_items("/dlq", 3, patience).await;

    // One order retried: it leaves the DLQ and is fulfilled.
    let (status, body) = app
        .post_json(&format!("/orders/{}/retry", waiting[0]))
        .await;
    assert_eq!(status, 200, "{body}");
    let done = app.wait_all_terminal(&waiting[..1], patience).await;
    assert_eq!(done[0]["status"], "FULFILLED", "{done:?}");
    app.wait_items("/dlq", 2, patience).await;
    let (status, body) = app
        .post_json(&format!("/orders/{}/retry", waiting[0]))
        .await;
    assert_eq!(status, 409, "only FAILED orders can be retried: {body}");
    let (status, _) = app
        .post_json(&format!("/orders/{}/retry", OrderId::generate()))
        .await;
    assert_eq!(status, 404);

    // A purged order can still be retried; the other stays FAILED.
    let (status, body) = app.post_json(&format!("/orders/{}/retry", purged[0])).await;
    assert_eq!(status, 200, "{body}");
    let done = app.wait_all_terminal(&purged, patience).await;
    assert_eq!(done[0]["status"], "FULFILLED", "{done:?}");
    assert_eq!(done[1]["status"], "FAILED", "purged orders stay FAILED");

    // The rest are redriven and fulfilled.
    let (status, body) = app.post_json("/dlq/redrive").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["moved"], &body["more"]),
        (&json!(2), &json!(false)),
        "{body}"
    );
    let done = app.wait_all_terminal(&waiting, patience).await;
    assert!(done.iter().all(|o| o["status"] == "FULFILLED"), "{done:?}");
    let (_, dlq) = app.get_json("/dlq").await;
    assert_eq!(dlq["items"].as_array().map(Vec::len), Some(0), "{dlq}");
    assert_eq!(
        app.all_pages("/failed-orders").await.len(),
        5,
        "the failed-orders table keeps its history"
    );
    let (status, body) = app.post_json("/dlq/purge").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["purged"], 0);
}

/// The submit key [`api_keys_are_required_and_operator_routes_need_an_operator_key`] expects.
pub const SUBMIT_KEY: &str = "submit-key-0123456789";
/// The operator key [`api_keys_are_required_and_operator_routes_need_an_operator_key`] expects.
pub const OPERATOR_KEY: &str = "operator-key-0123456789";

/// CONTRACT section 4 on a system started with [`SUBMIT_KEY`] as its only
/// submit key and [`OPERATOR_KEY`] as its only operator key, at `base`:
/// probes open, 401 without a valid key, a submit key submits but gets 403
/// on every operator route, an operator key may use them.
pub async fn api_keys_are_required_and_operator_routes_need_an_operator_key(base: &str) {
    let client = crate::http_client();
    let url = |path: &str| format!("{base}{path}");
    for path in ["/health", "/ready"] {
        let r = client.get(url(path)).send().await.expect("get");
        assert_eq!(r.status().as_u16(), 200, "{path} stays open");
    }
    let missing = client.get(url("/orders")).send().await.expect("get");
    assert_eq!(missing.status().as_u16(), 401);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"], "Unauthorized", "{body}");
    let wrong = client
        .get(url("/orders"))
        .header("x-api-key", "not-the-key-0123456789")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status().as_u16(), 401);
    let order = client
        .post(url("/order"))
        .header("x-api-key", SUBMIT_KEY)
        .json(&seed_order())
        .send()
        .await
        .expect("post");
    assert_eq!(order.status().as_u16(), 202, "a submit key submits");
    let id = OrderId::generate();
    for path in [
        "/dlq/redrive".to_owned(),
        "/dlq/purge".to_owned(),
        format!("/orders/{id}/retry"),
    ] {
        let r = client
            .post(url(&path))
            .header("x-api-key", SUBMIT_KEY)
            .send()
            .await
            .expect("post");
        assert_eq!(
            r.status().as_u16(),
            403,
            "a submit key is not an operator key: POST {path}"
        );
    }
    let redrive = client
        .post(url("/dlq/redrive"))
        .header("x-api-key", OPERATOR_KEY)
        .send()
        .await
        .expect("post");
    assert_eq!(redrive.status().as_u16(), 200, "an operator key redrives");
    let retry = client
        .post(url(&format!("/orders/{id}/retry")))
        .header("x-api-key", OPERATOR_KEY)
        .send()
        .await
        .expect("post");
    assert_eq!(
        retry.status().as_u16(),
        404,
        "an operator key reaches retry"
    );
    let unkeyed = client
        .post(url("/order"))
        .json(&seed_order())
        .send()
        .await
        .expect("post");
    assert_eq!(unkeyed.status().as_u16(), 401);
}
