//! `dofs serve` as a child process: started on a data directory, read for
//! its listening address, killed and restarted.

use super::*;

/// A running (or just died) `dofs serve`.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) base: Option<String>,
    /// The fail point the server reported before dying, if any.
    pub(super) fail_point: Arc<Mutex<Option<String>>>,
    /// The last lines of its stderr, for diagnostics.
    pub(super) log_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    pub(super) fn spawn(
        dofs: &Path,
        data_dir: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Server> {
        let mut cmd = Command::new(dofs);
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("DOFS_FAIL_POINT")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The test kit's spawner reads the listening line and drains stdout.
        let (mut child, base) = dofs_blackbox::try_spawn_listening(&mut cmd, "dofs listening on ")
            .with_context(|| format!("cannot start {}", dofs.display()))?;
        let base = base.ok();
        let fail_point = Arc::new(Mutex::new(None));
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let (fail_point, log_tail) = (fail_point.clone(), log_tail.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("dofs fail point ") {
                        let name = rest.trim_end_matches(" hit").to_owned();
                        if let Ok(mut f) = fail_point.lock() {
                            *f = Some(name);
                        }
                    }
                    if let Ok(mut tail) = log_tail.lock() {
                        if tail.len() >= 20 {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            });
        }
        Ok(Server {
            child,
            base,
            fail_point,
            log_tail,
        })
    }

    pub(super) fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    pub(super) fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not stopped within `grace`.
    pub(super) fn terminate(&mut self, grace: Duration) -> bool {
        // SAFETY: kill(2) with a pid we own and a constant signal.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < grace {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.sigkill();
        false
    }

    pub(super) fn reported(&self) -> Option<String> {
        // The stderr reader may lag the exit by a moment.
        for _ in 0..50 {
            if let Some(p) = self.fail_point.lock().ok().and_then(|f| f.clone()) {
                return Some(p);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub(super) fn tail(&self) -> String {
        self.log_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}
