//! A full disk, black box: `dofs serve` on a small tmpfs, filled while orders
//! arrive. `/ready` answers 503 saying why, `dofs_storage_writable` is 0 and
//! the `storage_not_writable` alert fires; once space is back all of it
//! recovers by itself, every order acknowledged before, during and after
//! reaches a terminal status, and the file passes `PRAGMA integrity_check`.
//!
//! Mounting needs root (or CAP_SYS_ADMIN). Where it is refused the test
//! skips saying so, and fails under `CI=true`.

mod common;

use common::{db_fixture, dofs_migrate, fast_env, schema_version, seed_order, App};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A size-limited tmpfs, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// A tmpfs of `size` at `path`; `None` (the test skips, saying why) where
/// mounting is refused, which under `CI=true` is a failure.
fn mount_or_skip(path: &Path, size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(path, size) {
        Ok(t) => Some(t),
        Err(why) => {
            assert!(!ci(), "cannot mount a tmpfs (CI=true: mandatory): {why}");
            eprintln!("SKIP: cannot mount a tmpfs for the full-disk test (needs root): {why}");
            None
        }
    }
}

fn ci() -> bool {
    matches!(
        std::env::var("CI").as_deref(),
        Ok("true" | "TRUE" | "True" | "1" | "yes")
    )
}

/// Writes `file` until the file system refuses (ENOSPC).
fn fill(file: &Path) {
    let mut f = std::fs::File::create(file).expect("create the filler");
    for chunk in [64 * 1024, 4096, 512] {
        let block = vec![0u8; chunk];
        while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    }
    let _ = f.sync_all();
}

async fn readiness(app: &App) -> (u16, Value) {
    app.get_json("/ready").await
}

fn gauge(metrics: &str) -> Option<String> {
    metrics
        .lines()
        .find(|l| l.starts_with("dofs_storage_writable "))
        .map(|l| l.trim_start_matches("dofs_storage_writable ").to_owned())
}

async fn alert_state(app: &App) -> String {
    let (_, alerts) = app.get_json("/alerts").await;
    let rules = alerts["alerts"].as_array().cloned().unwrap_or_default();
    rules
        .iter()
        .find(|r| r["name"] == "storage_not_writable")
        .and_then(|r| r["state"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_makes_ready_say_why_and_everything_recovers_once_space_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = mount_or_skip(&mnt, "24m") else {
        return;
    };
    // Big enough for the WAL to reach its checkpoint size (1000 pages, 4 MB).
    let data = mnt.join("data");
    let mut env = fast_env();
    env.push(("DOFS_ALERTS_EVALUATION_INTERVAL_MS", "200".into()));
    let app = App::spawn_on(&data, &env);
    let (status, _) = readiness(&app).await;
    assert_eq!(status, 200);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(0u32));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, url) = (app.client.clone(), app.url("/order"));
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = client.post(&url).json(&seed_order()).send().await {
                    if r.status().as_u16() == 202 {
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        if let Some(id) = body["orderId"].as_str() {
                            acked.lock().expect("acked").push(id.to_owned());
                        }
                    } else {
                        *refused.lock().expect("refused") += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let count = |v: &Arc<Mutex<Vec<String>>>| v.lock().expect("acked").len();
    app.eventually(
        "100 orders before the disk fills",
        Duration::from_secs(60),
        || async { (count(&acked) >= 100).then_some(()) },
    )
    .await;

    let filler = mnt.join("filler");
    fill(&filler);
    let reason = app
        .eventually(
            "/ready to answer 503 on a full disk",
            Duration::from_secs(60),
            || async {
                let (status, body) = readiness(&app).await;
                (status == 503).then(|| body["reason"].as_str().unwrap_or_default().to_owned())
            },
        )
        .await;
    assert!(reason.contains("cannot take writes"), "{reason}");
    assert!(reason.contains("is full"), "{reason}");
    assert_eq!(gauge(&app.metrics_text().await).as_deref(), Some("0"));
    app.eventually("the alert to fire", Duration::from_secs(10), || async {
        (alert_state(&app).await == "firing").then_some(())
    })
    .await;
    let acked_while_full = count(&acked);
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!(
        "full: {} orders acknowledged so far, {} refused",
        acked_while_full,
        *refused.lock().expect("refused")
    );

    std::fs::remove_file(&filler).expect("free the space");
    app.eventually(
        "/ready to answer 200 again",
        Duration::from_secs(30),
        || async { (readiness(&app).await.0 == 200).then_some(()) },
    )
    .await;
    assert_eq!(gauge(&app.metrics_text().await).as_deref(), Some("1"));
    app.eventually("the alert to resolve", Duration::from_secs(10), || async {
        (alert_state(&app).await == "ok").then_some(())
    })
    .await;
    let after = count(&acked);
    app.eventually(
        "orders to be acknowledged again",
        Duration::from_secs(30),
        || async { (count(&acked) > after + 20).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    assert!(
        *refused.lock().expect("refused") > 0,
        "some orders met the full disk"
    );

    let ids = acked.lock().expect("acked").clone();
    let orders = app.wait_all_terminal(&ids, Duration::from_secs(120)).await;
    assert_eq!(orders.len(), ids.len());
    let mut app = app;
    assert!(app.terminate().success(), "a clean shutdown");

    let conn = rusqlite::Connection::open(data.join("dofs.db")).expect("open the file");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .expect("count");
    assert!(
        stored as usize >= ids.len(),
        "every acknowledged order is stored"
    );
}

/// Migrating a schema-5 file writes its order tables again, which needs room
/// on the disk. Without it `dofs migrate --check` says start-up would refuse,
/// and `dofs migrate` refuses, saying how much it needs and how much is free;
/// the file stays at version 5, intact. Once there is room, the same command
/// migrates it.
#[test]
fn a_migration_on_a_full_disk_changes_nothing_and_runs_once_there_is_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = mount_or_skip(&mnt, "2m") else {
        return;
    };
    let data = mnt.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let db = data.join("dofs.db");
    std::fs::copy(db_fixture("schema-5.db"), &db).expect("copy the schema-5 fixture");
    // Leave room for the start-up's own checks (a probe file, the WAL's
    // first pages) but not for the tables written again.
    let filler = mnt.join("filler");
    fill(&filler);
    let full = std::fs::metadata(&filler).expect("filler").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .expect("open the filler");
    file.set_len(full.saturating_sub(24 * 1024))
        .expect("free 24 KiB");
    drop(file);

    // --check says so first (exit 2), as start-up would.
    let (code, _, stderr) = dofs_migrate(&data, true);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("start-up would refuse"), "{stderr}");
    let (code, _, stderr) = dofs_migrate(&data, false);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("free on its disk"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(schema_version(&db), 5, "the file is left at its version");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open read-only");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    drop(conn);

    std::fs::remove_file(&filler).expect("make room");
    let (code, _, stderr) = dofs_migrate(&data, false);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(schema_version(&db), dofs_embedded::db::SCHEMA_VERSION);
}
