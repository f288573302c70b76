//! Overload protection against the real `dofs serve` on a random port
//! (CONTRACT.md section 1, "Overload"): rate limits, the in-flight limit and
//! queue back-pressure answer 429 with `Retry-After` and recover; slow
//! clients are cut off; probes and metrics stay reachable throughout; and
//! every order that was accepted reaches a terminal status.

mod common;

use common::{fast_env, seed_order, App};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn spawn(env: &[(&'static str, String)]) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = fast_env();
    all.extend_from_slice(env);
    (App::spawn_on(dir.path(), &all), dir)
}

/// The status, `Retry-After` and JSON body of a response.
async fn answer(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &App, path: &str) -> (u16, Option<String>, Value) {
    answer(app.client.get(app.url(path)).send().await.expect("GET")).await
}

/// The value of a counter series in the metrics text, 0 when absent.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn host_port(app: &App) -> String {
    app.base
        .strip_prefix("http://")
        .expect("http base")
        .to_owned()
}

/// Reads from `stream` until the peer closes it; returns what was read and
/// how long that took. Panics if it stays open longer than `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_client_over_its_rate_is_answered_429_then_served_again() {
    let (app, _dir) = spawn(&[
        ("DOFS_SERVER_RATE_LIMIT_PER_SECOND", "2".into()),
        ("DOFS_SERVER_RATE_LIMIT_BURST", "5".into()),
    ]);
    // The burst is served (and a token or two more if the requests were
    // slow), then requests are refused, as JSON, with when to come back.
    let mut served = 0;
    let (status, retry_after, body) = loop {
        let reply = get(&app, "/orders?limit=1").await;
        if reply.0 != 200 || served == 20 {
            break reply;
        }
        served += 1;
    };
    assert!(
        (5..=8).contains(&served),
        "served {served} before the limit"
    );
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "RateLimited");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let wait: u64 = retry_after
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    // Orders are limited like every other route.
    let r = app.post_order(&seed_order()).await;
    assert_eq!(r.status().as_u16(), 429);
    // Probes and the scrape are never limited.
    for _ in 0..10 {
        assert_eq!(get(&app, "/health").await.0, 200);
        assert_eq!(get(&app, "/ready").await.0, 200);
    }
    let metrics = app.metrics_text().await;
    assert!(
        counter(
            &metrics,
            "dofs_overload_rejections_total{reason=\"rate_limit\"}"
        ) >= 2.0,
        "{metrics}"
    );
    // After Retry-After the client is served again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = app.post_order(&seed_order()).await;
    assert_eq!(r.status().as_u16(), 202);
}

#[tokio::test]
async fn a_full_queue_refuses_new_orders_and_loses_none_it_accepted() {
    // One slow worker: orders pile up on the queue.
    let (app, _dir) = spawn(&[
        ("DOFS_QUEUE_MAX_BACKLOG", "5".into()),
        ("DOFS_FULFILLMENT_WORKERS", "1".into()),
        ("DOFS_FULFILLMENT_DELAY_MS", "300".into()),
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "1".into()),
    ]);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let (status, retry_after, body) = answer(app.post_order(&seed_order()).await).await;
        match status {
            202 => accepted.push(body["orderId"].as_str().expect("orderId").to_owned()),
            429 => {
                assert_eq!(body["error"], "QueueFull", "{body}");
                assert_eq!(retry_after.as_deref(), Some("1"));
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // The limit, plus at most what the worker finished meanwhile (300 ms each).
    assert!(
        (5..=10).contains(&accepted.len()),
        "about the backlog limit is accepted, not {}",
        accepted.len()
    );
    assert_eq!(refused, 20 - accepted.len());
    assert_eq!(get(&app, "/health").await.0, 200);
    // As the worker drains the queue, orders are accepted again.
    let again = app
        .eventually(
            "an order accepted again",
            Duration::from_secs(20),
            || async {
                let (status, _, body) = answer(app.post_order(&seed_order()).await).await;
                (status == 202).then(|| body["orderId"].as_str().map(str::to_owned))
            },
        )
        .await
        .expect("orderId");
    accepted.push(again);
    // Every accepted order is fulfilled; no refused one was stored.
    let orders = app
        .wait_all_terminal(&accepted, Duration::from_secs(30))
        .await;
    assert!(orders.iter().all(|o| o["status"] == "FULFILLED"));
    assert_eq!(app.all_pages("/orders").await.len(), accepted.len());
    let metrics = app.metrics_text().await;
    assert!(
        counter(
            &metrics,
            "dofs_overload_rejections_total{reason=\"backlog\"}"
        ) >= refused as f64,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_replay_is_answered_as_a_replay_while_the_queue_is_full() {
    // One worker that takes 5 s an order: the queue stays full meanwhile.
    let (app, _dir) = spawn(&[
        ("DOFS_QUEUE_MAX_BACKLOG", "2".into()),
        ("DOFS_FULFILLMENT_WORKERS", "1".into()),
        ("DOFS_FULFILLMENT_DELAY_MS", "5000".into()),
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "1".into()),
    ]);
    let order = seed_order();
    let post = |key: &'static str| {
        let request = app
            .client
            .post(app.url("/order"))
            .header("idempotency-key", key)
            .json(&order);
        async move {
            let r = request.send().await.expect("POST /order");
            let replayed = r.headers().get("idempotent-replayed").is_some();
            let (status, _, body) = answer(r).await;
            (status, replayed, body)
        }
    };
    let (status, replayed, first) = post("replay-key-1").await;
    assert_eq!((status, replayed), (202, false), "{first}");
    let mut refused = 0;
    for _ in 0..6 {
        let (status, _, body) = answer(app.post_order(&order).await).await;
        if status == 429 {
            assert_eq!(body["error"], "QueueFull", "{body}");
            refused += 1;
        }
    }
    assert!(refused >= 3, "the queue is full: {refused} refused");
    // The same key and body: the first answer again, not a 429.
    let (status, replayed, again) = post("replay-key-1").await;
    assert_eq!((status, replayed), (202, true), "{again}");
    assert_eq!(again["orderId"], first["orderId"]);
    // A new key is refused like any new order.
    let (status, _, body) = post("replay-key-2").await;
    assert_eq!((status, body["error"].as_str()), (429, Some("QueueFull")));
}

#[tokio::test]
async fn slow_bodies_hold_no_more_than_the_in_flight_limit_and_are_cut_off() {
    let (app, _dir) = spawn(&[
        ("DOFS_SERVER_MAX_IN_FLIGHT", "2".into()),
        ("DOFS_SERVER_BODY_READ_TIMEOUT_MS", "4000".into()),
    ]);
    // Two clients announce a body and never send it: both requests are in flight.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(host_port(&app)).await.expect("connect");
        s.write_all(
            b"POST /order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("write");
        slow.push(s);
    }
    let sent = Instant::now();
    // Let the server take both before asking: a request that came in between
    // could hold the second place itself (and one slow client get the 429).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen = Vec::new();
    let busy = loop {
        let (status, retry_after, body) = get(&app, "/orders?limit=1").await;
        if status == 429 {
            break (retry_after, body);
        }
        seen.push((status, sent.elapsed()));
        if sent.elapsed() > Duration::from_secs(3) {
            let mut answers = Vec::new();
            for s in &mut slow {
                let mut buf = [0u8; 512];
                let n = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await;
                answers.push(format!("{n:?} {}", String::from_utf8_lossy(&buf)));
            }
            panic!("no 429 while two bodies are awaited: {seen:?}; slow answers: {answers:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(busy.1["error"], "ServerBusy", "{}", busy.1);
    assert_eq!(busy.0.as_deref(), Some("1"));
    assert_eq!(get(&app, "/health").await.0, 200, "probes are not limited");
    assert_eq!(get(&app, "/metrics").await.0, 200, "nor is the scrape");
    // Each slow request is answered 408 and its connection closed.
    for s in &mut slow {
        let (text, _) = read_until_closed(s, Duration::from_secs(8)).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("RequestTimeout"), "{text}");
        let took = sent.elapsed();
        assert!(
            took >= Duration::from_millis(3900) && took < Duration::from_secs(7),
            "cut off after {took:?}, the timeout is 4 s"
        );
    }
    assert_eq!(get(&app, "/orders?limit=1").await.0, 200);
    let metrics = app.metrics_text().await;
    assert!(
        counter(
            &metrics,
            "dofs_overload_rejections_total{reason=\"in_flight\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn a_slowloris_connection_is_closed_while_other_clients_are_served() {
    let (app, _dir) = spawn(&[("DOFS_SERVER_HEADER_READ_TIMEOUT_MS", "1000".into())]);
    let mut loris = TcpStream::connect(host_port(&app)).await.expect("connect");
    loris
        .write_all(b"GET /orders HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    // Trickle a header line every 200 ms, never finishing the request, and
    // meanwhile check that a normal client is served.
    let trickle = async {
        let mut i = 0;
        while loris
            .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .await
            .is_ok()
        {
            i += 1;
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let normal = async {
        let mut served = 0;
        while started.elapsed() < Duration::from_millis(800) {
            assert_eq!(get(&app, "/orders?limit=1").await.0, 200);
            served += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        served
    };
    let ((), served) = tokio::join!(trickle, normal);
    let closed_after = started.elapsed();
    assert!(served >= 3, "normal requests served meanwhile: {served}");
    assert!(
        closed_after < Duration::from_secs(3),
        "the slow client was cut off after {closed_after:?}"
    );
    // A client that connects and sends nothing is cut off too.
    let mut silent = TcpStream::connect(host_port(&app)).await.expect("connect");
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(get(&app, "/health").await.0, 200);
}

#[tokio::test]
async fn with_keys_each_key_has_its_own_rate_limit() {
    let (key_a, key_b) = ("submit-key-aaaaaaaaaaaa", "submit-key-bbbbbbbbbbbb");
    let (app, _dir) = spawn(&[
        ("DOFS_AUTH_API_KEYS", format!("{key_a},{key_b}")),
        ("DOFS_SERVER_RATE_LIMIT_PER_SECOND", "0.5".into()),
        ("DOFS_SERVER_RATE_LIMIT_BURST", "2".into()),
    ]);
    let with_key = |key: &str| {
        let request = app.client.get(app.url("/orders?limit=1"));
        let key = key.to_owned();
        async move { answer(request.header("x-api-key", key).send().await.expect("GET")).await }
    };
    // The statuses of requests with `key` up to its first 429 (at most 6).
    let until_limited = |key: &'static str| {
        let with_key = &with_key;
        async move {
            let mut statuses = Vec::new();
            while statuses.len() < 6 {
                let (status, retry_after, body) = with_key(key).await;
                statuses.push(status);
                if status == 429 {
                    assert_eq!(body["error"], "RateLimited");
                    assert!(
                        matches!(retry_after.as_deref(), Some("1" | "2")),
                        "a token every 2 s"
                    );
                    break;
                }
            }
            statuses
        }
    };
    assert_eq!(until_limited(key_a).await, [200, 200, 429]);
    // Another key, from the same address, is not held back by the first.
    assert_eq!(until_limited(key_b).await, [200, 200, 429]);
    // Wrong keys count against the address, so guessing is limited too.
    assert_eq!(
        until_limited("not-a-valid-key-000000").await,
        [401, 401, 429]
    );
}
