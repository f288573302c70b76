//! The port conformance suites from `dofs-core`, run on the SQLite adapters.

use async_trait::async_trait;
use dofs_core::conformance::{queue_suite, store_suite, QueueHarness};
use dofs_core::ports::{ManualClock, Queue};
use dofs_core::Timestamp;
use dofs_embedded::{Db, SqliteOrderStore, SqliteQueue};
use std::sync::Arc;
use std::time::Duration;

struct Harness {
    queue: SqliteQueue,
    clock: Arc<ManualClock>,
}

#[async_trait]
impl QueueHarness for Harness {
    fn queue(&self) -> &dyn Queue {
        &self.queue
    }
    async fn wait(&self, d: Duration) {
        self.clock.advance(d);
    }
}

#[tokio::test]
async fn the_sqlite_queue_passes_the_queue_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_874_400_000)));
    let harness = Harness {
        queue: SqliteQueue::new(db, clock.clone(), 3),
        clock,
    };
    queue_suite(&harness).await;
}

#[tokio::test]
async fn the_sqlite_order_store_passes_the_store_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    store_suite(&SqliteOrderStore::new(db)).await;
}

#[tokio::test]
async fn the_queue_survives_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_874_400_000)));
    {
        let q = SqliteQueue::new(Db::open(dir.path()).expect("open"), clock.clone(), 3);
        q.send("kept", r#"{"orderId":"x"}"#).await.expect("send");
        let got = q
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1);
    }
    let q = SqliteQueue::new(Db::open(dir.path()).expect("reopen"), clock.clone(), 3);
    assert!(
        q.receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty(),
        "still invisible after reopening"
    );
    clock.advance(Duration::from_secs(31));
    let back = q
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(
        back.len(),
        1,
        "an in-flight message returns after its timeout, across a restart"
    );
    assert_eq!(back[0].receive_count, 2);
}

#[tokio::test]
async fn depth_tells_waiting_from_in_flight_and_in_flight_ends_with_the_lease() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_874_400_000)));
    let q = SqliteQueue::new(Db::open(dir.path()).expect("open"), clock.clone(), 3);
    for id in ["a", "b", "c"] {
        q.send(id, &format!(r#"{{"orderId":"{id}"}}"#))
            .await
            .expect("send");
    }
    clock.advance(Duration::from_secs(2));
    let got = q
        .receive(2, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 2);
    let d = q.depth().await.expect("depth");
    assert_eq!((d.waiting, d.in_flight, d.dead), (1, 2, 0));
    assert_eq!(d.oldest_age_ms, Some(2_000));
    clock.advance(Duration::from_secs(31));
    let d = q.depth().await.expect("depth");
    assert_eq!(
        (d.waiting, d.in_flight),
        (3, 0),
        "a message whose lease ran out waits again"
    );
}
