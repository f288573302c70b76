//! Checks of submitting orders: valid ones, edge cases, every invalid-order
//! rule, malformed requests and HTTP details, idempotency.

use super::*;

/// The seed's valid order and its variants; returns the seed order's id.
pub(super) async fn valid_orders(ctx: &Ctx, list: &mut Checklist) -> Option<String> {
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
pub(super) async fn edge_cases(ctx: &Ctx, list: &mut Checklist) {
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
pub(super) fn crate_body_limit() -> usize {
    64 * 1024
}

/// Every validation rule, broken one at a time (and all at once).
pub(super) async fn invalid_orders(ctx: &Ctx, list: &mut Checklist) {
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
pub(super) async fn malformed_and_http(ctx: &Ctx, list: &mut Checklist) {
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
pub(super) async fn idempotency(ctx: &Ctx, list: &mut Checklist) {
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
