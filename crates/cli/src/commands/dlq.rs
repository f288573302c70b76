//! `dofs dlq list|redrive|purge`: the dead letters awaiting an operator, and
//! the two ways to act on all of them (CONTRACT.md section 2).
//!
//! A redrive or purge request does as much as its time allows and answers
//! `more: true` when dead letters remain (a large DLQ on AWS): the command
//! sends it again until the job is done, printing its progress.

use crate::commands::client::{Api, CliError, Exit, Target};
use crate::commands::format::{print_table, text, truncate};
use crate::commands::orders::{fetch_pages, ok_json, print_json, Paging};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Requests in a row that may move nothing while the server says more
/// remain before the command gives up (it then says how to go on).
const IDLE_ROUNDS: u32 = 3;

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
            let done = act(&args.target, "/dlq/redrive", "moved", "redrove").await?;
            if !args.target.json {
                println!(
                    "redrove {} dead letter(s): back on the orders queue, their orders PENDING with attempts reset",
                    done.count
                );
            }
            Ok(done.exit("dofs dlq redrive"))
        }
        DlqAction::Purge(args) => {
            if !args.yes {
                return Err(CliError::Usage(
                    "dlq purge acknowledges every dead letter and cannot be undone: add --yes"
                        .into(),
                ));
            }
            let done = act(&args.target, "/dlq/purge", "purged", "purged").await?;
            if !args.target.json {
                println!(
                    "purged {} dead letter(s): their orders stay FAILED",
                    done.count
                );
            }
            Ok(done.exit("dofs dlq purge --yes"))
        }
    }
}

/// What the requests of a redrive or purge did together.
struct Done {
    count: u64,
    /// The server still said more remain when the command stopped.
    more: bool,
}

impl Done {
    fn exit(&self, again: &str) -> Exit {
        if self.more {
            eprintln!("more dead letters remain, but the last {IDLE_ROUNDS} requests moved none: run `{again}` again later");
            Exit::Failed
        } else {
            Exit::Ok
        }
    }
}

/// Sends the action until the server says no more remain (`more` false or
/// absent), adding up `field`; in JSON mode prints the total as the server's
/// answer (`{field: total, "more": ...}`).
async fn act(target: &Target, path: &str, field: &str, verb: &str) -> Result<Done, CliError> {
    let api = Api::new(target)?;
    let mut done = Done {
        count: 0,
        more: false,
    };
    let mut idle = 0;
    loop {
        let reply = api.send(api.request(reqwest::Method::POST, path)).await?;
        let body = ok_json(reply, target.json)?;
        let n = body[field].as_u64().unwrap_or(0);
        done.count += n;
        done.more = body["more"].as_bool().unwrap_or(false);
        idle = if n == 0 { idle + 1 } else { 0 };
        if !done.more || idle >= IDLE_ROUNDS {
            break;
        }
        if !target.json {
            eprintln!(
                "{verb} {} dead letter(s) so far; more remain, going on",
                done.count
            );
        }
    }
    if target.json {
        print_json(&json!({ field: done.count, "more": done.more }));
    }
    Ok(done)
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
