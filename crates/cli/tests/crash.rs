//! The crash test: `dofs serve` is SIGKILLed at random moments while several
//! clients send orders, and restarted on the same data directory. Every order
//! that got a 202 must exist and reach exactly one terminal status, no order
//! may be fulfilled twice, and the SQLite file must pass `integrity_check`.

mod common;

use common::{seed_order, App};
use dofs_blackbox::Rng;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

fn crash_env() -> Vec<(&'static str, String)> {
    vec![
        ("DOFS_QUEUE_BACKOFF_BASE_MS", "5".into()),
        ("DOFS_QUEUE_BACKOFF_MAX_MS", "20".into()),
        ("DOFS_QUEUE_VISIBILITY_TIMEOUT_MS", "500".into()),
        ("DOFS_FULFILLMENT_DELAY_MS", "3".into()),
        ("DOFS_FULFILLMENT_SEED", "7".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_order_survives_repeated_sigkills_and_ends_terminal_once() {
    let seed = Rng::seed_from_time();
    println!("crash test seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = App::spawn_on(dir.path(), &crash_env());
    let base = Arc::new(RwLock::new(app.base.clone()));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut clients = Vec::new();
    for _ in 0..6 {
        let (base, acked, stop) = (base.clone(), acked.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let url = format!(
                    "{}/order",
                    base.read().map(|b| b.clone()).unwrap_or_default()
                );
                match client.post(&url).json(&seed_order()).send().await {
                    Ok(r) if r.status().as_u16() == 202 => {
                        if let Ok(v) = r.json::<Value>().await {
                            if let Some(id) = v["orderId"].as_str() {
                                acked.lock().expect("lock").push(id.to_owned());
                            }
                        }
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }

    let kills = 6;
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(600))).await;
        app.kill();
        app = App::spawn_on(dir.path(), &crash_env());
        *base.write().expect("lock") = app.base.clone();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let ids: Vec<String> = acked.lock().expect("lock").clone();
    assert!(
        ids.len() > 100,
        "only {} orders were acknowledged",
        ids.len()
    );
    println!("{} orders acknowledged across {kills} kills", ids.len());
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "no order id was acknowledged twice"
    );

    let started = Instant::now();
    let orders = app.wait_all_terminal(&ids, Duration::from_secs(90)).await;
    println!(
        "all terminal {:?} after the last restart",
        started.elapsed()
    );
    let fulfilled = orders.iter().filter(|o| o["status"] == "FULFILLED").count();
    app.terminate();

    let conn = rusqlite::Connection::open(dofs_db(dir.path())).expect("open the file");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT COUNT(*) FROM orders WHERE status NOT IN ('FULFILLED', 'FAILED')"),
        0,
        "every stored order is terminal"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM executions WHERE status = 'RUNNING'"),
        0,
        "no execution is left running"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM fulfillments"),
        count("SELECT COUNT(*) FROM orders WHERE status = 'FULFILLED'"),
        "one fulfillment per FULFILLED order: none fulfilled twice"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM failed_orders"),
        count("SELECT COUNT(*) FROM orders WHERE status = 'FAILED'"),
        "one failed-orders row per FAILED order"
    );
    assert_eq!(count("SELECT COUNT(*) FROM failed_orders f JOIN orders o ON o.id = f.order_id WHERE o.status != 'FAILED'"), 0);
    assert!(fulfilled as i64 <= count("SELECT COUNT(*) FROM fulfillments"));
}

fn dofs_db(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("dofs.db")
}
