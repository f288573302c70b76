//! `dofs serve` refuses to start, exit code 2 and a message saying what to
//! do (never a panic), on a damaged database and on a data directory it
//! cannot write. The second needs a read-only mount (root); where mounting
//! is refused it skips saying so, and fails under `CI=true`.

mod common;

use common::{seed_order, App};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `dofs serve` on `data_dir` and waits for it to exit: its code and stderr.
fn serve_exit(data_dir: &Path) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dofs"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dofs serve");
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("dofs serve started on {}", data_dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A data directory where `dofs serve` took `n` orders and stopped cleanly:
/// the temporary directory (kept alive by the caller) and the data directory.
async fn data_dir_with_orders(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut app = App::spawn_on(&data, &[]);
    for _ in 0..n {
        let r = app.post_order(&seed_order()).await;
        assert_eq!(r.status().as_u16(), 202);
    }
    assert!(app.terminate().success());
    drop(app);
    (dir, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_stops_start_up_saying_to_restore_a_backup() {
    let (_dir, data) = data_dir_with_orders(200).await;

    let db = data.join("dofs.db");
    let len = std::fs::metadata(&db).expect("the file").len();
    assert!(len > 16 * 4096, "a file of several pages ({len} bytes)");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .expect("open to damage");
    f.seek(SeekFrom::Start(2 * 4096)).expect("seek");
    f.write_all(&vec![0xA5; 8 * 4096])
        .expect("damage pages 3 to 10");
    f.sync_all().expect("sync");
    drop(f);

    let (code, err) = serve_exit(&data);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("the file is damaged"), "{err}");
    assert!(err.contains("dofs restore --from BACKUP"), "{err}");
}

/// A file whose every page reads well but whose index disagrees with its
/// table passes `PRAGMA quick_check`; start-up runs the full
/// `integrity_check` and refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_that_disagrees_with_its_table_stops_start_up() {
    let (_dir, data) = data_dir_with_orders(50).await;

    // The schema says the index holds (customer_id, id); its pages still
    // hold (status, id).
    let db = data.join("dofs.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema
                SET sql = 'CREATE INDEX orders_by_status ON orders (customer_id, id)'
              WHERE name = 'orders_by_status';
             PRAGMA writable_schema = OFF;",
        )
        .expect("rewrite the index's definition");
    }
    let conn = rusqlite::Connection::open(&db).expect("reopen");
    let quick: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .expect("quick_check");
    assert_eq!(quick, "ok", "the quick check does not see it");
    drop(conn);

    let (code, err) = serve_exit(&data);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("fails SQLite's integrity check"), "{err}");
    assert!(err.contains("orders_by_status"), "{err}");
    assert!(err.contains("dofs restore --from BACKUP"), "{err}");
}

#[test]
fn a_data_directory_that_cannot_be_written_stops_start_up_saying_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&ro).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&ro)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                Err(e) => e.to_string(),
            };
            let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1"));
            assert!(
                !ci,
                "cannot mount a read-only tmpfs (CI=true: mandatory): {why}"
            );
            eprintln!("SKIP: cannot mount a read-only tmpfs (needs root): {why}");
            return;
        }
    }
    let outcome = std::panic::catch_unwind(|| serve_exit(&ro));
    let _ = Command::new("umount").arg(&ro).status();
    let (code, err) = outcome.expect("dofs serve ran");
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("cannot be written"), "{err}");
    assert!(
        err.contains("make it writable by the user running dofs"),
        "{err}"
    );

    // A directory that cannot even be made: its parent is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let (code, err) = serve_exit(&file.join("data"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot create the data directory"), "{err}");
}
