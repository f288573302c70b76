//! Cancel on the emulator: its answers, the fate of the order's message, and
//! its race with an attempt, decided by the conditional writes alone.

use super::{emulator, fresh, sample, stack, Stack};
use async_trait::async_trait;
use dofs_core::ports::{ErrorKind, Operations, OrderStore, Queue};
use dofs_core::service::{Backoff, Fulfiller, Handled, OrderMessage};
use dofs_core::{FailedOrder, Fulfillment, Order, OrderId, OrderStatus, Outcome};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A backend that records when each attempt started and always succeeds.
#[derive(Default)]
struct Recording {
    starts: Mutex<Vec<(OrderId, Instant)>>,
}

#[async_trait]
impl Fulfillment for Recording {
    async fn attempt(&self, order: &Order, _attempt: u32) -> Outcome {
        self.starts
            .lock()
            .expect("lock")
            .push((order.id, Instant::now()));
        Outcome::Fulfilled {
            reference: Some(format!("ref-{}", order.id)),
        }
    }
    fn concurrency(&self) -> usize {
        usize::MAX
    }
}

/// A cancel's deadline: time enough.
fn later() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

async fn pending_order(s: &Stack) -> Order {
    let order = Order::new(OrderId::generate(), sample(), "arn:x".into(), s.clock.now());
    s.store.put_new(&order).await.expect("put");
    order
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn cancel_answers_by_status_and_takes_a_failed_orders_dead_letter_out_of_the_dlq() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "cancel").await;
    let s = stack(&config, &created);

    let unknown = s.ops.cancel(OrderId::generate(), None, later()).await;
    assert_eq!(unknown.map_err(|e| e.kind).err(), Some(ErrorKind::NotFound));

    let pending = pending_order(&s).await;
    let once = s
        .ops
        .cancel(pending.id, Some("customer withdrew".into()), later())
        .await
        .expect("cancel");
    assert_eq!(
        (once.status, once.cancel_reason.as_deref()),
        (OrderStatus::Cancelled, Some("customer withdrew"))
    );
    let twice = s
        .ops
        .cancel(pending.id, None, later())
        .await
        .expect("again");
    assert_eq!(twice, once, "a second cancel answers the order unchanged");

    // A FAILED order whose message waits in the DLQ.
    let failed = pending_order(&s).await;
    s.queue
        .send(
            &failed.id.to_string(),
            &OrderMessage {
                order_id: failed.id,
            }
            .to_body(),
        )
        .await
        .expect("send");
    let got = s
        .queue
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    s.queue
        .dead_letter(&got[0].receipt)
        .await
        .expect("dead letter");
    let recorded = s
        .store
        .record_failure(&FailedOrder {
            order_id: failed.id,
            reason: "rejected".into(),
            attempts: 1,
            failed_at: s.clock.now(),
            order: failed.submitted_json(),
        })
        .await
        .expect("record");
    assert!(recorded);
    assert_eq!(s.queue.depth().await.expect("depth").dead, 1);
    let cancelled = s
        .ops
        .cancel(failed.id, None, later())
        .await
        .expect("cancel failed");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        s.queue.depth().await.expect("depth").dead,
        0,
        "its dead letter left the DLQ"
    );

    // PROCESSING and FULFILLED cannot be cancelled.
    let busy = pending_order(&s).await;
    let start = dofs_core::ports::Transition {
        attempts: Some(1),
        ..dofs_core::ports::Transition::new(
            &[OrderStatus::Pending],
            OrderStatus::Processing,
            s.clock.now(),
        )
    };
    s.store.transition(busy.id, &start).await.expect("start");
    let refused = s.ops.cancel(busy.id, None, later()).await;
    assert_eq!(refused.map_err(|e| e.kind).err(), Some(ErrorKind::Conflict));
    assert_eq!(
        s.store.get(busy.id).await.expect("get").map(|o| o.status),
        Some(OrderStatus::Processing),
        "nothing changed"
    );
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn a_cancel_racing_an_attempt_either_wins_before_it_starts_or_is_refused() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "race").await;
    let s = stack(&config, &created);
    let recording = Arc::new(Recording::default());
    let fulfiller = Fulfiller {
        store: Arc::new(s.store.clone()),
        queue: Arc::new(s.queue.clone()),
        clock: s.clock.clone(),
        backend: recording.clone(),
        max_receive_count: 3,
        backoff: Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
    };
    const ORDERS: usize = 50;
    let mut orders = Vec::new();
    for _ in 0..ORDERS {
        let o = pending_order(&s).await;
        let body = OrderMessage { order_id: o.id }.to_body();
        s.queue.send(&o.id.to_string(), &body).await.expect("send");
        orders.push(o.id);
    }
    // Every message in hand first, so that each attempt races its cancel.
    let mut received = Vec::new();
    for _ in 0..50 {
        if received.len() >= ORDERS {
            break;
        }
        received.extend(
            s.queue
                .receive(10, Duration::from_secs(120))
                .await
                .expect("receive"),
        );
    }
    assert_eq!(received.len(), ORDERS, "every message received");

    // The attempt starts 0 to 60 ms after its cancel, so that both win some races.
    let mut races = tokio::task::JoinSet::new();
    for (i, msg) in received.into_iter().enumerate() {
        let head_start = Duration::from_millis((i % 6) as u64 * 12);
        let Some(OrderMessage { order_id }) = OrderMessage::parse(&msg.body) else {
            panic!("an order message");
        };
        let ops = s.ops.clone();
        let f = fulfiller.clone();
        races.spawn(async move {
            let (cancel, attempt) = tokio::join!(
                async {
                    let r = ops.cancel(order_id, Some("race".into()), later()).await;
                    (r, Instant::now())
                },
                async {
                    tokio::time::sleep(head_start).await;
                    f.handle(&msg).await
                }
            );
            (order_id, cancel, attempt)
        });
    }
    let (mut won, mut refused) = (0, 0);
    while let Some(done) = races.join_next().await {
        let (id, (cancel, returned_at), attempt) = done.expect("no panic");
        let attempt = attempt.expect("the attempt ends without a port error");
        let order = s.store.get(id).await.expect("get").expect("order");
        let started: Vec<Instant> = recording
            .starts
            .lock()
            .expect("lock")
            .iter()
            .filter(|(o, _)| *o == id)
            .map(|(_, at)| *at)
            .collect();
        match cancel {
            Ok(c) => {
                won += 1;
                assert_eq!(c.status, OrderStatus::Cancelled);
                assert_eq!(order.status, OrderStatus::Cancelled, "{id}");
                assert_eq!(order.fulfillment_reference, None, "{id} never fulfilled");
                assert!(
                    started.iter().all(|at| *at < returned_at),
                    "{id}: no attempt starts after the cancel returned"
                );
                assert!(started.is_empty(), "{id}: the attempt never began");
                assert_eq!(attempt, Handled::AlreadyTerminal(id));
            }
            Err(e) => {
                refused += 1;
                assert_eq!(e.kind, ErrorKind::Conflict, "{id}: {e}");
                assert_eq!(order.status, OrderStatus::Fulfilled, "{id}");
                assert_eq!(order.cancel_reason, None, "{id} never cancelled");
                assert_eq!(started.len(), 1, "{id}: one attempt");
            }
        }
    }
    assert_eq!(won + refused, ORDERS);
    eprintln!("cancels won {won}, refused {refused}");
    assert_eq!(
        s.queue.depth().await.expect("depth").in_flight,
        0,
        "every message was settled"
    );
}
