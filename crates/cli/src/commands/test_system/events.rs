//! Cancellation (CONTRACT §8) and the order event feed (§9), as a client
//! sees them on any deployment.

use super::*;

/// Cancels a fresh order, checks the answers a cancel may get, and the
/// feed's events of an order.
pub(super) async fn cancel_and_events(ctx: &Ctx, list: &mut Checklist, seed: Option<&str>) {
    list.result("cancel.fresh-order", cancel_fresh(ctx).await);
    let unknown = "01900000-0000-7000-8000-00000000dead";
    let r = ctx
        .call(Req::post(
            "/orders/{orderId}/cancel",
            format!("/orders/{unknown}/cancel"),
        ))
        .await;
    list.result(
        "cancel.unknown-order",
        r.and_then(|r| match r.status {
            403 => Ok("skipped: the API key is not an operator key (403)".into()),
            _ => expect_error(&r, 404, "NotFound", &[]),
        }),
    );
    let long = json!({ "reason": "r".repeat(257) }).to_string();
    let r = ctx
        .call(
            Req::post(
                "/orders/{orderId}/cancel",
                format!("/orders/{unknown}/cancel"),
            )
            .json(long),
        )
        .await;
    list.result(
        "cancel.reason-too-long",
        r.and_then(|r| match r.status {
            403 => Ok("skipped: the API key is not an operator key (403)".into()),
            _ => expect_error(&r, 400, "ValidationError", &["reason"]),
        }),
    );
    let r = ctx.call(Req::get("/events", "/events?limit=5")).await;
    list.result(
        "events.feed",
        r.and_then(|r| {
            expect_status(&r, 200)?;
            let page = r.json();
            let items = page["items"].as_array().ok_or("no items array")?;
            if items.len() > 5 {
                return Err(format!("{} items for limit=5", items.len()));
            }
            Ok(format!(
                "200, {} events, nextCursor {}",
                items.len(),
                page["nextCursor"]
            ))
        }),
    );
    let r = ctx.call(Req::get("/events", "/events?after=%20")).await;
    list.result(
        "events.bad-cursor",
        r.and_then(|r| expect_error(&r, 400, "ValidationError", &["after"])),
    );
    match seed {
        Some(id) => list.result("events.of-an-order", events_of(ctx, id).await),
        None => list.record("events.of-an-order", Status::Skip, "no order was accepted"),
    }
}

/// Submits an order and cancels it at once: 200 CANCELLED (and 200 again),
/// or 409 when an attempt already started or it is already fulfilled.
async fn cancel_fresh(ctx: &Ctx) -> Result<String, String> {
    let id = ctx.accepted(order_with(&[])).await?;
    let path = format!("/orders/{id}/cancel");
    let body = json!({"reason": "dofs test-system"}).to_string();
    let r = ctx
        .call(Req::post("/orders/{orderId}/cancel", path.clone()).json(body))
        .await?;
    match r.status {
        403 => Ok("skipped: the API key is not an operator key (403)".into()),
        409 => expect_error(&r, 409, "Conflict", &[])
            .map(|_| "409 Conflict: an attempt had started already".into()),
        _ => {
            expect_status(&r, 200)?;
            let o = r.json();
            if o["status"] != "CANCELLED" || o["cancelReason"] != "dofs test-system" {
                return Err(format!(
                    "200 but {} with cancelReason {}",
                    o["status"], o["cancelReason"]
                ));
            }
            let again = ctx
                .call(Req::post("/orders/{orderId}/cancel", path))
                .await?;
            expect_status(&again, 200)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let later = ctx
                .call(Req::get("/orders/{orderId}", format!("/orders/{id}")))
                .await?;
            match later.json()["status"].as_str() {
                Some("CANCELLED") => {
                    Ok("200 CANCELLED with its reason, 200 again, still CANCELLED".into())
                }
                other => Err(format!("cancelled, then {other:?}")),
            }
        }
    }
}

/// The events of `id`: the first is `order.accepted` (a feed may show an
/// event a moment after its change: waits up to 10 s).
async fn events_of(ctx: &Ctx, id: &str) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let r = ctx
            .call(Req::get("/events", format!("/events?orderId={id}")))
            .await?;
        expect_status(&r, 200)?;
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        if let Some(first) = items.first() {
            if first["type"] != "order.accepted" || first["orderId"] != id {
                return Err(format!(
                    "the first event is {} of {}",
                    first["type"], first["orderId"]
                ));
            }
            let kinds: Vec<String> = items.iter().map(|e| text(&e["type"])).collect();
            return Ok(format!("200: {}", kinds.join(", ")));
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("no event of {id} after 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
