//! Checks of reads, listings, operations routes and workflow executions.

use super::*;

/// Reads, listings and their parameters.
pub(super) async fn reads(ctx: &Ctx, list: &mut Checklist, seed: Option<&str>) {
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
pub(super) async fn operations(ctx: &Ctx, list: &mut Checklist) {
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
pub(super) async fn execution_of(ctx: &Ctx, order: &str) -> Result<String, String> {
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
