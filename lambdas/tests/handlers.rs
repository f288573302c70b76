//! The Lambda handlers fed real event JSON (tests/events): API Gateway proxy
//! events (REST v1 and HTTP API v2), an SQS batch, Step Functions task input
//! and an EventBridge scheduled event, with `Context::default()` where a
//! context is needed.
//!
//! The tests marked "on the emulator" need `DOFS_MOTO_ENDPOINT` (moto server,
//! started by scripts/test-aws.sh); without it they print SKIP and pass,
//! unless `DOFS_REQUIRE_EMULATOR=1`.

use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use dofs_aws::{AwsAdapters, AwsSettings};
use dofs_core::ports::{OrderStore, Queue};
use dofs_core::{OrderId, OrderStatus};
use dofs_lambdas::{dlq, fulfill, tasks};
use serde_json::{json, Value};
use std::collections::HashMap;
use tower::ServiceExt;

fn event(name: &str) -> String {
    let path = format!("{}/tests/events/{name}", manifest_dir());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn settings(overrides: &[(&str, &str)]) -> AwsSettings {
    let mut m: HashMap<String, String> = [
        ("DOFS_ENVIRONMENT", "dev"),
        ("DOFS_ORDERS_TABLE", "dofs-dev-orders"),
        ("DOFS_FAILED_ORDERS_TABLE", "dofs-dev-failed-orders"),
        ("DOFS_IDEMPOTENCY_TABLE", "dofs-dev-idempotency"),
        (
            "DOFS_ORDERS_QUEUE_URL",
            "http://127.0.0.1:9/123456789012/dofs-dev-orders",
        ),
        (
            "DOFS_DLQ_URL",
            "http://127.0.0.1:9/123456789012/dofs-dev-orders-dlq",
        ),
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "0.7"),
        ("DOFS_QUEUE_MAX_RECEIVE_COUNT", "3"),
        ("DOFS_EVENTS_TABLE", "dofs-dev-order-events"),
        (
            "DOFS_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:123456789012:stateMachine:dofs-dev-order-processing",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    AwsSettings::from_lookup(&|k| m.get(k).cloned()).expect("settings")
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let creds =
        aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "test");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .load()
        .await
}

/// Adapters whose AWS endpoint answers nothing: fine for requests that never reach AWS.
async fn offline() -> AwsAdapters {
    AwsAdapters::new(settings(&[]), &sdk_config("http://127.0.0.1:9").await)
}

async fn call_api(app: axum::Router, event_json: &str) -> (u16, Value) {
    let request = lambda_http::request::from_str(event_json).expect("a proxy event");
    let response = app
        .oneshot(request.map(Body::new))
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_rest_api_event_under_a_stage_reaches_the_contract_route_and_gets_every_broken_rule() {
    let app = dofs_lambdas::api::app(&offline().await).expect("app");
    let (status, body) = call_api(app, &event("apigw_v1_post_order_invalid.json")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "ValidationError");
    let fields: Vec<&str> = body["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for f in ["customerId", "quantity", "price"] {
        assert!(fields.contains(&f), "{f} is listed in {body}");
    }
}

#[tokio::test]
async fn an_http_api_event_is_served_by_the_same_router() {
    let app = dofs_lambdas::api::app(&offline().await).expect("app");
    let (status, _) = call_api(app.clone(), &event("apigw_v2_get_health.json")).await;
    assert_eq!(
        status, 200,
        "GET /dev/health under the dev stage is /health"
    );
    let (status, body) = call_api(app, &event("apigw_v2_post_order_wrong_type.json")).await;
    assert_eq!(status, 415, "{body}");
}

/// A REST API event for `POST /dev{path}` made with the API key whose id is `key_id`.
fn keyed_post_event(path: &str, key_id: Option<&str>) -> String {
    let mut e: Value =
        serde_json::from_str(&event("apigw_v1_post_order_invalid.json")).expect("json");
    e["path"] = json!(path);
    e["pathParameters"] = json!({ "proxy": path.trim_start_matches('/') });
    e["requestContext"]["path"] = json!(format!("/dev{path}"));
    e["body"] = Value::Null;
    if let Some(id) = key_id {
        e["requestContext"]["identity"]["apiKeyId"] = json!(id);
    }
    e.to_string()
}

/// A REST API event for `GET /` (the root resource), requested as `requested`
/// (`requestContext.path`, the stage included).
fn root_event(requested: &str) -> String {
    let mut e: Value =
        serde_json::from_str(&event("apigw_v1_post_order_invalid.json")).expect("json");
    e["resource"] = json!("/");
    e["path"] = json!("/");
    e["httpMethod"] = json!("GET");
    e["pathParameters"] = Value::Null;
    e["requestContext"]["resourcePath"] = json!("/");
    e["requestContext"]["httpMethod"] = json!("GET");
    e["requestContext"]["path"] = json!(requested);
    e["body"] = Value::Null;
    e.to_string()
}

#[tokio::test]
async fn the_stage_root_without_a_slash_is_sent_to_the_page_under_the_stage() {
    let app = dofs_lambdas::api::app(&offline().await).expect("app");
    let request = |requested: &str| {
        let r = lambda_http::request::from_str(&root_event(requested)).expect("a proxy event");
        app.clone().oneshot(r.map(Body::new))
    };
    // `https://{api}/dev`, the api_url output: relative URLs would leave the stage.
    let response = request("/dev").await.expect("infallible");
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(response.headers()["location"], "./dev/");
    // `https://{api}/dev/`: the page, whose relative URLs stay under /dev/.
    let response = request("/dev/").await.expect("infallible");
    assert_eq!(response.status().as_u16(), 200);
    let page = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains(r#"src="assets/app.js""#), "{page}");
}

#[test]
fn the_routers_timeout_stays_under_the_functions_and_dlq_runs_stop_before_the_deadline() {
    use dofs_lambdas::api::{request_timeout_from, DEFAULT_REQUEST_TIMEOUT};
    use std::time::Duration;
    assert!(
        DEFAULT_REQUEST_TIMEOUT < Duration::from_secs(15),
        "api_handler's default timeout"
    );
    assert_eq!(
        request_timeout_from(None).expect("default"),
        DEFAULT_REQUEST_TIMEOUT
    );
    assert_eq!(
        request_timeout_from(Some("28000".into())).expect("set"),
        Duration::from_secs(28)
    );
    let err = request_timeout_from(Some("soon".into())).expect_err("refused");
    assert!(err.to_string().contains("DOFS_REQUEST_TIMEOUT_MS"), "{err}");
    // 60 s left: stop recording 5 s before the deadline.
    let before = std::time::Instant::now();
    let stop = dlq::stop_at(1_000_060_000, 1_000_000_000);
    let left = stop.duration_since(before);
    assert!(
        left >= Duration::from_secs(55) && left < Duration::from_secs(56),
        "{left:?}"
    );
    // Past the deadline: stop at once.
    assert!(dlq::stop_at(1_000, 2_000) <= std::time::Instant::now());
    // An API invocation with 15 s left: its requests end a second before.
    use dofs_lambdas::api::invocation_deadline;
    use dofs_server::deadline::RequestDeadline;
    let now = std::time::Instant::now();
    assert_eq!(
        invocation_deadline(1_000_015_000, 1_000_000_000, now),
        RequestDeadline(now + Duration::from_secs(14))
    );
    assert_eq!(
        invocation_deadline(1_000, 2_000, now),
        RequestDeadline(now),
        "past the deadline: none left"
    );
}

#[tokio::test]
async fn operator_routes_need_an_operator_api_key_id_from_api_gateway() {
    let operators = dofs_lambdas::api::OperatorKeyIds::parse(" opkey1 ,, opkey2");
    assert_eq!(operators.len(), 2);
    let app = dofs_lambdas::api::app_with(&offline().await, operators).expect("app");
    for path in [
        "/dlq/purge",
        "/dlq/redrive",
        "/orders/0190a4c0-0000-7000-8000-000000000001/retry",
    ] {
        for key in [None, Some("clientkey1"), Some("opkey")] {
            let (status, body) = call_api(app.clone(), &keyed_post_event(path, key)).await;
            assert_eq!(status, 403, "POST {path} with key id {key:?}: {body}");
            assert_eq!(body["error"], "Forbidden");
        }
        let (status, body) = call_api(app.clone(), &keyed_post_event(path, Some("opkey2"))).await;
        assert_ne!(status, 403, "an operator key passes on POST {path}: {body}");
    }
    // Not an operator route: API Gateway's key check is enough.
    let (status, body) =
        call_api(app.clone(), &keyed_post_event("/order", Some("clientkey1"))).await;
    assert_eq!(status, 400, "{body}");
    // Without DOFS_OPERATOR_API_KEY_IDS nobody is an operator.
    let closed = dofs_lambdas::api::app_with(&offline().await, Default::default()).expect("app");
    let (status, _) = call_api(closed, &keyed_post_event("/dlq/purge", Some("opkey2"))).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_api_handler_needs_the_state_machine_arn() {
    let mut s = settings(&[]);
    s.state_machine_arn = None;
    let adapters = AwsAdapters::new(s, &sdk_config("http://127.0.0.1:9").await);
    let err = dofs_lambdas::api::app(&adapters).expect_err("refused");
    assert!(err.to_string().contains("DOFS_STATE_MACHINE_ARN"));
}

#[test]
fn the_validator_accepts_a_valid_task_input_and_names_a_validation_error() {
    let limits = dofs_core::Limits::default();
    let valid: Value = serde_json::from_str(&event("sfn_task_input_valid.json")).expect("json");
    assert_eq!(
        tasks::validate(&valid, &limits).expect("valid"),
        json!({"valid": true})
    );
    let invalid: Value = serde_json::from_str(&event("sfn_task_input_invalid.json")).expect("json");
    let err = tasks::validate(&invalid, &limits).expect_err("invalid");
    assert_eq!(
        err.error_type, "ValidationError",
        "the ASL's Catch matches ValidationError"
    );
    assert!(err.error_message.contains("customerId") && err.error_message.contains("quantity"));
    let no_order = tasks::validate(&json!({"nothing": 1}), &limits).expect_err("invalid");
    assert_eq!(no_order.error_type, "ValidationError");
}

#[test]
fn store_errors_are_retryable_unless_the_id_is_taken() {
    use dofs_core::ports::{ErrorKind, PortError};
    let t: tasks::TaskFailure = PortError::new(ErrorKind::Transient, "throttled").into();
    assert_eq!(
        t.error_type, "TransientError",
        "the ASL's Retry matches TransientError"
    );
    let c: tasks::TaskFailure = PortError::conflict("other content").into();
    assert_eq!(c.error_type, "OrderConflict");
}

#[test]
fn order_storage_derives_the_execution_arn_from_terraform_names() {
    let id = OrderId::parse("0193c1a2-7b1e-7c3d-9f00-000000000001").expect("id");
    assert_eq!(
        tasks::execution_arn_for(
            None,
            "arn:aws:lambda:eu-west-1:111122223333:function:dofs-prod-order-storage",
            id
        ),
        format!("arn:aws:states:eu-west-1:111122223333:execution:dofs-prod-order-processing:{id}")
    );
    assert_eq!(
        tasks::execution_arn_for(
            Some("arn:aws:states:us-east-1:123456789012:stateMachine:x"),
            "ignored",
            id
        ),
        format!("arn:aws:states:us-east-1:123456789012:execution:x:{id}")
    );
}

#[test]
fn an_sqs_batch_record_becomes_a_received_message_with_its_receive_count() {
    let batch: SqsEvent = serde_json::from_str(&event("sqs_batch.json")).expect("an SQS event");
    assert_eq!(batch.records.len(), 2);
    let first = fulfill::received(&batch.records[0]).expect("received");
    assert_eq!(first.receive_count, 2);
    assert_eq!(first.sent_at.millis(), 1_795_874_400_000);
    assert_eq!(first.id, "059f36b4-87a3-44ab-83d2-661975830a7d");
    assert!(first.body.contains("orderId"));
}

#[test]
fn a_lambda_without_its_environment_fails_the_cold_start_naming_the_variable() {
    for bin in [
        env!("CARGO_BIN_EXE_validator"),
        env!("CARGO_BIN_EXE_api_handler"),
        env!("CARGO_BIN_EXE_fulfill_order"),
    ] {
        let out = std::process::Command::new(bin)
            .env_clear()
            .output()
            .expect("run the binary");
        assert!(!out.status.success(), "{bin} refuses to start");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("DOFS_FULFILLMENT_SUCCESS_RATE"),
            "{bin} names the missing variable: {text}"
        );
    }
}

// ---- on the emulator ----------------------------------------------------------------

fn emulator_endpoint() -> Option<String> {
    match std::env::var("DOFS_MOTO_ENDPOINT") {
        Ok(e) => Some(e),
        Err(_) => {
            assert!(
                std::env::var("DOFS_REQUIRE_EMULATOR").as_deref() != Ok("1"),
                "DOFS_MOTO_ENDPOINT is not set and DOFS_REQUIRE_EMULATOR=1"
            );
            eprintln!("SKIP: DOFS_MOTO_ENDPOINT is not set (run scripts/test-aws.sh)");
            None
        }
    }
}

/// Fresh tables, queues and a state machine on the emulator, and adapters over them.
async fn on_emulator(endpoint: &str, overrides: &[(&str, &str)]) -> AwsAdapters {
    let config = sdk_config(endpoint).await;
    let prefix = format!("h{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let created = dofs_aws::setup::create_all(
        &aws_sdk_dynamodb::Client::new(&config),
        &aws_sdk_sqs::Client::new(&config),
        dofs_aws::setup::ResourceNames::with_prefix(&prefix),
        dofs_aws::setup::QueueOptions {
            visibility_timeout: std::time::Duration::from_secs(30),
            max_receive_count: dofs_aws::setup::redrive_receive_count(
                3,
                dofs_aws::setup::REDRIVE_MARGIN,
            ),
        },
    )
    .await
    .expect("setup");
    let machine = aws_sdk_sfn::Client::new(&config)
        .create_state_machine()
        .name(format!("{prefix}-order-processing"))
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/dofs-test")
        .send()
        .await
        .expect("state machine")
        .state_machine_arn;
    let mut all: Vec<(&str, &str)> = vec![
        ("DOFS_ORDERS_TABLE", &created.names.orders_table),
        (
            "DOFS_FAILED_ORDERS_TABLE",
            &created.names.failed_orders_table,
        ),
        ("DOFS_IDEMPOTENCY_TABLE", &created.names.idempotency_table),
        ("DOFS_EVENTS_TABLE", &created.names.events_table),
        ("DOFS_ORDERS_QUEUE_URL", &created.orders_queue_url),
        ("DOFS_DLQ_URL", &created.dlq_url),
        ("DOFS_STATE_MACHINE_ARN", &machine),
        ("DOFS_QUEUE_BACKOFF_BASE_MS", "0"),
        ("DOFS_QUEUE_BACKOFF_MAX_MS", "0"),
    ];
    all.extend_from_slice(overrides);
    AwsAdapters::new(settings(&all), &config)
}

/// Receives from the orders queue and builds the SQS event the poller would send.
async fn sqs_event_from_queue(a: &AwsAdapters) -> SqsEvent {
    let out = a
        .sqs
        .receive_message()
        .queue_url(a.queue.queue_url())
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let records: Vec<Value> = out
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            json!({
                "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": attributes, "messageAttributes": {}, "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

/// The fulfiller of `a` in its settings' (simulated) mode.
async fn fulfiller(a: &AwsAdapters) -> dofs_core::service::Fulfiller {
    let config = sdk_config("http://127.0.0.1:9").await;
    let backend = fulfill::backend(&a.settings, &config).await;
    a.fulfiller(backend.expect("backend"))
}

fn post_event(body: &Value) -> String {
    let mut e: Value =
        serde_json::from_str(&event("apigw_v1_post_order_invalid.json")).expect("json");
    e["body"] = json!(body.to_string());
    e.to_string()
}

#[tokio::test]
async fn on_the_emulator_an_order_goes_from_the_api_through_storage_and_fulfillment() {
    let Some(endpoint) = emulator_endpoint() else {
        return;
    };
    let a = on_emulator(&endpoint, &[("DOFS_FULFILLMENT_SUCCESS_RATE", "1")]).await;
    let app = dofs_lambdas::api::app(&a).expect("app");
    let order = json!({"customerId": "CUST-1001", "productId": "PROD-2001", "quantity": 2,
                       "price": 29.99, "metadata": {"source": "manual-test"}});
    let (status, body) = call_api(app.clone(), &post_event(&order)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["orderId"].as_str().expect("orderId").to_owned();
    let arn = body["executionArn"].as_str().expect("executionArn");
    assert!(
        arn.starts_with("arn:aws:states:")
            && arn.contains(":execution:")
            && arn.ends_with(&format!(":{id}")),
        "the real execution ARN, named by the order id: {arn}"
    );

    // Step Functions' task input for Store Order: the order with its id.
    let mut input = json!({ "order": order });
    input["order"]["orderId"] = json!(id);
    let stored = tasks::store_order(
        &input,
        &a.settings.limits,
        &a.store,
        a.clock.as_ref(),
        |oid| tasks::execution_arn_for(a.settings.state_machine_arn.as_deref(), "", oid),
    )
    .await
    .expect("stored");
    assert_eq!(stored["status"], "PENDING");
    let again = tasks::store_order(
        &input,
        &a.settings.limits,
        &a.store,
        a.clock.as_ref(),
        |_| "unused".into(),
    )
    .await
    .expect("a retried task is idempotent");
    assert_eq!(again, stored);
    let (status, got) = call_api(
        app.clone(),
        &event("apigw_v2_get_health.json").replace("/dev/health", &format!("/dev/orders/{id}")),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["status"], "PENDING");
    assert_eq!(got["executionArn"], arn);
    assert_eq!(got["metadata"]["source"], "manual-test");

    // The queue message, as the SQS integration sends it, consumed as a batch.
    let order_id = OrderId::parse(&id).expect("id");
    a.queue
        .send(&id, &format!(r#"{{"orderId":"{id}"}}"#))
        .await
        .expect("send");
    let batch = sqs_event_from_queue(&a).await;
    assert_eq!(batch.records.len(), 1);
    let response = fulfill::fulfill_batch(batch, &fulfiller(&a).await, &a.queue).await;
    assert!(response.batch_item_failures.is_empty(), "nothing to retry");
    let done = a.store.get(order_id).await.expect("get").expect("order");
    assert_eq!((done.status, done.attempts), (OrderStatus::Fulfilled, 1));
    let depth = a.queue.depth().await.expect("depth");
    assert_eq!(
        (depth.waiting, depth.in_flight),
        (0, 0),
        "the fulfilled message is deleted"
    );
}

/// Receives the orders queue's messages and releases them at once, as a
/// throttled invocation of fulfill_order does: SQS counts the receive, the
/// handler never runs. Answers how many were received.
async fn drop_deliveries(a: &AwsAdapters) -> usize {
    let batch = sqs_event_from_queue(a).await;
    for record in &batch.records {
        a.sqs
            .change_message_visibility()
            .queue_url(a.queue.queue_url())
            .receipt_handle(record.receipt_handle.clone().expect("receipt"))
            .visibility_timeout(0)
            .send()
            .await
            .expect("release");
    }
    batch.records.len()
}

/// A stored order and its message on the queue of `a`.
async fn stored_and_queued(a: &AwsAdapters) -> OrderId {
    let mut input: Value = serde_json::from_str(&event("sfn_task_input_valid.json")).expect("json");
    let id = OrderId::generate();
    input["order"]["orderId"] = json!(id.to_string());
    tasks::store_order(
        &input,
        &a.settings.limits,
        &a.store,
        a.clock.as_ref(),
        |oid| format!("arn:test:{oid}"),
    )
    .await
    .expect("stored");
    a.queue
        .send(&id.to_string(), &format!(r#"{{"orderId":"{id}"}}"#))
        .await
        .expect("send");
    id
}

#[tokio::test]
async fn on_the_emulator_throttled_deliveries_cost_no_attempt_and_the_third_failed_attempt_dead_letters(
) {
    let Some(endpoint) = emulator_endpoint() else {
        return;
    };
    let a = on_emulator(&endpoint, &[("DOFS_FULFILLMENT_SUCCESS_RATE", "0")]).await;
    let id = stored_and_queued(&a).await;
    // Two deliveries throttled before the handler: received, never run.
    for _ in 0..2 {
        assert_eq!(drop_deliveries(&a).await, 1);
    }
    for attempt in 1..=3 {
        let batch = sqs_event_from_queue(&a).await;
        assert_eq!(batch.records.len(), 1, "attempt {attempt} is delivered");
        assert_eq!(
            batch.records[0].attributes.get("ApproximateReceiveCount"),
            Some(&(attempt + 2).to_string()),
            "SQS counts the throttled deliveries"
        );
        let message_id = batch.records[0].message_id.clone();
        let response = fulfill::fulfill_batch(batch, &fulfiller(&a).await, &a.queue).await;
        let reported: Vec<Option<String>> = response
            .batch_item_failures
            .iter()
            .map(|f| Some(f.item_identifier.clone()))
            .collect();
        if attempt < 3 {
            assert_eq!(
                reported,
                vec![message_id],
                "the failed message is reported, so the event source leaves it on the queue"
            );
            let order = a.store.get(id).await.expect("get").expect("order");
            assert_eq!(
                (order.status, order.attempts),
                (OrderStatus::Pending, attempt),
                "attempt {attempt} ran, whatever SQS's receive count"
            );
        } else {
            assert!(
                reported.is_empty(),
                "after the last attempt the fulfiller moved the message to the DLQ itself"
            );
        }
    }
    assert!(sqs_event_from_queue(&a).await.records.is_empty());
    let failed = a.store.get(id).await.expect("get").expect("order");
    assert_eq!((failed.status, failed.attempts), (OrderStatus::Failed, 3));
    assert!(failed.failure_reason.is_some());
    let rows = a.store.list_failed(10, None).await.expect("failed orders");
    assert_eq!(rows.items.len(), 1);
    assert_eq!((rows.items[0].order_id, rows.items[0].attempts), (id, 3));
    assert_eq!(
        a.queue.depth().await.expect("depth").dead,
        1,
        "the dead letter waits in the DLQ for an operator"
    );
    // The dlq_processor finds it recorded already: nothing more changes.
    let report = dlq::process_dead_letters(&a.queue, &a.store, a.clock.as_ref())
        .await
        .expect("processed");
    assert_eq!(
        (report["seen"].as_u64(), report["recorded"].as_u64()),
        (Some(1), Some(0)),
        "{report}"
    );
    assert_eq!(
        a.store
            .list_failed(10, None)
            .await
            .expect("rows")
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn on_the_emulator_a_message_that_never_reaches_the_handler_is_dead_lettered_by_the_redrive_policy_and_recorded_once(
) {
    let Some(endpoint) = emulator_endpoint() else {
        return;
    };
    let a = on_emulator(&endpoint, &[("DOFS_FULFILLMENT_SUCCESS_RATE", "0")]).await;
    let id = stored_and_queued(&a).await;
    let limit = dofs_aws::setup::redrive_receive_count(3, dofs_aws::setup::REDRIVE_MARGIN);
    for delivery in 1..=limit {
        assert_eq!(drop_deliveries(&a).await, 1, "delivery {delivery}");
    }
    // The next receive moves it to the DLQ (the queue's redrive policy).
    assert!(sqs_event_from_queue(&a).await.records.is_empty());
    let scheduled: Value =
        serde_json::from_str(&event("eventbridge_scheduled.json")).expect("json");
    assert_eq!(scheduled["detail-type"], "Scheduled Event");
    // A run out of time records nothing and releases what it leased.
    let late = std::time::Instant::now();
    let report = dlq::process_dead_letters_until(&a.queue, &a.store, a.clock.as_ref(), Some(late))
        .await
        .expect("processed");
    assert_eq!(report["recorded"], 0, "{report}");
    assert_eq!(report["deferred"], 1, "{report}");
    let report = dlq::process_dead_letters(&a.queue, &a.store, a.clock.as_ref())
        .await
        .expect("processed");
    assert_eq!(report["recorded"], 1, "{report}");
    let failed = a.store.get(id).await.expect("get").expect("order");
    assert_eq!((failed.status, failed.attempts), (OrderStatus::Failed, 0));
    assert!(
        failed
            .failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("before any attempt ran")),
        "{failed:?}"
    );
    let rows = a.store.list_failed(10, None).await.expect("failed orders");
    assert_eq!(rows.items.len(), 1);
    assert_eq!((rows.items[0].order_id, rows.items[0].attempts), (id, 0));
    let report = dlq::process_dead_letters(&a.queue, &a.store, a.clock.as_ref())
        .await
        .expect("processed again");
    assert_eq!(report["recorded"], 0, "recorded once: {report}");
    assert_eq!(
        a.queue.depth().await.expect("depth").dead,
        1,
        "the dead letter stays in the DLQ for an operator"
    );
}

/// This package's directory, read when the test runs. `env!` would keep the
/// checkout the test binary was first built in, and cargo reuses that binary
/// from a shared target directory after the checkout has moved (CI clones
/// into a new folder each run).
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

#[tokio::test]
async fn http_mode_reads_its_secret_from_the_ssm_parameter_at_cold_start() {
    let Some(endpoint) = emulator_endpoint() else {
        return;
    };
    let config = sdk_config(&endpoint).await;
    let name = format!(
        "/dofs/h{}/fulfillment-secret",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name(&name)
        .value("whsec_ZG9mcy1oYW5kbGVyLXRlc3Qta2V5")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put the parameter");
    let http = |parameter: &str| {
        settings(&[
            ("DOFS_FULFILLMENT_MODE", "http"),
            ("DOFS_FULFILLMENT_HTTP_URL", "http://127.0.0.1:9/fulfill"),
            ("DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER", parameter),
        ])
    };
    let backend = fulfill::backend(&http(&name), &config).await;
    assert!(backend.is_ok(), "{:?}", backend.err());

    let missing = fulfill::backend(&http("/dofs/nobody/secret"), &config)
        .await
        .err()
        .expect("a missing parameter fails the cold start");
    let text = missing.to_string();
    assert!(
        text.contains("DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER")
            && text.contains("/dofs/nobody/secret"),
        "{text}"
    );
}
