//! A regression guard for the hot path, in counts rather than time: the
//! writer jobs, transactions and row changes that orders take from submit to
//! `FULFILLED`. It fails if a change makes an order cost more writes than
//! the pipeline needs today. With the simulated backend and no delay, its
//! attempts begin and finish in one transaction:
//!
//! - writer jobs: 1 (submit: order, counts, queue message, with the workflow
//!   run) + 1 (receive, begin and finish, per batch), so at most 2 per order
//!   and fewer when the workers batch;
//! - row changes: 3 at submit (order, its `order.accepted` event,
//!   message), 5 to begin and fulfill in one go (the order's row once, its
//!   `order.processing` and `order.fulfilled` events, the fulfillment, the
//!   message deleted): 8, and the status counts once per transaction, not
//!   per change: at most 9. (The events, CONTRACT §9, are the outbox:
//!   written with their change or not at all.)
//!
//! An attempt that must wait (the `http` backend, or a simulated delay)
//! takes two transactions, the attempt between them: writer jobs 1 + 1
//! (receive and begin, per batch) + 1 (finish, per batch), at most 3 per
//! order; row changes 3 at submit, 3 to begin (message, order,
//! `order.processing`), 4 to fulfill (order, `order.fulfilled`, fulfillment,
//! message): 10, and the counts: at most 11.

use dofs_core::validation::{decode_order, Limits};
use dofs_core::{FulfillmentPolicy, OrderId, OrderStatus};
use dofs_embedded::{Embedded, EmbeddedConfig};
use std::time::{Duration, Instant};

const ORDERS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_takes_at_most_two_writer_jobs_and_nine_row_changes() {
    count_work(Duration::ZERO, 2, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_waits_takes_at_most_three_writer_jobs_and_eleven_row_changes() {
    count_work(Duration::from_millis(1), 3, 11).await;
}

/// Runs [`ORDERS`] orders to `FULFILLED` with `delay` of simulated work per
/// attempt and checks the writer's work per order against the limits.
async fn count_work(delay: Duration, jobs_per_order: u64, row_changes_per_order: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EmbeddedConfig::new(dir.path());
    config.policy = FulfillmentPolicy {
        success_rate: 1.0,
        seed: Some(1),
    };
    config.delay = delay;
    let embedded = Embedded::start(config).await.expect("start");
    let backend = embedded.backend();
    let before = embedded.db().write_stats();

    let body = br#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99,"metadata":{"source":"count"}}"#;
    let mut submits = tokio::task::JoinSet::new();
    for _ in 0..ORDERS {
        let backend = backend.clone();
        let order = decode_order(body, &Limits::default()).expect("a valid order");
        submits.spawn(async move {
            backend
                .workflow
                .start(OrderId::generate(), order, None, None)
                .await
                .expect("submit")
        });
    }
    while let Some(r) = submits.join_next().await {
        r.expect("submit task");
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = backend.orders.count_by_status().await.expect("counts");
        let fulfilled = counts
            .iter()
            .find(|(s, _)| *s == OrderStatus::Fulfilled)
            .map_or(0, |(_, n)| *n);
        if fulfilled == ORDERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {fulfilled} of {ORDERS} orders fulfilled: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the workers' last idle passes finish; they change nothing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = embedded.db().write_stats();
    embedded.shutdown().await;

    let jobs = after.changing_jobs - before.changing_jobs;
    let rows = after.row_changes - before.row_changes;
    let transactions = after.changing_transactions - before.changing_transactions;
    println!(
        "{ORDERS} orders to FULFILLED, {delay:?} per attempt: {jobs} writer jobs ({:.2} per order), {transactions} transactions ({:.2} per order), {rows} row changes ({:.2} per order)",
        jobs as f64 / ORDERS as f64,
        transactions as f64 / ORDERS as f64,
        rows as f64 / ORDERS as f64,
    );
    assert!(
        jobs <= jobs_per_order * ORDERS,
        "{jobs} writer jobs for {ORDERS} orders: more than {jobs_per_order} per order"
    );
    assert!(
        rows <= row_changes_per_order * ORDERS,
        "{rows} row changes for {ORDERS} orders: more than {row_changes_per_order} per order"
    );
    assert!(transactions <= jobs, "a transaction holds one or more jobs");
}
