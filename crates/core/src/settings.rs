//! The settings both shapes read, defined once: each key's name, its
//! environment variable, its default and its rule (what values it accepts).
//! `dofs serve` reads them from flags, its TOML file and the environment
//! (crates/cli/src/settings); the Lambdas from the environment Terraform sets
//! (crates/aws/src/settings.rs). Keys only one shape has stay with it.
//!
//! A variable is always `DOFS_` and the key upper-cased, dots as underscores.

use crate::money::Price;

/// One setting: its key, variable, default and rule.
pub struct Key<T> {
    /// The key, as in the TOML file (`queue.backoff_base_ms`).
    pub key: &'static str,
    /// Its environment variable (`DOFS_QUEUE_BACKOFF_BASE_MS`).
    pub var: &'static str,
    /// The value used when none is given (`None`: unset).
    pub default: Option<&'static str>,
    /// What a value must be, as error messages say it.
    pub rule: &'static str,
    check: fn(&str) -> Option<T>,
}

/// A value a setting's rule refuses, naming the key and its variable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for `{key}` (from ${var}): {rule}")]
pub struct Invalid {
    pub key: &'static str,
    pub var: &'static str,
    /// What the value must be.
    pub rule: String,
}

impl<T> Key<T> {
    /// `text` (trimmed) as the setting's value, when its rule accepts it.
    pub fn check(&self, text: &str) -> Option<T> {
        (self.check)(text.trim())
    }

    /// `text` as the setting's value, or why not.
    pub fn parse(&self, text: &str) -> Result<T, Invalid> {
        self.check(text).ok_or_else(|| self.invalid(self.rule))
    }

    /// The default's value, when the setting has one.
    pub fn default_value(&self) -> Option<T> {
        self.default.and_then(|d| self.check(d))
    }

    fn invalid(&self, rule: &str) -> Invalid {
        Invalid {
            key: self.key,
            var: self.var,
            rule: rule.to_owned(),
        }
    }
}

/// `s` when it is an http:// or https:// URL with a host and no blank or
/// control characters.
pub fn http_url(s: &str) -> Option<String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    (!host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| s.to_owned())
}

fn in_range<T: std::str::FromStr + PartialOrd>(s: &str, lo: T, hi: T) -> Option<T> {
    s.parse::<T>().ok().filter(|v| *v >= lo && *v <= hi)
}

/// `environment`: the environment's name.
pub const ENVIRONMENT: Key<String> = Key {
    key: "environment",
    var: "DOFS_ENVIRONMENT",
    default: Some("dev"),
    rule: "1 to 32 lower-case letters, digits or dashes",
    check: |s| {
        (!s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        .then(|| s.to_owned())
    },
};

/// `fulfillment.success_rate`: the simulated attempt's chance of success.
pub const SUCCESS_RATE: Key<f64> = Key {
    key: "fulfillment.success_rate",
    var: "DOFS_FULFILLMENT_SUCCESS_RATE",
    default: Some("0.7"),
    rule: "a number from 0 to 1",
    check: |s| in_range(s, 0.0, 1.0),
};

/// `fulfillment.seed`: makes simulated outcomes reproducible.
pub const SEED: Key<u64> = Key {
    key: "fulfillment.seed",
    var: "DOFS_FULFILLMENT_SEED",
    default: None,
    rule: "a whole number from 0 to 18446744073709551615",
    check: |s| s.parse().ok(),
};

/// `fulfillment.mode`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The success rate's coin flip.
    Simulated,
    /// A signed `POST` to `fulfillment.http.url`.
    Http,
}

/// `fulfillment.mode`: what an attempt does.
pub const MODE: Key<Mode> = Key {
    key: "fulfillment.mode",
    var: "DOFS_FULFILLMENT_MODE",
    default: Some("simulated"),
    rule: "simulated or http",
    check: |s| match s {
        "simulated" => Some(Mode::Simulated),
        "http" => Some(Mode::Http),
        _ => None,
    },
};

/// `fulfillment.http.url`: where the `http` mode posts (required in that mode).
pub const HTTP_URL: Key<String> = Key {
    key: "fulfillment.http.url",
    var: "DOFS_FULFILLMENT_HTTP_URL",
    default: None,
    rule: "an http:// or https:// URL",
    check: http_url,
};

/// `fulfillment.http.timeout_ms`: the longest an attempt's call may take.
pub const HTTP_TIMEOUT_MS: Key<u64> = Key {
    key: "fulfillment.http.timeout_ms",
    var: "DOFS_FULFILLMENT_HTTP_TIMEOUT_MS",
    default: Some("10000"),
    rule: "a whole number of milliseconds from 1 to 600000",
    check: |s| in_range(s, 1, 600_000),
};

/// `fulfillment.http.concurrency`: attempts in flight at once in `http` mode.
pub const HTTP_CONCURRENCY: Key<usize> = Key {
    key: "fulfillment.http.concurrency",
    var: "DOFS_FULFILLMENT_HTTP_CONCURRENCY",
    default: Some("64"),
    rule: "a whole number from 1 to 10000",
    check: |s| in_range(s, 1, 10_000),
};

/// `events.max_age_s`: how long order events are kept.
pub const EVENTS_MAX_AGE_S: Key<u64> = Key {
    key: "events.max_age_s",
    var: "DOFS_EVENTS_MAX_AGE_S",
    default: Some("86400"),
    rule: "a whole number of seconds from 60 to 31536000",
    check: |s| in_range(s, 60, 31_536_000),
};

/// `queue.max_receive_count`: receives before a message moves to the DLQ.
pub const MAX_RECEIVE_COUNT: Key<u32> = Key {
    key: "queue.max_receive_count",
    var: "DOFS_QUEUE_MAX_RECEIVE_COUNT",
    default: Some("3"),
    rule: "a whole number from 1 to 1000",
    check: |s| in_range(s, 1, 1000),
};

/// `queue.backoff_base_ms`: the delay after the first failed attempt.
pub const BACKOFF_BASE_MS: Key<u64> = Key {
    key: "queue.backoff_base_ms",
    var: "DOFS_QUEUE_BACKOFF_BASE_MS",
    default: Some("1000"),
    rule: "a whole number of milliseconds from 0 to 43200000",
    check: |s| in_range(s, 0, 43_200_000),
};

/// `queue.backoff_max_ms`: the longest delay between attempts; see [`backoff`].
pub const BACKOFF_MAX_MS: Key<u64> = Key {
    key: "queue.backoff_max_ms",
    var: "DOFS_QUEUE_BACKOFF_MAX_MS",
    default: Some("30000"),
    rule: "a whole number of milliseconds from 0 to 43200000",
    check: |s| in_range(s, 0, 43_200_000),
};

/// `validation.max_quantity`: the largest quantity accepted.
pub const MAX_QUANTITY: Key<u32> = Key {
    key: "validation.max_quantity",
    var: "DOFS_VALIDATION_MAX_QUANTITY",
    default: Some("100"),
    rule: "a whole number from 1 to 1000000000",
    check: |s| in_range(s, 1, 1_000_000_000),
};

/// `validation.max_price`: the largest price accepted.
pub const MAX_PRICE: Key<Price> = Key {
    key: "validation.max_price",
    var: "DOFS_VALIDATION_MAX_PRICE",
    default: Some("10000"),
    rule: "a number greater than 0 with at most 2 decimal places, up to 1000000000",
    check: |s| Price::from_decimal_text(s, 100_000_000_000).ok(),
};

/// The rule across the two backoff keys: the longest delay is at least the
/// first one. Both shapes refuse a pair that breaks it.
pub fn backoff(base_ms: u64, max_ms: u64) -> Result<(), Invalid> {
    if max_ms < base_ms {
        return Err(BACKOFF_MAX_MS.invalid(&format!(
            "must be at least {} ({base_ms})",
            BACKOFF_BASE_MS.key
        )));
    }
    Ok(())
}

/// Every key defined here: its key, variable and default.
pub const SHARED: [(&str, &str, Option<&str>); 13] = [
    (ENVIRONMENT.key, ENVIRONMENT.var, ENVIRONMENT.default),
    (SUCCESS_RATE.key, SUCCESS_RATE.var, SUCCESS_RATE.default),
    (SEED.key, SEED.var, SEED.default),
    (MODE.key, MODE.var, MODE.default),
    (HTTP_URL.key, HTTP_URL.var, HTTP_URL.default),
    (
        HTTP_TIMEOUT_MS.key,
        HTTP_TIMEOUT_MS.var,
        HTTP_TIMEOUT_MS.default,
    ),
    (
        HTTP_CONCURRENCY.key,
        HTTP_CONCURRENCY.var,
        HTTP_CONCURRENCY.default,
    ),
    (
        EVENTS_MAX_AGE_S.key,
        EVENTS_MAX_AGE_S.var,
        EVENTS_MAX_AGE_S.default,
    ),
    (
        MAX_RECEIVE_COUNT.key,
        MAX_RECEIVE_COUNT.var,
        MAX_RECEIVE_COUNT.default,
    ),
    (
        BACKOFF_BASE_MS.key,
        BACKOFF_BASE_MS.var,
        BACKOFF_BASE_MS.default,
    ),
    (
        BACKOFF_MAX_MS.key,
        BACKOFF_MAX_MS.var,
        BACKOFF_MAX_MS.default,
    ),
    (MAX_QUANTITY.key, MAX_QUANTITY.var, MAX_QUANTITY.default),
    (MAX_PRICE.key, MAX_PRICE.var, MAX_PRICE.default),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_dofs_and_its_key_and_every_default_keeps_its_rule() {
        for (key, var, _) in SHARED {
            assert_eq!(
                var,
                format!("DOFS_{}", key.to_uppercase().replace('.', "_")),
                "{key}"
            );
        }
        assert_eq!(ENVIRONMENT.default_value().as_deref(), Some("dev"));
        assert_eq!(SUCCESS_RATE.default_value(), Some(0.7));
        assert_eq!(MODE.default_value(), Some(Mode::Simulated));
        assert_eq!(HTTP_TIMEOUT_MS.default_value(), Some(10_000));
        assert_eq!(HTTP_CONCURRENCY.default_value(), Some(64));
        assert_eq!(EVENTS_MAX_AGE_S.default_value(), Some(86_400));
        assert_eq!(MAX_RECEIVE_COUNT.default_value(), Some(3));
        assert_eq!(BACKOFF_BASE_MS.default_value(), Some(1000));
        assert_eq!(BACKOFF_MAX_MS.default_value(), Some(30_000));
        let limits = crate::Limits::default();
        assert_eq!(MAX_QUANTITY.default_value(), Some(limits.max_quantity));
        assert_eq!(MAX_PRICE.default_value(), Some(limits.max_price));
    }

    #[test]
    fn a_value_out_of_range_is_refused_naming_its_key_variable_and_rule() {
        assert_eq!(MAX_RECEIVE_COUNT.parse(" 1000 "), Ok(1000));
        let e = MAX_RECEIVE_COUNT.parse("0").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "invalid value for `queue.max_receive_count` (from $DOFS_QUEUE_MAX_RECEIVE_COUNT): a whole number from 1 to 1000"
        );
        assert!(SUCCESS_RATE.parse("1.5").is_err());
        assert!(EVENTS_MAX_AGE_S.parse("59").is_err());
        assert!(MAX_QUANTITY.parse("0").is_err());
        assert!(MAX_PRICE.parse("1000000000.01").is_err());
        assert!(HTTP_URL.parse("ftp://x/y").is_err());
        assert!(HTTP_URL.parse("http://").is_err());
        assert!(HTTP_URL.parse("http://a b/").is_err());
        assert!(ENVIRONMENT.parse("Prod").is_err());
    }

    #[test]
    fn the_longest_backoff_may_not_be_shorter_than_the_first() {
        assert_eq!(backoff(1000, 1000), Ok(()));
        let e = backoff(1000, 999).expect_err("refused");
        assert_eq!(e.key, "queue.backoff_max_ms");
        assert_eq!(
            e.to_string(),
            "invalid value for `queue.backoff_max_ms` (from $DOFS_QUEUE_BACKOFF_MAX_MS): must be at least queue.backoff_base_ms (1000)"
        );
    }
}
