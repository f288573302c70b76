//! `dofs-bench`: the ceilings that `bench/run.sh` shows beside each DOFS
//! figure, measured on the same machine in the same run.
//!
//! - `http`: an axum server whose `POST /order` decodes and validates the
//!   order as `dofs serve` does and answers 202, storing nothing: what the
//!   HTTP layer and the load generator can do together.
//! - `sqlite`: rows like an order's inserted in batches, one transaction per
//!   batch, WAL and `synchronous=FULL` as `dofs serve` runs them: what the
//!   disk and SQLite can commit.
//! - `workflow`: the embedded engine running the order workflow for one
//!   order, as every submit does, many times over: its CPU cost per order
//!   (run it under `valgrind --tool=callgrind` for a count of instructions
//!   that does not depend on what else the machine is doing).

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use clap::{Parser, Subcommand};
use dofs_core::validation::{decode_order, Limits};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "dofs-bench", about = "Ceilings for bench/run.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve POST /order with validation and no storage; prints `listening on URL`.
    Http {
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
    },
    /// Insert order-like rows in batches and print the rate.
    Sqlite {
        /// Rows to insert.
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
        /// Rows per transaction.
        #[arg(long, default_value_t = 64)]
        batch: u64,
    },
    /// Run the order workflow (no history, as a submit does) and print the time per run.
    Workflow {
        /// Runs.
        #[arg(long, default_value_t = 100_000)]
        runs: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Http { bind } => http(&bind),
        Command::Sqlite { rows, batch } => sqlite(rows, batch.max(1)),
        Command::Workflow { runs } => workflow(runs.max(1)),
    }
}

async fn submit(body: Bytes) -> impl IntoResponse {
    match decode_order(&body, &Limits::default()) {
        Ok(_) => (
            StatusCode::ACCEPTED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ACCEPTED","message":"Order received and processing started"}"#,
        ),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"ValidationError"}"#,
        ),
    }
}

fn http(bind: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let app = axum::Router::new().route("/order", post(submit));
        axum::serve(listener, app).await?;
        Ok(())
    })
}

fn sqlite(rows: u64, batch: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("ceiling.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE orders (id BLOB PRIMARY KEY, customer_id TEXT NOT NULL, product_id TEXT NOT NULL, \
         quantity INTEGER NOT NULL, price_cents INTEGER NOT NULL, metadata TEXT, status TEXT NOT NULL, \
         created_at INTEGER NOT NULL)",
    )?;
    let started = Instant::now();
    let mut n = 0u64;
    while n < rows {
        let tx = conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO orders VALUES (?1, 'CUST-1001', 'PROD-2001', 2, 2999, '{\"source\":\"bench\"}', 'PENDING', ?2)",
            )?;
            for _ in 0..batch.min(rows - n) {
                // Time-ordered 16-byte ids, as DOFS keeps its UUIDv7 ids.
                st.execute(rusqlite::params![u128::from(n).to_be_bytes(), n as i64])?;
                n += 1;
            }
        }
        tx.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = rows as f64 / seconds;
    println!(
        "{{\"rows\":{rows},\"batch\":{batch},\"seconds\":{seconds:.3},\"rowsPerSecond\":{rate:.0}}}"
    );
    Ok(())
}

fn workflow(runs: u64) -> anyhow::Result<()> {
    use dofs_core::{Order, OrderId, Timestamp};
    use dofs_embedded::engine::{load_definition, Workflow, ORDER_WORKFLOW};
    let workflow = Workflow {
        def: load_definition(ORDER_WORKFLOW)?,
        limits: Limits::default(),
        id: 0,
    };
    let body = br#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99,"metadata":{"source":"bench"}}"#;
    let new = decode_order(body, &Limits::default())
        .map_err(|_| anyhow::anyhow!("the bench order is invalid"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let now = Timestamp(1_750_000_000_000);
    let started = Instant::now();
    let mut succeeded = 0u64;
    runtime.block_on(async {
        for _ in 0..runs {
            let id = OrderId::generate();
            let order = Order::new(id, new.clone(), format!("arn:bench:{id}"), now);
            if workflow.run(&order, now, false).await.replayable(id) {
                succeeded += 1;
            }
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        succeeded == runs,
        "{} of {runs} runs did not succeed",
        runs - succeeded
    );
    println!(
        "{{\"runs\":{runs},\"seconds\":{seconds:.3},\"microsPerRun\":{:.2}}}",
        seconds * 1e6 / runs as f64
    );
    Ok(())
}
