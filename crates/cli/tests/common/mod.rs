//! Black-box helpers: spawn the real `dofs serve` on a random port and a
//! temporary data directory, and talk to it over HTTP like a user. The
//! pieces every test tool shares (the seed order, the spawner, waiting for
//! terminal orders, the random generator) come from the test kit,
//! `dofs-blackbox`.
#![allow(dead_code)]

// Not every test file that includes this module sends the seed order.
#[allow(unused_imports)]
pub use dofs_blackbox::seed_order;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `dofs serve` child process.
pub struct App {
    pub base: String,
    pub child: Child,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
}

/// Fast settings for tests: short backoff and visibility timeout.
pub fn fast_env() -> Vec<(&'static str, String)> {
    vec![
        ("DOFS_QUEUE_BACKOFF_BASE_MS", "5".into()),
        ("DOFS_QUEUE_BACKOFF_MAX_MS", "20".into()),
        ("DOFS_QUEUE_VISIBILITY_TIMEOUT_MS", "2000".into()),
    ]
}

impl App {
    /// Starts `dofs serve` on `data_dir` with extra environment variables and waits until it listens.
    pub fn spawn_on(data_dir: &Path, env: &[(&str, String)]) -> App {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dofs"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("RUST_LOG")
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        App::start(cmd, data_dir)
    }

    /// Spawns `cmd` (a `dofs serve` command) and waits for its listening line.
    fn start(mut cmd: Command, data_dir: &Path) -> App {
        let (child, base) = dofs_blackbox::spawn_listening(&mut cmd, "dofs listening on ");
        let base = base.unwrap_or_else(|line| panic!("unexpected first line: {line:?}"));
        App {
            base,
            child,
            data_dir: data_dir.to_owned(),
            client: dofs_blackbox::http_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_order(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/order"))
            .json(body)
            .send()
            .await
            .expect("POST /order")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until every order is terminal, or panics after `limit`.
    pub async fn wait_all_terminal(&self, ids: &[String], limit: Duration) -> Vec<Value> {
        dofs_blackbox::wait_all_terminal(&self.client, &self.base, ids, limit).await
    }

    /// Every page of a listing route.
    pub async fn all_pages(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
                None => format!("{path}{sep}limit=500"),
            };
            let (status, page) = self.get_json(&url).await;
            assert_eq!(status, 200, "{url}");
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    /// As [`App::spawn_on`], with the server's log (stderr) written to `log`
    /// instead of discarded, and `RUST_LOG` set to `filter`.
    pub fn spawn_logging(data_dir: &Path, env: &[(&str, String)], log: &Path, filter: &str) -> App {
        let log_file = std::fs::File::create(log).expect("create the log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dofs"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", filter)
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        App::start(cmd, data_dir)
    }

    /// The text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        let r = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(r.status().as_u16(), 200, "GET /metrics");
        r.text().await.expect("metrics text")
    }

    /// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                started.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// This package's directory, read when the test runs. `env!` would keep the
/// checkout the test binary was first built in, and cargo reuses that binary
/// from a shared target directory after the checkout has moved (CI clones
/// into a new folder each run).
pub fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

/// The embedded crate's database fixture `name` (`schema-1.db`, ...).
pub fn db_fixture(name: &str) -> PathBuf {
    Path::new(&manifest_dir())
        .join("../embedded/tests/fixtures")
        .join(name)
}

/// Runs `dofs migrate --data-dir DATA`, with `--check` when `check`: its
/// exit code, standard output and standard error.
pub fn dofs_migrate(data: &Path, check: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dofs"));
    cmd.arg("migrate").arg("--data-dir").arg(data);
    if check {
        cmd.arg("--check");
    }
    let out = cmd.output().expect("run dofs migrate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The schema version (`PRAGMA user_version`) of the file `db`, read
/// without changing it.
pub fn schema_version(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .expect("read the schema version")
}
