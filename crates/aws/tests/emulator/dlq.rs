//! The operator's DLQ actions on the emulator when the DLQ holds more than
//! one request's time allows: a redrive or purge stops by its deadline and
//! says more remain, the calls after it finish the job, and every dead letter
//! is handled exactly once; a retry that cannot search the whole DLQ in time
//! changes nothing.

use super::{emulator, fresh, sample, stack, Stack};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use dofs_core::ports::{DlqProgress, ErrorKind, Operations, OrderStore, OutOfTime, Queue};
use dofs_core::service::OrderMessage;
use dofs_core::{FailedOrder, Order, OrderId, OrderStatus};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Dead letters in each test: several SQS batches, far more than one step
/// of a redrive or purge whose time is up.
const DEAD: usize = 45;

/// `n` orders, each with one dead letter; `recorded` ones are `FAILED` with
/// their failed-orders row, the others still `PENDING` (the dlq_processor
/// has not reached them yet).
async fn dead_orders(s: &Stack, n: usize, recorded: bool) -> Vec<OrderId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let order = Order::new(OrderId::generate(), sample(), "arn:x".into(), s.clock.now());
        s.store.put_new(&order).await.expect("put");
        if recorded {
            let failed = FailedOrder {
                order_id: order.id,
                reason: "dead-lettered after 3 attempts".into(),
                attempts: 3,
                failed_at: s.clock.now(),
                order: order.submitted_json(),
            };
            assert!(s.store.record_failure(&failed).await.expect("record"));
        }
        ids.push(order.id);
    }
    for chunk in ids.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(OrderMessage { order_id: *id }.to_body())
                    .build()
                    .expect("entry")
            })
            .collect();
        let out = s
            .sqs
            .send_message_batch()
            .queue_url(&s.dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send to the DLQ");
        assert!(out.failed.is_empty(), "{:?}", out.failed);
    }
    assert_eq!(s.queue.depth().await.expect("depth").dead, n as u64);
    ids
}

/// Calls `action` with no time at all (each call does one step) until it
/// says no more remain; answers every call's progress.
async fn until_done<F, Fut>(mut action: F) -> Vec<DlqProgress>
where
    F: FnMut(Instant) -> Fut,
    Fut: std::future::Future<Output = Result<DlqProgress, dofs_core::ports::PortError>>,
{
    let mut calls = Vec::new();
    for _ in 0..100 {
        let done = action(Instant::now()).await.expect("the action");
        calls.push(done);
        if !done.more {
            return calls;
        }
        assert!(done.count > 0, "every call makes progress: {calls:?}");
    }
    panic!("still more after 100 calls: {calls:?}");
}

/// How many messages for each order the orders queue holds (all received).
async fn on_the_queue(s: &Stack) -> BTreeMap<OrderId, usize> {
    let mut seen = BTreeMap::new();
    let mut empty = 0;
    while empty < 2 {
        let got = s
            .queue
            .receive(10, Duration::from_secs(120))
            .await
            .expect("receive");
        if got.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        for m in got {
            let id = OrderMessage::parse(&m.body)
                .expect("an order message")
                .order_id;
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn a_redrive_out_of_time_says_more_remain_and_repeated_calls_move_each_dead_letter_once() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "redrive-bounded").await;
    let s = stack(&config, &created);
    let ids = dead_orders(&s, DEAD, true).await;

    let calls = until_done(|until| s.ops.redrive(until)).await;
    assert!(
        calls[0].more && calls[0].count > 0 && calls[0].count < DEAD as u64,
        "the first call stops by its deadline: {calls:?}"
    );
    assert!(calls.len() > 1, "{calls:?}");
    assert_eq!(
        calls.iter().map(|c| c.count).sum::<u64>(),
        DEAD as u64,
        "the calls together moved every dead letter: {calls:?}"
    );
    assert_eq!(s.queue.depth().await.expect("depth").dead, 0);
    let queued = on_the_queue(&s).await;
    let want: BTreeMap<OrderId, usize> = ids.iter().map(|id| (*id, 1)).collect();
    assert_eq!(
        queued, want,
        "each dead letter back on the queue exactly once"
    );
    for id in &ids {
        let order = s.store.get(*id).await.expect("get").expect("order");
        assert_eq!((order.status, order.attempts), (OrderStatus::Pending, 0));
    }
    let again = s
        .ops
        .redrive(Instant::now() + Duration::from_secs(10))
        .await
        .expect("redrive");
    assert_eq!(again, DlqProgress::default(), "nothing left to redrive");
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn a_purge_out_of_time_says_more_remain_and_repeated_calls_acknowledge_each_dead_letter_once()
{
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "purge-bounded").await;
    let s = stack(&config, &created);
    let mut ids = dead_orders(&s, DEAD - 3, true).await;
    // Three the dlq_processor has not recorded yet: the purge records them.
    let unrecorded = dead_orders_more(&s, 3).await;
    ids.extend(&unrecorded);

    let calls = until_done(|until| s.ops.purge(until)).await;
    assert!(
        calls[0].more && calls[0].count > 0 && calls[0].count < DEAD as u64,
        "the first call stops by its deadline: {calls:?}"
    );
    assert_eq!(
        calls.iter().map(|c| c.count).sum::<u64>(),
        DEAD as u64,
        "{calls:?}"
    );
    assert_eq!(s.queue.depth().await.expect("depth").dead, 0);
    assert!(
        on_the_queue(&s).await.is_empty(),
        "a purge requeues nothing"
    );
    for id in &ids {
        let order = s.store.get(*id).await.expect("get").expect("order");
        assert_eq!(order.status, OrderStatus::Failed, "{id}");
    }
    let failed = s.store.list_failed(100, None).await.expect("failed orders");
    for id in &unrecorded {
        assert!(
            failed.items.iter().any(|f| f.order_id == *id),
            "{id} has its failed-orders row"
        );
    }
}

/// `n` more dead letters whose orders are still `PENDING`, on a DLQ that
/// may hold others already.
async fn dead_orders_more(s: &Stack, n: usize) -> Vec<OrderId> {
    let before = s.queue.depth().await.expect("depth").dead;
    let mut ids = Vec::new();
    for _ in 0..n {
        let order = Order::new(OrderId::generate(), sample(), "arn:x".into(), s.clock.now());
        s.store.put_new(&order).await.expect("put");
        s.sqs
            .send_message()
            .queue_url(&s.dlq_url)
            .message_body(OrderMessage { order_id: order.id }.to_body())
            .send()
            .await
            .expect("send to the DLQ");
        ids.push(order.id);
    }
    assert_eq!(
        s.queue.depth().await.expect("depth").dead,
        before + n as u64
    );
    ids
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn a_retry_that_cannot_search_the_whole_dlq_in_time_changes_nothing_and_says_so() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "retry-bounded").await;
    let s = stack(&config, &created);
    let others = dead_orders(&s, DEAD, true).await;
    let mine = *dead_orders_more(&s, 1).await.first().expect("one");
    let failed = FailedOrder {
        order_id: mine,
        reason: "dead-lettered after 3 attempts".into(),
        attempts: 3,
        failed_at: s.clock.now(),
        order: serde_json::json!({}),
    };
    s.store.record_failure(&failed).await.expect("record");

    let refused = s
        .ops
        .retry(mine, Instant::now())
        .await
        .expect_err("no time to search 46 dead letters");
    assert_eq!(refused.kind, ErrorKind::Transient, "{refused}");
    assert!(
        refused
            .source
            .as_deref()
            .is_some_and(|e| e.downcast_ref::<OutOfTime>().is_some()),
        "{refused:?}"
    );
    let order = s.store.get(mine).await.expect("get").expect("order");
    assert_eq!(order.status, OrderStatus::Failed, "nothing changed");
    assert!(on_the_queue(&s).await.is_empty(), "nothing was queued");
    // Every dead letter is still there, and visible again at once.
    let dead = s
        .queue
        .lease_every_dead_letter(100, Duration::from_secs(30))
        .await
        .expect("lease");
    assert_eq!(dead.len(), DEAD + 1);
    s.queue.release_dead_letters(&dead).await.expect("release");

    let retried = s
        .ops
        .retry(mine, Instant::now() + Duration::from_secs(20))
        .await
        .expect("with time, the retry goes through");
    assert_eq!(
        (retried.status, retried.attempts),
        (OrderStatus::Pending, 0)
    );
    assert_eq!(
        s.queue.depth().await.expect("depth").dead,
        DEAD as u64,
        "only its own dead letter left the DLQ"
    );
    let queued = on_the_queue(&s).await;
    assert_eq!(queued, BTreeMap::from([(mine, 1)]));
    assert!(others.iter().all(|o| !queued.contains_key(o)));
}
