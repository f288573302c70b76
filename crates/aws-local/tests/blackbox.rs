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
//! Needs `DOFS_MOTO_ENDPOINT` and the Lambda binaries beside this test's
//! binary (`cargo build -p dofs-lambdas --bins`); scripts/test-aws.sh does
//! both and runs these tests, which a plain `cargo test` ignores, with
//! `--include-ignored` and `DOFS_REQUIRE_EMULATOR=1`. Run by hand without the
//! prerequisites, they print SKIP, unless `DOFS_REQUIRE_EMULATOR=1`. The stack's own log and the functions' logs
//! are kept under `$TMPDIR/dofs-blackbox-aws/<prefix>/` when a test fails.

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
        .arg("--log-dir")
        .arg(&logs)
        .args(["--backoff-base-ms", "0", "--backoff-max-ms", "0"])
        .args(["--dlq-interval-ms", "300"])
        .args(extra);
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
