//! [`AwsSettings`]: the Lambdas' configuration, read once at cold start from
//! the environment variables Terraform sets (terraform/modules/lambdas). A
//! missing variable stops the cold start naming it; so does a bad value.
//!
//! The keys `dofs serve` reads too (success rate, seed, fulfillment mode and
//! `http` settings, event age, receive count, backoff, validation limits,
//! environment) are read through their one definition in
//! [`dofs_core::settings`]: the same variable, default and rule, and the same
//! message when a value breaks it. Three of them have a default there but are
//! required here, because Terraform always sets them and a missing one means
//! a broken deployment: `DOFS_ENVIRONMENT`, `DOFS_FULFILLMENT_SUCCESS_RATE`
//! and `DOFS_QUEUE_MAX_RECEIVE_COUNT` ([`shared_required`]).
//!
//! The `http` fulfillment mode's signing secret is never an ordinary
//! variable on AWS: Terraform names an SSM SecureString parameter
//! (`DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER`) that `fulfill_order` reads at
//! cold start ([`crate::secrets`]). The local stack, which has no SSM of its
//! own to fill, may give the secret itself in `DOFS_FULFILLMENT_HTTP_SECRET`.

use crate::events::EventsTable;
use dofs_core::service::Backoff;
use dofs_core::settings::{self as shared, Key, Mode};
use dofs_core::validation::Limits;
use dofs_core::FulfillmentPolicy;
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
    /// A value the key's rule in [`dofs_core::settings`] refuses, with the
    /// message `dofs serve` gives.
    #[error(transparent)]
    Shared(#[from] shared::Invalid),
    /// A secret's variable is wrong; its value is never quoted.
    #[error("environment variable {name} is invalid: {why}")]
    Secret { name: &'static str, why: String },
    /// A value that had to be fetched at cold start (the SSM parameter) could not be.
    #[error("{name}: {why}")]
    Unavailable { name: &'static str, why: String },
}

/// What makes a fulfillment attempt (`DOFS_FULFILLMENT_MODE`, CONTRACT §7).
#[derive(Clone, Debug, PartialEq)]
pub enum FulfillmentMode {
    /// `simulated` (the default): the coin flip of `policy`.
    Simulated,
    /// `http`: a signed `POST` to the user's service.
    Http(HttpSettings),
}

/// The `http` mode's settings (`DOFS_FULFILLMENT_HTTP_*`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// `DOFS_FULFILLMENT_HTTP_URL`: an http:// or https:// URL.
    pub url: String,
    /// Where the signing secret comes from; unsigned when `None`.
    pub secret: Option<SecretSource>,
    /// `DOFS_FULFILLMENT_HTTP_TIMEOUT_MS` (default 10000, 1 to 600000).
    pub timeout: Duration,
    /// `DOFS_FULFILLMENT_HTTP_CONCURRENCY` (default 64, 1 to 10000).
    pub concurrency: usize,
}

/// Where the `http` mode's `whsec_` secret is read from.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretSource {
    /// `DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER`: the name of an SSM
    /// SecureString parameter holding it (AWS; the only form Terraform sets).
    Parameter(String),
    /// `DOFS_FULFILLMENT_HTTP_SECRET`: the secret itself (the local stack).
    Value(SecretText),
}

/// A secret's text: it never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// The secret, for the one place that parses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(…)")
    }
}

/// `DOFS_FULFILLMENT_HTTP_SECRET` / `_SECRET_PARAMETER`.
pub const HTTP_SECRET: &str = "DOFS_FULFILLMENT_HTTP_SECRET";
/// The name of the SSM parameter holding the `http` mode's secret.
pub const HTTP_SECRET_PARAMETER: &str = "DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER";

/// Parses a `whsec_` secret, naming `name` (not the value) when it is wrong.
pub fn parse_secret(
    name: &'static str,
    text: &str,
) -> Result<dofs_fulfillment::Secret, SettingsError> {
    dofs_fulfillment::Secret::parse(text).map_err(|e| SettingsError::Secret {
        name,
        why: e.to_string(),
    })
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
    /// `DOFS_FULFILLMENT_MODE` and, for `http`, `DOFS_FULFILLMENT_HTTP_*`.
    pub fulfillment: FulfillmentMode,
    /// Optional `DOFS_METRICS_NAMESPACE` (default `DOFS`): the CloudWatch
    /// namespace of the metrics the functions publish ([`crate::metrics`]).
    pub metrics_namespace: String,
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

/// A key of [`dofs_core::settings`]: its variable's value, else its default.
fn shared<T>(
    get: &dyn Fn(&str) -> Option<String>,
    spec: &Key<T>,
) -> Result<Option<T>, SettingsError> {
    match get(spec.var).filter(|v| !v.trim().is_empty()) {
        Some(v) => Ok(Some(spec.parse(&v)?)),
        None => Ok(spec.default_value()),
    }
}

/// A key of [`dofs_core::settings`] with a default there.
fn shared_or_default<T>(
    get: &dyn Fn(&str) -> Option<String>,
    spec: &Key<T>,
) -> Result<T, SettingsError> {
    shared(get, spec)?.ok_or(SettingsError::Missing(spec.var))
}

/// A key of [`dofs_core::settings`] whose variable Terraform always sets:
/// required here even when it has a default (see the module's comment).
fn shared_required<T>(
    get: &dyn Fn(&str) -> Option<String>,
    spec: &Key<T>,
) -> Result<T, SettingsError> {
    Ok(spec.parse(&required(get, spec.var)?)?)
}

/// The fulfillment mode. The `http` settings are checked whatever the mode,
/// so a typo is found before someone switches the mode on.
fn fulfillment(get: &dyn Fn(&str) -> Option<String>) -> Result<FulfillmentMode, SettingsError> {
    let mode = shared_or_default(get, &shared::MODE)?;
    let url = shared(get, &shared::HTTP_URL)?;
    let timeout_ms = shared_or_default(get, &shared::HTTP_TIMEOUT_MS)?;
    let concurrency = shared_or_default(get, &shared::HTTP_CONCURRENCY)?;
    let value = get(HTTP_SECRET).filter(|v| !v.trim().is_empty());
    let parameter = get(HTTP_SECRET_PARAMETER)
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    let secret = match (value, parameter) {
        (Some(_), Some(_)) => {
            return Err(SettingsError::Secret {
                name: HTTP_SECRET,
                why: format!("set it or {HTTP_SECRET_PARAMETER}, not both"),
            })
        }
        (Some(v), None) => {
            parse_secret(HTTP_SECRET, &v)?;
            Some(SecretSource::Value(SecretText(v)))
        }
        (None, Some(p)) => Some(SecretSource::Parameter(p)),
        (None, None) => None,
    };
    if mode == Mode::Simulated {
        return Ok(FulfillmentMode::Simulated);
    }
    let url = url.ok_or(SettingsError::Missing(shared::HTTP_URL.var))?;
    Ok(FulfillmentMode::Http(HttpSettings {
        url,
        secret,
        timeout: Duration::from_millis(timeout_ms),
        concurrency,
    }))
}

impl AwsSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<AwsSettings, SettingsError> {
        AwsSettings::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (tests pass a map).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<AwsSettings, SettingsError> {
        let success_rate = shared_required(get, &shared::SUCCESS_RATE)?;
        let max_receive_count = shared_required(get, &shared::MAX_RECEIVE_COUNT)?;
        let base = shared_or_default(get, &shared::BACKOFF_BASE_MS)?;
        let max = shared_or_default(get, &shared::BACKOFF_MAX_MS)?;
        shared::backoff(base, max)?;
        let limits = Limits {
            max_quantity: shared_or_default(get, &shared::MAX_QUANTITY)?,
            max_price: shared_or_default(get, &shared::MAX_PRICE)?,
        };
        let max_age_s = shared_or_default(get, &shared::EVENTS_MAX_AGE_S)?;
        Ok(AwsSettings {
            events: EventsTable {
                name: required(get, "DOFS_EVENTS_TABLE")?,
                max_age: Duration::from_secs(max_age_s),
            },
            events_bus: get("DOFS_EVENTS_BUS_NAME").filter(|v| !v.trim().is_empty()),
            environment: shared_required(get, &shared::ENVIRONMENT)?,
            orders_table: required(get, "DOFS_ORDERS_TABLE")?,
            failed_orders_table: required(get, "DOFS_FAILED_ORDERS_TABLE")?,
            idempotency_table: required(get, "DOFS_IDEMPOTENCY_TABLE")?,
            orders_queue_url: required(get, "DOFS_ORDERS_QUEUE_URL")?,
            dlq_url: required(get, "DOFS_DLQ_URL")?,
            policy: FulfillmentPolicy {
                success_rate,
                seed: shared(get, &shared::SEED)?,
            },
            max_receive_count,
            state_machine_arn: get("DOFS_STATE_MACHINE_ARN").filter(|v| !v.trim().is_empty()),
            backoff: Backoff {
                base: Duration::from_millis(base),
                max: Duration::from_millis(max),
            },
            limits,
            fulfillment: fulfillment(get)?,
            metrics_namespace: get("DOFS_METRICS_NAMESPACE")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.to_owned()),
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
    fn a_backoff_maximum_below_its_base_is_refused_as_the_cli_refuses_it() {
        let s = load(&full()).expect("settings");
        assert_eq!(
            s.backoff,
            Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(30)
            }
        );
        let mut m = full();
        m.insert("DOFS_QUEUE_BACKOFF_BASE_MS", "5000");
        m.insert("DOFS_QUEUE_BACKOFF_MAX_MS", "2000");
        let e = load(&m).expect_err("refused, not clamped");
        assert_eq!(
            e.to_string(),
            "invalid value for `queue.backoff_max_ms` (from $DOFS_QUEUE_BACKOFF_MAX_MS): must be at least queue.backoff_base_ms (5000)"
        );
        m.insert("DOFS_QUEUE_BACKOFF_MAX_MS", "5000");
        assert_eq!(
            load(&m).expect("equal is fine").backoff.max,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn values_out_of_the_shared_ranges_are_refused_with_the_cli_message() {
        let cases = [
            ("DOFS_QUEUE_BACKOFF_BASE_MS", "43200001"),
            ("DOFS_VALIDATION_MAX_QUANTITY", "0"),
            ("DOFS_VALIDATION_MAX_PRICE", "1000000000.01"),
            ("DOFS_QUEUE_MAX_RECEIVE_COUNT", "1001"),
            ("DOFS_ENVIRONMENT", "Prod"),
        ];
        for (var, bad) in cases {
            let mut m = full();
            m.insert(var, bad);
            let e = load(&m).expect_err("refused").to_string();
            assert!(
                e.starts_with("invalid value for `") && e.contains(&format!("(from ${var}): ")),
                "{var}: {e}"
            );
        }
        let mut m = full();
        m.insert("DOFS_VALIDATION_MAX_QUANTITY", "7");
        m.insert("DOFS_VALIDATION_MAX_PRICE", "12.50");
        let limits = load(&m).expect("settings").limits;
        assert_eq!((limits.max_quantity, limits.max_price.cents()), (7, 1250));
    }

    #[test]
    fn the_shared_defaults_are_the_adapters_defaults() {
        assert_eq!(
            shared::EVENTS_MAX_AGE_S.default_value(),
            Some(crate::events::DEFAULT_MAX_AGE.as_secs())
        );
        assert_eq!(
            shared::HTTP_TIMEOUT_MS.default_value(),
            Some(dofs_fulfillment::http::DEFAULT_TIMEOUT.as_millis() as u64)
        );
        assert_eq!(
            shared::HTTP_CONCURRENCY.default_value(),
            Some(dofs_fulfillment::http::DEFAULT_CONCURRENCY)
        );
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

    const SECRET: &str = "whsec_ZG9mcy1ibGFja2JveC1mdWxmaWxsbWVudC1rZXk=";

    #[test]
    fn fulfillment_is_simulated_unless_told_and_http_takes_its_url_secret_and_limits() {
        assert_eq!(
            load(&full()).expect("settings").fulfillment,
            FulfillmentMode::Simulated
        );
        let mut m = full();
        m.insert("DOFS_FULFILLMENT_MODE", "http");
        m.insert(
            "DOFS_FULFILLMENT_HTTP_URL",
            "https://fulfil.example.com/orders",
        );
        m.insert(HTTP_SECRET_PARAMETER, "/dofs/dev/fulfillment-secret");
        let FulfillmentMode::Http(http) = load(&m).expect("settings").fulfillment else {
            panic!("http mode");
        };
        assert_eq!(http.url, "https://fulfil.example.com/orders");
        assert_eq!(http.timeout, Duration::from_secs(10));
        assert_eq!(http.concurrency, 64);
        assert_eq!(
            http.secret,
            Some(SecretSource::Parameter(
                "/dofs/dev/fulfillment-secret".into()
            ))
        );
        m.remove(HTTP_SECRET_PARAMETER);
        m.insert(HTTP_SECRET, SECRET);
        m.insert("DOFS_FULFILLMENT_HTTP_TIMEOUT_MS", "500");
        m.insert("DOFS_FULFILLMENT_HTTP_CONCURRENCY", "8");
        let FulfillmentMode::Http(http) = load(&m).expect("settings").fulfillment else {
            panic!("http mode");
        };
        assert_eq!(
            (http.timeout, http.concurrency),
            (Duration::from_millis(500), 8)
        );
        assert!(matches!(http.secret, Some(SecretSource::Value(_))));
        assert!(
            !format!("{http:?}").contains(SECRET),
            "the secret never prints"
        );
    }

    #[test]
    fn a_bad_fulfillment_value_stops_the_start_naming_its_variable_and_never_the_secret() {
        let http = [
            ("DOFS_FULFILLMENT_MODE", "http"),
            ("DOFS_FULFILLMENT_HTTP_URL", "http://127.0.0.1:9/f"),
        ];
        let cases: [(&[(&'static str, &'static str)], &str); 8] = [
            (
                &[("DOFS_FULFILLMENT_MODE", "carrier-pigeon")],
                "DOFS_FULFILLMENT_MODE",
            ),
            (&http[..1], "DOFS_FULFILLMENT_HTTP_URL"),
            (
                &[("DOFS_FULFILLMENT_HTTP_URL", "ftp://x/y")],
                "DOFS_FULFILLMENT_HTTP_URL",
            ),
            (
                &[("DOFS_FULFILLMENT_HTTP_URL", "http://")],
                "DOFS_FULFILLMENT_HTTP_URL",
            ),
            (
                &[("DOFS_FULFILLMENT_HTTP_TIMEOUT_MS", "0")],
                "DOFS_FULFILLMENT_HTTP_TIMEOUT_MS",
            ),
            (
                &[("DOFS_FULFILLMENT_HTTP_CONCURRENCY", "none")],
                "DOFS_FULFILLMENT_HTTP_CONCURRENCY",
            ),
            (&[(HTTP_SECRET, "whsec_not base64!")], HTTP_SECRET),
            (
                &[(HTTP_SECRET, SECRET), (HTTP_SECRET_PARAMETER, "/p")],
                HTTP_SECRET,
            ),
        ];
        for (vars, named) in cases {
            let mut m = full();
            m.extend(vars.iter().copied());
            let e = load(&m).expect_err("rejected").to_string();
            assert!(e.contains(named), "{vars:?}: {e}");
            assert!(!e.contains("not base64") && !e.contains(SECRET), "{e}");
        }
    }
}
