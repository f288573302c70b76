//! Black-box tests of the embedded system: the real binary, a random port, a
//! temporary data directory, HTTP like a user.

mod common;

use common::{fast_env, seed_order, App};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn the_seed_valid_order_is_accepted_with_every_field_and_reaches_a_terminal_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
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
    let arn = body["executionArn"].as_str().expect("executionArn");
    assert!(arn.starts_with("arn:") && arn.ends_with(&id), "{arn}");

    let (status, order) = app.get_json(&location).await;
    assert_eq!(status, 200);
    for (field, value) in [
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
        .wait_all_terminal(std::slice::from_ref(&id), Duration::from_secs(20))
        .await;
    assert!(matches!(
        done[0]["status"].as_str(),
        Some("FULFILLED" | "FAILED")
    ));

    let exec_id = arn.rsplit(':').next().expect("id");
    let (status, exec) = app.get_json(&format!("/executions/{exec_id}")).await;
    assert_eq!(status, 200);
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

#[tokio::test]
async fn the_seed_invalid_order_gets_400_listing_all_three_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
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

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_rejects_another_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
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
    let mut other = seed_order();
    other["quantity"] = json!(3);
    let reused = send(other).await.expect("reused");
    assert_eq!(reused.status().as_u16(), 422);
    let reused: Value = reused.json().await.expect("json");
    assert_eq!(reused["error"], "IdempotencyKeyReused");
    let (_, list) = app.get_json("/orders").await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "no second order exists"
    );
}

#[tokio::test]
async fn a_thousand_orders_with_a_fixed_seed_all_end_terminal_with_the_expected_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.push(("DOFS_FULFILLMENT_SEED", "20261128".into()));
    let app = App::spawn_on(dir.path(), &env);
    let mut ids = Vec::new();
    let mut sends = tokio::task::JoinSet::new();
    for client in 0..8 {
        let (c, url) = (app.client.clone(), app.url("/order"));
        sends.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..125 {
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
    assert_eq!(ids.len(), 1000);
    let orders = app.wait_all_terminal(&ids, Duration::from_secs(120)).await;
    let fulfilled = orders.iter().filter(|o| o["status"] == "FULFILLED").count();
    let failed: Vec<&Value> = orders.iter().filter(|o| o["status"] == "FAILED").collect();
    // 1000 × (1 − 0.3³) = 973; sd = √(1000 × 0.973 × 0.027) ≈ 5.1; allow 5 sd.
    assert!(
        (947..=999).contains(&fulfilled),
        "FULFILLED {fulfilled} of 1000"
    );
    assert_eq!(fulfilled + failed.len(), 1000);
    let dead = app.all_pages("/failed-orders").await;
    assert_eq!(
        dead.len(),
        failed.len(),
        "one failed-orders row per FAILED order"
    );
    for order in &failed {
        let row = dead
            .iter()
            .find(|d| d["orderId"] == order["orderId"])
            .expect("in failed-orders");
        assert_eq!(row["attempts"], 3);
        assert_eq!(order["attempts"], 3);
        assert!(row["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(row["order"]["customerId"], "CUST-1001");
        assert!(order["failureReason"].as_str().is_some());
    }
    for order in orders.iter().filter(|o| o["status"] == "FULFILLED") {
        assert!((1..=3).contains(&order["attempts"].as_u64().unwrap_or(0)));
    }
    let (_, dlq) = app.get_json("/dlq").await;
    assert_eq!(
        dlq["items"].as_array().map(Vec::len),
        Some(failed.len()),
        "dead letters wait for an operator"
    );
}

#[tokio::test]
async fn failed_orders_can_be_retried_redriven_and_purged_by_an_operator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.push(("DOFS_FULFILLMENT_SUCCESS_RATE", "0".into()));
    let mut app = App::spawn_on(dir.path(), &env);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let v: Value = app
            .post_order(&seed_order())
            .await
            .json()
            .await
            .expect("json");
        ids.push(v["orderId"].as_str().expect("id").to_owned());
    }
    let orders = app.wait_all_terminal(&ids, Duration::from_secs(30)).await;
    assert!(orders.iter().all(|o| o["status"] == "FAILED"));
    let (_, dlq) = app.get_json("/dlq").await;
    assert_eq!(dlq["items"].as_array().map(Vec::len), Some(3));
    assert!(dlq["items"][0]["lastError"].as_str().is_some());

    let r = app
        .client
        .post(app.url(&format!("/orders/{}/retry", ids[0])))
        .send()
        .await
        .expect("retry");
    assert_eq!(r.status().as_u16(), 200);
    let (_, dlq) = app.get_json("/dlq").await;
    assert_eq!(
        dlq["items"].as_array().map(Vec::len),
        Some(2),
        "a retried order leaves the DLQ"
    );

    // Restart with a success rate of 1: the retried order, then the redriven ones, are fulfilled.
    app.terminate();
    let mut env = fast_env();
    env.push(("DOFS_FULFILLMENT_SUCCESS_RATE", "1".into()));
    let app = App::spawn_on(dir.path(), &env);
    app.wait_all_terminal(&ids[..1], Duration::from_secs(30))
        .await;
    let (_, first) = app.get_json(&format!("/orders/{}", ids[0])).await;
    assert_eq!(first["status"], "FULFILLED");
    let r = app
        .client
        .post(app.url(&format!("/orders/{}/retry", ids[0])))
        .send()
        .await
        .expect("retry");
    assert_eq!(
        r.status().as_u16(),
        409,
        "only FAILED orders can be retried"
    );

    let moved: Value = app
        .client
        .post(app.url("/dlq/redrive"))
        .send()
        .await
        .expect("redrive")
        .json()
        .await
        .expect("json");
    assert_eq!(moved["moved"], 2);
    let orders = app.wait_all_terminal(&ids, Duration::from_secs(30)).await;
    assert!(
        orders.iter().all(|o| o["status"] == "FULFILLED"),
        "{orders:?}"
    );
    let history = app.all_pages("/failed-orders").await;
    assert_eq!(
        history.len(),
        3,
        "the failed-orders table keeps its history"
    );
    let purged: Value = app
        .client
        .post(app.url("/dlq/purge"))
        .send()
        .await
        .expect("purge")
        .json()
        .await
        .expect("json");
    assert_eq!(purged["purged"], 0);
}

#[tokio::test]
async fn sigterm_stops_accepting_and_exits_zero_and_accepted_orders_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.push(("DOFS_FULFILLMENT_DELAY_MS", "50".into()));
    let mut app = App::spawn_on(dir.path(), &env);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let v: Value = app
            .post_order(&seed_order())
            .await
            .json()
            .await
            .expect("json");
        ids.push(v["orderId"].as_str().expect("id").to_owned());
    }
    let status = app.terminate();
    assert!(status.success(), "exit status {status:?}");
    let app = App::spawn_on(dir.path(), &fast_env());
    app.wait_all_terminal(&ids, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_bad_configuration_value_stops_start_up_naming_the_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dofs"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DOFS_FULFILLMENT_SUCCESS_RATE", "1.7")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fulfillment.success_rate"), "{err}");
}

#[tokio::test]
async fn api_keys_are_required_and_operator_routes_need_an_operator_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.push(("DOFS_AUTH_API_KEYS", "submit-key-0123456789".into()));
    env.push(("DOFS_AUTH_OPERATOR_KEYS", "operator-key-0123456789".into()));
    let app = App::spawn_on(dir.path(), &env);
    let status = |r: reqwest::Response| r.status().as_u16();
    for path in ["/health", "/ready"] {
        assert_eq!(
            status(app.client.get(app.url(path)).send().await.expect("get")),
            200,
            "{path} stays open"
        );
    }
    let missing = app
        .client
        .get(app.url("/orders"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status().as_u16(), 401);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"], "Unauthorized");
    let wrong = app
        .client
        .get(app.url("/orders"))
        .header("x-api-key", "not-the-key-0123456789")
        .send()
        .await;
    assert_eq!(status(wrong.expect("get")), 401);
    let order = app
        .client
        .post(app.url("/order"))
        .header("x-api-key", "submit-key-0123456789")
        .json(&seed_order())
        .send()
        .await
        .expect("post");
    assert_eq!(status(order), 202, "a submit key submits");
    let redrive = |key: &'static str| {
        app.client
            .post(app.url("/dlq/redrive"))
            .header("x-api-key", key)
            .send()
    };
    assert_eq!(
        status(redrive("submit-key-0123456789").await.expect("post")),
        403,
        "a submit key is not an operator key"
    );
    assert_eq!(
        status(redrive("operator-key-0123456789").await.expect("post")),
        200
    );
    let (_, unauth_order) = (0, app.post_order(&seed_order()).await);
    assert_eq!(status(unauth_order), 401);
}
