//! `dofs events tail`: follows the order event feed (`GET /events`).

use crate::commands::client::{encode_query, Api, CliError, Exit, Target};
use crate::commands::format::text;
use crate::commands::orders::ok_json;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::time::Duration;

/// `dofs events ...`.
#[derive(Subcommand)]
pub enum EventsAction {
    /// Print the order events as they are recorded, oldest first, until interrupted.
    Tail(TailArgs),
}

/// `dofs events tail`.
#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub target: Target,
    /// Start after this eventId (default: from the oldest event kept).
    #[arg(long)]
    pub after: Option<String>,
    /// Print the events recorded so far and stop, instead of following.
    #[arg(long)]
    pub once: bool,
    /// How often to ask for new events while there are none, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub poll_ms: u64,
}

/// Runs an `events` action.
pub async fn run(action: EventsAction) -> Result<Exit, CliError> {
    match action {
        EventsAction::Tail(args) => tail(args).await,
    }
}

async fn tail(args: TailArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let mut after = args.after.clone();
    loop {
        let path = match &after {
            Some(a) => format!("/events?limit=1000&after={}", encode_query(a)),
            None => "/events?limit=1000".to_owned(),
        };
        let page = ok_json(api.get(&path).await?, args.target.json)?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for event in &items {
            print_event(event, args.target.json);
        }
        if let Some(next) = page["nextCursor"].as_str() {
            after = Some(next.to_owned());
        }
        if items.len() < 1000 {
            if args.once {
                return Ok(Exit::Ok);
            }
            tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
        }
    }
}

/// One event: a JSON line, or `id time type order status (attempts)`.
fn print_event(e: &Value, json: bool) {
    if json {
        println!("{e}");
        return;
    }
    let mut line = format!(
        "{:>8}  {}  {:<17} {}  {} ({} attempts)",
        text(&e["eventId"]),
        text(&e["occurredAt"]),
        text(&e["type"]),
        text(&e["orderId"]),
        text(&e["status"]),
        text(&e["attempts"]),
    );
    let order = &e["order"];
    for (field, label) in [
        ("failureReason", "failure"),
        ("fulfillmentReference", "reference"),
        ("cancelReason", "reason"),
    ] {
        if let Some(v) = order[field].as_str() {
            line.push_str(&format!("  {label}: {v}"));
        }
    }
    println!("{line}");
}
