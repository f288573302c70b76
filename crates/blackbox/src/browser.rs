//! A real browser for the dashboard tests: Debian's headless Chromium driven
//! over WebDriver (chromedriver, plain HTTP through reqwest). Chromium and
//! chromedriver come from `scripts/setup-browser.sh`; without them a test
//! prints SKIP, except under `CI=true`, where it fails.

use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The longest chromedriver's start or any one [`Browser::wait_for`] may take.
const WAIT: Duration = Duration::from_secs(60);

/// A chromedriver process and one headless Chromium session. Dropped without
/// [`Browser::quit`] (a failed test), it still ends the session, so that no
/// Chromium outlives the test.
pub struct Browser {
    driver: Child,
    endpoint: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Chromium and chromedriver (`DOFS_CHROMIUM`, `DOFS_CHROMEDRIVER`, else
    /// Debian's paths), or `None` after printing SKIP for `what` when one is
    /// missing outside CI. Under `CI=true` a missing browser panics.
    pub fn binaries(what: &str) -> Option<(PathBuf, PathBuf)> {
        let chromium = std::env::var_os("DOFS_CHROMIUM")
            .map_or(PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        let driver = std::env::var_os("DOFS_CHROMEDRIVER")
            .map_or(PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
        if chromium.exists() && driver.exists() {
            return Some((chromium, driver));
        }
        let missing = format!(
            "{} or {} is missing (install them with scripts/setup-browser.sh)",
            chromium.display(),
            driver.display()
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what} needs a browser in CI: {missing}");
        }
        eprintln!("SKIP {what}: {missing}");
        None
    }

    /// Starts chromedriver on a free port and opens a session of a headless
    /// Chromium with a profile of its own.
    pub async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut browser = Browser {
            driver,
            endpoint: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: crate::http_client(),
            _profile: profile,
        };
        let started = Instant::now();
        loop {
            let status = format!("{}/status", browser.endpoint);
            if let Ok(r) = browser.http.get(status).send().await {
                let body: Value = r.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(started.elapsed() < WAIT, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1400,1000".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// One WebDriver command; panics with the driver's message on an error.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.endpoint);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request.send().await.expect("reach chromedriver");
        let status = response.status();
        let body: Value = response.json().await.expect("WebDriver JSON");
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {body}"
        );
        body["value"].clone()
    }

    /// One WebDriver command of this session.
    async fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` in the page and answers what it returns.
    pub async fn exec(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Runs `script` until it returns something other than null or false.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.exec(script).await;
            if !v.is_null() && v != false {
                return v;
            }
            assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element `css` selects.
    pub async fn click(&self, css: &str) {
        let found = self
            .session_call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = found[ELEMENT].as_str().expect("an element").to_owned();
        self.session_call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let data = self.session_call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 PNG"))
            .expect("decode the screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        png
    }

    /// The browser's log entries at SEVERE level (console errors, failed
    /// loads, exceptions) since the last call.
    pub async fn severe_log(&self) -> Vec<Value> {
        let entries = self
            .session_call("POST", "/se/log", json!({"type": "browser"}))
            .await;
        entries
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .collect()
    }

    /// Ends the session (Chromium closes) and stops chromedriver.
    pub async fn quit(mut self) {
        self.session_call("DELETE", "", Value::Null).await;
        self.session.clear();
    }
}

/// Ends a WebDriver session, blocking (for `Drop`): chromedriver then closes
/// its Chromium, which killing chromedriver alone would leave running.
fn end_session(endpoint: &str, session: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(())
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = end_session(&self.endpoint, &self.session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
