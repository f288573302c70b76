//! `dofs-kill-campaign`: runs a load of orders from many concurrent clients
//! against `dofs serve`, kills the server again and again (SIGKILL at random
//! moments, and self-kills at the named fail points of the embedded runtime),
//! restarts it each time on the same data directory, and then checks the
//! contract's promise: every acknowledged order exists and is terminal in
//! time, one fulfillment per `FULFILLED` order, one failed-orders row per
//! `FAILED` order, no order seen moving backwards, `integrity_check` ok.
//!
//! The server delivers its order events to a webhook the campaign runs (it
//! outlives the kills), and an operator cancels orders as they come; then
//! also: no cancelled order begun again after its cancel's event or ever
//! fulfilled, and each order's final event delivered. By default the server
//! runs in `http` fulfillment mode against a service the campaign runs, and
//! no cancelled order may reach it after its cancel returned; `--simulated`
//! runs the seed's coin flip instead.
//!
//! It needs a `dofs` built with the `fail-points` feature:
//! `cargo build -p dofs-cli --features fail-points` (see `scripts/kill-campaign.sh`).
//! Exit status 0 when every check passed, 1 when one failed, 2 on a usage or
//! set-up error.
//!
//! Layout: the campaign here; [`server`] starts and kills `dofs serve`,
//! [`load`] is the clients and the status sampler, [`kills`] plans and runs
//! the kills, [`outside`] the fulfillment service, webhook and canceller,
//! [`checks`] the final checks.

mod checks;
mod kills;
mod load;
mod outside;
mod server;

use checks::{check, file_checks, wait_all_terminal};
use dofs_blackbox::Rng;
use kills::{run_kills, Kill, Kills};
use load::{client, is_terminal, sampler, Seen, Shared};
use server::Server;

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
    /// The seed's simulated fulfillment (instead of `http` mode against the
    /// campaign's service).
    #[arg(long)]
    simulated: bool,
    /// Milliseconds between two cancels.
    #[arg(long, default_value_t = 100)]
    cancel_every_ms: u64,
    /// The settings that point the server at the campaign's service and webhook.
    #[arg(skip)]
    outside_env: Vec<(String, String)>,
}

fn default_dofs() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this program's path")?;
    let dir = me.parent().context("this program has no directory")?;
    Ok(dir.join("dofs"))
}

async fn campaign(mut args: Args) -> anyhow::Result<bool> {
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
    let hook = outside::webhook().await;
    args.outside_env = vec![(
        "DOFS_EVENTS_WEBHOOK_URLS".into(),
        format!("{}/events", hook.base),
    )];
    let service = if args.simulated {
        None
    } else {
        let service = outside::fulfillment_service(seed).await;
        args.outside_env.extend([
            ("DOFS_FULFILLMENT_MODE".into(), "http".into()),
            (
                "DOFS_FULFILLMENT_HTTP_URL".into(),
                format!("{}/fulfill", service.base),
            ),
            // Below the visibility timeout, as dofs serve requires.
            (
                "DOFS_FULFILLMENT_HTTP_TIMEOUT_MS".into(),
                (args.visibility_timeout_ms / 2).max(1).to_string(),
            ),
        ]);
        Some(service)
    };
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
    let cancelled: outside::Cancelled = Arc::default();
    let canceller_task = tokio::spawn(outside::canceller(
        shared.clone(),
        Duration::from_millis(args.cancel_every_ms.max(1)),
        cancelled.clone(),
    ));

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
    let _ = canceller_task.await;
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
    outside::wait_delivered(&data_dir, &hook, Duration::from_secs(60)).await;
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
    let cancelled = cancelled.lock().map(|c| c.clone()).unwrap_or_default();
    outside::outside_checks(&data_dir, service.as_ref(), &hook, &cancelled, &mut checks)?;

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
