//! [`AwsSettings`]: the Lambdas' configuration, read once at cold start from
//! the environment variables Terraform sets (terraform/modules/lambdas). A
//! missing variable stops the cold start naming it; so does a bad value.

use crate::events::{EventsTable, DEFAULT_MAX_AGE};
use dofs_core::service::Backoff;
use dofs_core::validation::Limits;
use dofs_core::{FulfillmentPolicy, Price};
use std::time::Duration;

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Everything the AWS adapters and handlers need.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsSettings {
    /// `DOFS_ENVIRONMENT`
    pub environment: String,
    /// `DOFS_ORDERS_TABLE`
    pub orders_table: String,
    /// `DOFS_FAILED_ORDERS_TABLE`
    pub failed_orders_table: String,
    /// `DOFS_IDEMPOTENCY_TABLE`
    pub idempotency_table: String,
    /// `DOFS_ORDERS_QUEUE_URL`
    pub orders_queue_url: String,
    /// `DOFS_DLQ_URL`
    pub dlq_url: String,
    /// `DOFS_FULFILLMENT_SUCCESS_RATE` and the optional `DOFS_FULFILLMENT_SEED`.
    pub policy: FulfillmentPolicy,
    /// `DOFS_QUEUE_MAX_RECEIVE_COUNT`
    pub max_receive_count: u32,
    /// `DOFS_STATE_MACHINE_ARN` (api_handler only; optional elsewhere).
    pub state_machine_arn: Option<String>,
    /// Optional `DOFS_QUEUE_BACKOFF_BASE_MS` (default 1000) and `DOFS_QUEUE_BACKOFF_MAX_MS` (default 30000).
    pub backoff: Backoff,
    /// Optional `DOFS_VALIDATION_MAX_QUANTITY` and `DOFS_VALIDATION_MAX_PRICE`.
    pub limits: Limits,
    /// `DOFS_EVENTS_TABLE` and the optional `DOFS_EVENTS_MAX_AGE_S` (default 86400).
    pub events: EventsTable,
    /// Optional `DOFS_EVENTS_BUS_NAME`: the EventBridge bus events are
    /// published to (by the dlq_processor's sweep); unset, they stay in the feed only.
    pub events_bus: Option<String>,
}

fn required(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, SettingsError> {
    match get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(SettingsError::Missing(name)),
    }
}

fn parsed<T: std::str::FromStr>(
    name: &'static str,
    value: String,
    why: &'static str,
) -> Result<T, SettingsError> {
    value
        .trim()
        .parse()
        .map_err(|_| SettingsError::Invalid { name, value, why })
}

fn optional<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    why: &'static str,
) -> Result<Option<T>, SettingsError> {
    match get(name) {
        Some(v) if !v.trim().is_empty() => parsed(name, v, why).map(Some),
        _ => Ok(None),
    }
}

impl AwsSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<AwsSettings, SettingsError> {
        AwsSettings::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (tests pass a map).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<AwsSettings, SettingsError> {
        let rate_text = required(get, "DOFS_FULFILLMENT_SUCCESS_RATE")?;
        let success_rate: f64 = parsed(
            "DOFS_FULFILLMENT_SUCCESS_RATE",
            rate_text.clone(),
            "must be a number from 0 to 1",
        )?;
        if !(0.0..=1.0).contains(&success_rate) {
            return Err(SettingsError::Invalid {
                name: "DOFS_FULFILLMENT_SUCCESS_RATE",
                value: rate_text,
                why: "must be a number from 0 to 1",
            });
        }
        let max_receive_count: u32 = parsed(
            "DOFS_QUEUE_MAX_RECEIVE_COUNT",
            required(get, "DOFS_QUEUE_MAX_RECEIVE_COUNT")?,
            "must be a whole number from 1 to 1000",
        )?;
        if !(1..=1000).contains(&max_receive_count) {
            return Err(SettingsError::Invalid {
                name: "DOFS_QUEUE_MAX_RECEIVE_COUNT",
                value: max_receive_count.to_string(),
                why: "must be a whole number from 1 to 1000",
            });
        }
        let base: u64 = optional(
            get,
            "DOFS_QUEUE_BACKOFF_BASE_MS",
            "must be a whole number of milliseconds",
        )?
        .unwrap_or(1000);
        let max: u64 = optional(
            get,
            "DOFS_QUEUE_BACKOFF_MAX_MS",
            "must be a whole number of milliseconds",
        )?
        .unwrap_or(30_000);
        let mut limits = Limits::default();
        if let Some(q) = optional(
            get,
            "DOFS_VALIDATION_MAX_QUANTITY",
            "must be a whole number",
        )? {
            limits.max_quantity = q;
        }
        if let Some(text) = get("DOFS_VALIDATION_MAX_PRICE").filter(|v| !v.trim().is_empty()) {
            limits.max_price = Price::from_decimal_text(text.trim(), u64::MAX).map_err(|_| {
                SettingsError::Invalid {
                    name: "DOFS_VALIDATION_MAX_PRICE",
                    value: text.clone(),
                    why: "must be a price with at most 2 decimal places",
                }
            })?;
        }
        let max_age_s: u64 = optional(
            get,
            "DOFS_EVENTS_MAX_AGE_S",
            "must be a whole number of seconds from 60 to 31536000",
        )?
        .unwrap_or(DEFAULT_MAX_AGE.as_secs());
        if !(60..=31_536_000).contains(&max_age_s) {
            return Err(SettingsError::Invalid {
                name: "DOFS_EVENTS_MAX_AGE_S",
                value: max_age_s.to_string(),
                why: "must be a whole number of seconds from 60 to 31536000",
            });
        }
        Ok(AwsSettings {
            events: EventsTable {
                name: required(get, "DOFS_EVENTS_TABLE")?,
                max_age: Duration::from_secs(max_age_s),
            },
            events_bus: get("DOFS_EVENTS_BUS_NAME").filter(|v| !v.trim().is_empty()),
            environment: required(get, "DOFS_ENVIRONMENT")?,
            orders_table: required(get, "DOFS_ORDERS_TABLE")?,
            failed_orders_table: required(get, "DOFS_FAILED_ORDERS_TABLE")?,
            idempotency_table: required(get, "DOFS_IDEMPOTENCY_TABLE")?,
            orders_queue_url: required(get, "DOFS_ORDERS_QUEUE_URL")?,
            dlq_url: required(get, "DOFS_DLQ_URL")?,
            policy: FulfillmentPolicy {
                success_rate,
                seed: optional(get, "DOFS_FULFILLMENT_SEED", "must be a whole number")?,
            },
            max_receive_count,
            state_machine_arn: get("DOFS_STATE_MACHINE_ARN").filter(|v| !v.trim().is_empty()),
            backoff: Backoff {
                base: Duration::from_millis(base),
                max: Duration::from_millis(max.max(base)),
            },
            limits,
        })
    }

    /// `DOFS_STATE_MACHINE_ARN`, which api_handler needs.
    pub fn require_state_machine_arn(&self) -> Result<&str, SettingsError> {
        self.state_machine_arn
            .as_deref()
            .ok_or(SettingsError::Missing("DOFS_STATE_MACHINE_ARN"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("DOFS_ENVIRONMENT", "dev"),
            ("DOFS_ORDERS_TABLE", "o"),
            ("DOFS_FAILED_ORDERS_TABLE", "f"),
            ("DOFS_IDEMPOTENCY_TABLE", "i"),
            ("DOFS_ORDERS_QUEUE_URL", "http://q/orders"),
            ("DOFS_DLQ_URL", "http://q/dlq"),
            ("DOFS_FULFILLMENT_SUCCESS_RATE", "0.7"),
            ("DOFS_QUEUE_MAX_RECEIVE_COUNT", "3"),
            ("DOFS_EVENTS_TABLE", "e"),
        ])
    }

    fn load(m: &HashMap<&'static str, &'static str>) -> Result<AwsSettings, SettingsError> {
        AwsSettings::from_lookup(&|k| m.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn every_terraform_variable_is_read_with_the_contract_defaults_for_the_rest() {
        let s = load(&full()).expect("settings");
        assert_eq!(s.policy.success_rate, 0.7);
        assert_eq!(s.max_receive_count, 3);
        assert_eq!(s.limits, Limits::default());
        assert_eq!(
            s.require_state_machine_arn(),
            Err(SettingsError::Missing("DOFS_STATE_MACHINE_ARN"))
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        for name in full().keys() {
            let mut m = full();
            m.remove(name);
            assert_eq!(load(&m), Err(SettingsError::Missing(name)), "{name}");
        }
    }

    #[test]
    fn a_bad_value_is_named() {
        let mut m = full();
        m.insert("DOFS_FULFILLMENT_SUCCESS_RATE", "1.5");
        let e = load(&m).expect_err("rejected");
        assert!(e.to_string().contains("DOFS_FULFILLMENT_SUCCESS_RATE"));
        let mut m = full();
        m.insert("DOFS_FULFILLMENT_SEED", "x");
        assert!(load(&m)
            .expect_err("rejected")
            .to_string()
            .contains("DOFS_FULFILLMENT_SEED"));
        for bad in ["10", "forever"] {
            let mut m = full();
            m.insert("DOFS_EVENTS_MAX_AGE_S", bad);
            assert!(load(&m)
                .expect_err("rejected")
                .to_string()
                .contains("DOFS_EVENTS_MAX_AGE_S"));
        }
    }

    #[test]
    fn events_are_kept_a_day_unless_told_and_published_only_with_a_bus() {
        let s = load(&full()).expect("settings");
        assert_eq!(s.events.max_age, Duration::from_secs(86_400));
        assert_eq!(s.events_bus, None);
        let mut m = full();
        m.insert("DOFS_EVENTS_MAX_AGE_S", "3600");
        m.insert("DOFS_EVENTS_BUS_NAME", "dofs-dev-orders");
        let s = load(&m).expect("settings");
        assert_eq!(s.events.max_age, Duration::from_secs(3600));
        assert_eq!(s.events_bus.as_deref(), Some("dofs-dev-orders"));
    }
}
