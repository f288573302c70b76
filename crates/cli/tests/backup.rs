//! `dofs backup` and `dofs restore`, black box: a backup taken while orders
//! arrive holds every order acknowledged before it began, and the system
//! restored from it runs on (its queue, its idempotency records).

mod common;

use common::{fast_env, seed_order, App};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `dofs ARGS`: exit code, stdout, stderr.
fn dofs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dofs"))
        .args(args)
        .output()
        .expect("run dofs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// One acknowledged order: its id, when the 202 arrived, how long it took.
#[derive(Clone)]
struct Ack {
    id: String,
    at: Instant,
    took: Duration,
}

/// Submits orders from `clients` tasks until `stop`, recording every 202.
fn start_load(
    app: &App,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<Ack>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acks = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, acks, stop) = (
            app.client.clone(),
            app.url("/order"),
            acks.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let Ok(r) = client.post(&url).json(&seed_order()).send().await else {
                    continue;
                };
                if r.status().as_u16() != 202 {
                    continue;
                }
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if let Some(id) = body["orderId"].as_str() {
                    let ack = Ack {
                        id: id.to_owned(),
                        at: Instant::now(),
                        took: sent.elapsed(),
                    };
                    acks.lock().expect("acks").push(ack);
                }
            }
        }));
    }
    (acks, tasks)
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let i = ((v.len() as f64 * p) as usize).min(v.len() - 1);
    v[i]
}

async fn post_keyed(app: &App, key: &str) -> reqwest::Response {
    app.client
        .post(app.url("/order"))
        .header("Idempotency-Key", key)
        .json(&seed_order())
        .send()
        .await
        .expect("POST /order")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_every_order_acknowledged_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut env = fast_env();
    env.push(("DOFS_FULFILLMENT_DELAY_MS", "20".into()));
    let app = App::spawn_on(&data, &env);

    let keyed = post_keyed(&app, "backup-key-1").await;
    assert_eq!(keyed.status().as_u16(), 202);
    let keyed: Value = keyed.json().await.expect("json");
    let keyed_id = keyed["orderId"].as_str().expect("orderId").to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let (acks, tasks) = start_load(&app, 8, stop.clone());
    while acks.lock().expect("acks").len() < 1500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let backup = dir.path().join("dofs-backup.db");
    let began = Instant::now();
    let (code, out, err) = {
        let backup = backup.clone();
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            dofs(&["backup", "--data-dir", arg(&data), "--to", arg(&backup)])
        })
        .await
        .expect("backup task")
    };
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    assert_eq!(code, 0, "backup: {err}");
    assert!(out.contains("backed up"), "{out}");

    let acks = acks.lock().expect("acks").clone();
    let before: Vec<String> = acks
        .iter()
        .filter(|a| a.at < began)
        .map(|a| a.id.clone())
        .collect();
    let during: Vec<Duration> = acks
        .iter()
        .filter(|a| a.at >= began && a.at <= ended)
        .map(|a| a.took)
        .collect();
    let usual: Vec<Duration> = acks
        .iter()
        .filter(|a| a.at < began)
        .map(|a| a.took)
        .collect();
    eprintln!(
        "backup of {} bytes took {:?} ({out:?}); {} orders acknowledged during it, their p99 {:?} \
         and max {:?}; before it p99 {:?}",
        std::fs::metadata(&backup).map(|m| m.len()).unwrap_or(0),
        ended - began,
        during.len(),
        percentile(during.clone(), 0.99),
        during.iter().max().copied().unwrap_or_default(),
        percentile(usual, 0.99),
    );

    let (code, _, err) = dofs(&["backup", "--data-dir", arg(&data), "--to", arg(&backup)]);
    assert_eq!(code, 2, "an existing file is refused");
    assert!(err.contains("already exists"), "{err}");

    let (code, _, err) = dofs(&["restore", "--from", arg(&backup), "--data-dir", arg(&data)]);
    assert_eq!(code, 2, "a non-empty directory is refused");
    assert!(err.contains("is not empty"), "{err}");
    drop(app);

    let restored = dir.path().join("restored");
    let (code, out, err) = dofs(&[
        "restore",
        "--from",
        arg(&backup),
        "--data-dir",
        arg(&restored),
    ]);
    assert_eq!(code, 0, "restore: {err}");
    assert!(out.contains("restored"), "{out}");
    let app = App::spawn_on(&restored, &fast_env());

    // Every order acknowledged before the backup began is there, and the
    // ones it held unfinished finish (the restored queue runs).
    let mut ids = before;
    ids.push(keyed_id.clone());
    let orders = app.wait_all_terminal(&ids, Duration::from_secs(120)).await;
    assert_eq!(orders.len(), ids.len());

    let again = post_keyed(&app, "backup-key-1").await;
    assert_eq!(again.status().as_u16(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["orderId"].as_str(), Some(keyed_id.as_str()));

    let fresh = app.post_order(&seed_order()).await;
    assert_eq!(fresh.status().as_u16(), 202);
    let fresh: Value = fresh.json().await.expect("json");
    let fresh_id = fresh["orderId"].as_str().expect("orderId").to_owned();
    app.wait_all_terminal(&[fresh_id], Duration::from_secs(30))
        .await;
}

#[test]
fn restore_refuses_a_file_that_is_not_a_sound_dofs_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).expect("write junk");
    let target = dir.path().join("new");
    let (code, _, err) = dofs(&["restore", "--from", arg(&junk), "--data-dir", arg(&target)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a readable SQLite database"), "{err}");
    assert!(!target.join("dofs.db").exists(), "nothing was restored");

    let newer = dir.path().join("newer.db");
    rusqlite::Connection::open(&newer)
        .and_then(|c| c.execute_batch("CREATE TABLE orders (id TEXT); PRAGMA user_version = 99;"))
        .expect("a file from a newer release");
    let (code, _, err) = dofs(&["restore", "--from", arg(&newer), "--data-dir", arg(&target)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("written by a newer DOFS"), "{err}");
}
