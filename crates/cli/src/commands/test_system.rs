//! `dofs test-system`: the contract's behaviour, check by check, against any
//! deployment. Valid orders, every invalid-order rule, edge cases (limits,
//! wrong types, malformed JSON, oversized bodies, wrong content types),
//! idempotency, reads and listings, the lifecycle to a terminal status with
//! the expected fulfilled share, operator retries, an optional load phase,
//! and every answer checked against the deployment's `/openapi.json`.
//!
//! It creates orders (tagged `metadata.source = "dofs-test-system"`); on a
//! shared deployment they show up like any other orders. It never purges or
//! redrives the DLQ.

use crate::commands::checks::{Checklist, Status};
use crate::commands::client::{encode_segment, Api, CliError, Exit, Reply, Target};
use crate::commands::format::{human_duration, parse_duration, parse_timestamp, text};
use crate::commands::load;
use crate::commands::openapi::{Conformance, Spec};
use crate::commands::orders::is_terminal;
use clap::Args;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use dofs_server::openapi::CONTRACT_ROUTES;

/// `dofs test-system`.
#[derive(Args, Debug)]
pub struct TestSystemArgs {
    #[command(flatten)]
    pub target: Target,
    /// Orders submitted for the lifecycle checks.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub lifecycle_orders: u32,
    /// The share of orders expected to end FULFILLED: 1 - (1 - success_rate)^max_receive_count
    /// (0.973 for the defaults 0.7 and 3).
    #[arg(long, default_value_t = 0.973, value_name = "SHARE")]
    pub expected_fulfilled: f64,
    /// How far the measured share may be from the expected one
    /// [default: 4.5 standard deviations of a binomial share, at least 0.02].
    #[arg(long, value_name = "SHARE")]
    pub tolerance: Option<f64>,
    /// How long the lifecycle checks wait for every order to be terminal.
    #[arg(long, default_value = "3m", value_parser = parse_duration, value_name = "DURATION")]
    pub terminal_timeout: Duration,
    /// The deployment's validation.max_quantity.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_quantity: u32,
    /// The deployment's validation.max_price, in whole currency units.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_price: u64,
    /// Also run a load phase (closed loop) and require zero errors.
    #[arg(long)]
    pub load: bool,
    /// Requests in the load phase.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub load_orders: u64,
    /// Concurrency of the load phase.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub load_concurrency: usize,
    /// Do not check the answers against the deployment's /openapi.json.
    #[arg(long)]
    pub no_openapi: bool,
}

/// A request as a check describes it.
struct Req {
    method: Method,
    /// The OpenAPI path template, for the conformance check.
    template: &'static str,
    path: String,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
}

impl Req {
    fn get(template: &'static str, path: impl Into<String>) -> Req {
        Req {
            method: Method::GET,
            template,
            path: path.into(),
            content_type: None,
            body: None,
            headers: Vec::new(),
        }
    }

    fn post(template: &'static str, path: impl Into<String>) -> Req {
        Req {
            method: Method::POST,
            ..Req::get(template, path)
        }
    }

    /// `POST /order` with a JSON body, byte for byte.
    fn order(body: impl Into<Vec<u8>>) -> Req {
        Req::post("/order", "/order").json(body)
    }

    fn json(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.content_type = Some("application/json".into());
        self.body = Some(body.into());
        self
    }

    fn content_type(mut self, ct: Option<&str>) -> Req {
        self.content_type = ct.map(str::to_owned);
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }
}

struct Ctx {
    api: Api,
    spec: Option<Spec>,
    conformance: Mutex<Conformance>,
    max_quantity: u32,
    max_price_cents: u64,
}

impl Ctx {
    /// Sends a request; records its answer for the OpenAPI check.
    async fn call(&self, req: Req) -> Result<Reply, String> {
        let mut builder = self.api.request(req.method.clone(), &req.path);
        if let Some(ct) = &req.content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let reply = self.api.send(builder).await.map_err(|e| e.to_string())?;
        if let Some(spec) = &self.spec {
            let answer = crate::commands::openapi::Answer {
                status: reply.status,
                content_type: reply.header("content-type").unwrap_or_default(),
                body: &reply.body,
            };
            let outcome = spec.check(req.method.as_str(), req.template, &answer);
            self.conformance
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(req.method.as_str(), req.template, reply.status, outcome);
        }
        Ok(reply)
    }

    async fn submit(&self, body: impl Into<Vec<u8>>) -> Result<Reply, String> {
        self.call(Req::order(body)).await
    }

    /// A valid order accepted; its id.
    async fn accepted(&self, body: impl Into<Vec<u8>>) -> Result<String, String> {
        let r = self.submit(body).await?;
        expect_status(&r, 202)?;
        r.json()["orderId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the 202 body has no orderId".to_owned())
    }
}

/// A body that is the seed's valid order with fields replaced (`Some(raw JSON)`)
/// or removed (`None`), written as text so numbers keep their exact form.
fn order_with(edits: &[(&str, Option<&str>)]) -> String {
    let mut fields: Vec<(String, String)> = [
        ("customerId", r#""CUST-1001""#),
        ("productId", r#""PROD-2001""#),
        ("quantity", "2"),
        ("price", "29.99"),
        ("metadata", r#"{"source":"dofs-test-system"}"#),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (key, value) in edits {
        match (fields.iter().position(|(k, _)| k == key), value) {
            (Some(i), Some(v)) => fields[i].1 = (*v).to_owned(),
            (Some(i), None) => {
                fields.remove(i);
            }
            (None, Some(v)) => fields.push(((*key).to_owned(), (*v).to_owned())),
            (None, None) => {}
        }
    }
    let parts: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", parts.join(","))
}

fn seed_order() -> String {
    order_with(&[])
}

fn excerpt(r: &Reply) -> String {
    let body = String::from_utf8_lossy(&r.body);
    crate::commands::format::truncate(body.trim(), 160)
}

fn expect_status(r: &Reply, want: u16) -> Result<(), String> {
    if r.status == want {
        Ok(())
    } else {
        Err(format!("expected {want}, got {}: {}", r.status, excerpt(r)))
    }
}

/// The status, the JSON error name, and every field in `fields` among the details.
fn expect_error(r: &Reply, status: u16, name: &str, fields: &[&str]) -> Result<String, String> {
    expect_status(r, status)?;
    let body = r.json();
    if body["error"] != name {
        return Err(format!("expected error {name}, got {}", excerpt(r)));
    }
    if !body["message"].is_string() {
        return Err(format!("the error has no message: {}", excerpt(r)));
    }
    let listed: Vec<&str> = body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["field"].as_str())
        .collect();
    let missing: Vec<&&str> = fields.iter().filter(|f| !listed.contains(f)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "details should name {missing:?}, they name {listed:?}"
        ));
    }
    Ok(if fields.is_empty() {
        format!("{status} {name}")
    } else {
        format!("{status} {name} naming {}", fields.join(", "))
    })
}

/// Runs the suite and prints a line per check.
pub async fn run(args: TestSystemArgs) -> Result<Exit, CliError> {
    if !(0.0..=1.0).contains(&args.expected_fulfilled)
        || args.tolerance.is_some_and(|t| !(0.0..=1.0).contains(&t))
    {
        return Err(CliError::Usage(
            "--expected-fulfilled and --tolerance are shares from 0 to 1".into(),
        ));
    }
    if args.lifecycle_orders == 0 || args.max_quantity == 0 || args.max_price == 0 {
        return Err(CliError::Usage(
            "--lifecycle-orders, --max-quantity and --max-price must be at least 1".into(),
        ));
    }
    let api = Api::new(&args.target)?;
    let mut list = Checklist::new(args.target.json);
    let mut ctx = Ctx {
        api,
        spec: None,
        conformance: Mutex::new(Conformance::default()),
        max_quantity: args.max_quantity,
        max_price_cents: args.max_price.saturating_mul(100),
    };

    // Nothing else can pass if nothing answers.
    match ctx.api.get("/health").await {
        Ok(r) if r.status == 200 => list.record("health", Status::Pass, "GET /health: 200"),
        Ok(r) => list.record(
            "health",
            Status::Fail,
            format!("GET /health: {}", excerpt(&r)),
        ),
        Err(e) => {
            list.unreachable = matches!(e, CliError::Unreachable { .. });
            list.record("health", Status::Fail, e.to_string());
            return Ok(list.finish());
        }
    }
    let r = ctx.call(Req::get("/ready", "/ready")).await;
    list.result(
        "ready",
        r.and_then(|r| {
            expect_status(&r, 200)
                .map(|()| "GET /ready: 200, the store and the queue answer".into())
        }),
    );

    let doc = openapi_document(&ctx).await;
    match doc {
        Ok((spec, detail)) => {
            list.record("openapi.document", Status::Pass, detail);
            if !args.no_openapi {
                ctx.spec = Some(spec);
            }
        }
        Err(e) => list.record("openapi.document", Status::Fail, e),
    }

    let seed = valid_orders(&ctx, &mut list).await;
    edge_cases(&ctx, &mut list).await;
    invalid_orders(&ctx, &mut list).await;
    malformed_and_http(&ctx, &mut list).await;
    idempotency(&ctx, &mut list).await;
    reads(&ctx, &mut list, seed.as_deref()).await;
    operations(&ctx, &mut list).await;
    lifecycle(&ctx, &mut list, &args, seed.as_deref()).await;
    if args.load {
        load_phase(&args, &mut list).await;
    }

    if ctx.spec.is_some() {
        let c = ctx
            .conformance
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if c.mismatches.is_empty() {
            list.record(
                "openapi.responses-conform",
                Status::Pass,
                format!(
                    "{} answers on {} (operation, status) pairs match /openapi.json",
                    c.checked,
                    c.seen.len()
                ),
            );
        } else {
            let shown: Vec<&String> = c.mismatches.iter().take(5).collect();
            list.record(
                "openapi.responses-conform",
                Status::Fail,
                format!(
                    "{} mismatch(es) in {} answers: {}",
                    c.mismatches.len(),
                    c.checked,
                    shown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            );
        }
    }
    Ok(list.finish())
}

async fn openapi_document(ctx: &Ctx) -> Result<(Spec, String), String> {
    let r = ctx
        .api
        .get("/openapi.json")
        .await
        .map_err(|e| e.to_string())?;
    expect_status(&r, 200)?;
    let spec = Spec::new(r.json(), true)?;
    let missing: Vec<String> = CONTRACT_ROUTES
        .iter()
        .filter(|(m, p)| !spec.has(m, p))
        .map(|(m, p)| format!("{} {p}", m.to_ascii_uppercase()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("not described: {}", missing.join(", ")));
    }
    let detail = format!(
        "OpenAPI {} describing all {} contract routes",
        text(&spec.doc()["openapi"]),
        CONTRACT_ROUTES.len()
    );
    Ok((spec, detail))
}

/// The seed's valid order and its variants; returns the seed order's id.
async fn valid_orders(ctx: &Ctx, list: &mut Checklist) -> Option<String> {
    let mut seed_id = None;
    let outcome = async {
        let r = ctx.submit(seed_order()).await?;
        expect_status(&r, 202)?;
        let body = r.json();
        let id = body["orderId"].as_str().ok_or("no orderId")?.to_owned();
        dofs_core::OrderId::parse(&id).map_err(|_| format!("orderId {id:?} is not an order id"))?;
        if body["status"] != "ACCEPTED" {
            return Err(format!("status is {}, not ACCEPTED", body["status"]));
        }
        if body["executionArn"].as_str().is_none_or(str::is_empty) {
            return Err("no executionArn".into());
        }
        if body["message"] != "Order received and processing started" {
            return Err(format!("message is {}", body["message"]));
        }
        let location = r.header("location").unwrap_or_default();
        if location != format!("/orders/{id}") {
            return Err(format!("Location is {location:?}, not /orders/{id}"));
        }
        Ok(id)
    }
    .await;
    list.result(
        "valid.seed-order",
        outcome
            .as_ref()
            .map(|id| format!("202 ACCEPTED, order {id}, Location /orders/{id}"))
            .map_err(Clone::clone),
    );
    if let Ok(id) = outcome {
        let r = async {
            let r = ctx
                .call(Req::get("/orders/{orderId}", format!("/orders/{id}")))
                .await?;
            expect_status(&r, 200)?;
            let o = r.json();
            let want = json!({"orderId": id, "customerId": "CUST-1001", "productId": "PROD-2001",
                              "quantity": 2, "price": 29.99, "metadata": {"source": "dofs-test-system"}});
            for (field, value) in want.as_object().into_iter().flatten() {
                if &o[field] != value {
                    return Err(format!("{field} is {}, submitted {value}", o[field]));
                }
            }
            if !matches!(o["status"].as_str(), Some("PENDING" | "PROCESSING" | "FULFILLED" | "FAILED")) {
                return Err(format!("status {} is not a lifecycle status", o["status"]));
            }
            for field in ["createdAt", "updatedAt"] {
                if o[field].as_str().and_then(parse_timestamp).is_none() {
                    return Err(format!("{field} {} is not an RFC 3339 time", o[field]));
                }
            }
            if !o["attempts"].is_u64() || o.get("failureReason").is_none() {
                return Err("attempts or failureReason missing".into());
            }
            Ok(format!("200 with every field as submitted, status {}", text(&o["status"])))
        }
        .await;
        list.result("valid.read-back", r);
        seed_id = Some(id);
    }
    let cases: [(&str, Req); 3] = [
        (
            "valid.without-metadata",
            Req::order(order_with(&[("metadata", None)])),
        ),
        (
            "valid.charset-content-type",
            Req::order(seed_order()).content_type(Some("application/json; charset=utf-8")),
        ),
        (
            "valid.alias-post-orders",
            Req::post("/orders", "/orders").json(seed_order()),
        ),
    ];
    for (name, req) in cases {
        let r = ctx.call(req).await;
        list.result(
            name,
            r.and_then(|r| expect_status(&r, 202).map(|()| "202".into())),
        );
    }
    seed_id
}

/// Values at the limits, which must be accepted.
async fn edge_cases(ctx: &Ctx, list: &mut Checklist) {
    let max_q = ctx.max_quantity.to_string();
    let max_p = format!(
        "{}.{:02}",
        ctx.max_price_cents / 100,
        ctx.max_price_cents % 100
    );
    let keys16: Vec<String> = (0..16).map(|i| format!("\"k{i}\":{i}")).collect();
    let keys16 = format!("{{{}}}", keys16.join(","));
    let long_key = format!("{{\"{}\":\"v\"}}", "k".repeat(64));
    let long_value = format!("{{\"v\":\"{}\"}}", "x".repeat(256));
    let cases: Vec<(&str, String)> = vec![
        ("edge.quantity-1", order_with(&[("quantity", Some("1"))])),
        ("edge.quantity-max", order_with(&[("quantity", Some(&max_q))])),
        ("edge.price-0.01", order_with(&[("price", Some("0.01"))])),
        ("edge.price-max", order_with(&[("price", Some(&max_p))])),
        ("edge.price-integer", order_with(&[("price", Some("5"))])),
        ("edge.price-one-decimal", order_with(&[("price", Some("9.5"))])),
        ("edge.ids-4-digits", order_with(&[("customerId", Some(r#""CUST-1234""#)), ("productId", Some(r#""PROD-5678""#))])),
        ("edge.ids-12-digits", order_with(&[("customerId", Some(r#""CUST-123456789012""#)), ("productId", Some(r#""PROD-123456789012""#))])),
        ("edge.metadata-16-keys", order_with(&[("metadata", Some(&keys16))])),
        ("edge.metadata-key-64-chars", order_with(&[("metadata", Some(&long_key))])),
        ("edge.metadata-value-256-chars", order_with(&[("metadata", Some(&long_value))])),
        ("edge.metadata-number-bool-unicode", order_with(&[("metadata", Some(r#"{"n":1.5,"b":true,"s":"café ✓"}"#))])),
        ("edge.metadata-empty", order_with(&[("metadata", Some("{}"))])),
        ("edge.field-order-and-whitespace", " \n{ \"price\" : 29.99 , \"quantity\":2,\"productId\":\"PROD-2001\",\"customerId\":\"CUST-1001\" }\n".to_owned()),
    ];
    for (name, body) in cases {
        let r = ctx.submit(body).await;
        list.result(
            name,
            r.and_then(|r| expect_status(&r, 202).map(|()| "202".into())),
        );
    }
    // Exactly 64 KiB (whitespace padding keeps it valid): accepted.
    let mut body = seed_order().into_bytes();
    let pad = crate_body_limit().saturating_sub(body.len());
    body.splice(1..1, std::iter::repeat_n(b' ', pad));
    let r = ctx.submit(body).await;
    list.result(
        "edge.body-exactly-64KiB",
        r.and_then(|r| expect_status(&r, 202).map(|()| "202 for a 65536-byte body".into())),
    );
}

/// The largest body the contract accepts.
fn crate_body_limit() -> usize {
    64 * 1024
}

/// Every validation rule, broken one at a time (and all at once).
async fn invalid_orders(ctx: &Ctx, list: &mut Checklist) {
    let over_q = (u64::from(ctx.max_quantity) + 1).to_string();
    let over_p = {
        let c = ctx.max_price_cents + 1;
        format!("{}.{:02}", c / 100, c % 100)
    };
    let keys17: Vec<String> = (0..17).map(|i| format!("\"k{i}\":{i}")).collect();
    let keys17 = format!("{{{}}}", keys17.join(","));
    let key65 = format!("{{\"{}\":\"v\"}}", "k".repeat(65));
    let value257 = format!("{{\"v\":\"{}\"}}", "x".repeat(257));
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("invalid.seed-invalid-order", r#"{"customerId":"INVALID-FORMAT","productId":"PROD-2001","quantity":0,"price":-10}"#.into(), &["customerId", "quantity", "price"]),
        ("invalid.customer-id-format", order_with(&[("customerId", Some(r#""CUSTOMER-1001""#))]), &["customerId"]),
        ("invalid.customer-id-3-digits", order_with(&[("customerId", Some(r#""CUST-123""#))]), &["customerId"]),
        ("invalid.customer-id-13-digits", order_with(&[("customerId", Some(r#""CUST-1234567890123""#))]), &["customerId"]),
        ("invalid.customer-id-lowercase", order_with(&[("customerId", Some(r#""cust-1001""#))]), &["customerId"]),
        ("invalid.customer-id-number", order_with(&[("customerId", Some("1001"))]), &["customerId"]),
        ("invalid.product-id-format", order_with(&[("productId", Some(r#""PRD-2001""#))]), &["productId"]),
        ("invalid.product-id-letters", order_with(&[("productId", Some(r#""PROD-20A1""#))]), &["productId"]),
        ("invalid.missing-customer-id", order_with(&[("customerId", None)]), &["customerId"]),
        ("invalid.missing-product-id", order_with(&[("productId", None)]), &["productId"]),
        ("invalid.missing-quantity", order_with(&[("quantity", None)]), &["quantity"]),
        ("invalid.missing-price", order_with(&[("price", None)]), &["price"]),
        ("invalid.empty-object", "{}".into(), &["customerId", "productId", "quantity", "price"]),
        ("invalid.quantity-0", order_with(&[("quantity", Some("0"))]), &["quantity"]),
        ("invalid.quantity-negative", order_with(&[("quantity", Some("-1"))]), &["quantity"]),
        ("invalid.quantity-over-max", order_with(&[("quantity", Some(&over_q))]), &["quantity"]),
        ("invalid.quantity-fraction", order_with(&[("quantity", Some("1.5"))]), &["quantity"]),
        ("invalid.quantity-string", order_with(&[("quantity", Some(r#""2""#))]), &["quantity"]),
        ("invalid.quantity-null", order_with(&[("quantity", Some("null"))]), &["quantity"]),
        ("invalid.quantity-boolean", order_with(&[("quantity", Some("true"))]), &["quantity"]),
        ("invalid.price-0", order_with(&[("price", Some("0"))]), &["price"]),
        ("invalid.price-negative", order_with(&[("price", Some("-10"))]), &["price"]),
        ("invalid.price-over-max", order_with(&[("price", Some(&over_p))]), &["price"]),
        ("invalid.price-3-decimals", order_with(&[("price", Some("29.999"))]), &["price"]),
        ("invalid.price-string", order_with(&[("price", Some(r#""29.99""#))]), &["price"]),
        ("invalid.price-null", order_with(&[("price", Some("null"))]), &["price"]),
        ("invalid.price-array", order_with(&[("price", Some("[29.99]"))]), &["price"]),
        ("invalid.metadata-not-object", order_with(&[("metadata", Some(r#"["a"]"#))]), &["metadata"]),
        ("invalid.metadata-17-keys", order_with(&[("metadata", Some(&keys17))]), &["metadata"]),
        ("invalid.metadata-key-65-chars", order_with(&[("metadata", Some(&key65))]), &[]),
        ("invalid.metadata-value-257-chars", order_with(&[("metadata", Some(&value257))]), &["metadata.v"]),
        ("invalid.metadata-nested-object", order_with(&[("metadata", Some(r#"{"a":{"b":1}}"#))]), &["metadata.a"]),
        ("invalid.metadata-null-value", order_with(&[("metadata", Some(r#"{"a":null}"#))]), &["metadata.a"]),
        ("invalid.metadata-empty-key", order_with(&[("metadata", Some(r#"{"":"v"}"#))]), &[]),
        ("invalid.unknown-field", order_with(&[("discount", Some("5"))]), &["discount"]),
        ("invalid.duplicate-key", r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"quantity":3,"price":29.99}"#.into(), &["quantity"]),
    ];
    for (name, body, fields) in cases {
        let r = ctx.submit(body).await;
        list.result(
            name,
            r.and_then(|r| expect_error(&r, 400, "ValidationError", fields)),
        );
    }
    // A long field name comes back as a short excerpt only.
    let long = "y".repeat(300);
    let r = ctx.submit(order_with(&[(&long, Some("1"))])).await;
    let outcome = r.and_then(|r| {
        expect_error(&r, 400, "ValidationError", &[])?;
        if String::from_utf8_lossy(&r.body).contains(&long[..100]) {
            Err("the error echoes the whole 300-character field name".into())
        } else {
            Ok("400, the field name is cut to a short excerpt".into())
        }
    });
    list.result("invalid.long-input-not-echoed", outcome);
}

/// Bodies that are not JSON objects, and requests wrong at the HTTP level.
async fn malformed_and_http(ctx: &Ctx, list: &mut Checklist) {
    let cases: Vec<(&str, Req, u16, &str)> = vec![
        (
            "malformed.syntax",
            Req::order(r#"{"customerId": "CUST-1001","#),
            400,
            "MalformedJson",
        ),
        (
            "malformed.trailing-garbage",
            Req::order(format!("{} x", seed_order())),
            400,
            "MalformedJson",
        ),
        (
            "malformed.array",
            Req::order("[1, 2]"),
            400,
            "MalformedJson",
        ),
        (
            "malformed.string",
            Req::order(r#""an order""#),
            400,
            "MalformedJson",
        ),
        ("malformed.empty-body", Req::order(""), 400, "MalformedJson"),
        (
            "malformed.not-utf8",
            Req::order(vec![b'{', 0xff, 0xfe, b'}']),
            400,
            "MalformedJson",
        ),
        // The server answers 413 without reading the body and then closes the
        // connection: `Connection: close` keeps the client from reusing it.
        (
            "http.oversized-body",
            Req::order(format!("{{\"customerId\":\"{}\"}}", "x".repeat(70_000)))
                .header("connection", "close"),
            413,
            "PayloadTooLarge",
        ),
        (
            "http.one-byte-over-64KiB",
            {
                let mut body = seed_order().into_bytes();
                let pad = crate_body_limit() + 1 - body.len();
                body.splice(1..1, std::iter::repeat_n(b' ', pad));
                Req::order(body).header("connection", "close")
            },
            413,
            "PayloadTooLarge",
        ),
        (
            "http.text-plain",
            Req::order(seed_order()).content_type(Some("text/plain")),
            415,
            "UnsupportedMediaType",
        ),
        (
            "http.form-encoded",
            Req::order(seed_order()).content_type(Some("application/x-www-form-urlencoded")),
            415,
            "UnsupportedMediaType",
        ),
        (
            "http.no-content-type",
            Req::order(seed_order()).content_type(None),
            415,
            "UnsupportedMediaType",
        ),
        (
            "http.unknown-route",
            Req::get("/no-such-route", "/no-such-route"),
            404,
            "NotFound",
        ),
        (
            "http.wrong-method",
            Req {
                method: Method::DELETE,
                ..Req::get("/orders", "/orders")
            },
            405,
            "MethodNotAllowed",
        ),
    ];
    for (name, req, status, error) in cases {
        let r = ctx.call(req).await;
        list.result(name, r.and_then(|r| expect_error(&r, status, error, &[])));
    }
}

/// The Idempotency-Key header's semantics.
async fn idempotency(ctx: &Ctx, list: &mut Checklist) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let key = format!("dofs-test-system-{}-{nonce:x}", std::process::id());
    let send =
        |body: String, key: String| ctx.call(Req::order(body).header("Idempotency-Key", key));
    let replay = async {
        let first = send(seed_order(), key.clone()).await?;
        expect_status(&first, 202)?;
        if first.header("idempotent-replayed").is_some() {
            return Err("the first answer is marked Idempotent-Replayed".into());
        }
        let again = send(seed_order(), key.clone()).await?;
        expect_status(&again, 202).map_err(|e| format!("the replay: {e}"))?;
        if again.header("idempotent-replayed") != Some("true") {
            return Err("the replay has no Idempotent-Replayed: true".into());
        }
        if again.json()["orderId"] != first.json()["orderId"] {
            return Err(format!(
                "the replay names order {}, the first {}",
                again.json()["orderId"],
                first.json()["orderId"]
            ));
        }
        Ok(
            "the same key and body: the first 202 again, same orderId, Idempotent-Replayed: true"
                .into(),
        )
    }
    .await;
    list.result("idempotency.replay", replay);
    let r = send(order_with(&[("quantity", Some("3"))]), key.clone()).await;
    list.result(
        "idempotency.other-body",
        r.and_then(|r| expect_error(&r, 422, "IdempotencyKeyReused", &[])),
    );
    let distinct = async {
        let a = send(seed_order(), format!("{key}-a")).await?;
        let b = send(seed_order(), format!("{key}-b")).await?;
        expect_status(&a, 202)?;
        expect_status(&b, 202)?;
        if a.json()["orderId"] == b.json()["orderId"] {
            Err("two keys gave the same order".into())
        } else {
            Ok("two keys, two orders".into())
        }
    }
    .await;
    list.result("idempotency.distinct-keys", distinct);
    for (name, bad) in [
        ("idempotency.key-too-long", "k".repeat(256)),
        ("idempotency.key-with-space", "a key".to_owned()),
    ] {
        let r = send(seed_order(), bad).await;
        list.result(
            name,
            r.and_then(|r| expect_error(&r, 400, "ValidationError", &["Idempotency-Key"])),
        );
    }
    let r = send(seed_order(), "k".repeat(255)).await;
    list.result(
        "idempotency.key-255-chars",
        r.and_then(|r| expect_status(&r, 202).map(|()| "202".into())),
    );
}

/// Reads, listings and their parameters.
async fn reads(ctx: &Ctx, list: &mut Checklist, seed: Option<&str>) {
    let unknown = dofs_core::OrderId::generate().to_string();
    let r = ctx
        .call(Req::get("/orders/{orderId}", format!("/orders/{unknown}")))
        .await;
    list.result(
        "orders.unknown-id",
        r.and_then(|r| expect_error(&r, 404, "NotFound", &[])),
    );
    let r = ctx
        .call(Req::get("/orders/{orderId}", "/orders/not-an-id"))
        .await;
    list.result(
        "orders.malformed-id",
        r.and_then(|r| expect_error(&r, 400, "ValidationError", &["orderId"])),
    );

    let listing = async {
        let r = ctx.call(Req::get("/orders", "/orders?limit=2")).await?;
        expect_status(&r, 200)?;
        let page = r.json();
        let items = page["items"].as_array().ok_or("no items")?;
        if items.len() > 2 {
            return Err(format!("limit=2 gave {} items", items.len()));
        }
        let times: Vec<i64> = items
            .iter()
            .filter_map(|o| o["createdAt"].as_str().and_then(parse_timestamp))
            .collect();
        if times.windows(2).any(|w| w[0] < w[1]) {
            return Err("not newest first".into());
        }
        let Some(cursor) = page["nextCursor"].as_str() else {
            return Ok("200, one page (no next page)".to_owned());
        };
        let r = ctx
            .call(Req::get(
                "/orders",
                format!("/orders?limit=2&cursor={}", encode_segment(cursor)),
            ))
            .await?;
        expect_status(&r, 200)?;
        let next = r.json();
        let first_ids: Vec<&Value> = items.iter().map(|o| &o["orderId"]).collect();
        if next["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| first_ids.contains(&&o["orderId"]))
        {
            return Err("the next page repeats an order".into());
        }
        Ok("200, newest first, limit respected, the next page continues".to_owned())
    }
    .await;
    list.result("orders.list-paging", listing);
    let filtered = async {
        let r = ctx
            .call(Req::get("/orders", "/orders?status=PENDING&limit=50"))
            .await?;
        expect_status(&r, 200)?;
        let page = r.json();
        let other = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["status"] != "PENDING");
        match other {
            Some(o) => Err(format!("status=PENDING listed a {} order", o["status"])),
            None => Ok("200, only PENDING orders".into()),
        }
    }
    .await;
    list.result("orders.list-status-filter", filtered);
    for (name, query, field) in [
        ("orders.list-limit-0", "limit=0", "limit"),
        ("orders.list-limit-501", "limit=501", "limit"),
        ("orders.list-unknown-status", "status=DONE", "status"),
        ("orders.list-unknown-parameter", "color=red", "color"),
        ("orders.list-bad-cursor", "cursor=not-a-cursor", "cursor"),
    ] {
        let r = ctx
            .call(Req::get("/orders", format!("/orders?{query}")))
            .await;
        list.result(
            name,
            r.and_then(|r| expect_error(&r, 400, "ValidationError", &[field])),
        );
    }
    let r = ctx
        .call(Req::get("/failed-orders", "/failed-orders?limit=5"))
        .await;
    list.result(
        "failed-orders.list",
        r.and_then(|r| {
            expect_status(&r, 200)?;
            let n = r.json()["items"]
                .as_array()
                .map(Vec::len)
                .ok_or("no items")?;
            Ok(format!("200, {n} item(s) on the first page"))
        }),
    );
    let r = ctx.call(Req::get("/dlq", "/dlq?limit=5")).await;
    list.result(
        "dlq.list",
        r.and_then(|r| {
            expect_status(&r, 200)?;
            let depth = r.json()["depth"].as_u64().ok_or("no depth")?;
            Ok(format!("200, depth {depth}"))
        }),
    );
    let unknown_exec = format!("arn:aws:states:local:000000000000:execution:dofs:{unknown}");
    let r = ctx
        .call(Req::get(
            "/executions/{executionId}",
            format!("/executions/{}", encode_segment(&unknown_exec)),
        ))
        .await;
    list.result(
        "executions.unknown",
        r.and_then(|r| expect_error(&r, 404, "NotFound", &[])),
    );
    let r = ctx
        .call(Req::post(
            "/orders/{orderId}/retry",
            format!("/orders/{unknown}/retry"),
        ))
        .await;
    match r {
        Ok(r) if r.status == 403 => list.record(
            "retry.unknown-order",
            Status::Skip,
            "the API key is not an operator key (403)",
        ),
        r => list.result(
            "retry.unknown-order",
            r.and_then(|r| expect_error(&r, 404, "NotFound", &[])),
        ),
    }
    if let Some(id) = seed {
        let r = execution_of(ctx, id).await;
        list.result("executions.of-seed-order", r);
    }
}

/// Metrics, alerts and the dashboard; a deployment without them skips the check.
async fn operations(ctx: &Ctx, list: &mut Checklist) {
    let r = ctx.call(Req::get("/metrics", "/metrics")).await;
    match r {
        Ok(r) if r.status == 404 => list.record("ops.metrics", Status::Skip, "GET /metrics: 404"),
        r => list.result(
            "ops.metrics",
            r.and_then(|r| {
                expect_status(&r, 200)?;
                let text = String::from_utf8_lossy(&r.body);
                for name in ["dofs_orders_accepted_total", "dofs_http_requests_total"] {
                    if !text.contains(name) {
                        return Err(format!("no {name} series"));
                    }
                }
                Ok("200, Prometheus text with the contract's series".into())
            }),
        ),
    }
    let r = ctx.call(Req::get("/alerts", "/alerts")).await;
    match r {
        Ok(r) if r.status == 404 => list.record("ops.alerts", Status::Skip, "GET /alerts: 404"),
        r => list.result(
            "ops.alerts",
            r.and_then(|r| {
                expect_status(&r, 200)?;
                let body = r.json();
                let rules = body["alerts"].as_array().ok_or("no alerts array")?;
                let bad = rules.iter().find(|a| {
                    !a["name"].is_string()
                        || !matches!(a["state"].as_str(), Some("ok" | "firing"))
                        || a["since"].as_str().and_then(parse_timestamp).is_none()
                });
                match bad {
                    Some(a) => Err(format!(
                        "a rule without name, state (ok, firing) or since: {a}"
                    )),
                    None => Ok(format!(
                        "200, {} rules with their state and since when",
                        rules.len()
                    )),
                }
            }),
        ),
    }
    let r = ctx.call(Req::get("/", "/")).await;
    match r {
        Ok(r) if r.status == 404 => list.record("ops.dashboard", Status::Skip, "GET /: 404"),
        r => list.result(
            "ops.dashboard",
            r.and_then(|r| {
                expect_status(&r, 200)?;
                let ct = r.header("content-type").unwrap_or_default();
                if ct.starts_with("text/html") {
                    Ok("200, an HTML page".into())
                } else {
                    Err(format!("GET / answered {ct:?}, not HTML"))
                }
            }),
        ),
    }
}

/// The seed order's execution, by id and by URL-encoded ARN.
async fn execution_of(ctx: &Ctx, order: &str) -> Result<String, String> {
    let r = ctx
        .call(Req::get("/orders/{orderId}", format!("/orders/{order}")))
        .await?;
    expect_status(&r, 200)?;
    let arn = r.json()["executionArn"]
        .as_str()
        .ok_or("no executionArn")?
        .to_owned();
    let id = arn.rsplit(':').next().unwrap_or_default().to_owned();
    let started = Instant::now();
    loop {
        let r = ctx
            .call(Req::get(
                "/executions/{executionId}",
                format!("/executions/{}", encode_segment(&id)),
            ))
            .await?;
        expect_status(&r, 200)?;
        let e = r.json();
        if e["executionArn"] != arn.as_str() {
            return Err(format!(
                "executionArn is {}, the order says {arn}",
                e["executionArn"]
            ));
        }
        let status = e["status"].as_str().unwrap_or_default().to_owned();
        let events = e["events"].as_array().cloned().unwrap_or_default();
        if status == "RUNNING" && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if status != "SUCCEEDED" {
            return Err(format!("the execution is {status}, not SUCCEEDED"));
        }
        let states: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "StateEntered")
            .filter_map(|e| e["state"].as_str())
            .collect();
        if states.is_empty()
            || events
                .iter()
                .any(|e| e["timestamp"].as_str().and_then(parse_timestamp).is_none())
        {
            return Err("the history has no states, or an event without a timestamp".into());
        }
        let by_arn = ctx
            .call(Req::get(
                "/executions/{executionId}",
                format!("/executions/{}", encode_segment(&arn)),
            ))
            .await?;
        expect_status(&by_arn, 200).map_err(|e| format!("by URL-encoded ARN: {e}"))?;
        return Ok(format!(
            "SUCCEEDED through {} (also found by its URL-encoded ARN)",
            states.join(" → ")
        ));
    }
}

/// Submits orders, waits until every one is terminal, and checks the share fulfilled.
async fn lifecycle(ctx: &Ctx, list: &mut Checklist, args: &TestSystemArgs, seed: Option<&str>) {
    let n = args.lifecycle_orders as usize;
    let mut ids = Vec::with_capacity(n + 1);
    let mut refused = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let sends = chunk.iter().map(|i| {
            let body = order_with(&[
                ("customerId", Some(&format!("\"CUST-{:04}\"", 5000 + i))),
                ("quantity", Some(&(1 + i % 5).to_string())),
            ]);
            ctx.accepted(body)
        });
        for r in join_all(sends).await {
            match r {
                Ok(id) => ids.push(id),
                Err(e) => refused.push(e),
            }
        }
    }
    if !refused.is_empty() {
        list.record(
            "lifecycle.submit",
            Status::Fail,
            format!(
                "{} of {n} orders refused, e.g. {}",
                refused.len(),
                refused[0]
            ),
        );
        return;
    }
    list.record(
        "lifecycle.submit",
        Status::Pass,
        format!("{n} orders accepted"),
    );
    let started = Instant::now();
    let mut pending: Vec<String> = ids.clone();
    if let Some(seed) = seed {
        pending.push(seed.to_owned());
    }
    let mut orders: Vec<Value> = Vec::with_capacity(pending.len());
    while !pending.is_empty() && started.elapsed() < args.terminal_timeout {
        let mut still = Vec::new();
        for chunk in pending.chunks(16) {
            let reads = chunk
                .iter()
                .map(|id| ctx.call(Req::get("/orders/{orderId}", format!("/orders/{id}"))));
            for (id, r) in chunk.iter().zip(join_all(reads).await) {
                match r {
                    Ok(r)
                        if r.status == 200
                            && is_terminal(r.json()["status"].as_str().unwrap_or_default()) =>
                    {
                        orders.push(r.json())
                    }
                    _ => still.push(id.clone()),
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    if !pending.is_empty() {
        list.record(
            "lifecycle.all-terminal",
            Status::Fail,
            format!(
                "{} of {} orders still not FULFILLED or FAILED after {}, e.g. {}",
                pending.len(),
                n + usize::from(seed.is_some()),
                human_duration(args.terminal_timeout),
                pending[0]
            ),
        );
        return;
    }
    list.record(
        "lifecycle.all-terminal",
        Status::Pass,
        format!(
            "every order terminal within {}",
            human_duration(started.elapsed())
        ),
    );
    let ours: Vec<&Value> = orders
        .iter()
        .filter(|o| {
            o["orderId"]
                .as_str()
                .is_some_and(|id| ids.iter().any(|i| i == id))
        })
        .collect();
    let fulfilled = ours.iter().filter(|o| o["status"] == "FULFILLED").count();
    let share = fulfilled as f64 / ours.len().max(1) as f64;
    let p = args.expected_fulfilled;
    let tolerance = args
        .tolerance
        .unwrap_or_else(|| (4.5 * (p * (1.0 - p) / ours.len().max(1) as f64).sqrt()).max(0.02));
    let detail = format!(
        "{fulfilled} of {} FULFILLED ({:.1}%), expected {:.1}% ± {:.1}%",
        ours.len(),
        100.0 * share,
        100.0 * p,
        100.0 * tolerance
    );
    if (share - p).abs() <= tolerance {
        list.record("lifecycle.fulfilled-share", Status::Pass, detail);
    } else {
        list.record("lifecycle.fulfilled-share", Status::Fail, detail);
    }
    let failed: Vec<&&Value> = ours.iter().filter(|o| o["status"] == "FAILED").collect();
    let bad = failed
        .iter()
        .find(|o| !o["failureReason"].is_string() || o["attempts"].as_u64().unwrap_or(0) == 0);
    list.result(
        "lifecycle.failed-have-reason",
        match bad {
            Some(o) => Err(format!(
                "FAILED order {} has no failureReason or no attempts",
                o["orderId"]
            )),
            None => Ok(format!(
                "{} FAILED order(s), each with a failureReason",
                failed.len()
            )),
        },
    );
    let attempts_ok = ours
        .iter()
        .filter(|o| o["status"] == "FULFILLED")
        .all(|o| o["attempts"].as_u64().is_some_and(|a| a >= 1));
    list.result(
        "lifecycle.fulfilled-attempts",
        if attempts_ok {
            Ok("every FULFILLED order made at least one attempt".into())
        } else {
            Err("a FULFILLED order shows 0 attempts".into())
        },
    );
    if let Some(o) = ours.iter().find(|o| o["status"] == "FULFILLED") {
        let id = text(&o["orderId"]);
        let r = ctx
            .call(Req::post(
                "/orders/{orderId}/retry",
                format!("/orders/{id}/retry"),
            ))
            .await;
        match r {
            Ok(r) if r.status == 403 => list.record(
                "retry.fulfilled-is-final",
                Status::Skip,
                "the API key is not an operator key (403)",
            ),
            r => list.result(
                "retry.fulfilled-is-final",
                r.and_then(|r| expect_error(&r, 409, "Conflict", &[])),
            ),
        }
    }
    if let Some(o) = failed.first() {
        let id = text(&o["orderId"]);
        let r = retry_failed(ctx, &id, args.terminal_timeout).await;
        list.result("retry.failed-order", r);
    } else {
        list.record(
            "retry.failed-order",
            Status::Skip,
            "no order of this run FAILED, nothing to retry",
        );
    }
}

/// Retries a FAILED order and follows it to a terminal status again.
async fn retry_failed(ctx: &Ctx, id: &str, limit: Duration) -> Result<String, String> {
    let r = ctx
        .call(Req::post(
            "/orders/{orderId}/retry",
            format!("/orders/{id}/retry"),
        ))
        .await?;
    if r.status == 403 {
        return Ok("skipped: the API key is not an operator key (403)".into());
    }
    expect_status(&r, 200)?;
    let o = r.json();
    if o["status"] != "PENDING"
        && o["status"] != "PROCESSING"
        && !is_terminal(o["status"].as_str().unwrap_or_default())
    {
        return Err(format!("after the retry the order is {}", o["status"]));
    }
    let started = Instant::now();
    loop {
        let r = ctx
            .call(Req::get("/orders/{orderId}", format!("/orders/{id}")))
            .await?;
        let status = r.json()["status"].as_str().unwrap_or_default().to_owned();
        if r.status == 200 && is_terminal(&status) {
            let attempts = r.json()["attempts"].as_u64().unwrap_or(0);
            return Ok(format!(
                "200 PENDING with attempts reset, then {status} after {attempts} attempt(s)"
            ));
        }
        if started.elapsed() > limit {
            return Err(format!(
                "still {status} {} after the retry",
                human_duration(limit)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The optional load phase: a closed-loop run with no errors allowed.
async fn load_phase(args: &TestSystemArgs, list: &mut Checklist) {
    let plan = load::Plan {
        mode: load::Mode::Closed {
            concurrency: args.load_concurrency.max(1),
        },
        orders: Some(args.load_orders.max(1)),
        duration: None,
        invalid_ratio: 0.1,
        idempotency_keys: false,
        wait_terminal: Some(args.terminal_timeout),
        progress: false,
    };
    match load::execute(&args.target, &plan).await {
        Ok(report) => {
            let p99 = crate::commands::format::ms(report.latency.value_at_quantile(0.99));
            let detail = format!(
                "{} requests, {:.0}/s, p99 {p99}, {} errors{}",
                report.requests,
                report.throughput(),
                report.errors,
                report
                    .terminal
                    .as_ref()
                    .map(|t| format!(
                        ", {} accepted orders terminal {} after the load",
                        t.orders,
                        human_duration(t.after_load)
                    ))
                    .unwrap_or_default()
            );
            if report.passed() {
                list.record("load.no-errors", Status::Pass, detail);
            } else {
                let samples = report.error_samples.join("; ");
                list.record(
                    "load.no-errors",
                    Status::Fail,
                    format!("{detail}: {samples}"),
                );
            }
        }
        Err(e) => list.record("load.no-errors", Status::Fail, e.to_string()),
    }
}

/// Runs futures concurrently on this task and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_edits_replace_remove_and_add_fields_as_raw_json() {
        let body = order_with(&[
            ("quantity", Some("1.5")),
            ("metadata", None),
            ("x", Some("[1]")),
        ]);
        assert_eq!(
            body,
            r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":1.5,"price":29.99,"x":[1]}"#
        );
        assert!(
            dofs_core::validation::decode_order(seed_order().as_bytes(), &Default::default())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn join_all_keeps_the_order_of_its_futures() {
        let out = join_all((0..5u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(10 * (5 - i))).await;
            i
        }))
        .await;
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }
}
