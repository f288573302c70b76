//! The lifecycle checks (every order reaches a terminal status, the fulfilled
//! share, operator retries) and the optional load phase.

use super::*;

/// Submits orders, waits until every one is terminal, and checks the share fulfilled.
pub(super) async fn lifecycle(
    ctx: &Ctx,
    list: &mut Checklist,
    args: &TestSystemArgs,
    seed: Option<&str>,
) {
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
pub(super) async fn retry_failed(ctx: &Ctx, id: &str, limit: Duration) -> Result<String, String> {
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
pub(super) async fn load_phase(args: &TestSystemArgs, list: &mut Checklist) {
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
