//! The router against the real embedded backend on a temporary directory,
//! called in process with `tower::ServiceExt::oneshot`.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use dofs_core::ports::{
    Backend, DlqProgress, ErrorKind, IdempotencyClaim, Operations, OutOfTime, PortError, Submitted,
    WorkflowStarter,
};
use dofs_core::{FulfillmentPolicy, Limits, NewOrder, Order, OrderId};
use dofs_embedded::{Embedded, EmbeddedConfig};
use dofs_server::{router, AppState};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tower::ServiceExt;

const VALID: &str = r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99,"metadata":{"source":"manual-test"}}"#;

struct TestApp {
    router: Router,
    state: AppState,
    _embedded: Embedded,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn spawn_app() -> TestApp {
    spawn_with(|_| {}, |backend| backend).await
}

async fn spawn_with(
    configure: impl FnOnce(&mut EmbeddedConfig),
    wrap: impl FnOnce(Backend) -> Backend,
) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = EmbeddedConfig::new(dir.path());
    configure(&mut config);
    let embedded = Embedded::start(config)
        .await
        .expect("the embedded backend starts");
    let state = AppState::new(wrap(embedded.backend()), Limits::default());
    TestApp {
        router: router(state.clone()),
        state,
        _embedded: embedded,
        _dir: dir,
    }
}

/// Every order fails every attempt and dead-letters after one receive.
fn always_failing(config: &mut EmbeddedConfig) {
    config.policy = FulfillmentPolicy {
        success_rate: 0.0,
        seed: Some(7),
    };
    config.max_receive_count = 1;
}

/// Orders stay `PENDING`: no worker ever gets to them in time.
fn slow_workers(config: &mut EmbeddedConfig) {
    config.workers = 1;
    config.delay = Duration::from_secs(3600);
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a readable body");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    async fn post_empty(&self, uri: &str) -> Reply {
        self.send(Request::post(uri).body(Body::empty()).expect("request"))
            .await
    }

    async fn submit(&self, body: &str, key: Option<&str>) -> Reply {
        self.send(order_request("/order", body, key)).await
    }

    async fn submit_ok(&self) -> String {
        let reply = self.submit(VALID, None).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        reply.body["orderId"]
            .as_str()
            .expect("an orderId")
            .to_owned()
    }

    /// Polls the order until it has `status`, for at most 20 seconds.
    async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let reply = self.get(&format!("/orders/{id}")).await;
            if reply.body["status"] == status {
                return reply.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} never became {status}: {}",
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the DLQ until it holds `n` dead letters.
    async fn wait_for_dead_letters(&self, n: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let reply = self.get("/dlq").await;
            if reply.body["depth"] == n {
                return reply.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the DLQ never held {n}: {}",
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn order_request(uri: &str, body: &str, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Body::from(body.to_owned())).expect("request")
}

fn assert_error(reply: &Reply, status: StatusCode, name: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"], name, "{}", reply.body);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        reply.body
    );
}

fn detail_fields(reply: &Reply) -> Vec<String> {
    reply.body["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("a field").to_owned())
        .collect()
}

#[tokio::test]
async fn an_accepted_order_has_a_location_and_can_be_read_back() {
    let app = spawn_app().await;
    let reply = app.submit(VALID, None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let id = reply.body["orderId"].as_str().expect("orderId");
    assert_eq!(reply.body["status"], "ACCEPTED");
    assert_eq!(
        reply.body["message"],
        "Order received and processing started"
    );
    let arn = reply.body["executionArn"].as_str().expect("executionArn");
    assert!(arn.starts_with("arn:"), "{arn}");
    assert_eq!(reply.headers[header::LOCATION], format!("/orders/{id}"));
    assert!(reply.headers.get("idempotent-replayed").is_none());

    let order = app.get(&format!("/orders/{id}")).await;
    assert_eq!(order.status, StatusCode::OK);
    assert_eq!(order.body["orderId"], id);
    assert_eq!(order.body["customerId"], "CUST-1001");
    assert_eq!(order.body["price"], json!(29.99));
    assert_eq!(order.body["metadata"], json!({"source": "manual-test"}));
    assert_eq!(order.body["executionArn"], arn);
}

#[tokio::test]
async fn the_orders_alias_accepts_orders_too() {
    let app = spawn_app().await;
    let reply = app.send(order_request("/orders", VALID, None)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
}

#[tokio::test]
async fn json_content_types_with_parameters_are_accepted() {
    let app = spawn_app().await;
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let request = Request::post("/order")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(VALID))
            .expect("request");
        assert_eq!(
            app.send(request).await.status,
            StatusCode::ACCEPTED,
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_refused_with_415() {
    let app = spawn_app().await;
    let missing = Request::post("/order")
        .body(Body::from(VALID))
        .expect("request");
    assert_error(
        &app.send(missing).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    );
    let text = Request::post("/order")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(VALID))
        .expect("request");
    assert_error(
        &app.send(text).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    );
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413_with_or_without_a_content_length() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"customerId":"CUST-1001","pad":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let declared = Request::post("/order")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .expect("request");
    assert_error(
        &app.send(declared).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
    );
    let undeclared = order_request("/order", &big, None);
    assert!(undeclared.headers().get(header::CONTENT_LENGTH).is_none());
    assert_error(
        &app.send(undeclared).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
    );
}

#[tokio::test]
async fn malformed_json_is_a_400_that_does_not_echo_the_body() {
    let app = spawn_app().await;
    for body in ["{not json SECRET", "[1,2]", "", "\"text\""] {
        let reply = app.submit(body, None).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "MalformedJson");
        assert!(!reply.body.to_string().contains("SECRET"), "{}", reply.body);
    }
}

#[tokio::test]
async fn every_broken_rule_of_an_order_is_listed() {
    let app = spawn_app().await;
    let reply = app
        .submit(
            r#"{"customerId":"INVALID-FORMAT","productId":"PROD-1","quantity":0,"price":"29.99","metadata":{"k":[1]},"extra":true}"#,
            None,
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
    assert_eq!(reply.body["message"], "order is invalid");
    let fields: BTreeSet<String> = detail_fields(&reply).into_iter().collect();
    let expected: BTreeSet<String> = [
        "customerId",
        "productId",
        "quantity",
        "price",
        "metadata.k",
        "extra",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(fields, expected);
}

#[tokio::test]
async fn missing_fields_are_each_reported() {
    let app = spawn_app().await;
    let reply = app.submit("{}", None).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
    assert_eq!(
        detail_fields(&reply),
        ["customerId", "productId", "quantity", "price"]
    );
}

#[tokio::test]
async fn a_repeated_key_and_body_replays_the_first_order() {
    let app = spawn_app().await;
    let first = app.submit(VALID, Some("key-1")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = app.submit(VALID, Some("key-1")).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        again.headers[header::LOCATION],
        first.headers[header::LOCATION]
    );

    let listed = app.get("/orders").await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_a_422() {
    let app = spawn_app().await;
    assert_eq!(
        app.submit(VALID, Some("key-2")).await.status,
        StatusCode::ACCEPTED
    );
    let other = VALID.replace("\"quantity\":2", "\"quantity\":3");
    assert_error(
        &app.submit(&other, Some("key-2")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IdempotencyKeyReused",
    );
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_a_400_naming_the_header() {
    let app = spawn_app().await;
    let long = "k".repeat(256);
    for key in ["has space", long.as_str()] {
        let reply = app.submit(VALID, Some(key)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
        assert_eq!(detail_fields(&reply), ["Idempotency-Key"]);
    }
}

/// A workflow starter that holds every call until released.
struct Gated {
    inner: Arc<dyn WorkflowStarter>,
    entered: Notify,
    release: Notify,
}

#[async_trait]
impl WorkflowStarter for Gated {
    async fn start(
        &self,
        id: OrderId,
        order: NewOrder,
        claim: Option<IdempotencyClaim>,
        request: Option<String>,
    ) -> Result<Submitted, PortError> {
        self.entered.notify_one();
        self.release.notified().await;
        self.inner.start(id, order, claim, request).await
    }
}

#[tokio::test]
async fn a_key_still_in_flight_is_a_409_and_free_again_afterwards() {
    let mut gate = None;
    let app = spawn_with(
        |_| {},
        |mut backend| {
            let gated = Arc::new(Gated {
                inner: backend.workflow.clone(),
                entered: Notify::new(),
                release: Notify::new(),
            });
            gate = Some(gated.clone());
            backend.workflow = gated;
            backend
        },
    )
    .await;
    let gate = gate.expect("the gate");

    let first = tokio::spawn(app.router.clone().oneshot(order_request(
        "/order",
        VALID,
        Some("busy-key"),
    )));
    gate.entered.notified().await;
    assert_error(
        &app.submit(VALID, Some("busy-key")).await,
        StatusCode::CONFLICT,
        "IdempotencyKeyInFlight",
    );
    gate.release.notify_one();
    let first = first.await.expect("joined").expect("infallible");
    assert_eq!(first.status(), StatusCode::ACCEPTED);

    gate.release.notify_one();
    let replay = app.submit(VALID, Some("busy-key")).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn order_ids_are_checked_before_the_store_is_asked() {
    let app = spawn_app().await;
    let reply = app.get("/orders/not-an-id").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
    assert_eq!(detail_fields(&reply), ["orderId"]);
    let unknown = OrderId::generate();
    assert_error(
        &app.get(&format!("/orders/{unknown}")).await,
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    let reply = app.post_empty("/orders/%FF%FE/retry").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
}

#[tokio::test]
async fn orders_are_listed_newest_first_page_by_page() {
    let app = spawn_app().await;
    let mut submitted = BTreeSet::new();
    for _ in 0..3 {
        submitted.insert(app.submit_ok().await);
    }
    let first = app.get("/orders?limit=2").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let items = first.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert!(items[0]["createdAt"].as_str() >= items[1]["createdAt"].as_str());
    let cursor = first.body["nextCursor"].as_str().expect("a next cursor");
    let second = app.get(&format!("/orders?limit=2&cursor={cursor}")).await;
    let rest = second.body["items"].as_array().expect("items");
    assert_eq!(rest.len(), 1);
    assert_eq!(second.body["nextCursor"], Value::Null);

    let seen: BTreeSet<String> = items
        .iter()
        .chain(rest)
        .map(|o| o["orderId"].as_str().expect("orderId").to_owned())
        .collect();
    assert_eq!(seen, submitted);
}

#[tokio::test]
async fn orders_can_be_listed_by_status() {
    let app = spawn_with(slow_workers, |b| b).await;
    let id = app.submit_ok().await;
    // The only worker takes the order and holds it for an hour: once it is
    // PROCESSING it stays there for the rest of the test.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = app.get(&format!("/orders/{id}")).await;
        if reply.body["status"] == "PROCESSING" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the order never became PROCESSING: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut found_in = Vec::new();
    for status in ["PENDING", "PROCESSING", "FULFILLED", "FAILED"] {
        let reply = app.get(&format!("/orders?status={status}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        for order in reply.body["items"].as_array().expect("items") {
            assert_eq!(order["status"], status);
            if order["orderId"] == id.as_str() {
                found_in.push(status);
            }
        }
    }
    assert_eq!(found_in, ["PROCESSING"]);
}

#[tokio::test]
async fn bad_listing_parameters_are_each_reported() {
    let app = spawn_app().await;
    let reply = app
        .get("/orders?status=DONE&limit=501&cursor=nope&sort=asc")
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
    assert_eq!(detail_fields(&reply), ["status", "limit", "cursor", "sort"]);
    for uri in [
        "/orders?limit=0",
        "/orders?limit=abc",
        "/failed-orders?limit=0",
        "/failed-orders?status=FAILED",
        "/failed-orders?cursor=not-a-cursor",
        "/dlq?limit=9999",
        "/dlq?cursor=garbage",
    ] {
        assert_error(
            &app.get(uri).await,
            StatusCode::BAD_REQUEST,
            "ValidationError",
        );
    }
}

#[tokio::test]
async fn a_failed_order_shows_in_failed_orders_and_the_dlq_and_can_be_retried() {
    let app = spawn_with(always_failing, |b| b).await;
    let id = app.submit_ok().await;
    let order = app.wait_for_status(&id, "FAILED").await;
    assert!(order["failureReason"].is_string(), "{order}");

    let failed = app.get("/failed-orders").await;
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.body["items"][0]["orderId"], id.as_str());
    assert_eq!(failed.body["items"][0]["order"]["customerId"], "CUST-1001");
    assert_eq!(failed.body["nextCursor"], Value::Null);

    let dlq = app.wait_for_dead_letters(1).await;
    let dead = &dlq["items"][0];
    assert_eq!(dead["orderId"], id.as_str());
    assert_eq!(dead["attempts"], 1);
    assert!(
        dead["messageId"].is_string() && dead["sentAt"].is_string() && dead["deadAt"].is_string()
    );
    assert_eq!(dead["lastError"], order["failureReason"]);

    let retried = app.post_empty(&format!("/orders/{id}/retry")).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["orderId"], id.as_str());
    assert_eq!(retried.body["status"], "PENDING");
    assert_eq!(retried.body["attempts"], 0);
}

#[tokio::test]
async fn dead_letters_can_be_redriven_and_purged() {
    let app = spawn_with(always_failing, |b| b).await;
    let id = app.submit_ok().await;
    app.wait_for_status(&id, "FAILED").await;
    app.wait_for_dead_letters(1).await;
    let redriven = app.post_empty("/dlq/redrive").await;
    assert_eq!(redriven.status, StatusCode::OK);
    assert_eq!(redriven.body, json!({"moved": 1, "more": false}));

    // Redriven, it fails once more and is dead-lettered again.
    app.wait_for_status(&id, "FAILED").await;
    app.wait_for_dead_letters(1).await;
    let purged = app.post_empty("/dlq/purge").await;
    assert_eq!(purged.status, StatusCode::OK);
    assert_eq!(purged.body, json!({"purged": 1, "more": false}));
    assert_eq!(app.get("/dlq").await.body["depth"], 0);
    assert_eq!(
        app.get(&format!("/orders/{id}")).await.body["status"],
        "FAILED"
    );
}

#[tokio::test]
async fn only_failed_orders_can_be_retried() {
    let app = spawn_with(slow_workers, |b| b).await;
    let id = app.submit_ok().await;
    let reply = app.post_empty(&format!("/orders/{id}/retry")).await;
    assert_error(&reply, StatusCode::CONFLICT, "Conflict");
    let message = reply.body["message"].as_str().expect("message");
    assert!(
        message.starts_with("order is ")
            && message.ends_with(", only FAILED orders can be retried"),
        "{message}"
    );
    let unknown = OrderId::generate();
    assert_error(
        &app.post_empty(&format!("/orders/{unknown}/retry")).await,
        StatusCode::NOT_FOUND,
        "NotFound",
    );
}

#[tokio::test]
async fn an_execution_is_found_by_its_id_or_its_encoded_arn() {
    let app = spawn_app().await;
    let reply = app.submit(VALID, None).await;
    let arn = reply.body["executionArn"].as_str().expect("arn").to_owned();
    let id = arn.rsplit(':').next().expect("an id");

    let by_id = app.get(&format!("/executions/{id}")).await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.body);
    assert_eq!(by_id.body["executionArn"], arn.as_str());
    assert!(["RUNNING", "SUCCEEDED", "FAILED"]
        .contains(&by_id.body["status"].as_str().unwrap_or_default()));
    assert!(by_id.body["startedAt"].is_string());
    assert!(by_id.body["events"].is_array());
    for key in ["input", "output", "stoppedAt"] {
        assert!(by_id.body.get(key).is_some(), "{key}");
    }

    let encoded = arn.replace(':', "%3A");
    let by_arn = app.get(&format!("/executions/{encoded}")).await;
    assert_eq!(by_arn.status, StatusCode::OK, "{}", by_arn.body);
    assert_eq!(by_arn.body["executionArn"], arn.as_str());

    assert_error(
        &app.get("/executions/no-such-execution").await,
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    assert_error(
        &app.get("/executions/arn%3Aaws%3A").await,
        StatusCode::BAD_REQUEST,
        "ValidationError",
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body, json!({"status": "ready"}));
}

#[tokio::test]
async fn while_shutting_down_orders_are_refused_and_the_server_is_not_ready() {
    let app = spawn_app().await;
    app.state.begin_shutdown();
    let reply = app.submit(VALID, None).await;
    assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown");
    assert!(reply.headers.get(header::RETRY_AFTER).is_some());
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "not ready");
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = spawn_app().await;
    assert_error(&app.get("/nope").await, StatusCode::NOT_FOUND, "NotFound");
    assert_error(
        &app.post_empty("/orders/x/y/z").await,
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    let wrong = app.get("/order").await;
    assert_error(&wrong, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    assert!(wrong.headers.get(header::ALLOW).is_some());
    let delete = app
        .send(
            Request::builder()
                .method(Method::DELETE)
                .uri("/orders")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_error(&delete, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    assert_error(
        &app.get("/dlq/redrive").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
    );
}

/// Operations whose every call fails with one kind.
struct Broken(ErrorKind);

#[async_trait]
impl Operations for Broken {
    async fn retry(&self, _: OrderId, _: Instant) -> Result<Order, PortError> {
        Err(PortError::new(
            self.0,
            "disk I/O error at /var/lib/dofs/dofs.db",
        ))
    }
    async fn redrive(&self, _: Instant) -> Result<DlqProgress, PortError> {
        Err(PortError::new(
            self.0,
            "disk I/O error at /var/lib/dofs/dofs.db",
        ))
    }
    async fn purge(&self, _: Instant) -> Result<DlqProgress, PortError> {
        Err(PortError::new(
            self.0,
            "disk I/O error at /var/lib/dofs/dofs.db",
        ))
    }
    async fn cancel(&self, _: OrderId, _: Option<String>, _: Instant) -> Result<Order, PortError> {
        Err(PortError::new(
            self.0,
            "disk I/O error at /var/lib/dofs/dofs.db",
        ))
    }
    async fn ready(&self) -> Result<(), PortError> {
        Err(PortError::new(
            self.0,
            "disk I/O error at /var/lib/dofs/dofs.db",
        ))
    }
}

fn broken(kind: ErrorKind) -> impl FnOnce(Backend) -> Backend {
    move |mut backend| {
        backend.operations = Arc::new(Broken(kind));
        backend
    }
}

/// Operations that stop as if the DLQ were larger than the time they are
/// given, and remember how much time that was.
#[derive(Default)]
struct OutOfTimeOps {
    given: Mutex<Vec<Duration>>,
}

impl OutOfTimeOps {
    fn note(&self, until: Instant) {
        self.given
            .lock()
            .expect("lock")
            .push(until.saturating_duration_since(Instant::now()));
    }

    fn too_large(&self, until: Instant) -> PortError {
        self.note(until);
        PortError::with_source(
            ErrorKind::Transient,
            "looked at 4000 dead letters of dlq-x, not every one",
            OutOfTime("the dead-letter queue is too large to search; nothing changed".into()),
        )
    }
}

#[async_trait]
impl Operations for OutOfTimeOps {
    async fn retry(&self, _: OrderId, until: Instant) -> Result<Order, PortError> {
        Err(self.too_large(until))
    }
    async fn redrive(&self, until: Instant) -> Result<DlqProgress, PortError> {
        self.note(until);
        Ok(DlqProgress {
            count: 300,
            more: true,
        })
    }
    async fn purge(&self, until: Instant) -> Result<DlqProgress, PortError> {
        self.note(until);
        Ok(DlqProgress {
            count: 200,
            more: true,
        })
    }
    async fn cancel(
        &self,
        _: OrderId,
        _: Option<String>,
        until: Instant,
    ) -> Result<Order, PortError> {
        Err(self.too_large(until))
    }
    async fn ready(&self) -> Result<(), PortError> {
        Ok(())
    }
}

#[tokio::test]
async fn dlq_actions_get_three_quarters_of_the_request_time_and_say_when_more_remain() {
    let ops = Arc::new(OutOfTimeOps::default());
    let shared = Arc::clone(&ops);
    let app = spawn_with(
        |_| {},
        move |mut backend| {
            backend.operations = shared;
            backend
        },
    )
    .await;
    let redriven = app.post_empty("/dlq/redrive").await;
    assert_eq!(redriven.status, StatusCode::OK);
    assert_eq!(redriven.body, json!({"moved": 300, "more": true}));
    let purged = app.post_empty("/dlq/purge").await;
    assert_eq!(purged.status, StatusCode::OK);
    assert_eq!(purged.body, json!({"purged": 200, "more": true}));

    let id = OrderId::generate();
    for path in [
        format!("/orders/{id}/retry"),
        format!("/orders/{id}/cancel"),
    ] {
        let reply = app.post_empty(&path).await;
        assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "Timeout");
        assert_eq!(
            reply.body["message"], "the dead-letter queue is too large to search; nothing changed",
            "{path}: the operator's text, not the port's"
        );
        assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    }
    // The default request timeout is 30 s: each action may work for 22.5 s.
    let given = ops.given.lock().expect("lock").clone();
    assert_eq!(given.len(), 4);
    for d in given {
        assert!(
            d > Duration::from_secs(20) && d <= Duration::from_millis(22_500),
            "{d:?}"
        );
    }
}

#[tokio::test]
async fn internal_failures_are_a_generic_500_without_details() {
    let app = spawn_with(|_| {}, broken(ErrorKind::Internal)).await;
    let reply = app.post_empty("/dlq/redrive").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.body,
        json!({"error": "InternalError", "message": "internal error"})
    );
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !ready.body.to_string().contains("dofs.db"),
        "{}",
        ready.body
    );
}

#[tokio::test]
async fn transient_failures_are_a_503_with_retry_after() {
    let app = spawn_with(|_| {}, broken(ErrorKind::Transient)).await;
    let reply = app.post_empty("/dlq/purge").await;
    assert_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
    );
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    assert!(!reply.body.to_string().contains("dofs.db"));
}
