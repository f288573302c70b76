//! Black-box tests of the client commands: the real `dofs` binary against a
//! `dofs serve` spawned by the test, checking output and exit codes (0 ok,
//! 1 failed or refused, 2 usage, 3 unreachable, 4 not found), plus the
//! OpenAPI document checked against every answer the tests provoke.

mod common;
#[allow(dead_code)]
#[path = "../src/commands/openapi.rs"]
mod openapi;

use common::{fast_env, manifest_dir, App};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one `dofs` run printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The checklist's `FAIL` lines, by check name.
    fn failed_checks(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("FAIL  "))
            .filter_map(|l| l.split(": ").next())
            .collect()
    }
}

/// Runs `dofs ARGS` against `endpoint`, with `stdin` as its standard input.
fn dofs_in(endpoint: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dofs"));
    cmd.args(args)
        .env("DOFS_ENDPOINT", endpoint)
        .env_remove("DOFS_API_KEY")
        .env_remove("RUST_BACKTRACE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn dofs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for dofs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn dofs(endpoint: &str, args: &[&str]) -> Run {
    dofs_in(endpoint, args, None)
}

fn with(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = fast_env();
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

fn order_id(run: &Run) -> String {
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.json()["orderId"].as_str().expect("orderId").to_owned()
}

#[test]
fn orders_can_be_submitted_read_listed_and_followed_through_their_execution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &with(&[("DOFS_FULFILLMENT_SUCCESS_RATE", "1")]));
    let base = app.base.as_str();

    let by_flags = order_id(&dofs(
        base,
        &[
            "submit",
            "--customer-id",
            "CUST-1001",
            "--product-id",
            "PROD-2001",
            "--quantity",
            "2",
            "--price",
            "29.99",
            "--meta",
            "source=cli",
            "--json",
        ],
    ));
    let seed = br#"{"customerId":"CUST-1002","productId":"PROD-2002","quantity":1,"price":5}"#;
    let from_stdin = dofs_in(base, &["submit"], Some(seed));
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert!(
        from_stdin.stdout.starts_with("ACCEPTED  order "),
        "{}",
        from_stdin.stdout
    );
    let file = dir.path().join("order.json");
    std::fs::write(&file, seed).expect("write the order file");
    let from_file = order_id(&dofs(
        base,
        &[
            "submit",
            "--file",
            file.to_str().expect("utf-8 path"),
            "--json",
        ],
    ));

    let got = dofs(base, &["get", &by_flags, "--wait", "--json"]);
    assert_eq!(got.code, 0, "{}", got.stderr);
    let order = got.json();
    assert_eq!(order["status"], "FULFILLED");
    assert_eq!(order["metadata"], json!({"source": "cli"}));
    assert_eq!(order["price"], json!(29.99));
    let human = dofs(base, &["get", &by_flags]);
    assert!(
        human.stdout.contains("FULFILLED (1 attempt)"),
        "{}",
        human.stdout
    );

    for id in [&by_flags, &from_file] {
        assert_eq!(dofs(base, &["get", id, "--wait"]).code, 0);
    }
    let page = dofs(
        base,
        &["list", "--status", "fulfilled", "--limit", "1", "--json"],
    )
    .json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert!(page["nextCursor"].is_string(), "more than one page: {page}");
    let cursor = page["nextCursor"].as_str().expect("cursor");
    let next = dofs(
        base,
        &["list", "--limit", "1", "--cursor", cursor, "--json"],
    )
    .json();
    assert_ne!(next["items"][0]["orderId"], page["items"][0]["orderId"]);
    let all = dofs(base, &["list", "--all", "--json"]).json();
    let ids: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["orderId"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{all}");
    assert!(ids.contains(&by_flags.as_str()) && ids.contains(&from_file.as_str()));
    assert!(all["nextCursor"].is_null());
    let table = dofs(base, &["list"]);
    assert!(table.stdout.starts_with("ORDER "), "{}", table.stdout);
    assert!(table.stdout.contains("(3 orders)"), "{}", table.stdout);

    let timeline = dofs(base, &["executions", &by_flags]);
    assert_eq!(timeline.code, 0, "{}", timeline.stderr);
    for line in [
        "status    SUCCEEDED",
        "▶ Validate Order",
        "◀ Store Order → Queue For Fulfillment",
        "execution succeeded",
    ] {
        assert!(
            timeline.stdout.contains(line),
            "{line:?} in\n{}",
            timeline.stdout
        );
    }
    let execution = dofs(base, &["executions", &by_flags, "--json"]).json();
    let arn = execution["executionArn"].as_str().expect("arn");
    assert!(execution["events"].as_array().is_some_and(|e| e.len() > 4));
    assert_eq!(
        dofs(base, &["executions", arn]).code,
        0,
        "a whole ARN works too"
    );

    let retried = dofs(base, &["retry", &by_flags]);
    assert_eq!(retried.code, 1, "a FULFILLED order cannot be retried");
    assert!(
        retried.stderr.contains("HTTP 409 Conflict"),
        "{}",
        retried.stderr
    );

    let first = dofs(
        base,
        &["submit", "--idempotency-key", "k-1", "--json"]
            .iter()
            .copied()
            .chain([
                "--customer-id",
                "CUST-1001",
                "--product-id",
                "PROD-2001",
                "--quantity",
                "2",
                "--price",
                "1",
            ])
            .collect::<Vec<_>>(),
    );
    let again = dofs(
        base,
        &[
            "submit",
            "--idempotency-key",
            "k-1",
            "--customer-id",
            "CUST-1001",
            "--product-id",
            "PROD-2001",
            "--quantity",
            "2",
            "--price",
            "1",
        ],
    );
    assert!(again.stdout.contains(&order_id(&first)), "{}", again.stdout);
    assert!(again.stdout.contains("replayed"), "{}", again.stdout);
}

#[test]
fn refusals_exit_1_with_every_broken_rule_and_unknown_ids_exit_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let base = app.base.as_str();
    let invalid =
        br#"{"customerId":"INVALID-FORMAT","productId":"PROD-2001","quantity":0,"price":-10}"#;
    let human = dofs_in(base, &["submit"], Some(invalid));
    assert_eq!(human.code, 1);
    assert!(
        human.stderr.contains("HTTP 400 ValidationError"),
        "{}",
        human.stderr
    );
    for field in ["customerId:", "quantity:", "price:"] {
        assert!(human.stderr.contains(field), "{field} in {}", human.stderr);
    }
    let json = dofs_in(base, &["submit", "--json"], Some(invalid));
    assert_eq!(json.code, 1);
    assert_eq!(
        json.json()["error"],
        "ValidationError",
        "the body goes to stdout for scripts"
    );
    let malformed = dofs_in(base, &["submit"], Some(b"{not json"));
    assert_eq!(malformed.code, 1);
    assert!(
        malformed.stderr.contains("MalformedJson"),
        "{}",
        malformed.stderr
    );

    let unknown = "01a22309-77f9-74cb-97a8-6a713b68a8a4";
    for args in [
        vec!["get", unknown],
        vec!["executions", unknown],
        vec!["retry", unknown],
    ] {
        let run = dofs(base, &args);
        assert_eq!(run.code, 4, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("404 NotFound"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let bad_id = dofs(base, &["get", "not-an-id"]);
    assert_eq!(bad_id.code, 1, "a malformed id is a 400: {}", bad_id.stderr);
    let bad_status = dofs(base, &["list", "--status", "DONE"]);
    assert_eq!(bad_status.code, 1);
    assert!(
        bad_status.stderr.contains("status:"),
        "{}",
        bad_status.stderr
    );
}

#[test]
fn every_command_exits_3_when_nothing_answers_at_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let id = "01a22309-77f9-74cb-97a8-6a713b68a8a4";
    let commands: [&[&str]; 11] = [
        &[
            "submit",
            "--customer-id",
            "CUST-1001",
            "--product-id",
            "PROD-2001",
            "--quantity",
            "1",
            "--price",
            "1",
        ],
        &["get", id],
        &["list"],
        &["failed"],
        &["retry", id],
        &["dlq", "list"],
        &["dlq", "redrive"],
        &["executions", id],
        &["load", "--orders", "10"],
        &["validate-system"],
        &["test-system"],
    ];
    for args in commands {
        let run = dofs(&endpoint, args);
        assert_eq!(run.code, 3, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            format!("{}{}", run.stdout, run.stderr).contains("cannot reach"),
            "{args:?}: {}{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn bad_flags_and_bad_input_exit_2_before_anything_is_sent() {
    let endpoint = "http://127.0.0.1:9";
    let cases: [&[&str]; 8] = [
        &["list", "--endpoint", "localhost:8080"],
        &["list", "--endpoint", "ftp://example.com/"],
        &["dlq", "purge"],
        &["load", "--rate", "0"],
        &["load", "--invalid-ratio", "2"],
        &["submit", "--metadata", "[1]"],
        &["submit", "--file", "/nonexistent/order.json"],
        &["list", "--no-such-flag"],
    ];
    for args in cases {
        let run = dofs(endpoint, args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(!run.stderr.is_empty(), "{args:?} says why");
    }
}

#[test]
fn failed_orders_can_be_listed_retried_redriven_and_purged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &with(&[("DOFS_FULFILLMENT_SUCCESS_RATE", "0")]));
    let base = app.base.as_str();
    let submit = || {
        order_id(&dofs(
            base,
            &[
                "submit",
                "--customer-id",
                "CUST-1001",
                "--product-id",
                "PROD-2001",
                "--quantity",
                "1",
                "--price",
                "3.5",
                "--json",
            ],
        ))
    };
    let ids: Vec<String> = (0..3).map(|_| submit()).collect();
    for id in &ids {
        let order = dofs(base, &["get", id, "--wait", "--json"]).json();
        assert_eq!(order["status"], "FAILED", "{order}");
    }
    let failed = dofs(base, &["failed", "--json"]).json();
    assert_eq!(
        failed["items"].as_array().map(Vec::len),
        Some(3),
        "{failed}"
    );
    let dlq = dofs(base, &["dlq", "list", "--json"]).json();
    assert_eq!(dlq["depth"], 3, "{dlq}");
    let human = dofs(base, &["dlq", "list"]);
    assert!(human.stdout.starts_with("DLQ depth: 3"), "{}", human.stdout);
    assert!(human.stdout.contains(&ids[0]), "{}", human.stdout);

    let retried = dofs(base, &["retry", &ids[0], "--json"]).json();
    assert_eq!(retried["status"], "PENDING");
    assert_eq!(retried["attempts"], 0);
    assert_eq!(dofs(base, &["get", &ids[0], "--wait"]).code, 0);

    let redrive = dofs(base, &["dlq", "redrive"]);
    assert_eq!(redrive.code, 0, "{}", redrive.stderr);
    assert!(
        redrive.stdout.starts_with("redrove 3 dead letter(s)"),
        "{}",
        redrive.stdout
    );
    for id in &ids {
        let order = dofs(base, &["get", id, "--wait", "--json"]).json();
        assert_eq!(order["status"], "FAILED", "failed again: {order}");
    }
    let purged = dofs(base, &["dlq", "purge", "--yes", "--json"]).json();
    assert_eq!(purged["purged"], 3);
    assert_eq!(dofs(base, &["dlq", "list", "--json"]).json()["depth"], 0);
    let history = dofs(base, &["failed", "--json"]).json();
    assert!(
        history["items"].as_array().is_some_and(|i| i.len() >= 3),
        "the failed-orders table keeps its history: {history}"
    );
}

/// A stand-in server whose `POST path` answers `replies` in turn (the last
/// one again once they run out); returns its base URL and the request count.
fn scripted(
    path: &'static str,
    replies: Vec<Value>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&count);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                path,
                axum::routing::post(move || {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let reply = replies[n.min(replies.len() - 1)].clone();
                    async move { axum::Json(reply) }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (base, count)
}

#[test]
fn dlq_redrive_and_purge_go_on_until_the_server_says_no_more_remain() {
    use std::sync::atomic::Ordering;
    let (base, requests) = scripted(
        "/dlq/redrive",
        vec![
            json!({"moved": 100, "more": true}),
            json!({"moved": 80, "more": true}),
            json!({"moved": 7, "more": false}),
        ],
    );
    let run = dofs(&base, &["dlq", "redrive"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("redrove 187 dead letter(s)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("redrove 100 dead letter(s) so far")
            && run.stderr.contains("redrove 180 dead letter(s) so far"),
        "progress: {}",
        run.stderr
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    let (base, requests) = scripted(
        "/dlq/purge",
        vec![
            json!({"purged": 50, "more": true}),
            json!({"purged": 5, "more": false}),
        ],
    );
    let run = dofs(&base, &["dlq", "purge", "--yes", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json(), json!({"purged": 55, "more": false}));
    assert_eq!(requests.load(Ordering::SeqCst), 2);

    // A server that says more remain but moves nothing: the command stops
    // after a few requests and says how to go on.
    let (base, requests) = scripted("/dlq/redrive", vec![json!({"moved": 0, "more": true})]);
    let run = dofs(&base, &["dlq", "redrive"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("run `dofs dlq redrive` again"),
        "{}",
        run.stderr
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    // A server from before `more` was answered: one request.
    let (base, requests) = scripted("/dlq/redrive", vec![json!({"moved": 4})]);
    let run = dofs(&base, &["dlq", "redrive", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json(), json!({"moved": 4, "more": false}));
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[test]
fn test_system_passes_against_dofs_serve_with_every_answer_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let run = dofs(&app.base, &["test-system"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.failed_checks().is_empty(), "{}", run.stdout);
    let last = run.stdout.lines().last().expect("a closing line");
    assert!(
        last.ends_with(" failed") || last.contains(" failed, "),
        "closing line: {last}"
    );
    assert!(last.contains(" passed, 0 failed"), "{last}");
    for check in [
        "PASS  invalid.seed-invalid-order",
        "PASS  edge.body-exactly-64KiB",
        "PASS  http.oversized-body",
        "PASS  idempotency.replay",
        "PASS  lifecycle.fulfilled-share",
        "PASS  openapi.responses-conform",
    ] {
        assert!(run.stdout.contains(check), "{check} in\n{}", run.stdout);
    }
}

#[test]
fn test_system_fails_naming_the_fulfilled_share_when_the_success_rate_is_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &with(&[("DOFS_FULFILLMENT_SUCCESS_RATE", "0")]));
    let run = dofs(&app.base, &["test-system", "--lifecycle-orders", "30"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.failed_checks(),
        ["lifecycle.fulfilled-share"],
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("0 of 30 FULFILLED (0.0%)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.trim_end().ends_with("passed, 1 failed"),
        "{}",
        run.stdout
    );
}

#[test]
fn validate_system_passes_on_a_healthy_server_and_names_a_full_dlq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let run = dofs(&app.base, &["validate-system"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for check in [
        "PASS  health",
        "PASS  ready",
        "PASS  route POST /dlq/redrive",
        "PASS  dlq depth",
        "PASS  openapi",
    ] {
        assert!(run.stdout.contains(check), "{check} in\n{}", run.stdout);
    }
    let json = dofs(&app.base, &["validate-system", "--json"]).json();
    assert_eq!(json["failed"], 0, "{json}");

    let dir = tempfile::tempdir().expect("tempdir");
    let failing = App::spawn_on(dir.path(), &with(&[("DOFS_FULFILLMENT_SUCCESS_RATE", "0")]));
    let base = failing.base.as_str();
    for _ in 0..3 {
        let id = order_id(&dofs(
            base,
            &[
                "submit",
                "--customer-id",
                "CUST-1001",
                "--product-id",
                "PROD-2001",
                "--quantity",
                "1",
                "--price",
                "1",
                "--json",
            ],
        ));
        assert_eq!(dofs(base, &["get", &id, "--wait"]).code, 0);
    }
    let run = dofs(base, &["validate-system", "--max-dlq-depth", "2"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.failed_checks().contains(&"dlq depth"), "{}", run.stdout);
    assert!(
        run.stdout.contains("3 dead letters await an operator"),
        "{}",
        run.stdout
    );
}

#[test]
fn load_of_20000_orders_finishes_with_zero_errors_and_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let run = dofs(
        &app.base,
        &["load", "--orders", "20000", "--concurrency", "64", "--json"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["requests"], 20000);
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["statusCodes"], json!({"202": 20000}));
    assert_eq!(report["mode"], "closed");
    let latency = &report["latencyMs"];
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            latency[q].as_f64().is_some_and(|v| v > 0.0),
            "{q}: {latency}"
        );
    }
    assert!(latency["p50"].as_f64() <= latency["p99"].as_f64());
    assert!(report["throughputPerSecond"]
        .as_f64()
        .is_some_and(|t| t > 0.0));
}

#[test]
fn open_loop_load_with_invalid_orders_reports_the_split_and_the_terminal_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let run = dofs(
        &app.base,
        &[
            "load",
            "--rate",
            "200",
            "--orders",
            "300",
            "--invalid-ratio",
            "0.2",
            "--idempotency-keys",
            "--wait-terminal",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for part in [
        "dofs load: 300 requests",
        "open loop at 200/s",
        "status codes 202: 240, 400: 60",
        "errors       0",
        "latency      p50 ",
        "service time p50 ",
        "terminal     240 accepted orders: ",
        "all terminal",
    ] {
        assert!(run.stdout.contains(part), "{part:?} in\n{}", run.stdout);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let json = dofs(
        &app.base,
        &["load", "--rate", "100", "--duration", "1s", "--json"],
    )
    .json();
    let requests = json["requests"].as_u64().expect("requests");
    assert!(
        (90..=101).contains(&requests),
        "about 100 in 1 s at 100/s: {requests}"
    );
    assert!(json["serviceTimeMs"]["p99"].is_number(), "{json}");
}

/// A request and its expected status: method, OpenAPI template, path, API
/// key, content type, body, status.
type Case<'a> = (
    &'a str,
    &'a str,
    String,
    Option<&'a str>,
    Option<&'a str>,
    Option<String>,
    u16,
);

/// Provokes every route and the status codes the contract names, with API
/// keys configured, and checks each answer against `GET /openapi.json`
/// (strictly: an undocumented field is a mismatch).
#[tokio::test]
async fn every_answer_the_tests_provoke_matches_the_openapi_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (submit_key, operator_key) = ("submit-key-0123456789", "operator-key-0123456789");
    let app = App::spawn_on(
        dir.path(),
        &with(&[
            ("DOFS_FULFILLMENT_SUCCESS_RATE", "0"),
            ("DOFS_AUTH_API_KEYS", submit_key),
            ("DOFS_AUTH_OPERATOR_KEYS", operator_key),
        ]),
    );
    let http = dofs_blackbox::http_client();
    let doc: Value = http
        .get(app.url("/openapi.json"))
        .header("x-api-key", submit_key)
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("JSON");
    let spec = openapi::Spec::new(doc, true).expect("an OpenAPI 3.1 document");
    let mut seen = BTreeSet::new();
    let mut mismatches = Vec::new();
    let order = common::seed_order().to_string();

    let mut call = async |method: &str,
                          template: &str,
                          path: &str,
                          key: Option<&str>,
                          ct: Option<&str>,
                          body: Option<String>|
           -> (u16, Value) {
        let mut req = http.request(method.parse().expect("method"), app.url(path));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if body.as_ref().is_some_and(|b| b.len() > 65_536) {
            // Answered 413 unread, then closed: do not reuse the connection.
            req = req.header("connection", "close");
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = r.bytes().await.expect("body");
        let answer = openapi::Answer {
            status,
            content_type: &content_type,
            body: &bytes,
        };
        if let Err(e) = spec.check(method, template, &answer) {
            mismatches.push(e);
        }
        seen.insert((method.to_owned(), template.to_owned(), status));
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    };
    let (s, accepted) = call(
        "POST",
        "/order",
        "/order",
        Some(submit_key),
        Some("application/json"),
        Some(order.clone()),
    )
    .await;
    assert_eq!(s, 202);
    let id = accepted["orderId"].as_str().expect("orderId").to_owned();
    let exec = accepted["executionArn"]
        .as_str()
        .expect("arn")
        .rsplit(':')
        .next()
        .expect("id")
        .to_owned();
    let started = Instant::now();
    let failed_id = loop {
        let (_, o) = call(
            "GET",
            "/orders/{orderId}",
            &format!("/orders/{id}"),
            Some(submit_key),
            None,
            None,
        )
        .await;
        if o["status"] == "FAILED" {
            break id.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the order fails: {o}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let unknown = "01a22309-77f9-74cb-97a8-6a713b68a8a4";
    let big = format!("{{\"customerId\":\"{}\"}}", "x".repeat(70_000));
    let json_ct = Some("application/json");
    let cases: Vec<Case> = vec![
        ("GET", "/health", "/health".into(), None, None, None, 200),
        ("GET", "/ready", "/ready".into(), None, None, None, 200),
        ("GET", "/", "/".into(), None, None, None, 200),
        (
            "GET",
            "/metrics",
            "/metrics".into(),
            Some(submit_key),
            None,
            None,
            200,
        ),
        (
            "GET",
            "/alerts",
            "/alerts".into(),
            Some(submit_key),
            None,
            None,
            200,
        ),
        ("GET", "/orders", "/orders".into(), None, None, None, 401),
        (
            "GET",
            "/orders",
            "/orders".into(),
            Some("wrong-key-0123456789"),
            None,
            None,
            401,
        ),
        (
            "GET",
            "/orders",
            "/orders?limit=1".into(),
            Some(submit_key),
            None,
            None,
            200,
        ),
        (
            "GET",
            "/orders",
            "/orders?limit=0".into(),
            Some(submit_key),
            None,
            None,
            400,
        ),
        (
            "POST",
            "/orders",
            "/orders".into(),
            Some(submit_key),
            json_ct,
            Some(order.clone()),
            202,
        ),
        (
            "POST",
            "/order",
            "/order".into(),
            Some(submit_key),
            json_ct,
            Some("{}".into()),
            400,
        ),
        (
            "POST",
            "/order",
            "/order".into(),
            Some(submit_key),
            json_ct,
            Some(big),
            413,
        ),
        (
            "POST",
            "/order",
            "/order".into(),
            Some(submit_key),
            Some("text/plain"),
            Some(order.clone()),
            415,
        ),
        (
            "GET",
            "/orders/{orderId}",
            format!("/orders/{unknown}"),
            Some(submit_key),
            None,
            None,
            404,
        ),
        (
            "GET",
            "/orders/{orderId}",
            "/orders/nope".into(),
            Some(submit_key),
            None,
            None,
            400,
        ),
        (
            "GET",
            "/failed-orders",
            "/failed-orders".into(),
            Some(submit_key),
            None,
            None,
            200,
        ),
        (
            "GET",
            "/failed-orders",
            "/failed-orders?limit=x".into(),
            Some(submit_key),
            None,
            None,
            400,
        ),
        (
            "GET",
            "/dlq",
            "/dlq".into(),
            Some(submit_key),
            None,
            None,
            200,
        ),
        (
            "GET",
            "/executions/{executionId}",
            format!("/executions/{exec}"),
            Some(submit_key),
            None,
            None,
            200,
        ),
        (
            "GET",
            "/executions/{executionId}",
            format!("/executions/{unknown}"),
            Some(submit_key),
            None,
            None,
            404,
        ),
        (
            "GET",
            "/executions/{executionId}",
            "/executions/a%20b".into(),
            Some(submit_key),
            None,
            None,
            400,
        ),
        (
            "POST",
            "/orders/{orderId}/retry",
            format!("/orders/{failed_id}/retry"),
            Some(submit_key),
            None,
            None,
            403,
        ),
        (
            "POST",
            "/orders/{orderId}/retry",
            format!("/orders/{unknown}/retry"),
            Some(operator_key),
            None,
            None,
            404,
        ),
        (
            "POST",
            "/orders/{orderId}/retry",
            format!("/orders/{failed_id}/retry"),
            Some(operator_key),
            None,
            None,
            200,
        ),
        (
            "POST",
            "/dlq/redrive",
            "/dlq/redrive".into(),
            Some(submit_key),
            None,
            None,
            403,
        ),
        (
            "POST",
            "/dlq/redrive",
            "/dlq/redrive".into(),
            Some(operator_key),
            None,
            None,
            200,
        ),
        (
            "POST",
            "/dlq/purge",
            "/dlq/purge".into(),
            Some(operator_key),
            None,
            None,
            200,
        ),
        (
            "DELETE",
            "/orders",
            "/orders".into(),
            Some(submit_key),
            None,
            None,
            405,
        ),
        (
            "GET",
            "/no-such-route",
            "/no-such-route".into(),
            Some(submit_key),
            None,
            None,
            404,
        ),
    ];
    for (method, template, path, key, ct, body, want) in cases {
        let (status, body) = call(method, template, &path, key, ct, body).await;
        assert_eq!(status, want, "{method} {path}: {body}");
    }
    // The idempotency answers: a replay and a reused key.
    let keyed = |body: String| {
        http.post(app.url("/order"))
            .header("x-api-key", submit_key)
            .header("content-type", "application/json")
            .header("idempotency-key", "openapi-1")
            .body(body)
    };
    for (body, want) in [
        (order.clone(), 202),
        (order.clone(), 202),
        (order.replace("29.99", "1"), 422),
    ] {
        let r = keyed(body).send().await.expect("keyed request");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        assert_eq!(status, want);
        let answer = openapi::Answer {
            status,
            content_type: "application/json",
            body: &bytes,
        };
        if let Err(e) = spec.check("POST", "/order", &answer) {
            mismatches.push(e);
        }
    }
    assert!(
        mismatches.is_empty(),
        "answers that differ from /openapi.json:\n{}",
        mismatches.join("\n")
    );
    assert!(
        seen.len() >= 28,
        "{} (method, route, status) triples checked",
        seen.len()
    );
}

#[test]
fn the_seed_scripts_run_the_commands_with_a_positional_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &fast_env());
    let root = std::path::PathBuf::from(manifest_dir()).join("../..");
    let script = |name: &str, args: &[&str]| {
        Command::new("bash")
            .arg(root.join(name))
            .args(args)
            .env("DOFS_BIN", env!("CARGO_BIN_EXE_dofs"))
            .env_remove("DOFS_ENDPOINT")
            .env_remove("DOFS_API_KEY")
            .output()
            .expect("run the script")
    };
    let out = script("validate-system.sh", &[&app.base]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS  ready"), "{stdout}");
    let out = script(
        "test-system.sh",
        &[&app.base, "--lifecycle-orders", "10", "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["failed"], 0);
    let unreachable = script("validate-system.sh", &["http://127.0.0.1:9"]);
    assert_eq!(unreachable.status.code(), Some(3));
}

#[test]
fn the_api_key_is_sent_from_the_flag_or_the_environment_and_a_refusal_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (submit_key, operator_key) = ("submit-key-0123456789", "operator-key-0123456789");
    let app = App::spawn_on(
        dir.path(),
        &with(&[
            ("DOFS_AUTH_API_KEYS", submit_key),
            ("DOFS_AUTH_OPERATOR_KEYS", operator_key),
        ]),
    );
    let base = app.base.as_str();
    let without = dofs(base, &["list"]);
    assert_eq!(without.code, 1);
    assert!(
        without.stderr.contains("HTTP 401 Unauthorized"),
        "{}",
        without.stderr
    );
    assert_eq!(dofs(base, &["list", "--api-key", submit_key]).code, 0);
    let from_env = Command::new(env!("CARGO_BIN_EXE_dofs"))
        .args(["list", "--json"])
        .env("DOFS_ENDPOINT", base)
        .env("DOFS_API_KEY", submit_key)
        .output()
        .expect("run dofs");
    assert_eq!(from_env.status.code(), Some(0));
    let forbidden = dofs(base, &["dlq", "redrive", "--api-key", submit_key]);
    assert_eq!(forbidden.code, 1);
    assert!(
        forbidden.stderr.contains("HTTP 403 Forbidden"),
        "{}",
        forbidden.stderr
    );
    assert_eq!(
        dofs(base, &["dlq", "redrive", "--api-key", operator_key]).code,
        0
    );

    let refused = dofs(base, &["validate-system"]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.failed_checks(), ["auth"], "{}", refused.stdout);
    let validated = dofs(base, &["validate-system", "--api-key", operator_key]);
    assert_eq!(validated.code, 0, "{}", validated.stdout);
    let tested = dofs(
        base,
        &[
            "test-system",
            "--api-key",
            operator_key,
            "--lifecycle-orders",
            "10",
        ],
    );
    assert_eq!(tested.code, 0, "{}", tested.stdout);
}
