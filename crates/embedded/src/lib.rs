//! The embedded shape of DOFS: the whole pipeline in one process on one
//! SQLite file.
//!
//! - [`backup`]: `dofs backup` and `dofs restore`.
//! - [`db`]: the file, its schema, the single group-committing writer, readers.
//! - [`store`]: `SqliteOrderStore` (orders, counts, fulfillments, failed orders).
//! - [`queue`]: `SqliteQueue`, the orders queue and its DLQ with SQS semantics.
//! - [`engine`]: runs the ASL workflow with in-process tasks, for the submit
//!   transaction, and again to show a history that was not stored.
//! - [`submit`]: the submit transaction (order + queue message, with the
//!   workflow's run), the execution log and the operator actions.
//! - [`workers`]: fulfillment workers and the dead-letter recorder.
//! - [`events`]: the order events (outbox) and their feed.
//! - [`webhooks`]: delivers the events to `events.webhook_urls`.
//! - [`preflight`]: start-up checks of the data directory and the file.
//! - [`failpoint`]: named crash points (only with the `fail-points` feature).
//!
//! [`Embedded::start`] wires them and returns the [`Backend`] the HTTP API uses.

pub mod backup;
pub mod db;
pub mod engine;
pub mod events;
pub mod failpoint;
pub mod preflight;
pub mod queue;
pub mod store;
pub mod submit;
pub mod webhooks;
pub mod workers;

use dofs_core::fulfillment::Simulated;
use dofs_core::ports::{Backend, Clock, SystemClock};
use dofs_core::service::{Backoff, Fulfiller};
use dofs_core::validation::Limits;
use dofs_core::{Fulfillment, FulfillmentPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use db::Db;
pub use events::SqliteEventLog;
pub use queue::SqliteQueue;
pub use store::SqliteOrderStore;
pub use submit::{SqliteExecutionLog, SqliteOperations, SqliteWorkflowStarter};

/// Everything the embedded system needs to start.
#[derive(Clone)]
pub struct EmbeddedConfig {
    /// Holds `dofs.db` (and its WAL).
    pub data_dir: PathBuf,
    /// Names the state machine in execution ARNs (`dofs-<environment>-order-processing`).
    pub environment: String,
    /// The simulated backend's success rate and seed.
    pub policy: FulfillmentPolicy,
    /// What an attempt does; the simulated backend with `policy` when `None`.
    pub backend: Option<Arc<dyn Fulfillment>>,
    /// How long order events are kept (and retried for webhooks).
    pub events_max_age: Duration,
    /// Where order events are delivered; none when `None`.
    pub webhooks: Option<webhooks::WebhookConfig>,
    /// Simulated work per attempt.
    pub delay: Duration,
    pub workers: usize,
    pub max_receive_count: u32,
    pub visibility_timeout: Duration,
    pub backoff: Backoff,
    pub limits: Limits,
    /// The ASL definition; the built-in workflow when `None`.
    pub workflow: Option<String>,
}

impl EmbeddedConfig {
    /// The contract's defaults, on `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            data_dir: data_dir.into(),
            environment: "dev".into(),
            policy: FulfillmentPolicy::default(),
            backend: None,
            events_max_age: Duration::from_secs(86_400),
            webhooks: None,
            delay: Duration::ZERO,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_receive_count: 3,
            visibility_timeout: Duration::from_secs(30),
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            limits: Limits::default(),
            workflow: None,
        }
    }
}

/// The running embedded system.
pub struct Embedded {
    backend: Backend,
    db: Db,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Embedded {
    /// Opens the data directory (migrating an older schema), finishes the
    /// executions an earlier release left `RUNNING`, and starts the workers
    /// and the dead-letter recorder.
    pub async fn start(config: EmbeddedConfig) -> anyhow::Result<Embedded> {
        Embedded::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Embedded::start`], with an injected clock.
    pub async fn start_with_clock(
        config: EmbeddedConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Embedded> {
        let db = Db::open(&config.data_dir)?;
        let workflow = Arc::new(
            engine::Workflow::load(
                &db,
                config.workflow.as_deref().unwrap_or(engine::ORDER_WORKFLOW),
                config.limits,
            )
            .await?,
        );
        let finished = engine::finish_running(&db, &workflow, clock.now()).await?;
        if finished > 0 {
            tracing::info!(
                finished,
                "finished the executions an earlier release left running"
            );
        }
        let store = Arc::new(SqliteOrderStore::new(db.clone()));
        let queue = SqliteQueue::new(db.clone(), clock.clone(), config.max_receive_count);
        let state_machine = format!("dofs-{}-order-processing", config.environment);
        let backend = Backend {
            orders: store.clone(),
            queue: Arc::new(queue.clone()),
            workflow: Arc::new(SqliteWorkflowStarter::new(
                db.clone(),
                clock.clone(),
                state_machine,
                workflow,
                queue.clone(),
            )),
            executions: Arc::new(SqliteExecutionLog::new(db.clone())),
            operations: Arc::new(SqliteOperations::new(
                db.clone(),
                clock.clone(),
                queue.clone(),
            )),
            events: Arc::new(SqliteEventLog::new(db.clone())),
            clock: clock.clone(),
        };
        let (stop, stopped) = watch::channel(false);

        let fulfillment = config.backend.clone().unwrap_or_else(|| {
            let salt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            Arc::new(Simulated::new(config.policy, salt))
        });
        let count = config.workers.max(1);
        // Each worker runs the attempts of its batch at once: together they
        // keep at most the backend's concurrency in flight.
        let batch = (fulfillment.concurrency() / count).clamp(1, workers::BATCH);
        let fulfiller = Fulfiller {
            store: store.clone(),
            queue: Arc::new(queue.clone()),
            clock: clock.clone(),
            backend: fulfillment,
            max_receive_count: config.max_receive_count,
            backoff: config.backoff,
        };
        let mut workers = Vec::new();
        for _ in 0..count {
            workers.push(tokio::spawn(workers::run_worker(
                fulfiller.clone(),
                db.clone(),
                queue.clone(),
                config.visibility_timeout,
                config.delay,
                batch,
                stopped.clone(),
            )));
        }
        let urls = config
            .webhooks
            .as_ref()
            .map(|h| h.urls.clone())
            .unwrap_or_default();
        let forgotten = webhooks::forget_other_urls(&db, &urls).await?;
        if forgotten > 0 {
            tracing::info!(
                forgotten,
                "forgot the delivery progress of webhook URLs no longer configured"
            );
        }
        if let Some(hooks) = config.webhooks.clone() {
            workers.extend(webhooks::spawn(
                db.clone(),
                hooks,
                clock.clone(),
                stopped.clone(),
            ));
        }
        workers.push(tokio::spawn(workers::run_dead_letter_recorder(
            db.clone(),
            queue,
            clock,
            config.events_max_age,
            stopped,
        )));
        Ok(Embedded {
            backend,
            db,
            stop,
            workers,
        })
    }

    /// The ports the HTTP API uses.
    pub fn backend(&self) -> Backend {
        self.backend.clone()
    }

    /// The database (for tests and tools).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stops the workers after their current batch and waits for them.
    /// Messages in flight return after their timeout.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for w in self.workers {
            let _ = w.await;
        }
    }
}
