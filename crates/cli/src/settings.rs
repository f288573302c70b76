//! Typed, layered configuration: defaults, then the TOML file, then `DOFS_*`
//! environment variables, then command-line flags. Every key has an
//! environment variable: `DOFS_` and the key upper-cased, dots as underscores
//! (`fulfillment.success_rate` is `DOFS_FULFILLMENT_SUCCESS_RATE`). A bad value
//! stops start-up with a message naming the key and where it came from.

use anyhow::{anyhow, bail, Context};
use dofs_core::Price;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every key, its default (None: unset) and what it means.
pub const KEYS: &[(&str, Option<&str>, &str)] = &[
    (
        "server.bind",
        Some("127.0.0.1:8080"),
        "address and port to listen on",
    ),
    (
        "server.rate_limit_per_second",
        Some("0"),
        "requests per second each client (API key, or IP without auth) may make on average; 0: no rate limit",
    ),
    (
        "server.rate_limit_burst",
        Some("200"),
        "requests a client may make at once after being idle (the token bucket's size)",
    ),
    (
        "server.max_in_flight",
        Some("256"),
        "requests handled at once, all clients together; more are answered 429",
    ),
    (
        "server.max_connections",
        Some("4096"),
        "connections open at once; more wait in the listen backlog",
    ),
    (
        "server.request_timeout_ms",
        Some("30000"),
        "longest time a request may take before it is answered 503 Timeout",
    ),
    (
        "server.header_read_timeout_ms",
        Some("10000"),
        "longest time a client may take to send a request's headers before its connection is closed",
    ),
    (
        "server.keep_alive_timeout_ms",
        Some("5000"),
        "longest time a kept-alive connection may sit idle between requests before it is closed, so that idle clients do not hold server.max_connections",
    ),
    (
        "server.body_read_timeout_ms",
        Some("10000"),
        "longest time an order's body may take to arrive before it is answered 408",
    ),
    (
        "storage.data_dir",
        Some("./dofs-data"),
        "directory holding dofs.db",
    ),
    (
        "environment",
        Some("dev"),
        "environment name (dev, staging, prod, ...)",
    ),
    (
        "fulfillment.success_rate",
        Some("0.7"),
        "probability that one attempt succeeds, 0 to 1",
    ),
    (
        "fulfillment.seed",
        None,
        "makes outcomes a pure function of (seed, order, attempt)",
    ),
    (
        "fulfillment.delay_ms",
        Some("0"),
        "simulated work per attempt, in milliseconds",
    ),
    (
        "fulfillment.workers",
        None,
        "fulfillment workers (default: number of cores)",
    ),
    (
        "queue.max_receive_count",
        Some("3"),
        "receives before a message moves to the DLQ",
    ),
    (
        "queue.visibility_timeout_ms",
        Some("30000"),
        "how long a received message stays hidden",
    ),
    (
        "queue.backoff_base_ms",
        Some("1000"),
        "delay after the first failed attempt; doubles each attempt",
    ),
    (
        "queue.backoff_max_ms",
        Some("30000"),
        "longest delay between attempts",
    ),
    (
        "queue.max_backlog",
        Some("100000"),
        "orders queued (waiting or being fulfilled) at which new orders are answered 429; 0: no limit",
    ),
    (
        "validation.max_quantity",
        Some("100"),
        "largest quantity accepted",
    ),
    (
        "validation.max_price",
        Some("10000"),
        "largest price accepted",
    ),
    (
        "alerts.dlq_depth_threshold",
        Some("5"),
        "DLQ depth above which the DLQ alert fires",
    ),
    (
        "alerts.webhook_url",
        None,
        "where firing and resolved alerts are POSTed",
    ),
    (
        "alerts.evaluation_interval_ms",
        Some("1000"),
        "how often the alert rules are evaluated",
    ),
    (
        "alerts.window_s",
        Some("300"),
        "window of the failure-ratio, 5XX and workflow-failure rules, in seconds",
    ),
    (
        "alerts.failure_ratio_threshold",
        Some("0.5"),
        "failed share of fulfillment attempts (0 to 1) above which that alert fires",
    ),
    (
        "alerts.failure_ratio_min_attempts",
        Some("10"),
        "attempts the window needs before the failure-ratio alert may fire",
    ),
    (
        "alerts.http_5xx_threshold",
        Some("0"),
        "5XX responses in the window above which the API alert fires",
    ),
    (
        "alerts.workflow_failures_threshold",
        Some("0"),
        "failed workflow executions in the window above which that alert fires",
    ),
    (
        "alerts.queue_age_threshold_s",
        Some("300"),
        "age in seconds of the oldest queued message above which that alert fires",
    ),
    (
        "auth.api_keys",
        None,
        "API keys accepted on every route but /health and /ready",
    ),
    (
        "auth.operator_keys",
        None,
        "keys accepted on operator routes (retry, redrive, purge)",
    ),
    ("log.format", Some("text"), "text or json"),
];

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Rate limits, in-flight and backlog limits, timeouts (`server.*`, `queue.max_backlog`).
    pub overload: dofs_server::overload::OverloadConfig,
    /// Connection limits (`server.max_connections`, `server.header_read_timeout_ms`,
    /// `server.keep_alive_timeout_ms`).
    pub serve: dofs_server::serve::ServeConfig,
    pub data_dir: PathBuf,
    pub environment: String,
    pub success_rate: f64,
    pub seed: Option<u64>,
    pub delay: Duration,
    pub workers: usize,
    pub max_receive_count: u32,
    pub visibility_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_quantity: u32,
    pub max_price: Price,
    pub dlq_depth_threshold: u64,
    pub webhook_url: Option<String>,
    /// The other alert rules' settings (`alerts.*` but the two above).
    pub alert_rules: AlertRules,
    pub api_keys: Vec<Secret>,
    pub operator_keys: Vec<Secret>,
    pub json_logs: bool,
}

/// The alert rules' thresholds and timing.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRules {
    pub evaluation_interval: Duration,
    pub window: Duration,
    pub failure_ratio_threshold: f64,
    pub failure_ratio_min_attempts: u64,
    pub http_5xx_threshold: u64,
    pub workflow_failures_threshold: u64,
    pub queue_age_threshold: Duration,
}

/// Values given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub bind: Option<String>,
    pub data_dir: Option<String>,
    pub environment: Option<String>,
}

#[derive(Clone, Debug)]
enum Raw {
    Toml(toml::Value),
    Text(String),
}

#[derive(Clone, Debug)]
struct Source {
    value: Raw,
    origin: String,
}

impl Settings {
    /// Resolves the settings from the file (if any), `env` and the flags.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &Flags,
    ) -> anyhow::Result<Settings> {
        let mut values: BTreeMap<&'static str, Source> = BTreeMap::new();
        for (key, default, _) in KEYS {
            if let Some(d) = default {
                values.insert(
                    key,
                    Source {
                        value: Raw::Text((*d).to_owned()),
                        origin: "the default".into(),
                    },
                );
            }
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let table: toml::Table = text.parse().map_err(|e| {
                anyhow!(
                    "the configuration file {} is not valid TOML: {e}",
                    path.display()
                )
            })?;
            let mut flat = Vec::new();
            flatten("", &toml::Value::Table(table), &mut flat);
            for (key, value) in flat {
                let Some((known, _, _)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
                    bail!(
                        "unknown key `{key}` in {} (known keys: {})",
                        path.display(),
                        key_list()
                    );
                };
                values.insert(
                    known,
                    Source {
                        value: Raw::Toml(value),
                        origin: format!("{}", path.display()),
                    },
                );
            }
        }
        for (key, _, _) in KEYS {
            let var = env_var(key);
            if let Some(v) = env.get(&var) {
                values.insert(
                    key,
                    Source {
                        value: Raw::Text(v.clone()),
                        origin: format!("${var}"),
                    },
                );
            }
        }
        let flag_values = [
            ("server.bind", &flags.bind, "--bind"),
            ("storage.data_dir", &flags.data_dir, "--data-dir"),
            ("environment", &flags.environment, "--env"),
        ];
        for (key, value, flag) in flag_values {
            if let Some(v) = value {
                values.insert(
                    key,
                    Source {
                        value: Raw::Text(v.clone()),
                        origin: flag.into(),
                    },
                );
            }
        }
        Resolver { values }.settings()
    }
}

/// `DOFS_` and the key upper-cased, dots as underscores.
pub fn env_var(key: &str) -> String {
    format!("DOFS_{}", key.to_uppercase().replace('.', "_"))
}

fn key_list() -> String {
    KEYS.iter()
        .map(|(k, _, _)| *k)
        .collect::<Vec<_>>()
        .join(", ")
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match value {
        toml::Value::Table(t)
            if prefix.is_empty() || !KEYS.iter().any(|(k, _, _)| *k == prefix) =>
        {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

struct Resolver {
    values: BTreeMap<&'static str, Source>,
}

impl Resolver {
    fn text(&self, key: &str) -> anyhow::Result<Option<(String, &Source)>> {
        let Some(src) = self.values.get(key) else {
            return Ok(None);
        };
        let text = match &src.value {
            Raw::Text(t) => t.clone(),
            Raw::Toml(toml::Value::String(s)) => s.clone(),
            Raw::Toml(toml::Value::Integer(i)) => i.to_string(),
            Raw::Toml(toml::Value::Float(f)) => f.to_string(),
            Raw::Toml(toml::Value::Boolean(b)) => b.to_string(),
            Raw::Toml(other) => {
                bail!(
                    "`{key}` (from {}) must be a single value, not {}",
                    src.origin,
                    other.type_str()
                )
            }
        };
        Ok(Some((text, src)))
    }

    fn parse<T>(
        &self,
        key: &str,
        rule: &str,
        check: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<Option<T>> {
        match self.text(key)? {
            None => Ok(None),
            Some((text, src)) => match check(text.trim()) {
                Some(v) => Ok(Some(v)),
                None => bail!("invalid value for `{key}` (from {}): {rule}", src.origin),
            },
        }
    }

    fn required<T>(
        &self,
        key: &str,
        rule: &str,
        check: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.parse(key, rule, check)?
            .ok_or_else(|| anyhow!("`{key}` has no value"))
    }

    fn list(&self, key: &str) -> anyhow::Result<Vec<Secret>> {
        let Some(src) = self.values.get(key) else {
            return Ok(Vec::new());
        };
        let items: Vec<String> = match &src.value {
            Raw::Text(t) => t
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            Raw::Toml(toml::Value::String(s)) => vec![s.clone()],
            Raw::Toml(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    anyhow!(
                        "invalid value for `{key}` (from {}): must be a list of strings",
                        src.origin
                    )
                })?,
            Raw::Toml(_) => bail!(
                "invalid value for `{key}` (from {}): must be a list of strings",
                src.origin
            ),
        };
        for item in &items {
            if item.len() < 16 || item.len() > 256 || !item.bytes().all(|b| b.is_ascii_graphic()) {
                bail!(
                    "invalid value for `{key}` (from {}): each key must be 16 to 256 visible ASCII characters",
                    src.origin
                );
            }
        }
        Ok(items.into_iter().map(Secret).collect())
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let ms = |lo: u64, hi: u64| {
            move |s: &str| s.parse::<u64>().ok().filter(|v| (lo..=hi).contains(v))
        };
        let visibility_ms = self.required(
            "queue.visibility_timeout_ms",
            "a whole number of milliseconds from 100 to 43200000",
            ms(100, 43_200_000),
        )?;
        let backoff_base_ms = self.required(
            "queue.backoff_base_ms",
            "a whole number of milliseconds from 0 to 43200000",
            ms(0, 43_200_000),
        )?;
        let backoff_max_ms = self.required(
            "queue.backoff_max_ms",
            "a whole number of milliseconds from 0 to 43200000",
            ms(0, 43_200_000),
        )?;
        if backoff_max_ms < backoff_base_ms {
            bail!("invalid value for `queue.backoff_max_ms`: must be at least queue.backoff_base_ms ({backoff_base_ms})");
        }
        let webhook_url = self.parse("alerts.webhook_url", "an http:// or https:// URL", |s| {
            (s.starts_with("http://") || s.starts_with("https://")).then(|| s.to_owned())
        })?;
        let log_format = self.required("log.format", "text or json", |s| {
            matches!(s, "text" | "json").then(|| s.to_owned())
        })?;
        let api_keys = self.list("auth.api_keys")?;
        let operator_keys = self.list("auth.operator_keys")?;
        if !operator_keys.is_empty() && api_keys.is_empty() {
            bail!("`auth.operator_keys` is set but `auth.api_keys` is not: set both to turn authentication on");
        }
        let overload = dofs_server::overload::OverloadConfig {
            rate_per_second: self.required(
                "server.rate_limit_per_second",
                "a number from 0 (off) to 1000000",
                |s| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1_000_000.0).contains(r))
                },
            )?,
            burst: self.required(
                "server.rate_limit_burst",
                "a whole number from 1 to 1000000",
                |s| {
                    s.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                },
            )?,
            max_in_flight: self.required(
                "server.max_in_flight",
                "a whole number from 1 to 1000000",
                |s| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                },
            )?,
            max_backlog: self.required(
                "queue.max_backlog",
                "a whole number from 0 (off) to 1000000000",
                |s| s.parse::<u64>().ok().filter(|n| *n <= 1_000_000_000),
            )?,
            request_timeout: Duration::from_millis(self.required(
                "server.request_timeout_ms",
                "a whole number of milliseconds from 100 to 3600000",
                ms(100, 3_600_000),
            )?),
            body_read_timeout: Duration::from_millis(self.required(
                "server.body_read_timeout_ms",
                "a whole number of milliseconds from 100 to 3600000",
                ms(100, 3_600_000),
            )?),
        };
        let serve = dofs_server::serve::ServeConfig {
            header_read_timeout: Duration::from_millis(self.required(
                "server.header_read_timeout_ms",
                "a whole number of milliseconds from 100 to 3600000",
                ms(100, 3_600_000),
            )?),
            keep_alive_timeout: Duration::from_millis(self.required(
                "server.keep_alive_timeout_ms",
                "a whole number of milliseconds from 100 to 3600000",
                ms(100, 3_600_000),
            )?),
            max_connections: self.required(
                "server.max_connections",
                "a whole number from 1 to 1000000",
                |s| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                },
            )?,
        };
        Ok(Settings {
            overload,
            serve,
            bind: self.required(
                "server.bind",
                "an address and port such as 127.0.0.1:8080",
                |s| s.parse().ok(),
            )?,
            data_dir: self.required("storage.data_dir", "a directory path", |s| {
                (!s.is_empty()).then(|| PathBuf::from(s))
            })?,
            environment: self.required(
                "environment",
                "1 to 32 lower-case letters, digits or dashes",
                |s| {
                    (!s.is_empty()
                        && s.len() <= 32
                        && s.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
                    .then(|| s.to_owned())
                },
            )?,
            success_rate: self.required(
                "fulfillment.success_rate",
                "a number from 0 to 1",
                |s| s.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)),
            )?,
            seed: self.parse(
                "fulfillment.seed",
                "a whole number from 0 to 18446744073709551615",
                |s| s.parse().ok(),
            )?,
            delay: Duration::from_millis(self.required(
                "fulfillment.delay_ms",
                "a whole number of milliseconds from 0 to 600000",
                ms(0, 600_000),
            )?),
            workers: match self.parse(
                "fulfillment.workers",
                "a whole number from 1 to 1024",
                |s| s.parse::<usize>().ok().filter(|n| (1..=1024).contains(n)),
            )? {
                Some(n) => n,
                None => std::thread::available_parallelism().map_or(2, |n| n.get()),
            },
            max_receive_count: self.required(
                "queue.max_receive_count",
                "a whole number from 1 to 1000",
                |s| s.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)),
            )?,
            visibility_timeout: Duration::from_millis(visibility_ms),
            backoff_base: Duration::from_millis(backoff_base_ms),
            backoff_max: Duration::from_millis(backoff_max_ms),
            max_quantity: self.required(
                "validation.max_quantity",
                "a whole number from 1 to 1000000000",
                |s| {
                    s.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1_000_000_000).contains(n))
                },
            )?,
            max_price: self.required(
                "validation.max_price",
                "a number greater than 0 with at most 2 decimal places, up to 1000000000",
                |s| Price::from_decimal_text(s, 100_000_000_000).ok(),
            )?,
            dlq_depth_threshold: self.required(
                "alerts.dlq_depth_threshold",
                "a whole number",
                |s| s.parse().ok(),
            )?,
            webhook_url,
            alert_rules: AlertRules {
                evaluation_interval: Duration::from_millis(self.required(
                    "alerts.evaluation_interval_ms",
                    "a whole number of milliseconds from 10 to 3600000",
                    ms(10, 3_600_000),
                )?),
                window: Duration::from_secs(self.required(
                    "alerts.window_s",
                    "a whole number of seconds from 1 to 86400",
                    ms(1, 86_400),
                )?),
                failure_ratio_threshold: self.required(
                    "alerts.failure_ratio_threshold",
                    "a number from 0 to 1",
                    |s| s.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)),
                )?,
                failure_ratio_min_attempts: self.required(
                    "alerts.failure_ratio_min_attempts",
                    "a whole number",
                    |s| s.parse().ok(),
                )?,
                http_5xx_threshold: self.required(
                    "alerts.http_5xx_threshold",
                    "a whole number",
                    |s| s.parse().ok(),
                )?,
                workflow_failures_threshold: self.required(
                    "alerts.workflow_failures_threshold",
                    "a whole number",
                    |s| s.parse().ok(),
                )?,
                queue_age_threshold: Duration::from_secs(self.required(
                    "alerts.queue_age_threshold_s",
                    "a whole number of seconds from 1 to 1209600",
                    ms(1, 1_209_600),
                )?),
            },
            api_keys,
            operator_keys,
            json_logs: log_format == "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::load(None, &env(&[]), &Flags::default()).expect("defaults");
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./dofs-data"));
        assert_eq!(s.environment, "dev");
        assert_eq!(s.success_rate, 0.7);
        assert_eq!(s.seed, None);
        assert_eq!(s.max_receive_count, 3);
        assert_eq!(s.visibility_timeout, Duration::from_secs(30));
        assert_eq!(s.max_quantity, 100);
        assert_eq!(s.max_price, Price::from_cents(1_000_000));
        assert_eq!(s.dlq_depth_threshold, 5);
        assert_eq!(s.alert_rules.window, Duration::from_secs(300));
        assert_eq!(s.alert_rules.http_5xx_threshold, 0);
        assert!(s.api_keys.is_empty());
        assert_eq!(s.overload.rate_per_second, 0.0, "no rate limit by default");
        assert_eq!(s.overload.burst, 200);
        assert_eq!(s.overload.max_in_flight, 256);
        assert_eq!(s.overload.max_backlog, 100_000);
        assert_eq!(s.overload.request_timeout, Duration::from_secs(30));
        assert_eq!(s.overload.body_read_timeout, Duration::from_secs(10));
        assert_eq!(s.serve.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.serve.max_connections, 4096);
        assert_eq!(s.serve.keep_alive_timeout, Duration::from_secs(5));
    }

    #[test]
    fn overload_limits_are_configurable_and_checked() {
        let s = Settings::load(
            None,
            &env(&[
                ("DOFS_SERVER_RATE_LIMIT_PER_SECOND", "2.5"),
                ("DOFS_SERVER_RATE_LIMIT_BURST", "5"),
                ("DOFS_SERVER_MAX_IN_FLIGHT", "8"),
                ("DOFS_QUEUE_MAX_BACKLOG", "0"),
                ("DOFS_SERVER_HEADER_READ_TIMEOUT_MS", "500"),
            ]),
            &Flags::default(),
        )
        .expect("valid limits");
        assert_eq!(
            (
                s.overload.rate_per_second,
                s.overload.burst,
                s.overload.max_in_flight
            ),
            (2.5, 5, 8)
        );
        assert_eq!(s.overload.max_backlog, 0);
        assert_eq!(s.serve.header_read_timeout, Duration::from_millis(500));
        for (var, value, key) in [
            (
                "DOFS_SERVER_RATE_LIMIT_PER_SECOND",
                "-1",
                "server.rate_limit_per_second",
            ),
            (
                "DOFS_SERVER_RATE_LIMIT_BURST",
                "0",
                "server.rate_limit_burst",
            ),
            ("DOFS_SERVER_MAX_IN_FLIGHT", "0", "server.max_in_flight"),
            (
                "DOFS_SERVER_MAX_CONNECTIONS",
                "lots",
                "server.max_connections",
            ),
            ("DOFS_QUEUE_MAX_BACKLOG", "-5", "queue.max_backlog"),
            (
                "DOFS_SERVER_REQUEST_TIMEOUT_MS",
                "5",
                "server.request_timeout_ms",
            ),
            (
                "DOFS_SERVER_HEADER_READ_TIMEOUT_MS",
                "1h",
                "server.header_read_timeout_ms",
            ),
            (
                "DOFS_SERVER_BODY_READ_TIMEOUT_MS",
                "0",
                "server.body_read_timeout_ms",
            ),
        ] {
            let m = Settings::load(None, &env(&[(var, value)]), &Flags::default())
                .expect_err(var)
                .to_string();
            assert!(m.contains(key) && m.contains(var), "{m}");
        }
    }

    #[test]
    fn the_file_is_overridden_by_the_environment_and_then_by_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("dofs.toml");
        std::fs::write(
            &file,
            "environment = \"staging\"\n[server]\nbind = \"127.0.0.1:9000\"\n[fulfillment]\nsuccess_rate = 0.5\nseed = 42\n",
        )
        .expect("write");
        let s = Settings::load(Some(&file), &env(&[]), &Flags::default()).expect("file");
        assert_eq!(
            (
                s.environment.as_str(),
                s.bind.port(),
                s.success_rate,
                s.seed
            ),
            ("staging", 9000, 0.5, Some(42))
        );
        let e = env(&[
            ("DOFS_FULFILLMENT_SUCCESS_RATE", "0.9"),
            ("DOFS_SERVER_BIND", "127.0.0.1:9001"),
        ]);
        let s = Settings::load(Some(&file), &e, &Flags::default()).expect("env");
        assert_eq!((s.success_rate, s.bind.port()), (0.9, 9001));
        let flags = Flags {
            bind: Some("127.0.0.1:9002".into()),
            ..Flags::default()
        };
        let s = Settings::load(Some(&file), &e, &flags).expect("flags");
        assert_eq!(s.bind.port(), 9002);
    }

    #[test]
    fn a_bad_value_names_the_key_and_its_origin() {
        let err = |e: &[(&str, &str)]| {
            Settings::load(None, &env(e), &Flags::default())
                .expect_err("must fail")
                .to_string()
        };
        let m = err(&[("DOFS_FULFILLMENT_SUCCESS_RATE", "1.5")]);
        assert!(
            m.contains("fulfillment.success_rate") && m.contains("$DOFS_FULFILLMENT_SUCCESS_RATE"),
            "{m}"
        );
        assert!(err(&[("DOFS_QUEUE_MAX_RECEIVE_COUNT", "0")]).contains("queue.max_receive_count"));
        assert!(err(&[("DOFS_SERVER_BIND", "nowhere")]).contains("server.bind"));
        assert!(err(&[("DOFS_VALIDATION_MAX_PRICE", "10.001")]).contains("validation.max_price"));
        assert!(err(&[("DOFS_AUTH_API_KEYS", "short")]).contains("auth.api_keys"));
        let m = err(&[
            ("DOFS_AUTH_API_KEYS", "a-very-secret-key-123"),
            ("DOFS_LOG_FORMAT", "xml"),
        ]);
        assert!(
            !m.contains("a-very-secret-key-123"),
            "secrets never appear in messages: {m}"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_stop_start_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("dofs.toml");
        std::fs::write(&file, "[fulfilment]\nsuccess_rate = 0.5\n").expect("write");
        let m = Settings::load(Some(&file), &env(&[]), &Flags::default())
            .expect_err("unknown")
            .to_string();
        assert!(m.contains("fulfilment.success_rate"), "{m}");
    }

    #[test]
    fn every_key_has_its_environment_variable() {
        assert_eq!(
            env_var("fulfillment.success_rate"),
            "DOFS_FULFILLMENT_SUCCESS_RATE"
        );
        assert_eq!(env_var("environment"), "DOFS_ENVIRONMENT");
        for (key, _, _) in KEYS {
            let e = env(&[(&env_var(key), "!bad value!")]);
            if let Err(m) = Settings::load(None, &e, &Flags::default()) {
                assert!(m.to_string().contains(key), "{key}: {m}");
            }
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("abc".into())), "Secret(****)");
    }
}
