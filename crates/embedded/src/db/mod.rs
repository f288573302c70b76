//! The SQLite file: the single writer with group commit, and readers. Its
//! schema and how older files are brought to it are in [`schema`]; the
//! writer's connection as its closures see it ([`Tx`]) is in [`tx`].
//!
//! One thread owns the write connection. Callers hand it closures; it runs as
//! many as are waiting (up to [`MAX_BATCH`]) inside one transaction, commits
//! once, and only then answers every caller (see [`Db::write`] for what a
//! failing closure does). The fulfillment workers' closures
//! ([`Db::write_after`]) waiting at the same time run in a second
//! transaction, after the first has ended and answered its callers.
//! Throughput is set by batches, not by fsyncs. Readers use their own WAL
//! connections.

use dofs_core::ports::{ErrorKind, PortError};
use dofs_core::OrderStatus;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

mod schema;
mod tx;

pub use schema::{inspect, schema_plan, Room, SchemaPlan, SCHEMA_VERSION};
pub use tx::Tx;

/// The most closures committed in one transaction.
pub const MAX_BATCH: usize = 2048;

/// The writer connection's page cache, in KiB: enough for the pages every
/// transaction touches, and no more. SQLite (3.53) rekeys a page to the
/// lock-byte page's number while it balances a b-tree, so at the end of most
/// transactions it scans its whole page cache to drop pages past the end of
/// the file (`pcache1TruncateUnsafe`): 8% of the writer's time with a
/// 32 MiB cache, under 2% with this one (bench/PROFILE.md).
const WRITER_CACHE_KIB: i64 = 4 * 1024;

/// The path of the database inside the data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dofs.db")
}

/// Maps a SQLite error to a port error: busy and locked are transient.
pub fn sql_err(e: rusqlite::Error) -> PortError {
    let kind = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Internal,
    };
    PortError::with_source(kind, "sqlite", e)
}

/// Prepared statements each connection keeps (more than the code has).
const STATEMENT_CACHE: usize = 128;

fn open(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Every statement the code runs stays prepared: rusqlite keeps 16 by
    // default, fewer than the writer's hot path uses, so under load it
    // evicted and prepared statements again on every few jobs.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans that do not depend on the values bound. Without this SQLite
    // marks a statement with `LIMIT ?` to be prepared again whenever its
    // parameters are bound anew, and rusqlite clears them each time it
    // returns a statement to the cache: the workers' receive was parsed
    // and planned again on every batch.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

type Reply = Box<dyn FnOnce(Result<(), PortError>) + Send>;
/// A closure run by the writer: its reply (given the transaction's fate)
/// and whether it failed. Given `None`, it does not run, and its reply
/// answers its caller with the transaction's failure.
type Job = Box<dyn FnOnce(Option<&Tx<'_>>) -> (Reply, bool) + Send>;

/// Which of a round's two transactions a job runs in: `Now` first, `After`
/// once that one has ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    Now,
    After,
}

/// The database: one writer thread and a pool of readers.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<(Job, Lane)>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<PathBuf>,
    stats: Arc<Stats>,
    health: Arc<Health>,
}

/// Whether the file takes writes, as the writer last saw a commit end.
#[derive(Debug, Default)]
struct Health {
    /// Why the last commit could not reach the disk; `None` while commits do.
    unwritable: Mutex<Option<String>>,
    /// A [`Db::probe_write`] ran in the transaction being built.
    probed: AtomicBool,
}

impl Health {
    fn set(&self, now: Option<String>) {
        let mut state = self.unwritable.lock().unwrap_or_else(|e| e.into_inner());
        if *state == now {
            return;
        }
        match &now {
            Some(reason) => tracing::error!(%reason, "the database cannot take writes"),
            None => tracing::info!("the database takes writes again"),
        }
        metrics::gauge!(dofs_core::metric_names::STORAGE_WRITABLE).set(if now.is_some() {
            0.0
        } else {
            1.0
        });
        *state = now;
    }
}

/// Why a failed commit means the file cannot take writes now (rather than
/// one transaction's bad luck), in words for the operator.
fn unwritable_reason(e: &PortError, path: &Path) -> Option<String> {
    let code = e
        .source
        .as_deref()
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .and_then(rusqlite::Error::sqlite_error_code)?;
    let path = path.display();
    match code {
        rusqlite::ErrorCode::DiskFull => Some(format!(
            "the disk holding {path} is full (SQLITE_FULL): free space on it; writes resume by themselves"
        )),
        rusqlite::ErrorCode::ReadOnly => Some(format!(
            "{path} is read-only (SQLITE_READONLY): make it and its directory writable by this user"
        )),
        rusqlite::ErrorCode::SystemIoFailure => Some(format!(
            "writing {path} failed (SQLITE_IOERR): check the disk and the kernel log"
        )),
        _ => None,
    }
}

/// What the writer has done since the database was opened.
#[derive(Debug, Default)]
struct Stats {
    changing_jobs: AtomicU64,
    row_changes: AtomicU64,
    changing_transactions: AtomicU64,
}

/// Counts of the writer's work that changed the file (jobs and
/// transactions that changed no row are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Closures passed to [`Db::write`] or [`Db::write_after`] that changed
    /// at least one row.
    pub changing_jobs: u64,
    /// Rows inserted, updated or deleted.
    pub row_changes: u64,
    /// Committed transactions that changed at least one row.
    pub changing_transactions: u64,
}

impl Db {
    /// Opens (creating if needed) the database in `data_dir` and starts the writer thread.
    /// A data directory that cannot be written, or a file that fails its
    /// check, is a [`crate::preflight::StartupRefused`] that changes nothing.
    pub fn open(data_dir: &Path) -> anyhow::Result<Db> {
        let path = db_path(data_dir);
        crate::preflight::check(data_dir, &path)?;
        let room = schema::room_to_open(data_dir, &path)?;
        let conn = open(&path, OpenFlags::default())
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        schema::bring_to_current(&conn, &path, room)?;
        // Checkpoints stay in the writer, between transactions, every 1000
        // WAL pages (SQLite's default). Measured: a checkpoint thread of its
        // own took them off the commit path but its fsyncs slowed the commits'
        // own (p99 at 5,000 orders/s open loop 40 to 85 ms, against 6 to 7 ms
        // inline; bench/PROFILE.md).
        conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
        // Temporary structures (a statement journal) stay in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // The pages every transaction touches (the tails of the tables and
        // their indexes) stay cached between transactions.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        let (tx, rx) = mpsc::channel::<(Job, Lane)>();
        let stats = Arc::new(Stats::default());
        let counted = stats.clone();
        let health = Arc::new(Health::default());
        metrics::gauge!(dofs_core::metric_names::STORAGE_WRITABLE).set(1.0);
        let watched = health.clone();
        let file = path.clone();
        std::thread::Builder::new()
            .name("dofs-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, &counted, &watched, &file))?;
        Ok(Db {
            jobs: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: Arc::new(path),
            stats,
            health,
        })
    }

    /// What the writer has done so far (for the regression test that keeps
    /// the work per order from growing, and for benchmarks).
    pub fn write_stats(&self) -> WriteStats {
        WriteStats {
            changing_jobs: self.stats.changing_jobs.load(Ordering::Relaxed),
            row_changes: self.stats.row_changes.load(Ordering::Relaxed),
            changing_transactions: self.stats.changing_transactions.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` inside the next group-committed transaction and returns its
    /// result once that transaction is durable.
    ///
    /// `f` should check before it writes: a closure that fails having
    /// changed nothing costs the others nothing, but one that fails after a
    /// change rolls back the whole transaction, and every closure in it is
    /// answered with a transient error (nothing of theirs was written). Only
    /// SQLite's own failures (a full disk, an I/O error) do that here; a
    /// savepoint per closure would cost a copy of every page it touches.
    pub async fn write<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, PortError> + Send + 'static,
    {
        self.write_in(Lane::Now, f).await
    }

    /// [`Db::write`] for work no client request is waiting on (the
    /// fulfillment workers'): when the writer finds both kinds waiting, these
    /// run in a transaction of their own after the others' has ended.
    pub async fn write_after<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, PortError> + Send + 'static,
    {
        self.write_in(Lane::After, f).await
    }

    async fn write_in<T, F>(&self, lane: Lane, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, PortError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, PortError>>();
        let job: Job = Box::new(move |conn: Option<&Tx<'_>>| {
            let Some(conn) = conn else {
                let reply: Reply = Box::new(move |commit: Result<(), PortError>| {
                    let _ = tx.send(Err(commit.err().unwrap_or_else(|| {
                        PortError::new(ErrorKind::Transient, "the write did not run")
                    })));
                });
                return (reply, false);
            };
            let result = f(conn);
            let failed = result.is_err();
            let reply: Reply = Box::new(move |commit: Result<(), PortError>| {
                // A failed closure's own error says more than the rollback.
                let _ = tx.send(result.and_then(|v| commit.map(|()| v)));
            });
            (reply, failed)
        });
        self.jobs
            .send((job, lane))
            .map_err(|_| PortError::new(ErrorKind::Transient, "the database writer has stopped"))?;
        rx.await
            .map_err(|_| PortError::new(ErrorKind::Transient, "the database writer has stopped"))?
    }

    /// Rewrites the file's header page (its schema version, unchanged) in the
    /// next transaction: a write that must reach the disk, as an order's
    /// would. Its success marks the file writable again after a failure.
    pub async fn probe_write(&self) -> Result<(), PortError> {
        let health = self.health.clone();
        self.write(move |conn| {
            health.probed.store(true, Ordering::Relaxed);
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sql_err)
        })
        .await
    }

    /// Why the file cannot take writes, as the last commit showed (a full
    /// disk, a read-only file); `None` while commits succeed.
    pub fn unwritable(&self) -> Option<String> {
        self.health
            .unwritable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` on a read connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, PortError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sql_err)?,
            };
            let r = f(&conn);
            if let Ok(mut pool) = readers.lock() {
                if pool.len() < 16 {
                    pool.push(conn);
                }
            }
            r
        })
        .await
        .map_err(|e| PortError::with_source(ErrorKind::Internal, "reader task failed", e))?
    }
}

/// Runs one statement of transaction control, prepared once per connection.
fn run(conn: &Connection, sql: &str) -> Result<(), PortError> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(|_| ())
        .map_err(sql_err)
}

/// Never inlined: `bench/instructions.sh` tells the writer's thread from the
/// others by this function's name in callgrind's files.
#[inline(never)]
fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<(Job, Lane)>,
    stats: &Stats,
    health: &Health,
    path: &Path,
) {
    let mut now: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut after: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    // Dropped before `conn`, as its statements must be.
    let tx = Tx::new(&conn);
    while let Ok(first) = jobs.recv() {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some((job, lane)) = next.take() {
            match lane {
                Lane::Now => now.push(job),
                Lane::After => after.push(job),
            }
            taken += 1;
            if taken < MAX_BATCH {
                next = jobs.try_recv().ok();
            }
        }
        // Callers waiting on an answer (a submit's 202) commit first; the
        // workers' attempts, which can take a millisecond of the writer's
        // time, commit in a transaction of their own after them.
        if !now.is_empty() {
            transact(&tx, &mut now, &mut replies, stats, health, path);
        }
        if !after.is_empty() {
            transact(&tx, &mut after, &mut replies, stats, health, path);
        }
    }
}

/// Runs `batch` in one transaction, commits, and answers each job.
fn transact(
    conn: &Tx<'_>,
    batch: &mut Vec<Job>,
    replies: &mut Vec<Reply>,
    stats: &Stats,
    health: &Health,
    path: &Path,
) {
    let began = run(conn, "BEGIN IMMEDIATE");
    if let Err(e) = began {
        tracing::error!(error = %e, "could not begin a write transaction");
        for job in batch.drain(..) {
            let (reply, _) = job(None);
            reply(Err(PortError::new(
                ErrorKind::Transient,
                format!("could not begin a write transaction: {e}"),
            )));
        }
        return;
    }
    // What an earlier transaction kept in memory is not this one's.
    conn.next_seq.set(None);
    conn.counts.set([0; OrderStatus::ALL.len()]);
    let at_begin = conn.total_changes();
    let mut undone = false;
    let mut jobs = batch.drain(..);
    for job in jobs.by_ref() {
        let before = conn.total_changes();
        let (reply, failed) = job(Some(conn));
        replies.push(reply);
        let changed = conn.total_changes() > before;
        undone |= failed && changed;
        if changed {
            stats.changing_jobs.fetch_add(1, Ordering::Relaxed);
        }
        if conn.is_autocommit() {
            // SQLite ended the transaction itself (a full disk, an I/O
            // error): each statement of a job run now would commit on its own.
            undone = true;
            break;
        }
    }
    for job in jobs {
        let (reply, _) = job(None);
        replies.push(reply);
    }
    let counted = if undone {
        Ok(())
    } else {
        crate::store::flush_counts(conn)
    };
    let changed = conn.total_changes() - at_begin;
    let committed = if undone || counted.is_err() || conn.is_autocommit() {
        // A closure failed midway (or SQLite ended the transaction).
        let _ = conn.execute_batch("ROLLBACK");
        Err(PortError::new(
            ErrorKind::Transient,
            "a write failed midway; its whole transaction was rolled back",
        ))
    } else {
        run(conn, "COMMIT").inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })
    };
    if committed.is_ok() && changed > 0 {
        stats.row_changes.fetch_add(changed, Ordering::Relaxed);
        stats.changing_transactions.fetch_add(1, Ordering::Relaxed);
    }
    // A commit that wrote nothing says nothing about the disk.
    let probed = health.probed.swap(false, Ordering::Relaxed);
    match &committed {
        Ok(()) if changed > 0 || probed => health.set(None),
        Ok(()) => {}
        Err(e) => {
            if let Some(reason) = unwritable_reason(e, path) {
                health.set(Some(reason));
            }
        }
    }
    for reply in replies.drain(..) {
        reply(match &committed {
            Ok(()) => Ok(()),
            Err(e) => Err(PortError::new(
                ErrorKind::Transient,
                format!("commit failed: {e}"),
            )),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    use std::time::Duration;

    /// Polls `write` once: that hands its job to the writer.
    async fn queue<F: Future + ?Sized>(write: Pin<&mut F>) {
        let mut write = Some(write);
        std::future::poll_fn(|cx| {
            if let Some(w) = write.take() {
                assert!(w.poll(cx).is_pending(), "answered before the writer ran");
            }
            Poll::Ready(())
        })
        .await;
    }

    /// A database with the table `ran`, which [`insert`] writes to.
    async fn with_ran_table(dir: &Path) -> Db {
        let db = Db::open(dir).expect("open");
        db.write(|conn| {
            conn.execute_batch("CREATE TABLE ran (seq INTEGER PRIMARY KEY, name TEXT NOT NULL)")
                .map_err(sql_err)
        })
        .await
        .expect("table");
        db
    }

    /// The names in `ran`, oldest first.
    async fn names_in_ran(db: &Db) -> Vec<String> {
        db.read(|conn| {
            conn.prepare("SELECT name FROM ran ORDER BY seq")
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                .map_err(sql_err)
        })
        .await
        .expect("read")
    }

    type Holder<'a> = Pin<Box<dyn Future<Output = Result<(), PortError>> + Send + 'a>>;

    /// A job that holds the writer until the returned sender is dropped, so
    /// that the jobs queued meanwhile are drained in one round; returned
    /// once the writer runs it.
    async fn hold_writer(db: &Db) -> (mpsc::Sender<()>, Holder<'_>) {
        let (release, held) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let mut holder: Holder<'_> = Box::pin(db.write(move |_| {
            let _ = started.send(());
            let _ = held.recv();
            Ok(())
        }));
        queue(holder.as_mut()).await;
        running
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer runs the holding job");
        (release, holder)
    }

    fn insert(conn: &Connection, name: &str) -> Result<(), PortError> {
        conn.execute("INSERT INTO ran (name) VALUES (?1)", [name])
            .map(|_| ())
            .map_err(sql_err)
    }

    /// Runs `sql` (two parameters, a time and a limit) with five bindings
    /// and returns how often SQLite prepared it again.
    fn reprepares(conn: &Connection, sql: &str) -> Result<i32, PortError> {
        for limit in 1..=5_i64 {
            conn.prepare_cached(sql)
                .and_then(|mut st| {
                    st.query_map(rusqlite::params![limit * 1000, limit], |r| {
                        r.get::<_, String>(0)
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(sql_err)?;
        }
        conn.prepare_cached(sql)
            .map(|st| st.get_status(rusqlite::StatementStatus::RePrepare))
            .map_err(sql_err)
    }

    #[tokio::test]
    async fn a_statement_with_a_bound_limit_is_prepared_once() {
        const SQL: &str =
            "SELECT id FROM queue WHERE visible_at <= ?1 ORDER BY visible_at LIMIT ?2";
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let by_writer = db.write(|conn| reprepares(conn, SQL)).await;
        let by_reader = db.read(|conn| reprepares(conn, SQL)).await;
        assert_eq!(
            (by_writer.expect("writer"), by_reader.expect("reader")),
            (0, 0),
            "the statement was prepared again when its parameters were bound anew"
        );
    }

    #[tokio::test]
    async fn no_job_runs_after_sqlite_ended_the_transaction_and_none_of_it_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = with_ran_table(dir.path()).await;

        let (release, holder) = hold_writer(&db).await;

        // One round: a write, then a job after which the connection is out
        // of its transaction (as when SQLite rolls back on a full disk),
        // then a write that would commit on its own if it ran.
        let first = db.write(|conn| insert(conn, "first"));
        tokio::pin!(first);
        queue(first.as_mut()).await;
        let ending = db.write(|conn| conn.execute_batch("ROLLBACK").map_err(sql_err));
        tokio::pin!(ending);
        queue(ending.as_mut()).await;
        let last = db.write(|conn| insert(conn, "last"));
        tokio::pin!(last);
        queue(last.as_mut()).await;
        drop(release);
        holder.await.expect("the holding job");

        for (job, answer) in [
            ("first", first.await),
            ("ending", ending.await),
            ("last", last.await),
        ] {
            let e = answer.expect_err(job);
            assert_eq!(e.kind, ErrorKind::Transient, "{job}: {e:?}");
        }
        let names = names_in_ran(&db).await;
        assert!(names.is_empty(), "kept: {names:?}");
    }

    #[tokio::test]
    async fn the_workers_jobs_commit_after_the_others_of_their_round_and_apart_from_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = with_ran_table(dir.path()).await;
        let before = db.write_stats();

        let (release, holder) = hold_writer(&db).await;

        // Queued in this order: a worker's job, then a request's job that
        // writes and then fails.
        let ran = Arc::new(Mutex::new(Vec::new()));
        let seen = ran.clone();
        let worker = db.write_after(move |conn| {
            seen.lock().expect("ran").push("worker");
            insert(conn, "worker")
        });
        tokio::pin!(worker);
        queue(worker.as_mut()).await;
        let seen = ran.clone();
        let failing = db.write(move |conn| {
            seen.lock().expect("ran").push("request");
            insert(conn, "request")?;
            Err::<(), _>(PortError::new(ErrorKind::Conflict, "fails after a write"))
        });
        tokio::pin!(failing);
        queue(failing.as_mut()).await;
        drop(release);
        holder.await.expect("the holding job");

        let failed = failing.await.expect_err("the failing job");
        assert_eq!(failed.kind, ErrorKind::Conflict, "{failed:?}");
        worker
            .await
            .expect("the worker's job commits although the request's rolled back");
        assert_eq!(
            *ran.lock().expect("ran"),
            ["request", "worker"],
            "the request's job ran first although queued second"
        );
        let names = names_in_ran(&db).await;
        assert_eq!(names, ["worker"]);
        let after = db.write_stats();
        assert_eq!(
            after.changing_transactions - before.changing_transactions,
            1,
            "only the worker's transaction committed a change"
        );
    }
}
