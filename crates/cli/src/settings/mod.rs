//! Typed, layered configuration: defaults, then the TOML file, then `DOFS_*`
//! environment variables, then command-line flags. Every key has an
//! environment variable: `DOFS_` and the key upper-cased, dots as underscores
//! (`fulfillment.success_rate` is `DOFS_FULFILLMENT_SUCCESS_RATE`). A bad value
//! stops start-up with a message naming the key and where it came from.
//!
//! Layout: [`keys`] lists every key with its default and meaning; this file
//! gathers the values by layer ([`Settings::load`]); [`resolve`] checks and
//! converts them into [`Settings`].

mod keys;
mod resolve;
#[cfg(test)]
mod tests;

pub use keys::KEYS;

use anyhow::{anyhow, bail, Context};
use dofs_core::Price;
use resolve::{Raw, Resolver, Source};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// What an attempt does (`fulfillment.mode` and `fulfillment.http.*`).
    pub fulfillment: FulfillmentMode,
    /// Where order events are delivered (`events.*`).
    pub events: EventSettings,
}

/// `fulfillment.mode`, with the `http` mode's settings.
#[derive(Clone, Debug, PartialEq)]
pub enum FulfillmentMode {
    /// The success rate's coin flip.
    Simulated,
    /// A `POST` of the order to the user's service.
    Http {
        url: String,
        /// `whsec_...`, checked when the backend is built.
        secret: Option<Secret>,
        timeout: Duration,
        concurrency: usize,
    },
}

/// `events.*`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSettings {
    pub webhook_urls: Vec<String>,
    pub secret: Option<Secret>,
    pub max_age: Duration,
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
