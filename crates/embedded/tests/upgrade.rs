//! Opening databases written by earlier releases, each made with
//! `scripts/make-db-fixture.sh` at the last commit of its schema version:
//! `fixtures/schema-1.db` by the first release (commit fad55af), and
//! `fixtures/schema-2.db` by schema version 2 (commit 48f56cd), and
//! `fixtures/schema-3.db` by schema version 3 (commit a60f64b), and
//! `fixtures/schema-4.db` by schema version 4 (commit 5038c2b), and
//! `fixtures/schema-5.db` by schema version 5 (commit 05582b2), and
//! `fixtures/schema-6.db` by schema version 6 (made again at 3914fb8, with
//! version 6's final tables), and `fixtures/schema-7.db` by schema
//! version 7, the current one (made at its first commit: to be made again at
//! its last if the schema changes before the next version). Each holds 40
//! orders (FULFILLED, and FAILED ones with their dead letters and
//! failed-orders rows) and three idempotency records; the first also their
//! executions, the third and later ones their order events.
//! The current version always has its fixture (a test checks it), so the
//! release that next changes the schema meets a file this one wrote.

use dofs_core::ports::{Clock, IdempotencyClaim, SystemClock};
use dofs_core::validation::{decode_order, Limits};
use dofs_core::{FulfillmentPolicy, OrderId, OrderStatus};
use dofs_embedded::db::{db_path, schema_plan, SchemaPlan, SCHEMA_VERSION};
use dofs_embedded::{Embedded, EmbeddedConfig};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    Path::new(&dir).join("tests/fixtures").join(name)
}

/// A data directory holding a copy of the fixture.
fn data_dir_with(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture(name), db_path(dir.path())).expect("copy the fixture");
    dir
}

/// The configuration of these tests, on `dir`: every attempt succeeds.
fn config_in(dir: &Path) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir);
    config.policy = FulfillmentPolicy {
        success_rate: 1.0,
        seed: Some(3),
    };
    config
}

/// The one number that `sql` (a `count(*)`) reads from `conn`.
fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Idempotency keys live for a day; a fixture's were written when it was
/// made, so they are moved to now to stay within their window.
fn renew_idempotency_keys(conn: &Connection) {
    let now = SystemClock.now().millis();
    conn.execute("UPDATE idempotency_keys SET created_at = ?1", [now])
        .expect("renew the fixture's idempotency keys");
}

/// Starts on a copy of `fixtures/schema-{from}.db`, which start-up must
/// migrate from that version; every attempt succeeds.
async fn start_migrated(from: i64) -> (tempfile::TempDir, Embedded) {
    let dir = data_dir_with(&format!("schema-{from}.db"));
    {
        let conn = Connection::open(db_path(dir.path())).expect("open");
        assert_eq!(
            schema_plan(&conn).expect("plan"),
            SchemaPlan::Migrate { from }
        );
        renew_idempotency_keys(&conn);
    }
    let embedded = Embedded::start(config_in(dir.path()))
        .await
        .expect("start on the old file");
    (dir, embedded)
}

/// Sends again the order the fixture sent with the idempotency key
/// `fixture-1`, with that key: what the submit answers.
async fn send_again_with_the_fixture_key(embedded: &Embedded) -> dofs_core::ports::Submitted {
    let body = br#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":19.99,"metadata":{"n":1,"note":"fixture"}}"#;
    let fingerprint: String = embedded
        .db()
        .read(|c| {
            c.query_row(
                "SELECT fingerprint FROM idempotency_keys WHERE key = 'fixture-1'",
                [],
                |r| r.get(0),
            )
            .map_err(dofs_embedded::db::sql_err)
        })
        .await
        .expect("the fixture's key");
    embedded
        .backend()
        .workflow
        .start(
            OrderId::generate(),
            decode_order(body, &Limits::default()).expect("order"),
            Some(IdempotencyClaim {
                key: "fixture-1".into(),
                fingerprint,
            }),
            None,
        )
        .await
        .expect("send again")
}

/// The old file runs on: one of its `FAILED` orders is retried and a new
/// order (sent by `request`) fulfilled; after a stop the file holds 41
/// orders and is intact.
async fn runs_on(embedded: Embedded, dir: &Path, old: &[dofs_core::Order], request: &str) {
    retry_a_failed_order(&embedded, old).await;
    fulfill_new_order(&embedded, Some(request)).await;
    embedded.shutdown().await;
    let conn = Connection::open(db_path(dir)).expect("open");
    let orders = count(&conn, "SELECT count(*) FROM orders");
    assert_eq!(orders, 41);
    assert_intact(&conn);
}

/// `PRAGMA integrity_check` finds nothing wrong, and every column that
/// names an order holds the id's 16 bytes (schema version 6).
fn assert_intact(conn: &Connection) {
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    for (table, column) in [
        ("orders", "id"),
        ("fulfillments", "order_id"),
        ("events", "order_id"),
        ("failed_orders", "order_id"),
        ("idempotency_keys", "order_id"),
    ] {
        let other = count(
            conn,
            &format!(
                "SELECT count(*) FROM {table} WHERE typeof({column}) != 'blob' OR length({column}) != 16"
            ),
        );
        assert_eq!(other, 0, "{table}.{column} holds ids of another form");
    }
}

/// Submits a new order (sent by `request`) and waits for it to be fulfilled.
async fn fulfill_new_order(embedded: &Embedded, request: Option<&str>) -> OrderId {
    let order = decode_order(
        br#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":1,"price":5}"#,
        &Limits::default(),
    )
    .expect("order");
    let id = OrderId::generate();
    embedded
        .backend()
        .workflow
        .start(id, order, None, request.map(str::to_owned))
        .await
        .expect("submit");
    assert_eq!(wait_terminal(embedded, id).await, OrderStatus::Fulfilled);
    id
}

/// The fixture's orders, read through the store: all 40 of them.
async fn fixture_orders(embedded: &Embedded) -> Vec<dofs_core::Order> {
    let old = embedded
        .backend()
        .orders
        .list(None, 500, None)
        .await
        .expect("list")
        .items;
    assert_eq!(old.len(), 40);
    old
}

/// Retries one of the fixture's `FAILED` orders and waits for it to be
/// fulfilled (every attempt succeeds in these tests).
async fn retry_a_failed_order(embedded: &Embedded, old: &[dofs_core::Order]) {
    let failed = old
        .iter()
        .find(|o| o.status == OrderStatus::Failed)
        .expect("the fixture has a FAILED order");
    embedded
        .backend()
        .operations
        .retry(failed.id, Instant::now() + Duration::from_secs(10))
        .await
        .expect("retry");
    assert_eq!(
        wait_terminal(embedded, failed.id).await,
        OrderStatus::Fulfilled
    );
}

async fn wait_terminal(embedded: &Embedded, id: OrderId) -> OrderStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let order = embedded
            .backend()
            .orders
            .get(id)
            .await
            .expect("get")
            .expect("the order exists");
        if order.status.is_terminal() {
            return order.status;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} is still {}",
            order.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_release_database_is_migrated_and_runs_on() {
    let dir = data_dir_with("schema-1.db");
    {
        let conn = Connection::open(db_path(dir.path())).expect("open");
        assert_eq!(
            schema_plan(&conn).expect("plan"),
            SchemaPlan::Migrate { from: 1 }
        );
        // An order the first release had accepted but not yet run: its
        // execution RUNNING and its message held, as a stop could leave them.
        conn.execute_batch(
            "INSERT INTO orders (id, customer_id, product_id, quantity, price_cents, metadata, status, attempts, \
               created_at, updated_at, execution_arn, failure_reason) \
             VALUES ('01900000-0000-7000-8000-000000000001', 'CUST-1001', 'PROD-2001', 1, 500, NULL, 'PENDING', 0, \
               1750000000000, 1750000000000, 'arn:aws:states:local:000000000000:execution:dofs-dev-order-processing:01900000-0000-7000-8000-000000000001', NULL); \
             UPDATE order_counts SET n = n + 1 WHERE status = 'PENDING'; \
             INSERT OR IGNORE INTO order_counts (status, n) VALUES ('PENDING', 1); \
             INSERT INTO executions (id, arn, status, input, started_at, events) \
             VALUES ('01900000-0000-7000-8000-000000000001', 'arn:aws:states:local:000000000000:execution:dofs-dev-order-processing:01900000-0000-7000-8000-000000000001', \
               'RUNNING', '{}', 1750000000000, '[]'); \
             INSERT INTO queue (id, body, sent_at, visible_at) \
             VALUES ('01900000-0000-7000-8000-000000000001', '{\"orderId\":\"01900000-0000-7000-8000-000000000001\"}', 1750000000000, NULL);",
        )
        .expect("add a running execution");
        renew_idempotency_keys(&conn);
    }
    let mut config = config_in(dir.path());
    config.backoff.base = Duration::from_millis(10);
    let embedded = Embedded::start(config)
        .await
        .expect("start on the old file");
    let backend = embedded.backend();

    let version: i64 = embedded
        .db()
        .read(|c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(dofs_embedded::db::sql_err)
        })
        .await
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);

    // What the first release stored is all there.
    let counts = backend.orders.count_by_status().await.expect("counts");
    let count = |s: OrderStatus| counts.iter().find(|(x, _)| *x == s).map_or(0, |(_, n)| *n);
    assert!(count(OrderStatus::Fulfilled) >= 39, "{counts:?}");
    let failed = backend.orders.list_failed(10, None).await.expect("failed");
    assert_eq!(failed.items.len(), 1);
    let dead = backend.queue.dead_letters(10, None).await.expect("dlq");
    assert_eq!(dead.items.len(), 1);
    let first = backend
        .orders
        .list(Some(OrderStatus::Fulfilled), 1, None)
        .await
        .expect("list")
        .items
        .remove(0);
    let execution = backend
        .executions
        .get(&first.execution_arn)
        .await
        .expect("read")
        .expect("the stored execution");
    assert_eq!(execution.status, "SUCCEEDED");
    assert!(execution.events.len() > 5, "{execution:?}");

    // The execution left running was finished and its order fulfilled.
    let resumed = OrderId::parse("01900000-0000-7000-8000-000000000001").expect("id");
    assert_eq!(
        wait_terminal(&embedded, resumed).await,
        OrderStatus::Fulfilled
    );
    let execution = backend
        .executions
        .get(&resumed.to_string())
        .await
        .expect("read")
        .expect("execution");
    assert_eq!(execution.status, "SUCCEEDED");

    // An idempotency key of the old file still replays its order.
    let replay = send_again_with_the_fixture_key(&embedded).await;
    assert!(
        matches!(replay, dofs_core::ports::Submitted::Replayed { .. }),
        "{replay:?}"
    );

    // And new orders go through, their history shown from the definition.
    let order = decode_order(
        br#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":19.99}"#,
        &Limits::default(),
    )
    .expect("order");
    let id = OrderId::generate();
    backend
        .workflow
        .start(id, order, None, None)
        .await
        .expect("submit");
    assert_eq!(wait_terminal(&embedded, id).await, OrderStatus::Fulfilled);
    let execution = backend
        .executions
        .get(&id.to_string())
        .await
        .expect("read")
        .expect("execution");
    assert_eq!(execution.status, "SUCCEEDED");
    let states: Vec<&str> = execution
        .events
        .iter()
        .filter(|e| e.kind == dofs_core::history::EventKind::StateEntered)
        .filter_map(|e| e.state.as_deref())
        .collect();
    assert_eq!(
        states,
        [
            "Validate Order",
            "Store Order",
            "Queue For Fulfillment",
            "Order Queued"
        ]
    );
    embedded.shutdown().await;

    let conn = Connection::open(db_path(dir.path())).expect("open");
    assert_intact(&conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_2_database_is_migrated_and_its_orders_can_be_cancelled_and_have_events() {
    let (dir, embedded) = start_migrated(2).await;
    let backend = embedded.backend();
    let counts = backend.orders.count_by_status().await.expect("counts");
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 40, "{counts:?}");
    let old = fixture_orders(&embedded).await;
    assert!(old
        .iter()
        .all(|o| o.fulfillment_reference.is_none() && o.cancel_reason.is_none()));

    // A FAILED order of the old file can be cancelled: its dead letter goes.
    let failed = old
        .iter()
        .find(|o| o.status == OrderStatus::Failed)
        .expect("the fixture has a FAILED order");
    let dead_before = backend
        .queue
        .dead_letters(100, None)
        .await
        .expect("dlq")
        .items
        .len();
    let cancelled = backend
        .operations
        .cancel(
            failed.id,
            Some("migrated".into()),
            std::time::Instant::now() + std::time::Duration::from_secs(10),
        )
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let dead_after = backend
        .queue
        .dead_letters(100, None)
        .await
        .expect("dlq")
        .items
        .len();
    assert_eq!(dead_after + 1, dead_before, "its dead letter left the DLQ");

    // Old orders have no events before the upgrade; changes from now on do.
    let events = backend.events.of_order(failed.id).await.expect("events");
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["order.cancelled"]
    );
    fulfill_new_order(&embedded, None).await;
    let feed = backend.events.after(None, 100).await.expect("feed");
    let kinds: Vec<&str> = feed.items.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "order.cancelled",
            "order.accepted",
            "order.processing",
            "order.fulfilled"
        ]
    );
    embedded.shutdown().await;
    let conn = Connection::open(db_path(dir.path())).expect("open");
    assert_intact(&conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_3_database_is_migrated_and_new_orders_keep_their_request_id() {
    let (dir, embedded) = start_migrated(3).await;
    let backend = embedded.backend();
    let old = fixture_orders(&embedded).await;
    let events_before = backend.events.after(None, 500).await.expect("feed").items;
    assert!(
        events_before.len() >= 120,
        "the old file's events are kept: {}",
        events_before.len()
    );

    // An old order, accepted with no request id kept, runs again on retry.
    retry_a_failed_order(&embedded, &old).await;

    // A new order keeps the request that sent it.
    let id = fulfill_new_order(&embedded, Some("upgrade-req-1")).await;
    embedded.shutdown().await;

    let conn = Connection::open(db_path(dir.path())).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    let kept: Option<String> = conn
        .query_row(
            "SELECT request_id FROM orders WHERE id = ?1",
            [id.as_bytes()],
            |r| r.get(0),
        )
        .expect("the new order");
    assert_eq!(kept.as_deref(), Some("upgrade-req-1"));
    let without = count(
        &conn,
        "SELECT count(*) FROM orders WHERE request_id IS NULL",
    );
    assert_eq!(without, 40, "the old orders have none");
    assert_intact(&conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_4_database_is_migrated_and_every_order_keeps_its_execution_arn() {
    let (dir, embedded) = start_migrated(4).await;
    let old = fixture_orders(&embedded).await;
    let arn_of = |id: OrderId| {
        format!("arn:aws:states:local:000000000000:execution:dofs-dev-order-processing:{id}")
    };
    for order in &old {
        assert_eq!(order.execution_arn, arn_of(order.id));
    }
    retry_a_failed_order(&embedded, &old).await;
    let id = fulfill_new_order(&embedded, None).await;
    let new = embedded
        .backend()
        .orders
        .get(id)
        .await
        .expect("read")
        .expect("the new order");
    assert_eq!(new.execution_arn, arn_of(id));
    embedded.shutdown().await;

    // The old rows keep the whole ARN; the new one stores only the name.
    let conn = Connection::open(db_path(dir.path())).expect("open");
    let stored = |id: OrderId| -> String {
        conn.query_row(
            "SELECT execution_arn FROM orders WHERE id = ?1",
            [id.as_bytes()],
            |r| r.get(0),
        )
        .expect("the order's row")
    };
    assert_eq!(stored(old[0].id), arn_of(old[0].id));
    assert_eq!(stored(id), "dofs-dev-order-processing");
    assert_intact(&conn);
}

/// Version 5 kept order ids as text; each of its orders, events, failed
/// orders and idempotency records is found by its id after the migration,
/// and the orders list in the same order, page by page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_5_database_is_migrated_and_everything_is_found_by_its_order_id() {
    let (dir, embedded) = start_migrated(5).await;
    let backend = embedded.backend();
    let old = fixture_orders(&embedded).await;
    let mut newest_first: Vec<OrderId> = old.iter().map(|o| o.id).collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        old.iter().map(|o| o.id).collect::<Vec<_>>(),
        newest_first,
        "listed newest first, as the ids sort"
    );
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = backend
            .orders
            .list(None, 7, cursor.as_deref())
            .await
            .expect("page");
        paged.extend(page.items.iter().map(|o| o.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, newest_first, "the cursor walks the same order");
    let mut events = 0;
    for order in &old {
        let again = backend
            .orders
            .get(order.id)
            .await
            .expect("get")
            .expect("found by its id");
        assert_eq!(&again, order);
        let of_order = backend.events.of_order(order.id).await.expect("events");
        assert!(of_order.len() >= 3, "{}: {of_order:?}", order.id);
        assert!(of_order.iter().all(|e| e.order_id() == order.id));
        events += of_order.len();
    }
    let stored_events: i64 = embedded
        .db()
        .read(|c| {
            c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                .map_err(dofs_embedded::db::sql_err)
        })
        .await
        .expect("count");
    assert_eq!(
        stored_events as usize, events,
        "every event belongs to its order"
    );
    let failed = backend.orders.list_failed(100, None).await.expect("failed");
    assert!(!failed.items.is_empty());
    for f in &failed.items {
        let order = old.iter().find(|o| o.id == f.order_id).expect("its order");
        assert_eq!(order.status, OrderStatus::Failed);
    }

    // An idempotency key of the old file replays its own order (the
    // fixture's record names it).
    match send_again_with_the_fixture_key(&embedded).await {
        dofs_core::ports::Submitted::Replayed { order } => {
            assert_eq!(order.id.to_string(), "01a2474b-38f9-7020-822c-1c4b7428a3de");
        }
        other => panic!("not replayed: {other:?}"),
    }
    runs_on(embedded, dir.path(), &old, "upgrade-req-5").await;
}

/// An order id that is not a UUID's text cannot become 16 bytes: the
/// migration stops with a message that names the column and the value, and
/// the file stays as it was. Both kinds: hex digits of another length, and
/// text that is not hex at all.
#[tokio::test]
async fn a_schema_5_database_with_an_id_that_is_not_a_uuid_is_refused_as_it_is() {
    for (table, bad) in [("fulfillments", "abcd"), ("idempotency_keys", "not-a-uuid")] {
        let dir = data_dir_with("schema-5.db");
        {
            let conn = Connection::open(db_path(dir.path())).expect("open");
            let changed = conn
                .execute(
                    &format!(
                        "UPDATE {table} SET order_id = ?1 \
                         WHERE order_id = (SELECT min(order_id) FROM {table})"
                    ),
                    [bad],
                )
                .expect("change an id");
            assert_eq!(changed, 1);
        }
        let e = match Embedded::start(EmbeddedConfig::new(dir.path())).await {
            Ok(_) => panic!("an id that is not a UUID must stop the migration"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains(&format!("{table}.order_id")), "{e}");
        assert!(e.contains("not a UUID"), "{e}");
        assert!(e.contains(bad), "{e}");
        let conn = Connection::open(db_path(dir.path())).expect("open");
        assert_eq!(
            schema_plan(&conn).expect("plan"),
            SchemaPlan::Migrate { from: 5 },
            "the file is left as it was"
        );
        let kept: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE order_id = ?1"),
                [bad],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(kept, 1);
    }
}

/// The seqs of `id`'s events as the file keeps them, oldest first (read by
/// scanning `events`, not through the order's list).
fn event_seqs_in_file(conn: &Connection, id: OrderId) -> Vec<i64> {
    let mut st = conn
        .prepare("SELECT seq FROM events WHERE order_id = ?1 ORDER BY seq")
        .expect("prepare");
    st.query_map([id.as_bytes()], |r| r.get(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
        .expect("seqs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_6_database_is_migrated_and_each_order_finds_its_events_by_its_row() {
    let (dir, embedded) = start_migrated(6).await;
    let backend = embedded.backend();
    let old = fixture_orders(&embedded).await;
    let conn = Connection::open(db_path(dir.path())).expect("open");
    let index = count(
        &conn,
        "SELECT count(*) FROM sqlite_master WHERE name = 'events_by_order'",
    );
    assert_eq!(index, 0, "the index on events.order_id is dropped");
    let mut listed = 0;
    for order in &old {
        let in_file = event_seqs_in_file(&conn, order.id);
        assert!(in_file.len() >= 3, "{}: {in_file:?}", order.id);
        let of_order = backend.events.of_order(order.id).await.expect("events");
        let seqs: Vec<i64> = of_order
            .iter()
            .map(|e| e.id.parse().expect("a seq"))
            .collect();
        assert_eq!(seqs, in_file, "{}: every event, oldest first", order.id);
        assert!(of_order.iter().all(|e| e.order_id() == order.id));
        listed += seqs.len();
    }
    let stored = count(&conn, "SELECT count(*) FROM events");
    assert_eq!(stored as usize, listed, "every event is its order's");
    let mislisted =
        dofs_embedded::events::orders_listing_other_events(&conn).expect("check the lists");
    assert_eq!(mislisted, 0, "each row lists exactly its events");

    // A migrated order's next changes join its list.
    let failed = old
        .iter()
        .find(|o| o.status == OrderStatus::Failed)
        .expect("the fixture has a FAILED order");
    let before = backend.events.of_order(failed.id).await.expect("events");
    retry_a_failed_order(&embedded, &old).await;
    let after = backend.events.of_order(failed.id).await.expect("events");
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(
        after[before.len()..]
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["order.retried", "order.processing", "order.fulfilled"]
    );
    assert_eq!(
        after
            .iter()
            .map(|e| e.id.parse::<i64>().expect("a seq"))
            .collect::<Vec<_>>(),
        event_seqs_in_file(&conn, failed.id)
    );
    drop(conn);
    fulfill_new_order(&embedded, None).await;
    embedded.shutdown().await;
    let conn = Connection::open(db_path(dir.path())).expect("open");
    assert_intact(&conn);
}

/// A file this release wrote opens as it is and runs on. Its fixture is the
/// one the next schema change must migrate, so it has to exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_this_release_opens_as_it_is_and_runs_on() {
    let name = format!("schema-{SCHEMA_VERSION}.db");
    assert!(
        fixture(&name).is_file(),
        "tests/fixtures/{name} is missing: write it with scripts/make-db-fixture.sh"
    );
    let dir = data_dir_with(&name);
    {
        let conn = Connection::open(db_path(dir.path())).expect("open");
        assert_eq!(schema_plan(&conn).expect("plan"), SchemaPlan::Current);
    }
    let embedded = Embedded::start(config_in(dir.path()))
        .await
        .expect("start on the file");
    let old = fixture_orders(&embedded).await;
    runs_on(embedded, dir.path(), &old, "current-req-1").await;
}

#[tokio::test]
async fn a_database_from_a_newer_release_is_refused_with_a_clear_message() {
    let dir = data_dir_with("schema-1.db");
    {
        let conn = Connection::open(db_path(dir.path())).expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set the version");
    }
    let e = match Embedded::start(EmbeddedConfig::new(dir.path())).await {
        Ok(_) => panic!("a newer schema must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("written by a newer DOFS"), "{e}");
    assert!(
        e.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
        "{e}"
    );
    let conn = Connection::open(db_path(dir.path())).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION + 1, "the file is left as it was");
}
