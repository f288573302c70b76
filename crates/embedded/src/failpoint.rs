//! Named fail points for crash testing: with the `fail-points` feature, a
//! process whose `DOFS_FAIL_POINT` names a point kills itself (SIGKILL, no
//! clean-up, like a power cut) when that point is reached. Without the
//! feature, [`hit`] compiles to nothing.
//!
//! `DOFS_FAIL_POINT` is `<name>` (the first hit), `<name>@<n>` (the n-th hit)
//! or `<name>%<p>` (each hit with probability p, 0 to 1). Before dying the
//! process writes `dofs fail point <name> hit` on stderr, so a test can tell a
//! fail point from any other death.

/// After the submit transaction committed, before the 202 is sent.
pub const AFTER_ORDER_COMMIT: &str = "after-order-commit";
/// After a worker's receive committed, before the attempts it began run (an
/// attempt the backend answered at once has already finished in it).
pub const AFTER_RECEIVE: &str = "after-receive";
/// After a transaction moved messages to the DLQ: a receive that found
/// messages over their receive limit (before the recorder writes their
/// failed-orders rows), or the end of a last failed attempt or a refusal
/// (the order `FAILED` with its row in the same transaction).
pub const AFTER_DLQ_MOVE: &str = "after-dlq-move";

/// Every named fail point.
pub const ALL: [&str; 3] = [AFTER_ORDER_COMMIT, AFTER_RECEIVE, AFTER_DLQ_MOVE];

/// Reached fail point `name`: kills the process if it is armed.
#[cfg(not(feature = "fail-points"))]
#[inline(always)]
pub fn hit(_name: &'static str) {}

/// Reached fail point `name`: kills the process if it is armed.
#[cfg(feature = "fail-points")]
pub fn hit(name: &'static str) {
    armed::hit(name)
}

#[cfg(feature = "fail-points")]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    enum Trigger {
        Nth(u64),
        Probability(f64),
    }

    struct Armed {
        name: String,
        trigger: Trigger,
        hits: AtomicU64,
        rng: AtomicU64,
    }

    fn parse(spec: &str) -> Option<Armed> {
        let spec = spec.trim();
        if spec.is_empty() {
            return None;
        }
        let (name, trigger) = if let Some((name, n)) = spec.split_once('@') {
            (name, Trigger::Nth(n.parse().ok().filter(|n| *n > 0)?))
        } else if let Some((name, p)) = spec.split_once('%') {
            (
                name,
                Trigger::Probability(p.parse().ok().filter(|p| (0.0..=1.0).contains(p))?),
            )
        } else {
            (spec, Trigger::Nth(1))
        };
        if !super::ALL.contains(&name) {
            return None;
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id());
        Some(Armed {
            name: name.to_owned(),
            trigger,
            hits: AtomicU64::new(0),
            rng: AtomicU64::new(seed | 1),
        })
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let spec = std::env::var("DOFS_FAIL_POINT").ok()?;
                let armed = parse(&spec);
                if armed.is_none() {
                    eprintln!("dofs: DOFS_FAIL_POINT={spec:?} is not <name>, <name>@<n> or <name>%<p> with a known name; ignored");
                }
                armed
            })
            .as_ref()
    }

    pub(super) fn hit(name: &'static str) {
        let Some(armed) = armed() else { return };
        if armed.name != name {
            return;
        }
        let n = armed.hits.fetch_add(1, Ordering::SeqCst) + 1;
        let fire = match armed.trigger {
            Trigger::Nth(k) => n == k,
            Trigger::Probability(p) => {
                let mut x = armed.rng.load(Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                armed.rng.store(x, Ordering::Relaxed);
                ((x >> 11) as f64 / (1u64 << 53) as f64) < p
            }
        };
        if fire {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "dofs fail point {name} hit");
            let _ = std::io::stderr().flush();
            // SAFETY: kill(2) on our own pid with a constant signal has no
            // memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            std::process::abort();
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn specs_parse_or_are_rejected() {
            assert!(matches!(
                parse("after-receive").map(|a| a.trigger),
                Some(Trigger::Nth(1))
            ));
            assert!(matches!(
                parse("after-dlq-move@7").map(|a| a.trigger),
                Some(Trigger::Nth(7))
            ));
            assert!(matches!(
                parse("after-order-commit%0.5").map(|a| a.trigger),
                Some(Trigger::Probability(p)) if p == 0.5
            ));
            assert!(parse("no-such-point").is_none());
            assert!(parse("after-receive@0").is_none());
            assert!(parse("after-receive%2").is_none());
            assert!(parse("").is_none());
        }
    }
}
