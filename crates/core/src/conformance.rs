//! Conformance suites for the ports: the behaviour every adapter must have,
//! written once against the traits. Run them against each adapter (SQLite in
//! `dofs-embedded`, DynamoDB and SQS on the emulator in the AWS crate); two
//! adapters that pass are interchangeable.
//!
//! The suites panic on the first broken promise, naming it.

use crate::ports::{ErrorKind, OrderStore, Queue, Transition};
use crate::{CustomerId, NewOrder, Order, OrderId, OrderStatus, Price, ProductId, Timestamp};
use async_trait::async_trait;
use std::collections::HashSet;
use std::time::Duration;

mod counts;
mod paging;

/// What the queue suite needs besides the queue: a way to let time pass.
#[async_trait]
pub trait QueueHarness: Send + Sync {
    /// The queue under test, empty, with `max_receive_count` of 3.
    fn queue(&self) -> &dyn Queue;
    /// Lets `d` pass (advance a manual clock, or really wait).
    async fn wait(&self, d: Duration);
    /// A visibility timeout long enough that nothing reappears during a step.
    fn long(&self) -> Duration {
        Duration::from_secs(60)
    }
    /// A visibility timeout short enough to wait out.
    fn short(&self) -> Duration {
        Duration::from_secs(1)
    }
}

fn body(n: usize) -> String {
    format!(r#"{{"orderId":"00000000-0000-7000-8000-{n:012}"}}"#)
}

/// Receives until `want` messages arrived or a few empty polls passed.
async fn receive_n(
    h: &dyn QueueHarness,
    want: usize,
    visibility: Duration,
) -> Vec<crate::ports::Received> {
    let mut got = Vec::new();
    let mut empty = 0;
    while got.len() < want && empty < 5 {
        let batch = h.queue().receive(10, visibility).await.expect("receive");
        if batch.is_empty() {
            empty += 1;
            h.wait(Duration::from_millis(200)).await;
        }
        got.extend(batch);
    }
    got
}

/// Runs every queue case in order on a fresh queue.
pub async fn queue_suite(h: &dyn QueueHarness) {
    a_received_message_is_invisible_until_its_timeout(h).await;
    deleting_with_a_stale_receipt_is_a_conflict(h).await;
    changing_visibility_to_zero_returns_the_message_at_once(h).await;
    after_the_receive_limit_a_message_moves_to_the_dead_letter_queue(h).await;
    a_received_message_can_be_dead_lettered_at_once(h).await;
    redrive_returns_dead_letters_with_counts_reset_and_purge_drops_them(h).await;
    sending_an_id_twice_queues_one_message(h).await;
    no_message_is_lost_or_delivered_twice_while_invisible(h).await;
}

async fn drain(h: &dyn QueueHarness) {
    loop {
        let batch = h.queue().receive(10, h.long()).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        for m in batch {
            h.queue().delete(&m.receipt).await.expect("delete");
        }
    }
    h.queue().purge_dead_letters().await.expect("purge");
}

async fn a_received_message_is_invisible_until_its_timeout(h: &dyn QueueHarness) {
    let q = h.queue();
    q.send("m-vis", &body(1)).await.expect("send");
    let first = receive_n(h, 1, h.short()).await;
    assert_eq!(first.len(), 1, "a sent message is received");
    assert_eq!(first[0].body, body(1), "the body is kept exactly");
    assert_eq!(first[0].receive_count, 1, "first receive counts 1");
    assert!(
        q.receive(10, h.short()).await.expect("receive").is_empty(),
        "an invisible message is not delivered"
    );
    h.wait(h.short() + Duration::from_millis(500)).await;
    let again = receive_n(h, 1, h.long()).await;
    assert_eq!(
        again.len(),
        1,
        "the message returns after its visibility timeout"
    );
    assert_eq!(again[0].receive_count, 2, "the second receive counts 2");
    q.delete(&again[0].receipt).await.expect("delete");
    q.delete(&again[0].receipt)
        .await
        .expect("deleting twice is fine");
    drain(h).await;
}

async fn deleting_with_a_stale_receipt_is_a_conflict(h: &dyn QueueHarness) {
    let q = h.queue();
    q.send("m-stale", &body(2)).await.expect("send");
    let first = receive_n(h, 1, h.short()).await;
    h.wait(h.short() + Duration::from_millis(500)).await;
    let second = receive_n(h, 1, h.long()).await;
    assert_eq!(second.len(), 1);
    let stale = q.delete(&first[0].receipt).await;
    if let Err(e) = &stale {
        assert_eq!(e.kind, ErrorKind::Conflict, "a stale receipt is a conflict");
    }
    assert!(
        q.receive(10, h.long()).await.expect("receive").is_empty(),
        "a stale delete does not release the message"
    );
    q.delete(&second[0].receipt)
        .await
        .expect("the current receipt deletes");
    drain(h).await;
}

async fn changing_visibility_to_zero_returns_the_message_at_once(h: &dyn QueueHarness) {
    let q = h.queue();
    q.send("m-zero", &body(3)).await.expect("send");
    let first = receive_n(h, 1, h.long()).await;
    q.change_visibility(&first[0].receipt, Duration::ZERO)
        .await
        .expect("change visibility");
    let again = receive_n(h, 1, h.long()).await;
    assert_eq!(again.len(), 1, "visible again at once");
    q.delete(&again[0].receipt).await.expect("delete");
    let gone = q.change_visibility(&again[0].receipt, Duration::ZERO).await;
    assert!(gone.is_err(), "a deleted message cannot change visibility");
    drain(h).await;
}

async fn after_the_receive_limit_a_message_moves_to_the_dead_letter_queue(h: &dyn QueueHarness) {
    let q = h.queue();
    q.send("m-dead", &body(4)).await.expect("send");
    for n in 1..=3 {
        let got = receive_n(h, 1, h.long()).await;
        assert_eq!(got.len(), 1, "receive {n} delivers");
        assert_eq!(got[0].receive_count, n);
        q.change_visibility(&got[0].receipt, Duration::ZERO)
            .await
            .expect("release");
    }
    let after = receive_n(h, 1, h.long()).await;
    assert!(
        after.is_empty(),
        "the fourth receive moves it to the DLQ instead of delivering it"
    );
    let mut dead = Vec::new();
    for _ in 0..20 {
        dead = q.dead_letters(10, None).await.expect("dead letters").items;
        if !dead.is_empty() {
            break;
        }
        h.wait(Duration::from_millis(200)).await;
    }
    assert_eq!(dead.len(), 1, "one dead letter");
    assert_eq!(dead[0].body, body(4));
    assert!(
        dead[0].receive_count >= 3,
        "the dead letter keeps its receive count"
    );
    let again = q.dead_letters(10, None).await.expect("dead letters").items;
    assert_eq!(again.len(), 1, "listing dead letters does not remove them");
    drain(h).await;
}

async fn a_received_message_can_be_dead_lettered_at_once(h: &dyn QueueHarness) {
    let q = h.queue();
    q.send("m-reject", &body(7)).await.expect("send");
    let got = receive_n(h, 1, h.long()).await;
    assert_eq!(got.len(), 1);
    q.dead_letter(&got[0].receipt).await.expect("dead letter");
    assert!(
        q.receive(10, h.long()).await.expect("receive").is_empty(),
        "a dead-lettered message is not delivered again"
    );
    let mut dead = Vec::new();
    for _ in 0..20 {
        dead = q.dead_letters(10, None).await.expect("dead letters").items;
        if !dead.is_empty() {
            break;
        }
        h.wait(Duration::from_millis(200)).await;
    }
    assert_eq!(dead.len(), 1, "it waits in the DLQ after one receive");
    assert_eq!(dead[0].body, body(7));
    drain(h).await;
}

async fn redrive_returns_dead_letters_with_counts_reset_and_purge_drops_them(h: &dyn QueueHarness) {
    let q = h.queue();
    q.send("m-redrive", &body(5)).await.expect("send");
    for _ in 0..3 {
        let got = receive_n(h, 1, h.long()).await;
        q.change_visibility(&got[0].receipt, Duration::ZERO)
            .await
            .expect("release");
    }
    assert!(receive_n(h, 1, h.long()).await.is_empty());
    assert_eq!(q.redrive().await.expect("redrive"), 1, "redrive moves one");
    let back = receive_n(h, 1, h.long()).await;
    assert_eq!(back.len(), 1, "the redriven message is delivered");
    assert_eq!(back[0].receive_count, 1, "its receive count starts again");
    q.change_visibility(&back[0].receipt, Duration::ZERO)
        .await
        .expect("release");
    for _ in 0..2 {
        let got = receive_n(h, 1, h.long()).await;
        q.change_visibility(&got[0].receipt, Duration::ZERO)
            .await
            .expect("release");
    }
    assert!(receive_n(h, 1, h.long()).await.is_empty());
    assert_eq!(
        q.purge_dead_letters().await.expect("purge"),
        1,
        "purge drops one"
    );
    assert!(q
        .dead_letters(10, None)
        .await
        .expect("dead letters")
        .items
        .is_empty());
    assert_eq!(q.depth().await.expect("depth").dead, 0);
    drain(h).await;
}

async fn sending_an_id_twice_queues_one_message(h: &dyn QueueHarness) {
    let q = h.queue();
    q.send("m-twice", &body(6)).await.expect("send");
    q.send("m-twice", &body(6)).await.expect("send again");
    let got = receive_n(h, 2, h.long()).await;
    assert_eq!(got.len(), 1, "one message for one id");
    q.delete(&got[0].receipt).await.expect("delete");
    drain(h).await;
}

async fn no_message_is_lost_or_delivered_twice_while_invisible(h: &dyn QueueHarness) {
    let q = h.queue();
    let n = 100;
    for i in 0..n {
        q.send(&format!("m-many-{i}"), &body(1000 + i))
            .await
            .expect("send");
    }
    let mut seen = HashSet::new();
    let mut empty = 0;
    while seen.len() < n && empty < 10 {
        let batch = q.receive(10, h.long()).await.expect("receive");
        assert!(
            batch.len() <= 10,
            "a receive returns at most the batch size"
        );
        if batch.is_empty() {
            empty += 1;
            h.wait(Duration::from_millis(200)).await;
        }
        for m in batch {
            assert!(
                seen.insert(m.body.clone()),
                "{} delivered twice while invisible",
                m.body
            );
            q.delete(&m.receipt).await.expect("delete");
        }
    }
    assert_eq!(seen.len(), n, "every message is delivered");
    assert!(
        q.receive(10, h.long()).await.expect("receive").is_empty(),
        "nothing is left"
    );
}

/// A valid order accepted at `at`, numbered `n` (its price and execution
/// ARN differ with `n`), for the suites and the adapters' own tests.
pub fn sample_order(n: u64, at: Timestamp) -> Order {
    let new = NewOrder {
        customer_id: CustomerId::parse("CUST-1001").expect("id"),
        product_id: ProductId::parse("PROD-2001").expect("id"),
        quantity: 2,
        price: Price::from_cents(2999 + n),
        metadata: None,
    };
    Order::new(
        OrderId::generate(),
        new,
        format!("arn:test:execution:{n}"),
        at,
    )
}

fn change(from: &[OrderStatus], to: OrderStatus, at: Timestamp) -> Transition {
    Transition::new(from, to, at)
}

/// Runs every order-store case on an empty store.
pub async fn store_suite(store: &dyn OrderStore) {
    use OrderStatus::*;
    let at = Timestamp(1_795_874_400_000);
    let a = sample_order(1, at);
    assert_eq!(
        store.put_new(&a).await.expect("put"),
        a,
        "put returns the order"
    );
    assert_eq!(
        store.put_new(&a).await.expect("put again"),
        a,
        "putting the same order again is idempotent"
    );
    let mut other = a.clone();
    other.quantity = 3;
    assert_eq!(
        store.put_new(&other).await.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict),
        "the same id with other content is a conflict"
    );
    assert_eq!(store.get(a.id).await.expect("get"), Some(a.clone()));
    assert_eq!(
        store.get(OrderId::generate()).await.expect("get"),
        None,
        "an unknown id is None"
    );

    let wrong = store
        .transition(a.id, &change(&[Processing], Fulfilled, at))
        .await;
    assert_eq!(
        wrong.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict),
        "the from-status must hold"
    );
    let missing = store
        .transition(OrderId::generate(), &change(&[Pending], Processing, at))
        .await;
    assert_eq!(missing.map_err(|e| e.kind).err(), Some(ErrorKind::NotFound));
    let mut to_processing = change(&[Pending], Processing, at.plus_millis(5));
    to_processing.attempts = Some(1);
    let p = store
        .transition(a.id, &to_processing)
        .await
        .expect("to processing");
    assert_eq!(
        (p.status, p.attempts, p.updated_at),
        (Processing, 1, at.plus_millis(5))
    );
    let overtaken = store
        .transition(
            a.id,
            &Transition {
                ends_attempt: Some(2),
                ..change(&[Processing], Pending, at)
            },
        )
        .await;
    assert_eq!(
        overtaken.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict),
        "a change that ends another attempt than the order's latest is a conflict"
    );
    let fulfilled = store
        .transition(
            a.id,
            &Transition {
                reference: Some("shipment-7".into()),
                ends_attempt: Some(1),
                ..change(&[Processing], Fulfilled, at)
            },
        )
        .await
        .expect("to fulfilled");
    assert_eq!(
        fulfilled.fulfillment_reference.as_deref(),
        Some("shipment-7"),
        "FULFILLED records the service's reference"
    );
    assert_eq!(
        store
            .get(a.id)
            .await
            .expect("get")
            .map(|o| o.fulfillment_reference),
        Some(Some("shipment-7".into())),
        "the reference is stored"
    );
    let cancel_fulfilled = store.transition(a.id, &Transition::cancel(None, at)).await;
    assert_eq!(
        cancel_fulfilled.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict),
        "a FULFILLED order cannot be cancelled"
    );
    let again = store
        .transition(a.id, &change(&[Processing, Fulfilled], Fulfilled, at))
        .await;
    assert_eq!(
        again.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict),
        "FULFILLED is final"
    );

    let b = sample_order(2, at.plus_millis(1));
    store.put_new(&b).await.expect("put b");
    let failed = crate::FailedOrder {
        order_id: b.id,
        reason: "dead-lettered".into(),
        attempts: 3,
        failed_at: at.plus_millis(10),
        order: b.submitted_json(),
    };
    assert!(
        store.record_failure(&failed).await.expect("record"),
        "the first record changes the order"
    );
    assert!(
        !store.record_failure(&failed).await.expect("record again"),
        "recording twice changes nothing"
    );
    let fb = store.get(b.id).await.expect("get").expect("b");
    assert_eq!((fb.status, fb.attempts), (Failed, 3));
    assert_eq!(fb.failure_reason.as_deref(), Some("dead-lettered"));
    let fpage = store.list_failed(10, None).await.expect("list failed");
    assert_eq!(fpage.items.len(), 1, "one failed-orders row");
    assert_eq!(fpage.items[0].order_id, b.id);
    let fulfilled_failed = crate::FailedOrder {
        order_id: a.id,
        ..failed.clone()
    };
    assert!(
        !store
            .record_failure(&fulfilled_failed)
            .await
            .expect("record"),
        "a FULFILLED order is never failed"
    );

    let c = sample_order(8, at.plus_millis(2));
    store.put_new(&c).await.expect("put c");
    let cancelled = store
        .transition(
            c.id,
            &Transition::cancel(Some("customer withdrew".into()), at.plus_millis(9)),
        )
        .await
        .expect("cancel");
    assert_eq!(
        (cancelled.status, cancelled.cancel_reason.as_deref()),
        (Cancelled, Some("customer withdrew"))
    );
    assert_eq!(
        store
            .get(c.id)
            .await
            .expect("get")
            .map(|o| (o.status, o.cancel_reason)),
        Some((Cancelled, Some("customer withdrew".into()))),
        "the cancel and its reason are stored"
    );
    let start = store
        .transition(c.id, &change(&[Pending, Processing], Processing, at))
        .await;
    assert_eq!(
        start.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict),
        "no attempt starts at a CANCELLED order"
    );
    let mut dead_c = failed.clone();
    dead_c.order_id = c.id;
    assert!(
        !store.record_failure(&dead_c).await.expect("record"),
        "a CANCELLED order is never failed"
    );

    let mut ids = vec![a.id, b.id, c.id];
    for n in 3..8 {
        let o = sample_order(n, at.plus_millis(n as i64));
        store.put_new(&o).await.expect("put");
        ids.push(o.id);
    }
    ids.reverse();
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(None, 3, cursor.as_deref()).await.expect("list");
        assert!(page.items.len() <= 3);
        listed.extend(page.items.iter().map(|o| o.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(listed, ids, "pages list every order once, newest first");
    let pending = store
        .list(Some(Pending), 50, None)
        .await
        .expect("list pending");
    assert_eq!(
        pending.items.len(),
        5,
        "the status filter keeps only PENDING orders"
    );
    let counts = store.count_by_status().await.expect("counts");
    let count = |s| {
        counts
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(
        (
            count(Pending),
            count(Processing),
            count(Fulfilled),
            count(Failed),
            count(Cancelled)
        ),
        (5, 0, 1, 1, 1)
    );
    counts::counts_equal_a_full_listing_after_many_changes(store).await;
    paging::pages_hold_every_order_once_newest_first(store).await;
}
