//! The kill plan (SIGKILLs and fail points at moments drawn from a seeded
//! generator, the test kit's [`Rng`]) and
//! the loop that runs it against the server.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kill {
    /// SIGKILL from outside at a random moment.
    Random,
    /// The server kills itself at this fail point.
    Point(&'static str),
}

impl Kill {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kill::Random => "sigkill at a random moment",
            Kill::Point(p) => p,
        }
    }
}

/// The kill plan: fail-point kills cycling through the three points, the rest random, shuffled.
pub(super) fn plan(kills: usize, share: f64, rng: &mut Rng) -> Vec<Kill> {
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

/// Outcome of the kill phase.
pub(super) struct Kills {
    pub(super) by_kind: HashMap<Kill, usize>,
    pub(super) problems: Vec<String>,
    pub(super) last_restart: Instant,
    pub(super) server: Server,
}

/// The environment of one server of the campaign. `delay_ms` is the
/// simulated work per attempt: with 0 and simulated fulfillment the workers
/// begin and finish each attempt in one transaction, otherwise in two, with
/// the attempt between them (see [`attempts_for`]).
pub(super) fn server_env(
    args: &Args,
    seed: u64,
    delay_ms: u64,
    arm: Option<String>,
) -> Vec<(String, String)> {
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
        ("DOFS_FULFILLMENT_DELAY_MS".to_owned(), delay_ms.to_string()),
        ("DOFS_FULFILLMENT_SEED".to_owned(), seed.to_string()),
    ];
    env.extend(args.outside_env.iter().cloned());
    if let Some(spec) = arm {
        env.push(("DOFS_FAIL_POINT".to_owned(), spec));
    }
    env
}

/// The `DOFS_FAIL_POINT` value for the server that the kill `kind` ends.
pub(super) fn arm(kind: Option<Kill>, pace: u64, rng: &mut Rng) -> Option<String> {
    match kind? {
        Kill::Random => None,
        Kill::Point(p @ "after-order-commit") => Some(format!("{p}@{}", rng.range(1, pace))),
        Kill::Point(p @ "after-receive") => Some(format!("{p}@{}", rng.range(1, pace / 16 + 1))),
        Kill::Point(p) => Some(format!("{p}@{}", rng.range(1, 2))),
    }
}

/// The simulated delay per attempt of the server that the kill `kind` ends,
/// and how its attempts run. With simulated fulfillment, half the servers
/// have none, so their workers begin and finish each attempt in one
/// transaction; the others, and every server an `after-receive` kill ends
/// (its window is the one between the two), take two transactions. The
/// `http` backend always takes two.
fn attempts_for(simulated: bool, kind: Option<Kill>, rng: &mut Rng) -> (u64, &'static str) {
    let two = (2, "attempts in two transactions");
    if !simulated || matches!(kind, Some(Kill::Point("after-receive"))) || rng.chance(50) {
        two
    } else {
        (0, "attempts in one transaction")
    }
}

/// Runs the kill plan on this (blocking) thread while the clients load the server.
pub(super) fn run_kills(
    args: &Args,
    dofs: &Path,
    data_dir: &Path,
    seed: u64,
    shared: &Shared,
) -> anyhow::Result<Kills> {
    let mut rng = Rng::new(seed);
    let plan = plan(args.kills, args.fail_point_share, &mut rng);
    let pace = (args.orders / (args.kills + 1)).max(1) as u64;
    let spawn = |kind: Option<Kill>, rng: &mut Rng| -> anyhow::Result<(Server, &'static str)> {
        let spec = arm(kind, pace, rng);
        let (delay_ms, attempts) = attempts_for(args.simulated, kind, rng);
        let s = Server::spawn(dofs, data_dir, &server_env(args, seed, delay_ms, spec))?;
        shared.set_base(s.base.clone());
        Ok((s, attempts))
    };
    let (mut server, mut attempts) = spawn(plan.first().copied(), &mut rng)?;
    if server.base.is_none() {
        // Give its stderr reader a moment to catch the last lines.
        std::thread::sleep(Duration::from_millis(200));
        bail!(
            "dofs serve did not start; its last lines:\n{}",
            server.tail()
        );
    }
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
            "kill {:>3}/{}: {:<26} acked {:>6} ({attempts})",
            i + 1,
            plan.len(),
            kind.name(),
            shared.acked_count.load(Ordering::Relaxed)
        );
        (server, attempts) = spawn(plan.get(i + 1).copied(), &mut rng)?;
        last_restart = Instant::now();
    }
    Ok(Kills {
        by_kind,
        problems,
        last_restart,
        server,
    })
}
