//! `dofs executions ID`: a workflow execution's state-by-state history as a
//! readable timeline, each event at its offset from the start.

use crate::commands::client::{encode_segment, Api, CliError, Exit, Target};
use crate::commands::format::{human_duration, parse_timestamp, text, truncate};
use crate::commands::orders::{ok_json, print_json};
use clap::Args;
use serde_json::Value;
use std::time::Duration;

/// `dofs executions`.
#[derive(Args, Debug)]
pub struct ExecutionsArgs {
    #[command(flatten)]
    pub target: Target,
    /// An execution id, a whole execution ARN, or an order id (its execution is looked up).
    pub id: String,
    /// Also print each event's details (inputs, outputs, errors) as JSON.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// Fetches the execution and prints it.
pub async fn run(args: ExecutionsArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let reply = api
        .get(&format!("/executions/{}", encode_segment(&args.id)))
        .await?;
    let reply = if reply.status == 404 && dofs_core::OrderId::parse(&args.id).is_ok() {
        // An order id: follow the order to its execution.
        match api.get(&format!("/orders/{}", args.id)).await? {
            order if order.status == 200 => match order.json()["executionArn"].as_str() {
                Some(arn) => {
                    api.get(&format!("/executions/{}", encode_segment(arn)))
                        .await?
                }
                None => reply,
            },
            _ => reply,
        }
    } else {
        reply
    };
    let execution = ok_json(reply, args.target.json)?;
    if args.target.json {
        print_json(&execution);
    } else {
        print!("{}", timeline(&execution, args.verbose));
    }
    Ok(Exit::Ok)
}

/// The execution as text: a header, then one line per event.
pub fn timeline(e: &Value, verbose: bool) -> String {
    let mut out = String::new();
    let started = e["startedAt"].as_str().and_then(parse_timestamp);
    let stopped = e["stoppedAt"].as_str().and_then(parse_timestamp);
    out.push_str(&format!("execution {}\n", text(&e["executionArn"])));
    let took = match (started, stopped) {
        (Some(a), Some(b)) if b >= a => format!(
            " in {}",
            human_duration(Duration::from_millis((b - a) as u64))
        ),
        _ => String::new(),
    };
    out.push_str(&format!(
        "status    {}{took}\nstarted   {}\nstopped   {}\n\n",
        text(&e["status"]),
        text(&e["startedAt"]),
        text(&e["stoppedAt"])
    ));
    for event in e["events"].as_array().into_iter().flatten() {
        let at = event["timestamp"].as_str().and_then(parse_timestamp);
        let offset = match (started, at) {
            (Some(s), Some(t)) => format!("+{} ms", t - s),
            _ => text(&event["timestamp"]),
        };
        out.push_str(&format!("{offset:>10}  {}\n", describe(event)));
        if verbose && !event["details"].is_null() {
            out.push_str(&format!("{:>10}    {}\n", "", event["details"]));
        }
    }
    if e["status"] == "SUCCEEDED" && !e["output"].is_null() {
        out.push_str(&format!(
            "\noutput    {}\n",
            truncate(&e["output"].to_string(), 200)
        ));
    }
    out
}

/// One event in words, indented under the state it happened in.
fn describe(event: &Value) -> String {
    let kind = event["type"].as_str().unwrap_or("?");
    let state = event["state"].as_str().unwrap_or("");
    let d = &event["details"];
    let resource = || {
        d["resource"]
            .as_str()
            .map(|r| {
                // An ARN's last part, or a template placeholder's name (`${validator_arn}`).
                let r = r.trim_start_matches("${").trim_end_matches('}');
                format!(" {}", r.rsplit(':').next().unwrap_or(r))
            })
            .unwrap_or_default()
    };
    let error = || {
        let cause = d["cause"]
            .as_str()
            .map(|c| format!(": {}", truncate(c, 100)))
            .unwrap_or_default();
        format!("{}{cause}", d["error"].as_str().unwrap_or("error"))
    };
    match kind {
        "ExecutionStarted" => "execution started".into(),
        "StateEntered" => format!("▶ {state}"),
        "StateExited" => match d["next"].as_str() {
            Some(next) => format!("◀ {state} → {next}"),
            None => format!("◀ {state} (end)"),
        },
        "TaskScheduled" => format!(
            "    task{} scheduled (attempt {})",
            resource(),
            text(&d["attempt"])
        ),
        "TaskSucceeded" => format!("    task{} succeeded", resource()),
        "TaskFailed" => format!("    ✗ task{} failed: {}", resource(), error()),
        "TaskRetryScheduled" => format!(
            "    ↻ retry {} in {} ms after {}",
            text(&d["retry"]),
            text(&d["delayMs"]),
            d["error"].as_str().unwrap_or("an error")
        ),
        "ExecutionSucceeded" => "execution succeeded".into(),
        "ExecutionFailed" => {
            let at = if state.is_empty() {
                String::new()
            } else {
                format!(" in {state}")
            };
            format!("✗ execution failed{at}: {}", error())
        }
        other if state.is_empty() => other.to_owned(),
        other => format!("{other} ({state})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_timeline_shows_each_state_at_its_offset_from_the_start() {
        let e = json!({
            "executionArn": "arn:aws:states:local:0:execution:dofs:abc",
            "status": "SUCCEEDED",
            "startedAt": "2026-11-28T14:00:00.000Z",
            "stoppedAt": "2026-11-28T14:00:00.012Z",
            "output": {"ok": true},
            "events": [
                {"type": "ExecutionStarted", "timestamp": "2026-11-28T14:00:00.000Z", "details": {}},
                {"type": "StateEntered", "state": "Validate Order", "timestamp": "2026-11-28T14:00:00.001Z", "details": {}},
                {"type": "TaskScheduled", "state": "Validate Order", "timestamp": "2026-11-28T14:00:00.001Z",
                 "details": {"resource": "arn:aws:lambda:x:function:validator", "attempt": 1}},
                {"type": "TaskFailed", "state": "Validate Order", "timestamp": "2026-11-28T14:00:00.003Z",
                 "details": {"error": "Transient", "cause": "busy"}},
                {"type": "TaskRetryScheduled", "state": "Validate Order", "timestamp": "2026-11-28T14:00:00.003Z",
                 "details": {"error": "Transient", "retry": 1, "delayMs": 5}},
                {"type": "StateExited", "state": "Validate Order", "timestamp": "2026-11-28T14:00:00.010Z",
                 "details": {"next": "Store Order"}},
                {"type": "ExecutionSucceeded", "timestamp": "2026-11-28T14:00:00.012Z", "details": {}}
            ]
        });
        let t = timeline(&e, false);
        assert!(t.contains("status    SUCCEEDED in 12.0 ms"), "{t}");
        assert!(t.contains("+1 ms  ▶ Validate Order"), "{t}");
        assert!(t.contains("task validator scheduled (attempt 1)"), "{t}");
        assert!(t.contains("✗ task failed: Transient: busy"), "{t}");
        assert!(t.contains("↻ retry 1 in 5 ms after Transient"), "{t}");
        assert!(t.contains("◀ Validate Order → Store Order"), "{t}");
        assert!(t.contains("+12 ms  execution succeeded"), "{t}");
    }
}
