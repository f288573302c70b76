//! `dofs dlq list|redrive|purge`: the dead letters awaiting an operator, and
//! the two ways to act on all of them (CONTRACT.md section 2).

use crate::commands::client::{Api, CliError, Exit, Target};
use crate::commands::format::{print_table, text, truncate};
use crate::commands::orders::{fetch_pages, ok_json, print_json, Paging};
use clap::{Args, Subcommand};
use serde_json::Value;

/// The DLQ actions.
#[derive(Subcommand, Debug)]
pub enum DlqAction {
    /// List the dead letters (oldest first) and the DLQ depth.
    List(DlqListArgs),
    /// Put every dead letter back on the queue; their orders go back to PENDING.
    Redrive(DlqActArgs),
    /// Acknowledge every dead letter; their orders stay FAILED.
    Purge(DlqPurgeArgs),
}

/// `dofs dlq list`.
#[derive(Args, Debug)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub paging: Paging,
}

/// `dofs dlq redrive`.
#[derive(Args, Debug)]
pub struct DlqActArgs {
    #[command(flatten)]
    pub target: Target,
}

/// `dofs dlq purge`.
#[derive(Args, Debug)]
pub struct DlqPurgeArgs {
    #[command(flatten)]
    pub target: Target,
    /// Confirm: purging cannot be undone (the failed-orders table keeps its history).
    #[arg(long)]
    pub yes: bool,
}

/// Runs one DLQ action.
pub async fn run(action: DlqAction) -> Result<Exit, CliError> {
    match action {
        DlqAction::List(args) => list(args).await,
        DlqAction::Redrive(args) => {
            let moved = act(&args.target, "/dlq/redrive").await?;
            if !args.target.json {
                println!(
                    "redrove {} dead letter(s): back on the orders queue, their orders PENDING with attempts reset",
                    text(&moved["moved"])
                );
            }
            Ok(Exit::Ok)
        }
        DlqAction::Purge(args) => {
            if !args.yes {
                return Err(CliError::Usage(
                    "dlq purge acknowledges every dead letter and cannot be undone: add --yes"
                        .into(),
                ));
            }
            let purged = act(&args.target, "/dlq/purge").await?;
            if !args.target.json {
                println!(
                    "purged {} dead letter(s): their orders stay FAILED",
                    text(&purged["purged"])
                );
            }
            Ok(Exit::Ok)
        }
    }
}

async fn act(target: &Target, path: &str) -> Result<Value, CliError> {
    let api = Api::new(target)?;
    let reply = api.send(api.request(reqwest::Method::POST, path)).await?;
    let body = ok_json(reply, target.json)?;
    if target.json {
        print_json(&body);
    }
    Ok(body)
}

async fn list(args: DlqListArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let listing = fetch_pages(&api, "/dlq", Vec::new(), &args.paging, args.target.json).await?;
    if args.target.json {
        print_json(&listing.json());
        return Ok(Exit::Ok);
    }
    println!(
        "DLQ depth: {}",
        text(listing.extra.get("depth").unwrap_or(&Value::Null))
    );
    if listing.items.is_empty() {
        println!("no dead letters");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = listing
        .items
        .iter()
        .map(|d| {
            vec![
                text(&d["orderId"]),
                text(&d["attempts"]),
                text(&d["deadAt"]),
                truncate(&text(&d["lastError"]), 60),
            ]
        })
        .collect();
    print_table(&["ORDER", "ATTEMPTS", "DEAD AT", "LAST ERROR"], &rows);
    listing.print_footer("dead letters", "dofs dlq list");
    println!("act on them: dofs dlq redrive | dofs dlq purge --yes | dofs retry ORDER");
    Ok(Exit::Ok)
}
