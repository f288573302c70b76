//! The client commands: everything `dofs` does besides `serve`, over HTTP
//! against any deployment, embedded or AWS (`--endpoint`, `DOFS_ENDPOINT`).
//!
//! Layout:
//! - [`client`]: the target flags, the HTTP client, and [`CliError`] with its
//!   exit codes.
//! - [`orders`]: `submit`, `get`, `list`, `failed`, `retry`.
//! - [`dlq`]: `dlq list`, `dlq redrive`, `dlq purge`.
//! - [`executions`]: a workflow execution's history as a timeline.
//! - [`load`]: the load generator (open and closed loop, HDR latencies).
//! - [`checks`]: the checklist that `validate-system` and `test-system` print.
//! - [`validate`]: `validate-system`, the health of a deployment.
//! - [`test_system`]: `test-system`, the contract's behaviour, check by check.
//! - [`openapi`]: response checking against the deployment's `/openapi.json`.
//! - [`format`]: durations, tables and other human output.
//! - [`fulfillment_stub`]: `fulfillment-stub`, a local fulfillment service for the `http` mode.
//!
//! Exit codes (see [`client::Exit`]): 0 success, 1 a command or check failed
//! (including HTTP 4xx/5xx other than 404), 2 usage or configuration error,
//! 3 endpoint unreachable, 4 not found.

pub mod checks;
pub mod client;
pub mod dlq;
pub mod executions;
pub mod format;
pub mod fulfillment_stub;
pub mod load;
pub mod openapi;
pub mod orders;
pub mod test_system;
pub mod validate;

use clap::Subcommand;
use std::process::ExitCode;

pub use client::Exit;

/// The client commands, flattened into `dofs`'s subcommands beside `serve`.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Submit an order (from flags, a JSON file, or stdin) and print the 202 body.
    Submit(orders::SubmitArgs),
    /// Show one order; with --wait, wait until it is FULFILLED or FAILED.
    Get(orders::GetArgs),
    /// List orders, newest first, optionally of one status.
    List(orders::ListArgs),
    /// List the failed-orders table (the dead letters' history).
    Failed(orders::FailedArgs),
    /// Put a FAILED order back to PENDING and queue it again (operator).
    Retry(orders::RetryArgs),
    /// The dead-letter queue: list, redrive or purge (operator).
    Dlq {
        #[command(subcommand)]
        action: dlq::DlqAction,
    },
    /// Show a workflow execution's state-by-state history as a timeline.
    Executions(executions::ExecutionsArgs),
    /// Generate HTTP load on POST /order and report throughput and latencies.
    Load(load::LoadArgs),
    /// Check the health of a deployment and print a checklist.
    ValidateSystem(validate::ValidateArgs),
    /// Run the contract's test suite against a deployment, one line per check.
    TestSystem(test_system::TestSystemArgs),
    /// Run a stub fulfillment service to point fulfillment.http.url at.
    FulfillmentStub(fulfillment_stub::StubArgs),
}

/// Runs a client command on a fresh runtime and turns its outcome into the
/// process exit code; errors are printed on stderr as `dofs <command>: ...`.
pub fn run(command: ClientCommand) -> ExitCode {
    let name = match &command {
        ClientCommand::Submit(_) => "submit",
        ClientCommand::Get(_) => "get",
        ClientCommand::List(_) => "list",
        ClientCommand::Failed(_) => "failed",
        ClientCommand::Retry(_) => "retry",
        ClientCommand::Dlq { .. } => "dlq",
        ClientCommand::Executions(_) => "executions",
        ClientCommand::Load(_) => "load",
        ClientCommand::ValidateSystem(_) => "validate-system",
        ClientCommand::TestSystem(_) => "test-system",
        ClientCommand::FulfillmentStub(_) => "fulfillment-stub",
    };
    restore_sigpipe();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dofs {name}: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            ClientCommand::Submit(a) => orders::submit(a).await,
            ClientCommand::Get(a) => orders::get(a).await,
            ClientCommand::List(a) => orders::list(a).await,
            ClientCommand::Failed(a) => orders::failed(a).await,
            ClientCommand::Retry(a) => orders::retry(a).await,
            ClientCommand::Dlq { action } => dlq::run(action).await,
            ClientCommand::Executions(a) => executions::run(a).await,
            ClientCommand::Load(a) => load::run(a).await,
            ClientCommand::ValidateSystem(a) => validate::run(a).await,
            ClientCommand::TestSystem(a) => test_system::run(a).await,
            ClientCommand::FulfillmentStub(a) => fulfillment_stub::run(a).await,
        }
    });
    match outcome {
        Ok(exit) => exit.into(),
        Err(e) => {
            e.report(name);
            e.exit().into()
        }
    }
}

/// Lets `dofs list | head` end quietly, as Unix tools do, instead of
/// panicking on the closed pipe: Rust ignores SIGPIPE by default.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called before any thread is started; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
