//! The black-box API tests of `crates/blackbox` (the same ones `dofs serve`
//! passes, `crates/cli/tests/api.rs`), run against the local AWS stack: the
//! real `dofs-local-aws` binary on moto server, the real Lambda binaries,
//! HTTP like a user. Each test gets its own tables, queues and functions (a
//! random name prefix); a restart stops the stack and starts it again on the
//! same tables and queues.
//!
//! Not run here, because they are about `dofs serve` itself: the SIGTERM and
//! restart test (the local stack keeps Step Functions executions in memory,
//! so an execution cut by a stop is lost, where AWS keeps it), the bad
//! configuration value (`dofs serve`'s config file and variables). The shared
//! API keys test runs here too, on a stack whose API Gateway stand-in holds a
//! client key and an operator key: the gateway checks the key, `api_handler`
//! tells an operator key from a client key by the key id in the request
//! context, as on AWS.
//!
//! Two tests are about the AWS shape alone:
//! `metrics_are_true_for_the_whole_fleet_of_functions` sends orders through
//! several `api_handler` and `fulfill_order` instances and compares what
//! `GET /metrics` serves (CloudWatch's sums, DynamoDB, SQS) with what was
//! sent, what the store holds and what the DLQ holds;
//! `the_dashboard_works_under_the_stage_path_with_its_files_keyless_and_its_data_keyed`
//! opens the dashboard under the stage, as API Gateway serves it (the other
//! tests use the stand-in's paths without the stage), and in a real browser
//! too (Chromium from scripts/setup-browser.sh: SKIP without it, a failure
//! under `CI=true`).
//!
//! Needs `DOFS_MOTO_ENDPOINT` and the Lambda binaries beside this test's
//! binary (`cargo build -p dofs-lambdas --bins`); scripts/test-aws.sh does
//! both and runs these tests, which a plain `cargo test` ignores, with
//! `--include-ignored` and `DOFS_REQUIRE_EMULATOR=1`. Run by hand without the
//! prerequisites, they print SKIP, unless `DOFS_REQUIRE_EMULATOR=1`. The stack's own log and the functions' logs
//! are kept under `$TMPDIR/dofs-blackbox-aws/<prefix>/` when a test fails.

use dofs_blackbox::browser::Browser;
use dofs_blackbox::{Settings, Target};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variables of `Settings::env` and others the stack reads, cleared so
/// that only the test's settings reach it.
const STACK_VARIABLES: [&str; 8] = [
    "DOFS_FULFILLMENT_SUCCESS_RATE",
    "DOFS_FULFILLMENT_SEED",
    "DOFS_FULFILLMENT_MODE",
    "DOFS_FULFILLMENT_HTTP_URL",
    "DOFS_FULFILLMENT_HTTP_SECRET",
    "DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER",
    "DOFS_FULFILLMENT_HTTP_TIMEOUT_MS",
    "DOFS_FULFILLMENT_HTTP_CONCURRENCY",
];

/// A running `dofs-local-aws`, and what it needs to start again.
struct Stack {
    base: String,
    child: Child,
    endpoint: String,
    prefix: String,
    log_dir: PathBuf,
    starts: u32,
    keyed: bool,
    /// More flags for `dofs-local-aws`.
    extra: Vec<String>,
    /// How many orders the bulk test sends.
    bulk: usize,
    /// Keep the logs whatever happens (the test reads and removes them).
    keep_logs: bool,
}

fn required() -> bool {
    std::env::var("DOFS_REQUIRE_EMULATOR").as_deref() == Ok("1")
}

/// Starts a stack on fresh names, or `None` (SKIP) without the prerequisites.
fn start(settings: &Settings) -> Option<Stack> {
    start_with(settings, false)
}

/// [`start`], with the shared test's client and operator keys when `keyed`.
fn start_with(settings: &Settings, keyed: bool) -> Option<Stack> {
    start_stack(settings, keyed, Vec::new())
}

/// [`start`], with `extra` flags for `dofs-local-aws`.
fn start_stack(settings: &Settings, keyed: bool, extra: Vec<String>) -> Option<Stack> {
    let Ok(endpoint) = std::env::var("DOFS_MOTO_ENDPOINT") else {
        assert!(
            !required(),
            "DOFS_MOTO_ENDPOINT is not set and DOFS_REQUIRE_EMULATOR=1"
        );
        eprintln!("SKIP: DOFS_MOTO_ENDPOINT is not set (run scripts/test-aws.sh)");
        return None;
    };
    let dir = exe().parent().map(PathBuf::from).unwrap_or_default();
    if !dir.join("api_handler").is_file() {
        assert!(
            !required(),
            "no Lambda binaries in {}: cargo build -p dofs-lambdas --bins",
            dir.display()
        );
        eprintln!(
            "SKIP: no Lambda binaries in {} (cargo build -p dofs-lambdas --bins)",
            dir.display()
        );
        return None;
    }
    let prefix = format!("bb{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let log_dir = std::env::temp_dir().join("dofs-blackbox-aws").join(&prefix);
    std::fs::create_dir_all(&log_dir).expect("log directory");
    eprintln!("the stack's logs: {}", log_dir.display());
    let (child, base) = spawn(&endpoint, &prefix, &log_dir, 0, settings, keyed, &extra);
    Some(Stack {
        base,
        child,
        endpoint,
        prefix,
        log_dir,
        starts: 1,
        keyed,
        extra,
        bulk: 300,
        keep_logs: false,
    })
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dofs-local-aws"))
}

/// Runs the stack on `prefix`'s tables and queues; answers it and its base URL.
fn spawn(
    endpoint: &str,
    prefix: &str,
    log_dir: &std::path::Path,
    start: u32,
    settings: &Settings,
    keyed: bool,
    extra: &[String],
) -> (Child, String) {
    let logs = log_dir.join(format!("start-{start}"));
    let stderr = std::fs::File::create(log_dir.join(format!("stack-{start}.log")))
        .expect("the stack's log file");
    let mut cmd = Command::new(exe());
    cmd.args(["--bind", "127.0.0.1:0", "--aws-endpoint", endpoint])
        .args(["--prefix", prefix])
        // The functions' DOFS_ENVIRONMENT, the Environment dimension of their
        // CloudWatch metrics: one per stack, as tests share one moto.
        .args(["--env", prefix])
        .arg("--log-dir")
        .arg(&logs)
        .args(["--backoff-base-ms", "0", "--backoff-max-ms", "0"]);
    // dlq_processor every 300 ms unless the test sets its own interval.
    if !extra.iter().any(|a| a == "--dlq-interval-ms") {
        cmd.args(["--dlq-interval-ms", "300"]);
    }
    cmd.args(extra);
    // The settings' DOFS_* variables, which the stack gives its functions
    // (events.webhook_urls and events.secret are dofs serve's: here events
    // go to EventBridge, and the stack ignores them).
    for name in STACK_VARIABLES {
        cmd.env_remove(name);
    }
    cmd.envs(settings.env());
    cmd.env_remove("RUST_LOG").stderr(Stdio::from(stderr));
    cmd.env_remove("DOFS_LOCAL_API_KEYS")
        .env_remove("DOFS_LOCAL_OPERATOR_KEYS");
    if keyed {
        cmd.env("DOFS_LOCAL_API_KEYS", dofs_blackbox::tests::SUBMIT_KEY)
            .env(
                "DOFS_LOCAL_OPERATOR_KEYS",
                dofs_blackbox::tests::OPERATOR_KEY,
            );
    }
    let (child, base) = dofs_blackbox::spawn_listening(&mut cmd, "dofs-local-aws listening on ");
    let base = base.unwrap_or_else(|line| {
        panic!(
            "unexpected first line {line:?}; see {}",
            log_dir.join(format!("stack-{start}.log")).display()
        )
    });
    (child, base)
}

impl Stack {
    /// SIGTERM, so that the stack finishes what its pollers hold and stops
    /// its function instances; SIGKILL after 30 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
        // Logs are kept only for a failed test.
        if !std::thread::panicking() && !self.keep_logs {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

impl Target for Stack {
    fn base(&self) -> String {
        self.base.clone()
    }

    fn restart(&mut self, settings: &Settings) {
        self.stop();
        let (child, base) = spawn(
            &self.endpoint,
            &self.prefix,
            &self.log_dir,
            self.starts,
            settings,
            self.keyed,
            &self.extra,
        );
        self.child = child;
        self.base = base;
        self.starts += 1;
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(90)
    }

    fn bulk_orders(&self) -> usize {
        self.bulk
    }

    /// The stack's and its functions' log lines naming `id` (at most 50).
    fn logged_about(&self, id: &str) -> Vec<String> {
        let mut dirs = vec![self.log_dir.clone()];
        let mut lines = Vec::new();
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if path.is_dir() {
                    dirs.push(path);
                } else if let Ok(text) = std::fs::read_to_string(&path) {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    lines.extend(
                        text.lines()
                            .filter(|l| l.contains(id))
                            .map(|l| format!("{name}: {l}")),
                    );
                }
            }
        }
        lines.truncate(50);
        lines
    }
}

dofs_blackbox::suite!(
    start,
    #[ignore = "needs moto and the Lambda binaries: scripts/test-aws.sh runs it"]
);

#[tokio::test]
#[ignore = "needs moto and the Lambda binaries: scripts/test-aws.sh runs it"]
async fn api_keys_are_required_and_operator_routes_need_an_operator_key() {
    let Some(stack) = start_with(&Settings::default(), true) else {
        return;
    };
    dofs_blackbox::tests::api_keys_are_required_and_operator_routes_need_an_operator_key(
        &stack.base,
    )
    .await;
}

/// Each message's deliveries the throttled stack drops before fulfill_order runs.
const DROPPED: u32 = 2;
/// Orders the throttled stack's bulk test sends.
const THROTTLED_ORDERS: usize = 200;

/// The log directory of the last throttled stack started.
static THROTTLED_LOGS: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// A stack whose event source mapping drops the first [`DROPPED`]
/// deliveries of every message, as a throttled fulfill_order does.
fn start_throttled(settings: &Settings) -> Option<Stack> {
    let extra = vec!["--drop-first-deliveries".to_owned(), DROPPED.to_string()];
    let mut stack = start_stack(settings, false, extra)?;
    stack.bulk = THROTTLED_ORDERS;
    stack.keep_logs = true;
    *THROTTLED_LOGS.lock().expect("lock") = Some(stack.log_dir.clone());
    Some(stack)
}

/// Item 4 of issue 17: SQS counts every receive, a throttled delivery
/// included, but "3 attempts" means 3 attempts that ran. With the first two
/// deliveries of every message dropped before the function runs, orders with
/// a fixed seed still end exactly as the seed predicts: fulfilled at the
/// attempt the seed says (a later one included), or FAILED after exactly
/// three attempts with a failed-orders row and a dead letter. Counting
/// receives, every order would have had its "third attempt" at its first
/// real one. The stack's log proves the deliveries were dropped.
#[tokio::test]
#[ignore = "needs moto and the Lambda binaries: scripts/test-aws.sh runs it"]
async fn throttled_deliveries_cost_no_attempt_and_orders_end_as_the_seed_predicts() {
    dofs_blackbox::tests::bulk_orders_with_a_fixed_seed_end_exactly_as_the_seed_predicts(
        start_throttled,
    )
    .await;
    let Some(log_dir) = THROTTLED_LOGS.lock().expect("lock").take() else {
        return;
    };
    let mut dropped = 0;
    for entry in std::fs::read_dir(&log_dir).expect("the stack's logs") {
        let path = entry.expect("a log").path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).expect("a stack log");
            dropped += text
                .lines()
                .filter(|l| l.contains("delivery dropped before fulfill_order ran"))
                .count();
        }
    }
    assert!(
        dropped >= DROPPED as usize * THROTTLED_ORDERS,
        "{dropped} deliveries dropped, expected at least {} (logs in {})",
        DROPPED as usize * THROTTLED_ORDERS,
        log_dir.display()
    );
    let _ = std::fs::remove_dir_all(&log_dir);
}

/// The samples of a Prometheus text answer, by series (`name{labels}`).
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs moto and the Lambda binaries: scripts/test-aws.sh runs it"]
async fn metrics_are_true_for_the_whole_fleet_of_functions() {
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    const SEED: u64 = 16;
    let settings = Settings {
        success_rate: 0.5,
        seed: Some(SEED),
        ..Settings::default()
    };
    let Some(stack) = start(&settings) else {
        return;
    };
    let app = dofs_blackbox::Sut::new(stack);

    // 40 valid orders from 4 clients at once, and one more sent three times
    // with the same idempotency key (the two replays are not new orders).
    const VALID: usize = 40;
    let mut sends = tokio::task::JoinSet::new();
    for client in 0..4 {
        let (c, url) = (app.client.clone(), app.url("/order"));
        sends.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..VALID / 4 {
                let r = c
                    .post(&url)
                    .json(&dofs_blackbox::seed_order())
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status().as_u16(), 202, "client {client}");
                let v: Value = r.json().await.expect("json");
                ids.push(v["orderId"].as_str().expect("id").to_owned());
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = sends.join_next().await {
        ids.extend(r.expect("client"));
    }
    let mut first_keyed = None;
    for attempt in 0..3 {
        let r = app
            .client
            .post(app.url("/order"))
            .header("Idempotency-Key", "fleet-metrics-1")
            .json(&dofs_blackbox::seed_order())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 202);
        let replayed = r.headers().get("idempotent-replayed").is_some();
        assert_eq!(replayed, attempt > 0, "attempt {attempt}");
        let v: Value = r.json().await.expect("json");
        let id = v["orderId"].as_str().expect("id").to_owned();
        assert_eq!(first_keyed.get_or_insert(id.clone()), &id);
    }
    ids.extend(first_keyed);
    assert_eq!(ids.len(), VALID + 1);

    // Rejected for known reasons.
    let rejected = [
        ("MalformedJson", 3),
        ("ValidationError", 4),
        ("UnsupportedMediaType", 2),
    ];
    for (reason, n) in rejected {
        for _ in 0..n {
            let request = app.client.post(app.url("/order"));
            let request = match reason {
                "MalformedJson" => request
                    .header("content-type", "application/json")
                    .body("{\"customerId\": "),
                "ValidationError" => request.json(&json!({"customerId": "nobody", "productId": "PROD-2001", "quantity": 0, "price": 1})),
                _ => request
                    .header("content-type", "text/plain")
                    .body(dofs_blackbox::seed_order().to_string()),
            };
            let r = request.send().await.expect("post");
            let v: Value = r.json().await.expect("json");
            assert_eq!(v["error"], reason, "{v}");
        }
    }

    let orders = app.wait_all_terminal(&ids, app.target.patience() * 2).await;
    let count = |status: &str| orders.iter().filter(|o| o["status"] == status).count();
    let (fulfilled, failed) = (count("FULFILLED"), count("FAILED"));
    assert_eq!(fulfilled + failed, ids.len());
    assert!(
        failed > 0,
        "the seed fails some orders, so the DLQ is not empty"
    );
    let attempts: u64 = orders.iter().filter_map(|o| o["attempts"].as_u64()).sum();
    // The dead letters of the FAILED orders wait in the DLQ.
    app.wait_items("/dlq?limit=500", failed, app.target.patience())
        .await;

    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut expect = |series: &str, v: usize| expected.insert(series.to_owned(), v as f64);
    expect("dofs_orders_accepted_total", ids.len());
    for (reason, n) in rejected {
        expect(
            &format!("dofs_orders_rejected_total{{reason=\"{reason}\"}}"),
            n,
        );
    }
    for status in ["PENDING", "PROCESSING", "CANCELLED"] {
        expect(&format!("dofs_orders{{status=\"{status}\"}}"), 0);
    }
    expect("dofs_orders{status=\"FULFILLED\"}", fulfilled);
    expect("dofs_orders{status=\"FAILED\"}", failed);
    expect(
        "dofs_fulfillment_attempts_total{outcome=\"success\"}",
        fulfilled,
    );
    expect(
        "dofs_fulfillment_attempts_total{outcome=\"failure\"}",
        attempts as usize - fulfilled,
    );
    expect("dofs_queue_messages{queue=\"dlq\"}", failed);
    expect("dofs_queue_messages{queue=\"orders\"}", 0);
    expect(
        "dofs_http_requests_total{method=\"POST\",route=\"/order\",status=\"202\"}",
        ids.len() + 2,
    );
    expect(
        "dofs_http_requests_total{method=\"POST\",route=\"/order\",status=\"400\"}",
        7,
    );
    expect(
        "dofs_http_requests_total{method=\"POST\",route=\"/order\",status=\"415\"}",
        2,
    );

    // CloudWatch adds up what every instance published; the last batch's
    // counts may still be on their way, so the scrape is repeated until it
    // agrees or the patience runs out.
    let started = Instant::now();
    let (text, served) = loop {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text");
        let served = samples(&text);
        let agrees = expected.iter().all(|(k, v)| served.get(k) == Some(v));
        if agrees || started.elapsed() > app.target.patience() {
            break (text, served);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (series, value) in &expected {
        assert_eq!(served.get(series), Some(value), "{series} in:\n{text}");
    }
    eprintln!("fleet metrics as served: {expected:?}");
    let reasons: Vec<&String> = served
        .keys()
        .filter(|k| k.starts_with("dofs_orders_rejected_total"))
        .collect();
    assert_eq!(
        reasons.len(),
        rejected.len(),
        "only the reasons sent: {reasons:?}"
    );
    // Nothing that would be one instance's view under the contract's name.
    for absent in ["dofs_http_request_duration_seconds", "dofs_alerts_firing"] {
        assert!(
            !text.contains(absent),
            "{absent} is not served on AWS:\n{text}"
        );
    }

    // The orders went through more than one api_handler instance, so no one
    // instance's counters could have answered this.
    let logs = app.target.log_dir.join("start-0");
    let serving = (0..8)
        .filter(|i| {
            std::fs::read_to_string(logs.join(format!("api_handler-{i}.log")))
                .is_ok_and(|l| l.contains("order accepted"))
        })
        .count();
    assert!(
        serving > 1,
        "{serving} api_handler instance(s) accepted orders"
    );
    let fulfilling = (0..8)
        .filter(|i| {
            std::fs::read_to_string(logs.join(format!("fulfill_order-{i}.log")))
                .is_ok_and(|l| l.contains("message handled") || l.contains("attempt failed"))
        })
        .count();
    assert!(
        fulfilling > 1,
        "{fulfilling} fulfill_order instance(s) made attempts"
    );
}

/// The `src` and `href` values of `html`'s tags, with each tag's name
/// (comments left out): enough for the dashboard's page, whose values are
/// double-quoted.
fn tag_urls(html: &str) -> Vec<(String, String)> {
    let mut text = html.to_owned();
    while let Some(start) = text.find("<!--") {
        let end = text[start..]
            .find("-->")
            .map_or(text.len(), |e| start + e + 3);
        text.replace_range(start..end, "");
    }
    let mut found = Vec::new();
    for tag in text.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        let name = tag
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        for attribute in [" src=\"", " href=\""] {
            let mut rest = tag;
            while let Some(i) = rest.find(attribute) {
                rest = &rest[i + attribute.len()..];
                let value = rest.split('"').next().unwrap_or_default();
                found.push((name.clone(), value.to_owned()));
            }
        }
    }
    found
}

/// What the dashboard's script requests, as written in it: the first
/// argument of each `api(...)` call and each listing's `path:` (listings
/// are requested as `{path}?limit=15`), and whether the call sends a body.
/// `${...}` parts are left in; a literal that starts with one (the listing
/// call itself) is left out, its paths being the `path:` ones.
fn script_requests(js: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    for (marker, quotes, suffix) in [("api(", "'`", ""), ("path: ", "'", "?limit=15")] {
        let mut rest = js;
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            let Some(quote) = rest.chars().next().filter(|c| quotes.contains(*c)) else {
                continue;
            };
            let Some(end) = rest[1..].find(quote) else {
                break;
            };
            let literal = &rest[1..1 + end];
            // `api(path, { body })`; a listing's `path: '...',` sends none.
            let sends_body = marker == "api(" && rest[2 + end..].trim_start().starts_with(',');
            if !literal.starts_with("${") {
                found.push((format!("{literal}{suffix}"), sends_body));
            }
        }
    }
    found
}

/// A request of [`script_requests`] with its `${...}` parts given values for
/// `order` and its execution (by what they name, as the script does).
fn fill_in(literal: &str, order: &str, execution: &str) -> String {
    let mut out = String::new();
    let mut rest = literal;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let mut depth = 0;
        let mut end = rest.len();
        for (j, c) in rest[i + 1..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => {
                    end = i + 1 + j;
                    break;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        let expression = &rest[i + 2..end];
        if expression.contains("URLSearchParams") {
            out.push_str(&format!("orderId={order}"));
        } else if expression.contains("executionId") {
            out.push_str(execution);
        } else if expression.contains("orderId") {
            out.push_str(order);
        } else {
            panic!("no value for ${{{expression}}} in {literal}");
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// Item 5 of issue 17: on AWS the API, and so the dashboard, is served under
/// the stage (`https://{api}/{stage}`, Terraform's `api_url`), and API
/// Gateway refuses what is not under it. Here the dashboard is opened through
/// the stage, without an API key, as `/{stage}` (which `api_handler` sends to
/// `/{stage}/`) and as `/{stage}/`; every file the page refers to and every
/// request its script makes is resolved against the page's URL as a browser
/// does (`Url::join`) and must stay under `/{stage}/`; the files answer 200
/// without a key, the data 200 with the client key (the dashboard sends the
/// key kept in the browser) and 401 without. Then a real browser
/// ([`Browser`], the test kit's) opens `/{stage}` with
/// the key stored, shows live numbers and an order's execution, and every
/// URL it loaded is under the stage.
#[tokio::test]
#[ignore = "needs moto and the Lambda binaries: scripts/test-aws.sh runs it"]
async fn the_dashboard_works_under_the_stage_path_with_its_files_keyless_and_its_data_keyed() {
    use dofs_blackbox::tests::{OPERATOR_KEY, SUBMIT_KEY};
    use reqwest::Url;
    use serde_json::Value;

    let Some(stack) = start_with(&Settings::default(), true) else {
        return;
    };
    // The stage is the environment, `--env`: the prefix here.
    let stage = stack.prefix.clone();
    let under_stage = format!("/{stage}/");
    let root = Url::parse(&stack.base).expect("the stack's URL");
    let stage_root = root.join(&under_stage).expect("the stage's URL");
    let http = dofs_blackbox::http_client();

    // An order, so that there is something to show.
    let r = http
        .post(stage_root.join("order").expect("url"))
        .header("x-api-key", SUBMIT_KEY)
        .json(&dofs_blackbox::seed_order())
        .send()
        .await
        .expect("POST order");
    assert_eq!(r.status().as_u16(), 202);
    let accepted: Value = r.json().await.expect("json");
    let order = accepted["orderId"].as_str().expect("orderId").to_owned();
    let execution = accepted["executionArn"]
        .as_str()
        .and_then(|arn| arn.rsplit(':').next())
        .expect("executionArn")
        .to_owned();

    // The page, keyless, at the stage's root with and without the slash.
    let mut page = None;
    for opened in [format!("/{stage}"), under_stage.clone()] {
        let r = http
            .get(root.join(&opened).expect("url"))
            .send()
            .await
            .expect("GET the page");
        assert_eq!(r.status().as_u16(), 200, "GET {opened} without a key");
        assert_eq!(
            r.url().path(),
            under_stage,
            "GET {opened} ends at the page under the stage"
        );
        let content_type = r.headers()["content-type"]
            .to_str()
            .expect("type")
            .to_owned();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        page = Some((r.url().clone(), r.text().await.expect("the page")));
    }
    let (page_url, html) = page.expect("the page");

    // Every file the page refers to: under the stage, 200 without a key.
    let mut script = None;
    let mut files = 0;
    for (tag, value) in tag_urls(&html) {
        if value.starts_with("data:") {
            continue;
        }
        let url = page_url.join(&value).expect("a URL");
        assert!(
            url.path().starts_with(&under_stage),
            "<{tag}> {value:?} resolves to {url}, outside the stage {under_stage}"
        );
        if tag == "a" {
            // A link, not part of the page (/metrics needs a key).
            continue;
        }
        let r = http.get(url.clone()).send().await.expect("GET a file");
        assert_eq!(r.status().as_u16(), 200, "<{tag}> {url} without a key");
        files += 1;
        if tag == "script" {
            script = Some(r.text().await.expect("the script"));
        }
    }
    assert!(files >= 2, "the stylesheet and the script: {html}");
    let script = script.expect("the page's script");

    // Every request of the script: under the stage; the data 200 with the
    // client key and 401 without (the gateway's check), the cancel with an
    // operator key through to api_handler (200, or 409 once the order is
    // past cancelling).
    let requests = script_requests(&script);
    for route in [
        "stats",
        "alerts",
        "orders?",
        "failed-orders?",
        "executions/",
        "events?",
    ] {
        assert!(
            requests
                .iter()
                .any(|(r, _)| r.trim_start_matches('/').starts_with(route)),
            "the script requests {route}: {requests:?}"
        );
    }
    for (literal, sends_body) in &requests {
        let relative = fill_in(literal, &order, &execution);
        let url = page_url.join(&relative).expect("a URL");
        assert!(
            url.path().starts_with(&under_stage),
            "the script's {literal:?} resolves to {url}, outside the stage {under_stage}"
        );
        if *sends_body {
            let r = http
                .post(url.clone())
                .header("x-api-key", OPERATOR_KEY)
                .json(&serde_json::json!({}))
                .send()
                .await
                .expect("POST");
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            assert!(matches!(status, 200 | 409), "POST {url}: {status} {body}");
            continue;
        }
        let r = http
            .get(url.clone())
            .send()
            .await
            .expect("GET without a key");
        assert_eq!(r.status().as_u16(), 401, "GET {url} without a key");
        let r = http
            .get(url.clone())
            .header("x-api-key", SUBMIT_KEY)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        // The fleet serves no workflow graph: the page draws none on its 404.
        let no_graph = status == 404
            && literal == "workflow"
            && body["message"]
                .as_str()
                .is_some_and(|m| m.contains("no workflow graph"));
        assert!(status == 200 || no_graph, "GET {url}: {status} {body}");
    }

    if let Some((chromium, driver)) = Browser::binaries("the browser part of the stage test") {
        browser_through_the_stage(&chromium, &driver, &root, &stage).await
    }
}

/// The browser part of the stage test: the page opened at `/{stage}` with
/// the client key stored, as a user who gave it once.
async fn browser_through_the_stage(
    chromium: &std::path::Path,
    driver: &std::path::Path,
    root: &reqwest::Url,
    stage: &str,
) {
    let browser = Browser::start(chromium, driver).await;
    let under_stage = format!("/{stage}/");
    // The key, stored for the origin before the page asks (so that no request fails).
    browser
        .goto(root.join(&format!("{stage}/health")).expect("url").as_str())
        .await;
    browser
        .exec(&format!(
            "localStorage.setItem('dofs.apiKey', '{}'); return true;",
            dofs_blackbox::tests::SUBMIT_KEY
        ))
        .await;
    // Read, so left out of the page's log: that page's own load (a JSON
    // document, for which Chromium asks for `/favicon.ico`, keyed here).
    browser.severe_log().await;
    browser.goto(root.join(stage).expect("url").as_str()).await;
    let path = browser.exec("return location.pathname").await;
    assert_eq!(
        path, under_stage,
        "the browser ends at the page under the stage"
    );
    browser
        .wait_for(
            "live numbers",
            "return document.getElementById('live').textContent === 'live'
                && document.getElementById('count-total').textContent !== '–'
                && Number(document.getElementById('count-total').textContent) >= 1",
        )
        .await;
    browser
        .exec("document.querySelector('#orders button[data-order]').click(); return true;")
        .await;
    let state = browser
        .wait_for(
            "the order's execution view",
            "const s = document.getElementById('execution').dataset.state;
             return s === 'ready' || s === 'error' ? s : null;",
        )
        .await;
    let summary = browser
        .exec("return document.getElementById('execution-summary').textContent")
        .await;
    assert_eq!(state, "ready", "the execution view: {summary}");
    let loaded = browser
        .exec(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))",
        )
        .await;
    let loaded: Vec<String> = loaded
        .as_array()
        .expect("URLs")
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .filter(|u| u.starts_with("http"))
        .collect();
    for url in &loaded {
        let url = reqwest::Url::parse(url).expect("a URL");
        assert!(
            url.path().starts_with(&under_stage),
            "the browser loaded {url}, outside the stage {under_stage}: {loaded:?}"
        );
    }
    for part in [
        "assets/app.css",
        "assets/app.js",
        "stats",
        "orders?",
        "executions/",
        "events?",
    ] {
        assert!(
            loaded
                .iter()
                .any(|u| u.contains(&format!("{under_stage}{part}"))),
            "the browser loaded {under_stage}{part}: {loaded:?}"
        );
    }
    let errors = browser.exec("return window.__dofsErrors").await;
    assert_eq!(errors, serde_json::json!([]), "errors seen by the page");
    // Chromium logs every failed load; the only one expected is the 404 the
    // fleet answers to `workflow` (no graph served on AWS), which the page expects.
    let severe: Vec<_> = browser
        .severe_log()
        .await
        .into_iter()
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            !(m.contains(&format!("{under_stage}workflow")) && m.contains("404"))
        })
        .collect();
    assert!(severe.is_empty(), "the browser's console: {severe:?}");
    eprintln!("the browser loaded, all under {under_stage}: {loaded:?}");
    browser.quit().await;
}

/// api_handler's timeout in the bounded-DLQ stack: it answers a second
/// before its deadline, and a DLQ action stops working after three quarters
/// of the time left (5.25 s here), keeping 1.75 s for moto's slowest calls.
const SHORT_API_TIMEOUT_MS: u64 = 8_000;
/// Dead letters put on the DLQ: more than one short request can move on
/// moto, which takes 10 to 50 ms per dead letter.
const DEAD_LETTERS: usize = 700;

/// Puts `n` dead letters (bodies naming orders that do not exist) straight
/// on the stack's DLQ.
async fn fill_dlq(stack_endpoint: &str, prefix: &str, n: usize) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(stack_endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let names = dofs_aws::setup::ResourceNames::with_prefix(prefix);
    let url = sqs
        .get_queue_url()
        .queue_name(&names.dlq)
        .send()
        .await
        .expect("the DLQ's URL")
        .queue_url
        .expect("a URL");
    for chunk in 0..n.div_ceil(10) {
        let mut batch = sqs.send_message_batch().queue_url(&url);
        for i in chunk * 10..(chunk * 10 + 10).min(n) {
            let body = dofs_core::service::OrderMessage {
                order_id: dofs_core::OrderId::generate(),
            }
            .to_body();
            batch = batch.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .expect("an entry"),
            );
        }
        let sent = batch.send().await.expect("send a batch");
        assert!(sent.failed.is_empty(), "{:?}", sent.failed);
    }
}

/// Calls the DLQ action at `path` until it says no more remain, checking
/// that each call answers 200 (it stopped before the request's deadline),
/// that no dead letter is counted twice, and that `more: false` comes only
/// when all `total` are done (dead letters the dlq_processor holds count as
/// remaining). Returns each call's answer: what it did (`field`), whether it
/// said more remained, and how long it took.
async fn drain_dlq(
    app: &dofs_blackbox::Sut<Stack>,
    path: &str,
    field: &str,
    total: u64,
) -> Vec<(u64, bool, Duration)> {
    let mut calls = Vec::new();
    for _ in 0..300 {
        let sent = std::time::Instant::now();
        let (status, body) = app.post_json(path).await;
        let took = sent.elapsed();
        assert_eq!(
            status, 200,
            "{path} answers in time after {calls:?}: {body} in {took:?}"
        );
        let done = body[field].as_u64().expect("a count");
        let more = body["more"].as_bool().expect("more");
        calls.push((done, more, took));
        let sum: u64 = calls.iter().map(|(n, _, _)| n).sum();
        assert!(sum <= total, "no dead letter twice: {calls:?}");
        if !more {
            assert_eq!(sum, total, "no more only when all are done: {calls:?}");
            return calls;
        }
    }
    panic!("{path} did not finish in 300 calls: {calls:?}");
}

/// Item 7 of issue 17 on the local AWS stack: with api_handler's timeout at
/// eight seconds and 700 dead letters, purge and redrive through API
/// Gateway each stop in time (200, never a 503 or a cut-off), say
/// `more: true`, and repeated calls handle every dead letter exactly once.
#[tokio::test]
#[ignore = "needs moto and the Lambda binaries: scripts/test-aws.sh runs it"]
async fn dlq_redrive_and_purge_stop_in_time_and_say_more_remains() {
    // dlq_processor on its AWS schedule (every minute), not the black-box
    // stack's 300 ms: its runs would hold the dead letters most of the time.
    let extra = vec![
        "--api-timeout-ms".to_owned(),
        SHORT_API_TIMEOUT_MS.to_string(),
        "--dlq-interval-ms".to_owned(),
        "60000".to_owned(),
    ];
    let Some(stack) = start_stack(&Settings::default(), false, extra) else {
        return;
    };
    let (endpoint, prefix) = (stack.endpoint.clone(), stack.prefix.clone());
    let app = dofs_blackbox::Sut::new(stack);

    for (path, field) in [("/dlq/purge", "purged"), ("/dlq/redrive", "moved")] {
        fill_dlq(&endpoint, &prefix, DEAD_LETTERS).await;
        let calls = drain_dlq(&app, path, field, DEAD_LETTERS as u64).await;
        eprintln!("{path}: each call's ({field}, more, time taken): {calls:?}");
        let (first, more, _) = calls[0];
        assert!(
            more && first < DEAD_LETTERS as u64,
            "the first call stopped before the end and said so: {calls:?}"
        );
    }
    let (_, dlq) = app.get_json("/dlq").await;
    assert_eq!(dlq["items"].as_array().map(Vec::len), Some(0), "{dlq}");
}
