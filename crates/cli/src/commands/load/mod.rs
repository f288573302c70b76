//! `dofs load`: an HTTP load generator for `POST /order`.
//!
//! Two modes:
//! - open loop (`--rate R`): request `i` is due at `start + i/R`, whatever
//!   happened to the requests before it. Its latency is measured from that
//!   intended time, not from when it was actually sent, so a server that
//!   stalls is charged for the requests that queued up behind the stall
//!   (no coordinated omission). `--concurrency` caps the requests in flight;
//!   requests sent late because of that cap are counted and reported.
//! - closed loop (`--concurrency C`): C workers, each sending its next request
//!   as soon as the previous one answered; latency is the response time.
//!
//! Cost: every worker owns one HTTP/1.1 client and so one keep-alive
//! connection; the bodies are serialised once, before the run, and shared
//! (`Bytes` clones are reference counts); workers keep their own HDR
//! histograms and status counts and merge them at the end, so the only shared
//! writes per request are two relaxed atomic increments for the progress bar.

use crate::commands::client::{error_chain, Api, CliError, Exit, Target, API_KEY_HEADER};
use crate::commands::format::{human_duration, ms, parse_duration};
use crate::commands::orders::{is_terminal, print_json};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a run lasts when neither `--orders` nor `--duration` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Closed loop's default number of workers.
const DEFAULT_CONCURRENCY: usize = 32;
/// Open loop's default cap on requests in flight.
const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// An open-loop request sent this much after its intended time counts as late
/// (tokio's timer has a 1 ms resolution).
const LATE: Duration = Duration::from_millis(2);
/// Latencies are recorded in microseconds, up to an hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// `dofs load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: Target,
    /// Open loop: send this many orders per second, whatever the latency.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Closed loop: requests in flight at once [default: 32]. With --rate: the
    /// most requests in flight (and connections) [default: 64].
    #[arg(long, short = 'c', value_name = "N")]
    pub concurrency: Option<usize>,
    /// Stop after this long (e.g. 30s, 2m) [default: 10s unless --orders is given].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(long, short = 'n', value_name = "N")]
    pub orders: Option<u64>,
    /// Share of the requests that are invalid orders (expected: 400), 0 to 1.
    #[arg(long, default_value_t = 0.0, value_name = "RATIO")]
    pub invalid_ratio: f64,
    /// Send a unique Idempotency-Key with every request.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Afterwards, wait until every accepted order is FULFILLED or FAILED and report the split.
    #[arg(long)]
    pub wait_terminal: bool,
    /// How long --wait-terminal waits.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub terminal_timeout: Duration,
    /// No progress bar (it is also hidden with --json or when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `rate` requests per second, at most `max_in_flight` at once.
    Open { rate: f64, max_in_flight: usize },
    /// `concurrency` workers, back to back.
    Closed { concurrency: usize },
}

impl Mode {
    fn workers(self) -> usize {
        match self {
            Mode::Open { max_in_flight, .. } => max_in_flight,
            Mode::Closed { concurrency } => concurrency,
        }
    }
}

/// A run, independent of the command line (`test-system --load` builds one too).
#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: Mode,
    /// Stop after this many requests...
    pub orders: Option<u64>,
    /// ...or after this long, whichever comes first.
    pub duration: Option<Duration>,
    pub invalid_ratio: f64,
    pub idempotency_keys: bool,
    /// Wait this long at most for every accepted order to be terminal.
    pub wait_terminal: Option<Duration>,
    pub progress: bool,
}

impl Plan {
    /// Checks the flags and fills in the defaults.
    pub fn from_args(args: &LoadArgs) -> Result<Plan, CliError> {
        let usage = |m: String| Err(CliError::Usage(m));
        if !(0.0..=1.0).contains(&args.invalid_ratio) {
            return usage(format!(
                "--invalid-ratio must be from 0 to 1, not {}",
                args.invalid_ratio
            ));
        }
        if args.concurrency == Some(0) || args.concurrency.is_some_and(|c| c > 10_000) {
            return usage("--concurrency must be from 1 to 10000".into());
        }
        if args.orders == Some(0) {
            return usage("--orders must be at least 1".into());
        }
        if args.duration == Some(Duration::ZERO) {
            return usage("--duration must be more than 0".into());
        }
        let mode = match args.rate {
            Some(rate) if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) => {
                return usage(format!(
                    "--rate must be more than 0 and at most 1000000, not {rate}"
                ))
            }
            Some(rate) => Mode::Open {
                rate,
                max_in_flight: args.concurrency.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            },
            None => Mode::Closed {
                concurrency: args.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            },
        };
        let duration = match (args.orders, args.duration) {
            (None, None) => Some(DEFAULT_DURATION),
            (_, d) => d,
        };
        let progress = !(args.no_progress || args.target.json) && std::io::stderr().is_terminal();
        Ok(Plan {
            mode,
            orders: args.orders,
            duration,
            invalid_ratio: args.invalid_ratio,
            idempotency_keys: args.idempotency_keys,
            wait_terminal: args.wait_terminal.then_some(args.terminal_timeout),
            progress,
        })
    }
}

/// Runs `dofs load` and prints the report.
pub async fn run(args: LoadArgs) -> Result<Exit, CliError> {
    let plan = Plan::from_args(&args)?;
    let report = execute(&args.target, &plan).await?;
    if args.target.json {
        print_json(&report.json());
    } else {
        print!("{}", report.human());
    }
    Ok(if report.passed() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

mod report;
#[cfg(test)]
mod tests;

pub use report::{Report, Terminal};

/// Whether request `i` is one of the invalid ones: spreads exactly
/// `ratio` of the requests evenly over the run, without randomness.
pub fn is_invalid(i: u64, ratio: f64) -> bool {
    ((i + 1) as f64 * ratio).floor() > (i as f64 * ratio).floor()
}

/// The bodies, serialised once: valid orders that differ in every field, and
/// invalid ones that each break a different rule.
struct Bodies {
    valid: Vec<Bytes>,
    invalid: Vec<Bytes>,
}

impl Bodies {
    fn new() -> Bodies {
        let valid = (0..64u32)
            .map(|k| {
                let cents = 100 + (k * 3_719) % 99_900;
                Bytes::from(format!(
                    r#"{{"customerId":"CUST-{:04}","productId":"PROD-{:04}","quantity":{},"price":{}.{:02},"metadata":{{"source":"dofs-load"}}}}"#,
                    1000 + k,
                    2000 + (k * 7) % 100,
                    1 + k % 5,
                    cents / 100,
                    cents % 100
                ))
            })
            .collect();
        let invalid = [
            r#"{"customerId":"INVALID-FORMAT","productId":"PROD-2001","quantity":0,"price":-10}"#,
            r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":"29.99"}"#,
            r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":101,"price":29.99}"#,
            r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.999}"#,
            r#"{"customerId":"CUST-1001","quantity":2,"price":29.99}"#,
            r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99,"extra":1}"#,
            r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":1.5,"price":29.99}"#,
            r#"{"customerId": "CUST-1001", "productId": "#,
        ]
        .into_iter()
        .map(|s: &'static str| Bytes::from_static(s.as_bytes()))
        .collect();
        Bodies { valid, invalid }
    }

    fn pick(&self, i: u64, invalid: bool) -> Bytes {
        let pool = if invalid { &self.invalid } else { &self.valid };
        pool[(i % pool.len() as u64) as usize].clone()
    }
}

/// What every worker reads and the progress bar watches.
struct Shared {
    next: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    finished: AtomicBool,
}

/// One worker's counts, merged into the [`Report`] at the end.
struct WorkerStats {
    latency: Histogram<u64>,
    accepted_latency: Histogram<u64>,
    service: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    samples: Vec<String>,
    late: u64,
    valid: u64,
    invalid: u64,
    accepted: Vec<String>,
}

impl WorkerStats {
    fn new() -> WorkerStats {
        WorkerStats {
            latency: histogram(),
            accepted_latency: histogram(),
            service: histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
            samples: Vec::new(),
            late: 0,
            valid: 0,
            invalid: 0,
            accepted: Vec::new(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Three significant figures from 1 µs to an hour: valid bounds, cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!())
}

/// One HTTP client: one connection, the JSON content type and the key preset.
fn worker_client(target: &Target) -> Result<reqwest::Client, CliError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = &target.api_key {
        let mut value = HeaderValue::from_str(key)
            .map_err(|_| CliError::Usage("--api-key is not a valid header value".into()))?;
        value.set_sensitive(true);
        headers.insert(API_KEY_HEADER, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(target.timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .user_agent(concat!("dofs-load/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Failed(format!("cannot build the HTTP client: {e}")))
}

/// Runs the plan against the target and measures it.
pub async fn execute(target: &Target, plan: &Plan) -> Result<Report, CliError> {
    let api = Api::new(target)?;
    // Fail fast, with exit 3, when nothing answers.
    api.get("/health").await?;
    let url = reqwest::Url::parse(&api.url("/order"))
        .map_err(|e| CliError::Usage(format!("bad endpoint: {e}")))?;
    let bodies = Arc::new(Bodies::new());
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        finished: AtomicBool::new(false),
    });
    let key_prefix: Option<Arc<str>> = plan.idempotency_keys.then(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Arc::from(format!("dofs-load-{}-{nanos:x}", std::process::id()))
    });
    let cpu_before = process_cpu();
    // A little head start, so that workers are parked before the first request is due.
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = plan.duration.map(|d| start + d);
    let progress = plan.progress.then(|| progress_bar(plan));
    let ticker = progress
        .clone()
        .map(|bar| tokio::spawn(tick(bar, shared.clone(), start, plan.clone())));

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.mode.workers() {
        let worker = Worker {
            client: worker_client(target)?,
            url: url.clone(),
            bodies: bodies.clone(),
            shared: shared.clone(),
            key_prefix: key_prefix.clone(),
            plan: plan.clone(),
            start,
            deadline,
            track: plan.wait_terminal.is_some(),
        };
        workers.spawn(worker.run());
    }
    let mut stats = Vec::new();
    while let Some(joined) = workers.join_next().await {
        stats.push(joined.map_err(|e| CliError::Failed(format!("a load worker failed: {e}")))?);
    }
    let elapsed = start.elapsed();
    shared.finished.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.await;
    }
    let client_cpu = match (cpu_before, process_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };

    let mut report = Report {
        endpoint: api.base().to_owned(),
        mode: plan.mode,
        requests: 0,
        valid_sent: 0,
        invalid_sent: 0,
        elapsed,
        statuses: BTreeMap::new(),
        errors: 0,
        error_samples: Vec::new(),
        latency: histogram(),
        accepted_latency: histogram(),
        service_time: matches!(plan.mode, Mode::Open { .. }).then(histogram),
        late_sends: 0,
        client_cpu,
        terminal: None,
    };
    let mut accepted = Vec::new();
    for s in stats {
        // Same bounds on both sides: adding cannot fail.
        let _ = report.latency.add(&s.latency);
        let _ = report.accepted_latency.add(&s.accepted_latency);
        if let Some(h) = report.service_time.as_mut() {
            let _ = h.add(&s.service);
        }
        for (status, n) in s.statuses {
            *report.statuses.entry(status).or_default() += n;
        }
        report.errors += s.errors;
        report.late_sends += s.late;
        report.valid_sent += s.valid;
        report.invalid_sent += s.invalid;
        for sample in s.samples {
            if report.error_samples.len() < 5 && !report.error_samples.contains(&sample) {
                report.error_samples.push(sample);
            }
        }
        accepted.extend(s.accepted);
    }
    report.requests = report.valid_sent + report.invalid_sent;
    if let Some(limit) = plan.wait_terminal {
        report.terminal = Some(wait_all_terminal(target, accepted, limit, plan).await?);
    }
    Ok(report)
}

/// One worker: one connection, requests taken from the shared counter.
struct Worker {
    client: reqwest::Client,
    url: reqwest::Url,
    bodies: Arc<Bodies>,
    shared: Arc<Shared>,
    key_prefix: Option<Arc<str>>,
    plan: Plan,
    start: Instant,
    deadline: Option<Instant>,
    track: bool,
}

impl Worker {
    async fn run(self) -> WorkerStats {
        let mut stats = WorkerStats::new();
        let limit = self.plan.orders.unwrap_or(u64::MAX);
        tokio::time::sleep_until(self.start).await;
        loop {
            let i = self.shared.next.fetch_add(1, Ordering::Relaxed);
            if i >= limit {
                break;
            }
            let sent = match self.plan.mode {
                Mode::Open { rate, .. } => {
                    let intended = self.start + Duration::from_secs_f64(i as f64 / rate);
                    if self.deadline.is_some_and(|d| intended >= d) {
                        break;
                    }
                    tokio::time::sleep_until(intended).await;
                    let now = Instant::now();
                    if now.duration_since(intended) > LATE {
                        stats.late += 1;
                    }
                    (intended, now)
                }
                Mode::Closed { .. } => {
                    let now = Instant::now();
                    if self.deadline.is_some_and(|d| now >= d) {
                        break;
                    }
                    (now, now)
                }
            };
            self.one(i, sent, &mut stats).await;
        }
        stats
    }

    /// Sends request `i`, due at `due` and sent at `sent`, and records it.
    async fn one(&self, i: u64, (due, sent): (Instant, Instant), stats: &mut WorkerStats) {
        let invalid = is_invalid(i, self.plan.invalid_ratio);
        let mut request = self
            .client
            .post(self.url.clone())
            .body(self.bodies.pick(i, invalid));
        if let Some(prefix) = &self.key_prefix {
            request = request.header("idempotency-key", format!("{prefix}-{i}"));
        }
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let id = (self.track && status == 202)
                    .then(|| {
                        response
                            .headers()
                            .get(LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|l| l.rsplit('/').next())
                            .map(str::to_owned)
                    })
                    .flatten();
                // Read to the end, so the connection can be reused.
                match response.bytes().await {
                    Ok(_) => Ok((status, id)),
                    Err(e) => Err(error_chain(&e)),
                }
            }
            Err(e) => Err(error_chain(&e)),
        };
        let done = Instant::now();
        stats
            .latency
            .saturating_record(micros(done.duration_since(due)));
        if matches!(outcome, Ok((202, _))) {
            stats
                .accepted_latency
                .saturating_record(micros(done.duration_since(due)));
        }
        stats
            .service
            .saturating_record(micros(done.duration_since(sent)));
        if invalid {
            stats.invalid += 1;
        } else {
            stats.valid += 1;
        }
        let expected = if invalid { 400 } else { 202 };
        let status = match outcome {
            Ok((status, id)) => {
                if let Some(id) = id {
                    stats.accepted.push(id);
                }
                if status != expected && stats.samples.len() < 5 {
                    stats.samples.push(format!(
                        "HTTP {status} for {} order",
                        if invalid { "an invalid" } else { "a valid" }
                    ));
                }
                status
            }
            Err(e) => {
                if stats.samples.len() < 5 {
                    stats.samples.push(e);
                }
                0
            }
        };
        *stats.statuses.entry(status).or_default() += 1;
        if status != expected {
            stats.errors += 1;
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn progress_bar(plan: &Plan) -> ProgressBar {
    let (len, template) = match (plan.orders, plan.duration) {
        (Some(n), _) => (
            n,
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        ),
        (None, Some(d)) => (
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            "{spinner} [{elapsed_precise}] {wide_bar} {msg}",
        ),
        (None, None) => (0, "{spinner} [{elapsed_precise}] {msg}"),
    };
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Updates the bar from the shared counters until the run is finished.
async fn tick(bar: ProgressBar, shared: Arc<Shared>, start: Instant, plan: Plan) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        let elapsed = Instant::now().saturating_duration_since(start);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        if plan.orders.is_some() {
            bar.set_position(done);
        } else {
            bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        }
        bar.set_message(format!("{done} done, {rate:.0}/s, {errors} errors"));
        if shared.finished.load(Ordering::Relaxed) {
            bar.finish_and_clear();
            return;
        }
    }
}

/// Polls every accepted order until all are terminal, re-reading only those
/// that are not yet, with as many pollers as the run had workers (at most 16).
async fn wait_all_terminal(
    target: &Target,
    ids: Vec<String>,
    limit: Duration,
    plan: &Plan,
) -> Result<Terminal, CliError> {
    let started = Instant::now();
    let api = Api::new(target)?;
    let orders = ids.len() as u64;
    let bar = plan.progress.then(|| {
        let bar =
            ProgressBar::with_draw_target(Some(orders), ProgressDrawTarget::stderr_with_hz(10));
        if let Ok(style) = ProgressStyle::with_template(
            "waiting for terminal [{elapsed_precise}] {wide_bar} {pos}/{len}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut pending = ids;
    let (mut fulfilled, mut failed, mut poll_errors) = (0u64, 0u64, 0u64);
    let pollers = plan.mode.workers().clamp(1, 16);
    loop {
        let chunk = pending.len().div_ceil(pollers).max(1);
        let mut polls = tokio::task::JoinSet::new();
        for part in pending.chunks(chunk) {
            let (api, part) = (api.clone(), part.to_vec());
            polls.spawn(async move {
                let mut out = Vec::with_capacity(part.len());
                for id in part {
                    let status = match api.get(&format!("/orders/{id}")).await {
                        Ok(r) if r.status == 200 => r.json()["status"].as_str().map(str::to_owned),
                        _ => None,
                    };
                    out.push((id, status));
                }
                out
            });
        }
        let mut still = Vec::new();
        while let Some(joined) = polls.join_next().await {
            let part = joined.map_err(|e| CliError::Failed(format!("a poller failed: {e}")))?;
            for (id, status) in part {
                match status.as_deref() {
                    Some("FULFILLED") => fulfilled += 1,
                    Some("FAILED") => failed += 1,
                    Some(s) if !is_terminal(s) => still.push(id),
                    _ => {
                        poll_errors += 1;
                        still.push(id);
                    }
                }
            }
        }
        pending = still;
        if let Some(bar) = &bar {
            bar.set_position(fulfilled + failed);
        }
        let timed_out = !pending.is_empty() && started.elapsed() >= limit;
        if pending.is_empty() || timed_out {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(Terminal {
                orders,
                fulfilled,
                failed,
                pending: pending.len() as u64,
                after_load: started.elapsed(),
                timed_out,
                // Transient read failures that a later round recovered from are not errors.
                poll_errors: if timed_out { poll_errors } else { 0 },
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// CPU time (user + system) this process has used so far.
#[cfg(unix)]
fn process_cpu() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given,
    // which points to a properly sized and aligned value; on failure
    // (non-zero return) the value is not read.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so the value is initialised.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Some(tv(usage.ru_utime) + tv(usage.ru_stime))
}

#[cfg(not(unix))]
fn process_cpu() -> Option<Duration> {
    None
}
