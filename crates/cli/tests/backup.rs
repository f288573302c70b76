//! `dofs backup` and `dofs restore`, black box: a backup taken while orders
//! arrive refuses none of them, holds every order acknowledged before it
//! began with the status it had, and the system restored from it runs on
//! (its queue, its dead letters, its idempotency records).

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

/// What the load saw: every 202, and every answer that was not one.
#[derive(Default)]
struct Seen {
    acks: Vec<Ack>,
    /// Anything but a 202 (a status, or the transport's error), and when.
    refused: Vec<(String, Instant)>,
}

/// Submits orders from `clients` tasks until `stop`, recording every answer.
fn start_load(
    app: &App,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Seen>>, Vec<tokio::task::JoinHandle<()>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, seen, stop) = (
            app.client.clone(),
            app.url("/order"),
            seen.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = match client.post(&url).json(&seed_order()).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        let refusal = (e.to_string(), Instant::now());
                        seen.lock().expect("seen").refused.push(refusal);
                        continue;
                    }
                };
                if r.status().as_u16() != 202 {
                    let refusal = (r.status().to_string(), Instant::now());
                    seen.lock().expect("seen").refused.push(refusal);
                    continue;
                }
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if let Some(id) = body["orderId"].as_str() {
                    let ack = Ack {
                        id: id.to_owned(),
                        at: Instant::now(),
                        took: sent.elapsed(),
                    };
                    seen.lock().expect("seen").acks.push(ack);
                }
            }
        }));
    }
    (seen, tasks)
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
    let (seen, tasks) = start_load(&app, 8, stop.clone());
    while seen.lock().expect("seen").acks.len() < 1500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The status of orders already acknowledged, read just before the backup:
    // a terminal one must come back from the backup as it was.
    let sample: Vec<String> = {
        let seen = seen.lock().expect("seen");
        seen.acks.iter().take(300).map(|a| a.id.clone()).collect()
    };
    let mut finished_before = Vec::new();
    for id in &sample {
        let (code, order) = app.get_json(&format!("/orders/{id}")).await;
        assert_eq!(code, 200, "{order}");
        let status = order["status"].as_str().unwrap_or_default().to_owned();
        if status == "FULFILLED" || status == "FAILED" {
            finished_before.push((id.clone(), status));
        }
    }
    assert!(
        !finished_before.is_empty(),
        "some of the first orders finished before the backup"
    );

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

    let (acks, refused) = {
        let seen = seen.lock().expect("seen");
        (seen.acks.clone(), seen.refused.clone())
    };
    assert!(
        refused.is_empty(),
        "intake refused nothing, during the backup or around it: {} refusals, the first {:?} \
         ({:?} after the backup began)",
        refused.len(),
        refused.first().map(|r| &r.0),
        refused
            .first()
            .map(|r| r.1.saturating_duration_since(began)),
    );
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
    for (id, status) in &finished_before {
        let (code, order) = app.get_json(&format!("/orders/{id}")).await;
        assert_eq!(code, 200, "{order}");
        assert_eq!(order["status"].as_str(), Some(status.as_str()), "{order}");
    }

    // The dead letters came back with the orders: one per FAILED order, and
    // a redrive puts them back on the restored queue, which finishes them.
    // Orders the backup caught unacknowledged may still run; wait for them.
    app.eventually(
        "every restored order terminal",
        Duration::from_secs(60),
        || async {
            for status in ["PENDING", "PROCESSING"] {
                let (_, page) = app
                    .get_json(&format!("/orders?status={status}&limit=1"))
                    .await;
                if page["items"]
                    .as_array()
                    .is_none_or(|items| !items.is_empty())
                {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let failed = app.all_pages("/orders?status=FAILED").await;
    let (code, dlq) = app.get_json("/dlq").await;
    assert_eq!(code, 200, "{dlq}");
    assert_eq!(dlq["depth"].as_u64(), Some(failed.len() as u64), "{dlq}");
    assert!(
        !failed.is_empty(),
        "some orders failed, with 30% of attempts failing"
    );
    let redriven = app
        .client
        .post(app.url("/dlq/redrive"))
        .send()
        .await
        .expect("POST /dlq/redrive");
    assert_eq!(redriven.status().as_u16(), 200);
    let redriven: Value = redriven.json().await.expect("json");
    assert_eq!(
        redriven["moved"].as_u64(),
        Some(failed.len() as u64),
        "{redriven}"
    );
    let failed_ids: Vec<String> = failed
        .iter()
        .filter_map(|o| o["orderId"].as_str().map(str::to_owned))
        .collect();
    app.wait_all_terminal(&failed_ids, Duration::from_secs(60))
        .await;

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
