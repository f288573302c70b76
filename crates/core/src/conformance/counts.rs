//! The store case about counts: `count_by_status` is exact, whatever way the
//! store keeps it (a `GROUP BY` in SQLite, counters moved in the same
//! transaction as each status change on DynamoDB). After many changes,
//! including cancels, failures recorded twice and conditional writes that
//! fail (a lost race to claim an attempt, a stale attempt's end, a cancel
//! that comes too late), the counts equal a full listing of the orders.

use super::{change, sample_order};
use crate::ports::{OrderStore, Transition};
use crate::{FailedOrder, OrderId, OrderStatus, Timestamp};
use std::future::Future;
use std::task::Poll;

/// Runs two futures at once (a race between two writers of one order).
async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.expect("first done"), rb.expect("second done"))
}

/// The claim of attempt `n` (as the fulfiller makes it).
fn claim(n: u32, at: Timestamp) -> Transition {
    use OrderStatus::*;
    Transition {
        attempts: Some(n),
        ends_attempt: Some(n - 1),
        ..change(&[Pending, Processing], Processing, at)
    }
}

/// The end of attempt `n`, to `to`.
fn end(n: u32, to: OrderStatus, at: Timestamp) -> Transition {
    Transition {
        attempts: Some(n),
        ends_attempt: Some(n),
        ..change(&[OrderStatus::Processing], to, at)
    }
}

async fn apply(store: &dyn OrderStore, id: OrderId, t: &Transition, what: &str) {
    store
        .transition(id, t)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

async fn refused(store: &dyn OrderStore, id: OrderId, t: &Transition, what: &str) {
    assert!(
        store.transition(id, t).await.is_err(),
        "{what} must be refused"
    );
}

pub(super) async fn counts_equal_a_full_listing_after_many_changes(store: &dyn OrderStore) {
    use OrderStatus::*;
    let at = Timestamp(1_795_874_500_000);
    let mut ids = Vec::new();
    for n in 0..24u64 {
        let o = sample_order(100 + n, at.plus_millis(n as i64));
        store.put_new(&o).await.expect("put");
        store
            .put_new(&o)
            .await
            .expect("the same put again changes nothing");
        ids.push(o.id);
    }
    for (i, id) in ids.iter().copied().enumerate() {
        let t = at.plus_millis(100 + i as i64);
        // Two deliveries race to claim attempt 1: one wins, the other's
        // conditional write fails.
        let (x, y) = join2(
            store.transition(id, &claim(1, t)),
            store.transition(id, &claim(1, t)),
        )
        .await;
        assert_eq!(
            usize::from(x.is_ok()) + usize::from(y.is_ok()),
            1,
            "exactly one claim of attempt 1 wins"
        );
        match i % 6 {
            0 => apply(store, id, &end(1, Fulfilled, t), "fulfil").await,
            1 => {
                apply(store, id, &end(1, Pending, t), "attempt 1 fails").await;
                apply(store, id, &Transition::cancel(None, t), "cancel").await;
                refused(
                    store,
                    id,
                    &Transition::cancel(None, t),
                    "a second cancel's change",
                )
                .await;
            }
            2 => {
                let failed = FailedOrder {
                    order_id: id,
                    reason: "dead-lettered".into(),
                    attempts: 1,
                    failed_at: t,
                    order: serde_json::json!({}),
                };
                assert!(store.record_failure(&failed).await.expect("record"));
                assert!(!store.record_failure(&failed).await.expect("record again"));
                apply(store, id, &Transition::cancel(None, t), "cancel FAILED").await;
            }
            3 => {
                apply(store, id, &end(1, Pending, t), "attempt 1 fails").await;
                apply(store, id, &claim(2, t), "claim attempt 2").await;
                refused(store, id, &end(1, Pending, t), "a stale end of attempt 1").await;
                apply(store, id, &end(2, Fulfilled, t), "fulfil at attempt 2").await;
                refused(
                    store,
                    id,
                    &Transition::cancel(None, t),
                    "a cancel of FULFILLED",
                )
                .await;
            }
            4 => {
                refused(
                    store,
                    id,
                    &Transition::cancel(None, t),
                    "a cancel of PROCESSING",
                )
                .await;
                refused(store, id, &claim(1, t), "a second claim of attempt 1").await;
            }
            _ => apply(store, id, &end(1, Pending, t), "attempt 1 fails").await,
        }
    }

    // The scan: every order, by a full listing.
    let mut listed: Vec<(OrderStatus, u64)> = OrderStatus::ALL.iter().map(|s| (*s, 0)).collect();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(None, 7, cursor.as_deref()).await.expect("list");
        for o in &page.items {
            if let Some(slot) = listed.iter_mut().find(|(s, _)| *s == o.status) {
                slot.1 += 1;
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut counts = store.count_by_status().await.expect("counts");
    for status in OrderStatus::ALL {
        if !counts.iter().any(|(s, _)| *s == status) {
            counts.push((status, 0));
        }
    }
    counts.sort_by_key(|(s, _)| s.as_str());
    listed.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(counts, listed, "the counts equal a full listing");
    let total: u64 = listed.iter().map(|(_, n)| n).sum();
    assert!(total >= 24, "every order is listed: {listed:?}");
    for status in [Pending, Processing, Fulfilled, Cancelled] {
        let n = listed
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        assert!(n > 0, "the case leaves some orders {status}: {listed:?}");
    }
}
