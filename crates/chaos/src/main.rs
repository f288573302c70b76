//! `dofs-kill-campaign`: runs a load of orders from many concurrent clients
//! against `dofs serve`, kills the server again and again (SIGKILL at random
//! moments, and self-kills at the named fail points of the embedded runtime),
//! restarts it each time on the same data directory, and then checks the
//! contract's promise: every acknowledged order exists and is terminal in
//! time, one fulfillment per `FULFILLED` order, one failed-orders row per
//! `FAILED` order, no order seen moving backwards, `integrity_check` ok.
//!
//! It needs a `dofs` built with the `fail-points` feature:
//! `cargo build -p dofs-cli --features fail-points` (see `scripts/kill-campaign.sh`).
//! Exit status 0 when every check passed, 1 when one failed, 2 on a usage or
//! set-up error.

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The fail points of `dofs-embedded` (`src/failpoint.rs`), by name.
const FAIL_POINTS: [&str; 3] = ["after-order-commit", "after-receive", "after-dlq-move"];

#[derive(Parser, Debug)]
#[command(
    name = "dofs-kill-campaign",
    args_override_self = true,
    about = "Kill dofs serve repeatedly under load, then check that no acknowledged order was lost or fulfilled twice"
)]
struct Args {
    /// Orders to acknowledge (the load goes on until this many got a 202 and every kill is done).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Kills (SIGKILLs and fail points together).
    #[arg(long, default_value_t = 50)]
    kills: usize,
    /// Share of the kills done at fail points (each of the three at least once).
    #[arg(long, default_value_t = 0.4)]
    fail_point_share: f64,
    /// Seed of the kill plan, the kill moments and the fulfillment outcomes [default: from the clock].
    #[arg(long)]
    seed: Option<u64>,
    /// The `dofs` binary, built with `--features fail-points` [default: `dofs` next to this program].
    #[arg(long, value_name = "PATH")]
    dofs: Option<PathBuf>,
    /// Data directory [default: a new directory under the system temp dir, removed if every check passes].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// `queue.visibility_timeout_ms` of the server.
    #[arg(long, default_value_t = 1000)]
    visibility_timeout_ms: u64,
    /// `queue.max_receive_count` of the server.
    #[arg(long, default_value_t = 3)]
    max_receive_count: u32,
    /// Seconds allowed beyond visibility timeout × max receive count for every order to be terminal.
    #[arg(long, default_value_t = 20)]
    margin_s: u64,
    /// Seconds to wait for an armed fail point to be reached.
    #[arg(long, default_value_t = 60)]
    fail_point_timeout_s: u64,
}

/// SplitMix64: small, seedable, good enough to pick moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kill {
    /// SIGKILL from outside at a random moment.
    Random,
    /// The server kills itself at this fail point.
    Point(&'static str),
}

impl Kill {
    fn name(self) -> &'static str {
        match self {
            Kill::Random => "sigkill at a random moment",
            Kill::Point(p) => p,
        }
    }
}

/// The kill plan: fail-point kills cycling through the three points, the rest random, shuffled.
fn plan(kills: usize, share: f64, rng: &mut Rng) -> Vec<Kill> {
    let points = ((kills as f64 * share).round() as usize)
        .max(FAIL_POINTS.len())
        .min(kills);
    let mut plan: Vec<Kill> = (0..kills)
        .map(|i| {
            if i < points {
                Kill::Point(FAIL_POINTS[i % FAIL_POINTS.len()])
            } else {
                Kill::Random
            }
        })
        .collect();
    for i in (1..plan.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        plan.swap(i, j);
    }
    plan
}

/// A running (or just died) `dofs serve`.
struct Server {
    child: Child,
    base: Option<String>,
    /// The fail point the server reported before dying, if any.
    fail_point: Arc<Mutex<Option<String>>>,
    /// The last lines of its stderr, for diagnostics.
    log_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    fn spawn(dofs: &Path, data_dir: &Path, env: &[(String, String)]) -> anyhow::Result<Server> {
        let mut cmd = Command::new(dofs);
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("DOFS_FAIL_POINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", dofs.display()))?;
        let fail_point = Arc::new(Mutex::new(None));
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let (fail_point, log_tail) = (fail_point.clone(), log_tail.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("dofs fail point ") {
                        let name = rest.trim_end_matches(" hit").to_owned();
                        if let Ok(mut f) = fail_point.lock() {
                            *f = Some(name);
                        }
                    }
                    if let Ok(mut tail) = log_tail.lock() {
                        if tail.len() >= 20 {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            });
        }
        let mut base = None;
        if let Some(stdout) = child.stdout.take() {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                base = line
                    .trim()
                    .strip_prefix("dofs listening on ")
                    .map(str::to_owned);
            }
            // Keep draining stdout so the server never writes to a closed pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while matches!(reader.read_line(&mut sink), Ok(n) if n > 0) {
                    sink.clear();
                }
            });
        }
        Ok(Server {
            child,
            base,
            fail_point,
            log_tail,
        })
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not stopped within `grace`.
    fn terminate(&mut self, grace: Duration) -> bool {
        // SAFETY: kill(2) with a pid we own and a constant signal.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < grace {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.sigkill();
        false
    }

    fn reported(&self) -> Option<String> {
        // The stderr reader may lag the exit by a moment.
        for _ in 0..50 {
            if let Some(p) = self.fail_point.lock().ok().and_then(|f| f.clone()) {
                return Some(p);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn tail(&self) -> String {
        self.log_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

/// What the load, the sampler and the controller share.
struct Shared {
    base: RwLock<Option<String>>,
    acked: Mutex<Vec<String>>,
    acked_count: AtomicUsize,
    stop_load: AtomicBool,
    stop_sampler: AtomicBool,
    statuses: Mutex<HashMap<u16, usize>>,
    connect_errors: AtomicUsize,
    samples: AtomicUsize,
    backwards: Mutex<Vec<String>>,
}

impl Shared {
    fn base(&self) -> Option<String> {
        self.base.read().ok().and_then(|b| b.clone())
    }
    fn set_base(&self, base: Option<String>) {
        if let Ok(mut b) = self.base.write() {
            *b = base;
        }
    }
}

async fn client(index: usize, shared: Arc<Shared>) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let mut n: u64 = 0;
    while !shared.stop_load.load(Ordering::Relaxed) {
        let Some(base) = shared.base() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        n += 1;
        let body = format!(
            r#"{{"customerId":"CUST-{:04}","productId":"PROD-{:04}","quantity":{},"price":{}.{:02},"metadata":{{"source":"kill-campaign"}}}}"#,
            1000 + index,
            2000 + n % 50,
            1 + n % 5,
            1 + n % 90,
            n % 100
        );
        let sent = http
            .post(format!("{base}/order"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                if let Ok(mut s) = shared.statuses.lock() {
                    *s.entry(status).or_default() += 1;
                }
                if status == 202 {
                    let id = r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["orderId"].as_str().map(str::to_owned));
                    if let Some(id) = id {
                        if let Ok(mut a) = shared.acked.lock() {
                            a.push(id);
                        }
                        shared.acked_count.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Err(_) => {
                shared.connect_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Where an order is in its lifecycle, as the sampler saw it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    status: String,
}

fn is_terminal(status: &str) -> bool {
    status == "FULFILLED" || status == "FAILED"
}

/// Samples order statuses while the campaign runs and records any that moved
/// backwards in the lifecycle: a terminal status that changed (the campaign
/// runs no operator retry or redrive, the only ways out of `FAILED`).
/// `PENDING` and `PROCESSING` alternate legitimately between attempts.
async fn sampler(shared: Arc<Shared>, seed: u64, seen: Arc<Mutex<HashMap<String, Seen>>>) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut rng = Rng(seed ^ 0x5a5a);
    while !shared.stop_sampler.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(base) = shared.base() else { continue };
        let mut observed: Vec<(String, Seen)> = Vec::new();
        let picks: Vec<String> = match shared.acked.lock() {
            Ok(a) if !a.is_empty() => (0..16)
                .map(|_| a[rng.range(0, a.len() as u64 - 1) as usize].clone())
                .collect(),
            _ => Vec::new(),
        };
        for id in picks {
            let Ok(r) = http.get(format!("{base}/orders/{id}")).send().await else {
                break;
            };
            if r.status().as_u16() == 404 {
                if let Ok(mut b) = shared.backwards.lock() {
                    b.push(format!("acknowledged order {id} answered 404"));
                }
                continue;
            }
            if let Ok(v) = r.json::<Value>().await {
                if let Some(s) = seen_of(&v) {
                    observed.push((id, s));
                }
            }
        }
        if let Ok(r) = http.get(format!("{base}/orders?limit=100")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                for o in v["items"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(s)) = (o["orderId"].as_str(), seen_of(o)) {
                        observed.push((id.to_owned(), s));
                    }
                }
            }
        }
        let Ok(mut seen) = seen.lock() else { return };
        for (id, now) in observed {
            shared.samples.fetch_add(1, Ordering::Relaxed);
            if let Some(before) = seen.get(&id) {
                if let Some(why) = backwards(before, &now) {
                    if let Ok(mut b) = shared.backwards.lock() {
                        b.push(format!("order {id}: {why}"));
                    }
                }
            }
            seen.insert(id, now);
        }
    }
}

fn seen_of(order: &Value) -> Option<Seen> {
    Some(Seen {
        status: order["status"].as_str()?.to_owned(),
    })
}

fn backwards(before: &Seen, now: &Seen) -> Option<String> {
    if is_terminal(&before.status) && now.status != before.status {
        return Some(format!("{} then {}", before.status, now.status));
    }
    None
}

/// Outcome of the kill phase.
struct Kills {
    by_kind: HashMap<Kill, usize>,
    problems: Vec<String>,
    last_restart: Instant,
    server: Server,
}

fn server_env(args: &Args, seed: u64, arm: Option<String>) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "DOFS_QUEUE_VISIBILITY_TIMEOUT_MS".to_owned(),
            args.visibility_timeout_ms.to_string(),
        ),
        (
            "DOFS_QUEUE_MAX_RECEIVE_COUNT".to_owned(),
            args.max_receive_count.to_string(),
        ),
        ("DOFS_QUEUE_BACKOFF_BASE_MS".to_owned(), "5".to_owned()),
        ("DOFS_QUEUE_BACKOFF_MAX_MS".to_owned(), "20".to_owned()),
        ("DOFS_FULFILLMENT_DELAY_MS".to_owned(), "2".to_owned()),
        ("DOFS_FULFILLMENT_SEED".to_owned(), seed.to_string()),
    ];
    if let Some(spec) = arm {
        env.push(("DOFS_FAIL_POINT".to_owned(), spec));
    }
    env
}

/// The `DOFS_FAIL_POINT` value for the server that the kill `kind` ends.
fn arm(kind: Option<Kill>, pace: u64, rng: &mut Rng) -> Option<String> {
    match kind? {
        Kill::Random => None,
        Kill::Point(p @ "after-order-commit") => Some(format!("{p}@{}", rng.range(1, pace))),
        Kill::Point(p @ "after-receive") => Some(format!("{p}@{}", rng.range(1, pace / 16 + 1))),
        Kill::Point(p) => Some(format!("{p}@{}", rng.range(1, 2))),
    }
}

/// Runs the kill plan on this (blocking) thread while the clients load the server.
fn run_kills(
    args: &Args,
    dofs: &Path,
    data_dir: &Path,
    seed: u64,
    shared: &Shared,
) -> anyhow::Result<Kills> {
    let mut rng = Rng(seed);
    let plan = plan(args.kills, args.fail_point_share, &mut rng);
    let pace = (args.orders / (args.kills + 1)).max(1) as u64;
    let spawn = |kind: Option<Kill>, rng: &mut Rng| -> anyhow::Result<Server> {
        let spec = arm(kind, pace, rng);
        let s = Server::spawn(dofs, data_dir, &server_env(args, seed, spec))?;
        shared.set_base(s.base.clone());
        Ok(s)
    };
    let mut server = spawn(plan.first().copied(), &mut rng)?;
    let mut by_kind: HashMap<Kill, usize> = HashMap::new();
    let mut problems = Vec::new();
    let mut last_restart = Instant::now();
    for (i, kind) in plan.iter().enumerate() {
        match kind {
            Kill::Random => {
                // A random moment in this kill's share of the load.
                let target = (i as u64 + 1) * pace - rng.range(0, pace / 2);
                let waited = Instant::now();
                while (shared.acked_count.load(Ordering::Relaxed) as u64) < target
                    && waited.elapsed() < Duration::from_secs(120)
                    && !server.exited()
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                std::thread::sleep(Duration::from_millis(rng.range(0, 40)));
                if server.exited() {
                    problems.push(format!(
                        "the server died by itself before kill {} (a SIGKILL):\n{}",
                        i + 1,
                        server.tail()
                    ));
                }
                server.sigkill();
            }
            Kill::Point(point) => {
                let waited = Instant::now();
                while !server.exited()
                    && waited.elapsed() < Duration::from_secs(args.fail_point_timeout_s)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if !server.exited() {
                    problems.push(format!(
                        "fail point {point} was not reached within {} s (is dofs built with --features fail-points?)",
                        args.fail_point_timeout_s
                    ));
                    server.sigkill();
                } else {
                    let _ = server.child.wait();
                    match server.reported() {
                        Some(p) if p == *point => {}
                        other => problems.push(format!(
                            "kill {}: expected fail point {point}, the server reported {other:?}:\n{}",
                            i + 1,
                            server.tail()
                        )),
                    }
                }
            }
        }
        shared.set_base(None);
        *by_kind.entry(*kind).or_default() += 1;
        eprintln!(
            "kill {:>3}/{}: {:<26} acked {:>6}",
            i + 1,
            plan.len(),
            kind.name(),
            shared.acked_count.load(Ordering::Relaxed)
        );
        server = spawn(plan.get(i + 1).copied(), &mut rng)?;
        last_restart = Instant::now();
    }
    Ok(Kills {
        by_kind,
        problems,
        last_restart,
        server,
    })
}

/// Polls until no stored order is PENDING or PROCESSING; returns when that was seen.
async fn wait_all_terminal(base: &str, limit: Duration) -> Option<Instant> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let started = Instant::now();
    while started.elapsed() < limit {
        let mut open = 0;
        for status in ["PENDING", "PROCESSING"] {
            let page = http
                .get(format!("{base}/orders?status={status}&limit=1"))
                .send()
                .await;
            match page {
                Ok(r) => match r.json::<Value>().await {
                    Ok(v) => open += v["items"].as_array().map_or(1, |a| a.len()),
                    Err(_) => open += 1,
                },
                Err(_) => open += 1,
            }
        }
        if open == 0 {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

struct Check {
    name: String,
    ok: bool,
    detail: String,
}

fn check(checks: &mut Vec<Check>, name: &str, ok: bool, detail: String) {
    checks.push(Check {
        name: name.to_owned(),
        ok,
        detail,
    });
}

fn count(conn: &rusqlite::Connection, sql: &str) -> anyhow::Result<i64> {
    conn.query_row(sql, [], |r| r.get(0))
        .with_context(|| sql.to_owned())
}

fn file_checks(
    data_dir: &Path,
    acked: &[String],
    seen: &HashMap<String, Seen>,
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(data_dir.join("dofs.db"))?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    check(
        checks,
        "PRAGMA integrity_check = ok",
        integrity == "ok",
        integrity,
    );

    let mut st = conn.prepare("SELECT id, status FROM orders")?;
    let stored: HashMap<String, String> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    check(
        checks,
        "every acknowledged (202) order exists",
        missing.is_empty(),
        format!(
            "{} acknowledged, {} stored, {} missing{}",
            acked.len(),
            stored.len(),
            missing.len(),
            missing
                .first()
                .map(|m| format!(" (first: {m})"))
                .unwrap_or_default()
        ),
    );
    let unique: HashSet<&String> = acked.iter().collect();
    check(
        checks,
        "no order id acknowledged twice",
        unique.len() == acked.len(),
        format!("{} ids, {} distinct", acked.len(), unique.len()),
    );
    let open = stored.values().filter(|s| !is_terminal(s)).count();
    check(
        checks,
        "every stored order is terminal",
        open == 0,
        format!("{open} not terminal"),
    );
    let fulfilled = count(
        &conn,
        "SELECT COUNT(*) FROM orders WHERE status = 'FULFILLED'",
    )?;
    let effects = count(&conn, "SELECT COUNT(*) FROM fulfillments")?;
    let stray_effects = count(
        &conn,
        "SELECT COUNT(*) FROM fulfillments f LEFT JOIN orders o ON o.id = f.order_id \
         WHERE o.status IS NOT 'FULFILLED'",
    )?;
    check(
        checks,
        "fulfillment effects = FULFILLED orders",
        effects == fulfilled && stray_effects == 0,
        format!("{effects} effects, {fulfilled} FULFILLED, {stray_effects} effects of orders not FULFILLED"),
    );
    let failed = count(&conn, "SELECT COUNT(*) FROM orders WHERE status = 'FAILED'")?;
    let rows = count(&conn, "SELECT COUNT(*) FROM failed_orders")?;
    let distinct = count(&conn, "SELECT COUNT(DISTINCT order_id) FROM failed_orders")?;
    let stray_rows = count(
        &conn,
        "SELECT COUNT(*) FROM failed_orders f LEFT JOIN orders o ON o.id = f.order_id \
         WHERE o.status IS NOT 'FAILED'",
    )?;
    check(
        checks,
        "failed-orders rows = FAILED orders",
        rows == failed && distinct == rows && stray_rows == 0,
        format!("{rows} rows ({distinct} orders), {failed} FAILED, {stray_rows} rows of orders not FAILED"),
    );
    let running = count(
        &conn,
        "SELECT COUNT(*) FROM executions WHERE status = 'RUNNING'",
    )?;
    check(
        checks,
        "no workflow execution left RUNNING",
        running == 0,
        format!("{running} RUNNING"),
    );
    // The last status each sampled order showed must not be undone in the file.
    let undone: Vec<String> = seen
        .iter()
        .filter(|(id, s)| is_terminal(&s.status) && stored.get(*id) != Some(&s.status))
        .map(|(id, s)| format!("{id} was {} and is now {:?}", s.status, stored.get(id)))
        .collect();
    check(
        checks,
        "sampled terminal statuses are final in the file",
        undone.is_empty(),
        format!(
            "{} sampled orders, {} changed{}",
            seen.len(),
            undone.len(),
            undone
                .first()
                .map(|u| format!(" (first: {u})"))
                .unwrap_or_default()
        ),
    );
    Ok(())
}

fn default_dofs() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this program's path")?;
    let dir = me.parent().context("this program has no directory")?;
    Ok(dir.join("dofs"))
}

async fn campaign(args: Args) -> anyhow::Result<bool> {
    if args.kills == 0 || args.orders == 0 || args.clients == 0 {
        bail!("--orders, --clients and --kills must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.fail_point_share) {
        bail!("--fail-point-share must be from 0 to 1");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let dofs = match &args.dofs {
        Some(p) => p.clone(),
        None => default_dofs()?,
    };
    if !dofs.is_file() {
        bail!(
            "{} does not exist: build it with `cargo build -p dofs-cli --features fail-points` or pass --dofs",
            dofs.display()
        );
    }
    let (data_dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("dofs-kill-campaign-{}-{seed}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    println!(
        "kill campaign: seed {seed}, {} orders, {} clients, {} kills, dofs {}, data {}",
        args.orders,
        args.clients,
        args.kills,
        dofs.display(),
        data_dir.display()
    );

    let shared = Arc::new(Shared {
        base: RwLock::new(None),
        acked: Mutex::new(Vec::with_capacity(args.orders + 1024)),
        acked_count: AtomicUsize::new(0),
        stop_load: AtomicBool::new(false),
        stop_sampler: AtomicBool::new(false),
        statuses: Mutex::new(HashMap::new()),
        connect_errors: AtomicUsize::new(0),
        samples: AtomicUsize::new(0),
        backwards: Mutex::new(Vec::new()),
    });
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..args.clients {
        clients.push(tokio::spawn(client(i, shared.clone())));
    }
    let sampler_task = tokio::spawn(sampler(shared.clone(), seed, seen.clone()));

    let args = Arc::new(args);
    let kills = {
        let (args, shared, dofs, data_dir) =
            (args.clone(), shared.clone(), dofs.clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || run_kills(&args, &dofs, &data_dir, seed, &shared))
            .await
            .context("the kill thread panicked")??
    };
    let Kills {
        by_kind,
        mut problems,
        last_restart,
        mut server,
    } = kills;
    while shared.acked_count.load(Ordering::Relaxed) < args.orders {
        if server.exited() {
            problems.push(format!(
                "the server died after the last restart:\n{}",
                server.tail()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop_load.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let load_end = Instant::now();
    let load_time = load_end - started;

    let vt = Duration::from_millis(args.visibility_timeout_ms);
    let bound = vt * args.max_receive_count + Duration::from_secs(args.margin_s);
    let from = last_restart.max(load_end);
    let terminal_at = match &server.base {
        Some(base) => wait_all_terminal(base, bound + Duration::from_secs(60)).await,
        None => None,
    };
    shared.stop_sampler.store(true, Ordering::Relaxed);
    let _ = sampler_task.await;
    let stopped_cleanly = server.terminate(Duration::from_secs(30));

    let acked: Vec<String> = shared.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut checks = Vec::new();
    for p in &problems {
        check(&mut checks, "kill went as planned", false, p.clone());
    }
    let points_hit: Vec<String> = FAIL_POINTS
        .iter()
        .map(|p| format!("{p} {}", by_kind.get(&Kill::Point(p)).copied().unwrap_or(0)))
        .collect();
    check(
        &mut checks,
        "every fail point killed the server at least once",
        problems.is_empty()
            && FAIL_POINTS
                .iter()
                .all(|p| by_kind.get(&Kill::Point(p)).copied().unwrap_or(0) > 0),
        points_hit.join(", "),
    );
    check(
        &mut checks,
        "acknowledged at least --orders orders",
        acked.len() >= args.orders,
        format!("{} acknowledged", acked.len()),
    );
    let to_terminal = terminal_at.map(|t| t.saturating_duration_since(from));
    check(
        &mut checks,
        "every order terminal within visibility timeout × max receive count + margin",
        to_terminal.is_some_and(|d| d <= bound),
        match to_terminal {
            Some(d) => format!(
                "{:.2} s after the last restart and the end of the load (bound {:.1} s)",
                d.as_secs_f64(),
                bound.as_secs_f64()
            ),
            None => format!(
                "not all terminal within {:.1} s",
                (bound + Duration::from_secs(60)).as_secs_f64()
            ),
        },
    );
    let backwards = shared
        .backwards
        .lock()
        .map(|b| b.clone())
        .unwrap_or_default();
    check(
        &mut checks,
        "no order seen moving backwards",
        backwards.is_empty(),
        format!(
            "{} samples of {} orders, {} backwards{}",
            shared.samples.load(Ordering::Relaxed),
            seen.len(),
            backwards.len(),
            backwards
                .first()
                .map(|b| format!(" (first: {b})"))
                .unwrap_or_default()
        ),
    );
    check(
        &mut checks,
        "the last server stopped on SIGTERM",
        stopped_cleanly,
        String::new(),
    );
    file_checks(&data_dir, &acked, &seen, &mut checks)?;

    let statuses = shared
        .statuses
        .lock()
        .map(|s| {
            let mut v: Vec<_> = s.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            v.sort();
            v.join(", ")
        })
        .unwrap_or_default();
    println!();
    println!("== kill campaign summary (seed {seed}) ==");
    println!(
        "orders acknowledged   {} in {:.1} s ({:.0}/s) from {} clients; answers {statuses}; {} connection errors",
        acked.len(),
        load_time.as_secs_f64(),
        acked.len() as f64 / load_time.as_secs_f64().max(0.001),
        args.clients,
        shared.connect_errors.load(Ordering::Relaxed)
    );
    let random = by_kind.get(&Kill::Random).copied().unwrap_or(0);
    println!(
        "kills                 {} : {random} SIGKILL at random moments, fail points {}",
        by_kind.values().sum::<usize>(),
        points_hit.join(", ")
    );
    println!(
        "time to all-terminal  {}",
        to_terminal.map_or("never".to_owned(), |d| format!(
            "{:.2} s after the last restart and the end of the load ({:.2} s after the last restart)",
            d.as_secs_f64(),
            terminal_at
                .map(|t| t.saturating_duration_since(last_restart))
                .unwrap_or_default()
                .as_secs_f64()
        ))
    );
    let passed = checks.iter().filter(|c| c.ok).count();
    println!("checks                {passed}/{} passed", checks.len());
    for c in &checks {
        println!(
            "  [{}] {}{}",
            if c.ok { "ok" } else { "FAIL" },
            c.name,
            if c.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", c.detail)
            }
        );
    }
    let all_ok = passed == checks.len();
    if all_ok && temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    } else if !all_ok {
        println!("data directory kept: {}", data_dir.display());
        println!(
            "replay the plan: dofs-kill-campaign --seed {seed} --orders {} --clients {} --kills {}",
            args.orders, args.clients, args.kills
        );
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dofs-kill-campaign: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(campaign(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dofs-kill-campaign: {e:#}");
            ExitCode::from(2)
        }
    }
}
