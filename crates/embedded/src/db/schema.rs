//! The file's schema: the tables this build writes, and how a file written
//! by an earlier release is brought to them at start, in one transaction.

use super::db_path;
use crate::preflight::StartupRefused;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// The schema version this build writes (`PRAGMA user_version`). Version 1
/// is the first release's file, which carried no version. Version 5 changed
/// no table: `orders.execution_arn` may hold only the state machine's name
/// (the ARN is made again when read, see `store::row::arn_to_store`), which a
/// build of version 4 would show as the ARN, so such a build must refuse the
/// file; rows written before keep their whole ARN and read as they are.
/// Version 6 keeps the order id in the five tables that name an order
/// (`orders.id`, and `order_id` in `fulfillments`, `events`, `failed_orders`
/// and `idempotency_keys`; see [`ORDER_KEYED`]) as its 16 bytes rather than
/// its 36 characters: smaller keys in the b-trees every order writes. A
/// `CHECK` on each refuses any other form, so text bound by mistake fails
/// loudly instead of matching nothing. The queue's message ids and the
/// executions' ids stay text. Version 7 lists an order's events in its own
/// row (`orders.event_seqs`, their `events.seq` numbers) in place of the
/// index on `events.order_id`, which every event wrote (three per order):
/// the row is written with each change anyway.
pub const SCHEMA_VERSION: i64 = 7;

/// The tables. No code deletes a row of `orders`: an order id is never
/// used twice, which `queue::send_new_in` relies on (a new order's message
/// cannot have been dead-lettered).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS orders (
    id BLOB PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
    customer_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    price_cents INTEGER NOT NULL,
    metadata TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    execution_arn TEXT NOT NULL,
    failure_reason TEXT,
    workflow INTEGER,
    fulfillment_reference TEXT,
    cancel_reason TEXT,
    request_id TEXT,
    -- The order's events, as their numbers (events.seq), oldest first,
    -- separated by commas: how its events are found.
    event_seqs TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, id);
CREATE TABLE IF NOT EXISTS order_counts (
    status TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fulfillments (
    order_id BLOB PRIMARY KEY CHECK (typeof(order_id) = 'blob' AND length(order_id) = 16),
    fulfilled_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failed_orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id BLOB NOT NULL CHECK (typeof(order_id) = 'blob' AND length(order_id) = 16),
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at INTEGER NOT NULL,
    order_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failed_orders_by_order ON failed_orders (order_id);
CREATE TABLE IF NOT EXISTS workflows (
    id INTEGER PRIMARY KEY,
    definition TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    arn TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    started_at INTEGER NOT NULL,
    stopped_at INTEGER,
    events TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_running ON executions (status) WHERE status = 'RUNNING';
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    order_id BLOB NOT NULL CHECK (typeof(order_id) = 'blob' AND length(order_id) = 16),
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency_keys (created_at);
CREATE TABLE IF NOT EXISTS queue (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue (visible_at) WHERE visible_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    order_id BLOB NOT NULL CHECK (typeof(order_id) = 'blob' AND length(order_id) = 16),
    type INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    failure_reason TEXT
);
CREATE TABLE IF NOT EXISTS event_deliveries (
    url TEXT PRIMARY KEY,
    after_seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dlq (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    first_received_at INTEGER,
    dead_at INTEGER NOT NULL
);
"#;

/// From version 1 (the first release) to 2, before [`SCHEMA`] runs: orders
/// name the workflow definition that accepted them (whose run is then not
/// stored but made again when read, see [`crate::engine`]), and the tables
/// every order writes keep their rows in their primary key's b-tree
/// (`WITHOUT ROWID`): one b-tree fewer to search and rewrite per change.
/// The old tables step aside (with their indexes, whose names [`SCHEMA`]
/// takes again), [`SCHEMA`] creates the new ones, and
/// [`MIGRATE_1_TO_2_COPY`] moves the rows over.
const MIGRATE_1_TO_2: &str = r#"
DROP INDEX orders_by_status;
DROP INDEX queue_by_visibility;
ALTER TABLE orders RENAME TO orders_v1;
ALTER TABLE fulfillments RENAME TO fulfillments_v1;
ALTER TABLE queue RENAME TO queue_v1;
"#;

/// From version 1 to 2, after [`SCHEMA`] ran: the rows of the old tables,
/// their order ids as version 6 keeps them (see [`ORDER_KEYED`]).
const MIGRATE_1_TO_2_COPY: &str = r#"
INSERT INTO orders (id, customer_id, product_id, quantity, price_cents, metadata, status, attempts,
    created_at, updated_at, execution_arn, failure_reason)
  SELECT unhex(id, '-'), customer_id, product_id, quantity, price_cents, metadata, status, attempts,
    created_at, updated_at, execution_arn, failure_reason FROM orders_v1;
DROP TABLE orders_v1;
INSERT INTO fulfillments (order_id, fulfilled_at) SELECT unhex(order_id, '-'), fulfilled_at FROM fulfillments_v1;
DROP TABLE fulfillments_v1;
INSERT INTO queue (id, body, sent_at, visible_at, receive_count, first_received_at)
  SELECT id, body, sent_at, visible_at, receive_count, first_received_at FROM queue_v1;
DROP TABLE queue_v1;
"#;

/// From version 2 to 3, before [`SCHEMA`] runs: orders keep the fulfillment
/// service's reference and the cancel's reason; [`SCHEMA`] then adds the
/// order events (the outbox) and the webhooks' delivery progress.
const MIGRATE_2_TO_3: &str = r#"
ALTER TABLE orders ADD COLUMN fulfillment_reference TEXT;
ALTER TABLE orders ADD COLUMN cancel_reason TEXT;
"#;

/// From version 3 (or 2, after [`MIGRATE_2_TO_3`]) to 4: orders keep the id
/// of the request that accepted them, for the logs of their attempts. Older
/// orders have none.
const MIGRATE_3_TO_4: &str = r#"
ALTER TABLE orders ADD COLUMN request_id TEXT;
"#;

/// From version 6 to 7, before [`SCHEMA`] runs: orders list their events.
/// (From an older version, [`SCHEMA`] makes `orders` again with the column.)
const MIGRATE_6_TO_7: &str = r#"
ALTER TABLE orders ADD COLUMN event_seqs TEXT;
"#;

/// To version 7, after every row is in its table: each order's list of its
/// events (from the index on `events.order_id` while a version 6 file still
/// has it), and that index dropped.
const MIGRATE_TO_7_LIST_EVENTS: &str = r#"
UPDATE orders SET event_seqs = e.seqs
  FROM (SELECT order_id, group_concat(seq, ',' ORDER BY seq) AS seqs FROM events GROUP BY order_id) AS e
  WHERE orders.id = e.order_id;
DROP INDEX IF EXISTS events_by_order;
"#;

/// The tables with a column that names an order, each with that column and
/// the copy of its rows into the table of version 6. The copy reads the
/// table as an older version kept it, set aside as `{table}_old` by
/// [`set_aside_for_6`], and writes each order id as its 16 bytes: the text
/// without its hyphens, as hex digits (`unhex`).
const ORDER_KEYED: [(&str, &str, &str); 5] = [
    (
        "orders",
        "id",
        "INSERT INTO orders (id, customer_id, product_id, quantity, price_cents, metadata, status, attempts, \
           created_at, updated_at, execution_arn, failure_reason, workflow, fulfillment_reference, \
           cancel_reason, request_id) \
         SELECT unhex(id, '-'), customer_id, product_id, quantity, price_cents, metadata, status, attempts, \
           created_at, updated_at, execution_arn, failure_reason, workflow, fulfillment_reference, \
           cancel_reason, request_id FROM orders_old",
    ),
    (
        "fulfillments",
        "order_id",
        "INSERT INTO fulfillments (order_id, fulfilled_at) \
         SELECT unhex(order_id, '-'), fulfilled_at FROM fulfillments_old",
    ),
    (
        "failed_orders",
        "order_id",
        "INSERT INTO failed_orders (seq, order_id, reason, attempts, failed_at, order_json) \
         SELECT seq, unhex(order_id, '-'), reason, attempts, failed_at, order_json FROM failed_orders_old",
    ),
    (
        "idempotency_keys",
        "order_id",
        "INSERT INTO idempotency_keys (key, fingerprint, order_id, created_at) \
         SELECT key, fingerprint, unhex(order_id, '-'), created_at FROM idempotency_keys_old",
    ),
    (
        "events",
        "order_id",
        "INSERT INTO events (seq, order_id, type, attempts, occurred_at, failure_reason) \
         SELECT seq, unhex(order_id, '-'), type, attempts, occurred_at, failure_reason FROM events_old",
    ),
];

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// To version 6, before [`SCHEMA`] runs: each table of [`ORDER_KEYED`] the
/// file has steps aside as `{table}_old`; the tables set aside. Their
/// indexes are dropped, since an index keeps its name through the rename and
/// SCHEMA's `CREATE INDEX IF NOT EXISTS` would then make none for the new
/// table; SCHEMA makes DOFS's own again (an index someone added by hand is
/// not). A version 1 file's `orders` and `fulfillments` were set aside
/// already, as `{table}_v1`, by [`MIGRATE_1_TO_2`].
fn set_aside_for_6(conn: &Connection) -> rusqlite::Result<Vec<&'static str>> {
    let mut aside = Vec::new();
    for (table, _, _) in ORDER_KEYED {
        if !table_exists(conn, table)? {
            continue;
        }
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
            )?
            .query_map([table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for index in indexes {
            conn.execute_batch(&format!("DROP INDEX \"{index}\""))?;
        }
        conn.execute_batch(&format!("ALTER TABLE {table} RENAME TO {table}_old"))?;
        aside.push(table);
    }
    Ok(aside)
}

/// To version 6, before any row is copied: every order id set aside (as
/// `{table}_old`, or `{table}_v1` from version 1) must become 16 bytes.
/// Text that is not a UUID's (none that DOFS wrote) stops the migration,
/// which then changes nothing, with the first such value named.
fn check_ids_for_6(conn: &Connection) -> anyhow::Result<()> {
    for (table, column, _) in ORDER_KEYED {
        for source in [format!("{table}_old"), format!("{table}_v1")] {
            if !table_exists(conn, &source)? {
                continue;
            }
            let (bad, first): (i64, Option<String>) = conn.query_row(
                &format!(
                    "SELECT count(*), min({column}) FROM {source} \
                     WHERE length(unhex({column}, '-')) IS NOT 16"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if bad > 0 {
                anyhow::bail!(
                    "{table}.{column} holds {bad} order id(s) that are not a UUID (the first: {:?}); \
                     the file was left as it was",
                    first.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// To version 6, after [`SCHEMA`] ran (and, from version 1,
/// [`MIGRATE_1_TO_2_COPY`]): the rows of the tables set aside, which are
/// then dropped.
fn copy_for_6(conn: &Connection, aside: &[&str]) -> rusqlite::Result<()> {
    for (table, _, copy) in ORDER_KEYED {
        if aside.contains(&table) {
            conn.execute_batch(copy)?;
            conn.execute_batch(&format!("DROP TABLE {table}_old"))?;
        }
    }
    Ok(())
}

/// The free disk that migrating a file needs, and what its disk has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// Bytes the migration needs free: up to version 6 the order tables (or,
    /// from version 6, every order's row) are written again, into the WAL
    /// first, so about the file's size (a file of 1,000,000 orders, 765 MB,
    /// took a WAL of 545 MB and grew by 24 MB); none from version 7 on.
    pub needed: u64,
    /// Bytes free for this user on the file's disk, where they can be read.
    pub free: Option<u64>,
}

impl Room {
    /// The room migrating the file at `path` from version `from` needs.
    fn to_migrate(from: i64, path: &Path) -> anyhow::Result<Room> {
        let needed = if from >= 7 {
            0
        } else {
            std::fs::metadata(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
                .len()
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Room {
            needed,
            free: crate::preflight::free_bytes(dir),
        })
    }

    /// Whether the disk has the room (or its free space cannot be read).
    fn is_enough(&self) -> bool {
        self.free.is_none_or(|free| free >= self.needed)
    }

    /// Refused as [`StartupRefused`], changing nothing,
    /// when the disk of `path` has less than a migration from `from` needs.
    pub fn check(from: i64, path: &Path) -> anyhow::Result<Room> {
        let room = Room::to_migrate(from, path)?;
        if room.is_enough() {
            return Ok(room);
        }
        Err(StartupRefused(format!(
            "{}: migrating schema version {from} to {SCHEMA_VERSION} {} and {room}. Free space \
             on that disk (or move the data directory) and start again; nothing was changed",
            path.display(),
            Room::writes(from)
        ))
        .into())
    }

    /// What migrating from version `from` writes again, for messages. The
    /// room asked for is the whole file's size either way: an upper bound
    /// (from version 6, only the orders' rows are written again).
    pub fn writes(from: i64) -> &'static str {
        if from >= 6 {
            "writes every order's row again"
        } else {
            "writes the order tables again"
        }
    }
}

impl std::fmt::Display for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "needs about {} free on its disk", megabytes(self.needed))?;
        match self.free {
            Some(free) => write!(f, "; {} are free", megabytes(free)),
            None => f.write_str(" (its free space could not be read)"),
        }
    }
}

/// `n` bytes in megabytes of 10^6, for messages.
fn megabytes(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

/// What opening a file would do to its schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaPlan {
    /// A new file: the schema is created at the current version.
    Create,
    /// Already at the current version.
    Current,
    /// An older file, migrated forward in one transaction.
    Migrate { from: i64 },
}

impl std::fmt::Display for SchemaPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaPlan::Create => write!(f, "create schema version {SCHEMA_VERSION}"),
            SchemaPlan::Current => write!(
                f,
                "schema version {SCHEMA_VERSION} is current; nothing to do"
            ),
            SchemaPlan::Migrate { from } => {
                write!(
                    f,
                    "migrate schema version {from} to {SCHEMA_VERSION} in one transaction"
                )
            }
        }
    }
}

/// Reads the file's schema version and says what opening it would do; an
/// error when a newer release wrote it.
pub fn schema_plan(conn: &Connection) -> anyhow::Result<SchemaPlan> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let has_orders = table_exists(conn, "orders")?;
    match (version, has_orders) {
        (0, false) => Ok(SchemaPlan::Create),
        (0, true) => Ok(SchemaPlan::Migrate { from: 1 }),
        (v, _) if v == SCHEMA_VERSION => Ok(SchemaPlan::Current),
        (v, _) if v > SCHEMA_VERSION => anyhow::bail!(
            "the database has schema version {v}, written by a newer DOFS; this build knows \
             versions up to {SCHEMA_VERSION}. Run the release that wrote it, or restore a backup made \
             for this one"
        ),
        (v, _) => Ok(SchemaPlan::Migrate { from: v }),
    }
}

/// What opening the database in `data_dir` would do to its schema, read
/// without changing anything; `None` when there is no database yet.
pub fn inspect(data_dir: &Path) -> anyhow::Result<Option<SchemaPlan>> {
    let path = db_path(data_dir);
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    schema_plan(&conn)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
}

/// Brings the file to [`SCHEMA_VERSION`] in one transaction.
fn migrate(conn: &Connection) -> anyhow::Result<SchemaPlan> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = schema_plan(conn).and_then(|plan| {
        let from = match plan {
            SchemaPlan::Migrate { from } => from,
            SchemaPlan::Create | SchemaPlan::Current => SCHEMA_VERSION,
        };
        // Version 1's tables are made again by SCHEMA; versions 2, 3 and 6
        // gain columns; up to version 5, the tables that name orders are
        // made again with their ids as bytes; up to version 6, orders list
        // their events.
        let from_1 = from < 2;
        if from_1 {
            conn.execute_batch(MIGRATE_1_TO_2)?;
        }
        if from == 2 {
            conn.execute_batch(MIGRATE_2_TO_3)?;
        }
        if (2..=3).contains(&from) {
            conn.execute_batch(MIGRATE_3_TO_4)?;
        }
        if from == 6 {
            conn.execute_batch(MIGRATE_6_TO_7)?;
        }
        let to_6 = from < 6;
        let aside = if to_6 {
            let aside = set_aside_for_6(conn)?;
            check_ids_for_6(conn)?;
            aside
        } else {
            Vec::new()
        };
        conn.execute_batch(SCHEMA)?;
        if from_1 {
            conn.execute_batch(MIGRATE_1_TO_2_COPY)?;
        }
        if to_6 {
            copy_for_6(conn, &aside)?;
        }
        if from < 7 {
            conn.execute_batch(MIGRATE_TO_7_LIST_EVENTS)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(plan)
    });
    match done {
        Ok(plan) => {
            conn.execute_batch("COMMIT")?;
            Ok(plan)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The free disk that bringing the file at `path` to [`SCHEMA_VERSION`]
/// needs (none unless it is migrated), refused when its disk has less. It is
/// read before the write connection opens: opening in WAL mode on a full
/// disk already fails, with an error that does not say why.
pub(super) fn room_to_open(data_dir: &Path, path: &Path) -> anyhow::Result<u64> {
    match inspect(data_dir)? {
        Some(SchemaPlan::Migrate { from }) => Ok(Room::check(from, path)?.needed),
        _ => Ok(0),
    }
}

/// Creates or migrates the file on `conn` (the write connection) to
/// [`SCHEMA_VERSION`]; `room` is what [`room_to_open`] found the migration
/// needs, named when the disk fills during it anyway.
pub(super) fn bring_to_current(conn: &Connection, path: &Path, room: u64) -> anyhow::Result<()> {
    let plan = migrate(conn).map_err(|e| {
        let full = e
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(|c| {
                matches!(
                    c,
                    rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
                )
            });
        let hint = if full && room > 0 {
            format!(
                "; nothing was changed. The migration needs about {} free on the disk \
                 holding the file, which may be full",
                megabytes(room)
            )
        } else {
            String::new()
        };
        anyhow::anyhow!("{}: {e:#}{hint}", path.display())
    })?;
    if let SchemaPlan::Migrate { from } = plan {
        tracing::info!(from, to = SCHEMA_VERSION, "migrated the database schema");
        // A migration that made tables again wrote them whole into the
        // WAL; the file takes them now and the WAL is truncated, rather
        // than staying at that size on the disk. The migration is
        // committed either way, so a checkpoint that cannot finish is
        // only worth a warning (SQLite's own checkpoints follow).
        let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        match checkpoint {
            Ok(0) => {}
            Ok(_) => {
                tracing::warn!("the WAL was not truncated after the migration: a reader held it")
            }
            Err(e) => {
                tracing::warn!(error = %e, "the WAL was not truncated after the migration")
            }
        }
    }
    Ok(())
}
