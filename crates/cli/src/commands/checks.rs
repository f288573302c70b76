//! The checklist printed by `validate-system` and `test-system`: one line per
//! check as it completes (`PASS`, `FAIL`, `WARN` or `SKIP`, its name, what was
//! seen), and a closing `N passed, N failed` line. With `--json`, one JSON
//! document at the end instead.

use crate::commands::client::Exit;
use serde_json::{json, Value};

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// Passed, with something an operator should look at.
    Warn,
    /// Not applicable to this deployment (e.g. no `/alerts` route).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Skip => "SKIP",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// The results so far, printed as they come in human mode.
#[derive(Debug)]
pub struct Checklist {
    json: bool,
    checks: Vec<Check>,
    /// Set when the endpoint did not answer at all: the exit code is then 3.
    pub unreachable: bool,
}

impl Checklist {
    /// An empty list; `json` holds the output back until [`Checklist::finish`].
    pub fn new(json: bool) -> Checklist {
        Checklist {
            json,
            checks: Vec::new(),
            unreachable: false,
        }
    }

    /// Records and (in human mode) prints one result.
    pub fn record(&mut self, name: &str, status: Status, detail: impl Into<String>) {
        let check = Check {
            name: name.to_owned(),
            status,
            detail: detail.into(),
        };
        if !self.json {
            println!("{}  {}: {}", check.status.label(), check.name, check.detail);
        }
        self.checks.push(check);
    }

    /// Records a pass (`Ok`) or a failure (`Err`).
    pub fn result(&mut self, name: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(detail) => self.record(name, Status::Pass, detail),
            Err(detail) => self.record(name, Status::Fail, detail),
        }
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The names of the failed checks.
    pub fn failed_names(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The closing line: `N passed, N failed` (warnings count as passed), then skips.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} passed, {} failed",
            self.count(Status::Pass) + self.count(Status::Warn),
            self.count(Status::Fail)
        );
        let skipped = self.count(Status::Skip);
        if skipped > 0 {
            line.push_str(&format!(", {skipped} skipped"));
        }
        line
    }

    /// Prints the closing line (or the JSON document) and gives the exit code:
    /// 0 when nothing failed, 3 when the endpoint never answered, else 1.
    pub fn finish(self) -> Exit {
        let failed = self.count(Status::Fail);
        if self.json {
            let checks: Vec<Value> = self
                .checks
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "status": c.status.label().to_ascii_lowercase(),
                        "detail": c.detail,
                    })
                })
                .collect();
            let doc = json!({
                "checks": checks,
                "passed": self.count(Status::Pass) + self.count(Status::Warn),
                "failed": failed,
                "skipped": self.count(Status::Skip),
                "unreachable": self.unreachable,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
            );
        } else {
            let names = self.failed_names();
            if !names.is_empty() {
                println!();
                println!("failed: {}", names.join(", "));
            }
            println!("{}", self.summary());
        }
        if failed == 0 {
            Exit::Ok
        } else if self.unreachable {
            Exit::Unreachable
        } else {
            Exit::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_warnings_as_passed_and_lists_skips_last() {
        let mut list = Checklist::new(true);
        list.record("a", Status::Pass, "ok");
        list.record("b", Status::Warn, "look");
        list.record("c", Status::Fail, "broken");
        list.record("d", Status::Skip, "n/a");
        assert_eq!(list.summary(), "2 passed, 1 failed, 1 skipped");
        assert_eq!(list.failed_names(), ["c"]);
        assert_eq!(list.finish(), Exit::Failed);
    }

    #[test]
    fn an_unreachable_endpoint_exits_3_and_a_clean_run_exits_0() {
        let mut list = Checklist::new(true);
        list.record("health", Status::Fail, "connection refused");
        list.unreachable = true;
        assert_eq!(list.finish(), Exit::Unreachable);
        let mut list = Checklist::new(true);
        list.result("health", Ok("200".into()));
        assert_eq!(list.finish(), Exit::Ok);
    }
}
