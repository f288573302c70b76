//! Checking and converting the gathered values into [`Settings`]: each
//! key's rule, and an error naming the key and where its value came from.
//! The keys the Lambdas read too take their rule from [`dofs_core::settings`].

use super::{AlertRules, EventSettings, FulfillmentMode, Secret, Settings};
use anyhow::{anyhow, bail};
use dofs_core::settings::{self as shared, http_url, Key, Mode};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A value as given: from the TOML file, or as text (default, variable, flag).
#[derive(Clone, Debug)]
pub(super) enum Raw {
    Toml(toml::Value),
    Text(String),
}

#[derive(Clone, Debug)]
pub(super) struct Source {
    pub(super) value: Raw,
    pub(super) origin: String,
}

pub(super) struct Resolver {
    pub(super) values: BTreeMap<&'static str, Source>,
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

    /// A key defined in [`dofs_core::settings`], by its rule.
    fn shared<T>(&self, spec: &Key<T>) -> anyhow::Result<Option<T>> {
        self.parse(spec.key, spec.rule, |s| spec.check(s))
    }

    fn shared_required<T>(&self, spec: &Key<T>) -> anyhow::Result<T> {
        self.required(spec.key, spec.rule, |s| spec.check(s))
    }

    fn list(&self, key: &str) -> anyhow::Result<Vec<Secret>> {
        let items = self.strings(key)?;
        let origin = self.values.get(key).map_or("", |s| s.origin.as_str());
        for item in &items {
            if item.len() < 16 || item.len() > 256 || !item.bytes().all(|b| b.is_ascii_graphic()) {
                bail!(
                    "invalid value for `{key}` (from {origin}): each key must be 16 to 256 visible ASCII characters",
                );
            }
        }
        Ok(items.into_iter().map(Secret).collect())
    }

    /// A list of strings: a TOML array or string, or comma-separated text.
    fn strings(&self, key: &str) -> anyhow::Result<Vec<String>> {
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
        Ok(items)
    }

    /// A signing secret: `whsec_` and base64 (checked in full when the
    /// sender is built; here only its form, so a typo names the key).
    fn signing_secret(&self, key: &str) -> anyhow::Result<Option<Secret>> {
        self.parse(key, "whsec_ followed by the base64 of the key", |s| {
            dofs_fulfillment::signature::Secret::parse(s)
                .ok()
                .map(|_| Secret(s.to_owned()))
        })
    }

    fn fulfillment(&self) -> anyhow::Result<FulfillmentMode> {
        let mode = self.shared_required(&shared::MODE)?;
        let url = self.shared(&shared::HTTP_URL)?;
        let secret = self.signing_secret("fulfillment.http.secret")?;
        let timeout = Duration::from_millis(self.shared_required(&shared::HTTP_TIMEOUT_MS)?);
        let concurrency = self.shared_required(&shared::HTTP_CONCURRENCY)?;
        if mode == Mode::Simulated {
            return Ok(FulfillmentMode::Simulated);
        }
        let Some(url) = url else {
            bail!("`fulfillment.http.url` has no value: it is required when `fulfillment.mode` is http");
        };
        // An attempt must end before its message may be received again.
        let visibility =
            self.parse("queue.visibility_timeout_ms", "", |s| s.parse::<u64>().ok())?;
        if let Some(v) = visibility.filter(|v| u128::from(*v) <= timeout.as_millis()) {
            bail!(
                "invalid value for `fulfillment.http.timeout_ms`: must be less than queue.visibility_timeout_ms ({v}), so that an attempt ends before its message is delivered again"
            );
        }
        Ok(FulfillmentMode::Http {
            url,
            secret,
            timeout,
            concurrency,
        })
    }

    fn events(&self) -> anyhow::Result<EventSettings> {
        let webhook_urls = self.strings("events.webhook_urls")?;
        for url in &webhook_urls {
            if http_url(url).is_none() {
                let origin = self
                    .values
                    .get("events.webhook_urls")
                    .map_or("", |s| s.origin.as_str());
                bail!(
                    "invalid value for `events.webhook_urls` (from {origin}): each must be an http:// or https:// URL, not {:?}",
                    dofs_server::extract::excerpt(url)
                );
            }
        }
        Ok(EventSettings {
            webhook_urls,
            secret: self.signing_secret("events.secret")?,
            max_age: Duration::from_secs(self.shared_required(&shared::EVENTS_MAX_AGE_S)?),
        })
    }

    pub(super) fn settings(&self) -> anyhow::Result<Settings> {
        let ms = |lo: u64, hi: u64| {
            move |s: &str| s.parse::<u64>().ok().filter(|v| (lo..=hi).contains(v))
        };
        let visibility_ms = self.required(
            "queue.visibility_timeout_ms",
            "a whole number of milliseconds from 100 to 43200000",
            ms(100, 43_200_000),
        )?;
        let backoff_base_ms = self.shared_required(&shared::BACKOFF_BASE_MS)?;
        let backoff_max_ms = self.shared_required(&shared::BACKOFF_MAX_MS)?;
        if let Err(e) = shared::backoff(backoff_base_ms, backoff_max_ms) {
            let origin = self.values.get(e.key).map_or("", |s| s.origin.as_str());
            bail!("invalid value for `{}` (from {origin}): {}", e.key, e.rule);
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
            environment: self.shared_required(&shared::ENVIRONMENT)?,
            success_rate: self.shared_required(&shared::SUCCESS_RATE)?,
            seed: self.shared(&shared::SEED)?,
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
            max_receive_count: self.shared_required(&shared::MAX_RECEIVE_COUNT)?,
            visibility_timeout: Duration::from_millis(visibility_ms),
            backoff_base: Duration::from_millis(backoff_base_ms),
            backoff_max: Duration::from_millis(backoff_max_ms),
            max_quantity: self.shared_required(&shared::MAX_QUANTITY)?,
            max_price: self.shared_required(&shared::MAX_PRICE)?,
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
            fulfillment: self.fulfillment()?,
            events: self.events()?,
        })
    }
}
