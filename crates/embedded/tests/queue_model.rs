//! A model test of the SQLite queue: random sequences of operations (send,
//! receive, delete, change visibility, clock advance, redrive, purge, crash
//! and reopen) run against the real queue and against a small reference
//! model of SQS semantics, and every result must agree.

use dofs_core::ports::{ErrorKind, ManualClock, Queue};
use dofs_core::Timestamp;
use dofs_embedded::{Db, SqliteQueue};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const LIMIT: u32 = 3;
const IDS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Receive(u64),
    Delete(usize),
    ChangeVisibility(usize, u64),
    Advance(u64),
    Redrive,
    Purge,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..IDS).prop_map(Op::Send),
        4 => (1u64..5).prop_map(Op::Receive),
        2 => (0usize..8).prop_map(Op::Delete),
        2 => ((0usize..8), (0u64..4)).prop_map(|(i, s)| Op::ChangeVisibility(i, s)),
        3 => (0u64..6).prop_map(Op::Advance),
        1 => Just(Op::Redrive),
        1 => Just(Op::Purge),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct Msg {
    visible_at: i64,
    count: u32,
}

#[derive(Default, Debug)]
struct Model {
    now: i64,
    queue: BTreeMap<String, Msg>,
    dead: BTreeMap<String, u32>,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    NotFound,
    Conflict,
    Other(String),
}

fn outcome(r: Result<(), dofs_core::ports::PortError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) if e.kind == ErrorKind::NotFound => Outcome::NotFound,
        Err(e) if e.kind == ErrorKind::Conflict => Outcome::Conflict,
        Err(e) => Outcome::Other(e.to_string()),
    }
}

impl Model {
    fn send(&mut self, id: &str) {
        if !self.queue.contains_key(id) && !self.dead.contains_key(id) {
            self.queue.insert(
                id.to_owned(),
                Msg {
                    visible_at: self.now,
                    count: 0,
                },
            );
        }
    }

    /// Every visible message is either delivered (under the limit) or dead-lettered.
    fn receive(&mut self, visibility_ms: i64) -> Vec<(String, u32)> {
        let visible: Vec<String> = self
            .queue
            .iter()
            .filter(|(_, m)| m.visible_at <= self.now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut delivered = Vec::new();
        for id in visible {
            let Some(m) = self.queue.get_mut(&id) else {
                continue;
            };
            if m.count >= LIMIT {
                let count = m.count;
                self.queue.remove(&id);
                self.dead.insert(id, count);
            } else {
                m.count += 1;
                m.visible_at = self.now + visibility_ms;
                delivered.push((id, m.count));
            }
        }
        delivered.sort();
        delivered
    }

    fn delete(&mut self, id: &str, count: u32) -> Outcome {
        match self.queue.get(id) {
            Some(m) if m.count == count => {
                self.queue.remove(id);
                Outcome::Ok
            }
            Some(_) => Outcome::Conflict,
            None => Outcome::Ok,
        }
    }

    fn change_visibility(&mut self, id: &str, count: u32, ms: i64) -> Outcome {
        let now = self.now;
        match self.queue.get_mut(id) {
            Some(m) if m.count == count => {
                m.visible_at = now + ms;
                Outcome::Ok
            }
            Some(_) => Outcome::Conflict,
            None => Outcome::NotFound,
        }
    }

    fn redrive(&mut self) -> u64 {
        let dead = std::mem::take(&mut self.dead);
        for id in dead.keys() {
            self.queue.insert(
                id.clone(),
                Msg {
                    visible_at: self.now,
                    count: 0,
                },
            );
        }
        dead.len() as u64
    }
}

struct Real {
    dir: std::path::PathBuf,
    clock: Arc<ManualClock>,
    queue: SqliteQueue,
}

impl Real {
    fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Real {
        let queue = SqliteQueue::new(Db::open(dir).expect("open"), clock.clone(), LIMIT);
        Real {
            dir: dir.to_owned(),
            clock,
            queue,
        }
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    // Under /dev/shm when it exists: fsync is free there, so 10,000 cases stay fast.
    let base = std::path::Path::new("/dev/shm");
    let dir = if base.is_dir() {
        tempfile::tempdir_in(base)
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_874_400_000)));
    let mut real = Real::open(dir.path(), clock.clone());
    let mut model = Model {
        now: 1_795_874_400_000,
        ..Model::default()
    };
    // Receipts handed out so far: (message id, receive count, receipt).
    let mut receipts: Vec<(String, u32, String)> = Vec::new();
    for op in ops {
        match op {
            Op::Send(i) => {
                let id = format!("m{i}");
                real.queue
                    .send(&id, &format!("body-{i}"))
                    .await
                    .expect("send");
                model.send(&id);
            }
            Op::Receive(secs) => {
                let got = real
                    .queue
                    .receive(16, Duration::from_secs(secs))
                    .await
                    .expect("receive");
                let mut seen: Vec<(String, u32)> = got
                    .iter()
                    .map(|m| (m.id.clone(), m.receive_count))
                    .collect();
                seen.sort();
                let expected = model.receive(secs as i64 * 1000);
                prop_assert_eq!(&seen, &expected, "receive");
                for m in got {
                    prop_assert_eq!(&m.body, &format!("body-{}", &m.id[1..]));
                    receipts.push((m.id, m.receive_count, m.receipt));
                }
            }
            Op::Delete(i) => {
                if let Some((id, count, receipt)) = receipts.get(i % receipts.len().max(1)).cloned()
                {
                    let got = outcome(real.queue.delete(&receipt).await);
                    prop_assert_eq!(got, model.delete(&id, count), "delete {}#{}", id, count);
                }
            }
            Op::ChangeVisibility(i, secs) => {
                if let Some((id, count, receipt)) = receipts.get(i % receipts.len().max(1)).cloned()
                {
                    let got = outcome(
                        real.queue
                            .change_visibility(&receipt, Duration::from_secs(secs))
                            .await,
                    );
                    prop_assert_eq!(
                        got,
                        model.change_visibility(&id, count, secs as i64 * 1000),
                        "visibility"
                    );
                }
            }
            Op::Advance(secs) => {
                real.clock.advance(Duration::from_secs(secs));
                model.now += secs as i64 * 1000;
            }
            Op::Redrive => {
                prop_assert_eq!(
                    real.queue.redrive().await.expect("redrive"),
                    model.redrive(),
                    "redrive"
                );
            }
            Op::Purge => {
                let n = real.queue.purge_dead_letters().await.expect("purge");
                prop_assert_eq!(n, std::mem::take(&mut model.dead).len() as u64, "purge");
            }
            Op::Reopen => {
                let (dir, clock) = (real.dir.clone(), real.clock.clone());
                drop(real);
                real = Real::open(&dir, clock);
            }
        }
        let depth = real.queue.depth().await.expect("depth");
        prop_assert_eq!(depth.dead, model.dead.len() as u64, "dead letters");
        prop_assert_eq!(
            depth.waiting + depth.in_flight,
            model.queue.len() as u64,
            "messages on the queue"
        );
        let dead: Vec<(String, u32)> = real
            .queue
            .dead_letters(100, None)
            .await
            .expect("dead letters")
            .items
            .into_iter()
            .map(|d| (d.id, d.receive_count))
            .collect();
        let mut dead_sorted = dead.clone();
        dead_sorted.sort();
        let expected: Vec<(String, u32)> =
            model.dead.iter().map(|(k, v)| (k.clone(), *v)).collect();
        prop_assert_eq!(dead_sorted, expected, "the DLQ's contents");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("DOFS_QUEUE_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_sqlite_queue_behaves_like_the_reference_model(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(run(ops))?;
    }
}
