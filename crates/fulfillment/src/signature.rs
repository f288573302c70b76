//! Standard Webhooks 1.0 symmetric signatures (`v1`, HMAC-SHA256).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the
//! `webhook-signature` header carries one or more space-separated
//! `v1,{base64 of the MAC}` entries, so a sender may sign with an old and a
//! new key while a secret is rotated. Receivers written with the Standard
//! Webhooks libraries verify what [`sign`] produces, and [`verify`] accepts
//! what those libraries sign.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// How far a `webhook-timestamp` may be from the verifier's clock, either
/// way, before [`verify`] refuses it (replay protection): 5 minutes.
pub const TOLERANCE_SECS: i64 = 5 * 60;

const SECRET_PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

/// A signing key, parsed from its `whsec_{base64 of the key}` form.
///
/// The key never appears in `Debug` output and there is no `Display`, so a
/// secret that ends up in a log or an error message shows as `Secret(…)`.
#[derive(Clone)]
pub struct Secret {
    /// The HMAC state keyed once at parse time; each signature clones it.
    keyed: HmacSha256,
}

/// Why a secret's text is not a usable `whsec_` secret. The messages never
/// quote the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a secret must start with `whsec_` followed by the base64 of the key")]
    MissingPrefix,
    #[error("the part after `whsec_` is not valid base64")]
    BadBase64,
    #[error("the key after `whsec_` is empty")]
    EmptyKey,
}

impl Secret {
    /// Parses `whsec_{base64 of the key}` (standard base64, with padding).
    /// Surrounding whitespace is ignored; any other form is an error.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::BadBase64)?;
        if key.is_empty() {
            return Err(SecretError::EmptyKey);
        }
        // HMAC takes keys of any length; the error case cannot happen.
        let keyed = HmacSha256::new_from_slice(&key).map_err(|_| SecretError::EmptyKey)?;
        Ok(Secret { keyed })
    }

    /// The MAC of `{msg_id}.{timestamp}.{body}` under this key.
    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The `webhook-signature` header value for a message:
/// `v1,{base64 of HMAC-SHA256(key, "{msg_id}.{timestamp_secs}.{body}")}`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let mac = secret.mac(msg_id, &timestamp_secs.to_string(), body);
    format!("v1,{}", BASE64.encode(mac))
}

/// Why [`verify`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error(
        "webhook-timestamp is {skew_secs} s away from now (at most {TOLERANCE_SECS} s allowed)"
    )]
    StaleTimestamp { skew_secs: i64 },
    #[error("no v1 signature in webhook-signature matches")]
    NoMatch,
}

/// Checks a received message against `secret`.
///
/// `timestamp_header` must be integer seconds within [`TOLERANCE_SECS`] of
/// `now_secs`. `signature_header` may hold several space-separated entries;
/// the message is accepted when any `v1,` entry matches. Entries of other
/// versions (such as `v1a`) and malformed entries are skipped. MACs are
/// compared in constant time.
pub fn verify(
    secret: &Secret,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    let timestamp = timestamp_header.trim();
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now_secs.saturating_sub(ts);
    if skew.saturating_abs() > TOLERANCE_SECS {
        return Err(VerifyError::StaleTimestamp { skew_secs: skew });
    }
    let expected = secret.mac(msg_id, timestamp, body);
    let matched = signature_header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|candidate| bool::from(candidate.as_slice().ct_eq(&expected)));
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector every Standard Webhooks library checks its signer against.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_secret() -> Secret {
        Secret::parse(SPEC_SECRET).expect("the spec's secret parses")
    }

    #[test]
    fn signing_the_spec_vector_gives_the_spec_signature() {
        assert_eq!(
            sign(&spec_secret(), SPEC_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn the_spec_vector_verifies_at_its_own_time() {
        let r = verify(
            &spec_secret(),
            SPEC_ID,
            &SPEC_TS.to_string(),
            SPEC_SIGNATURE,
            SPEC_BODY,
            SPEC_TS,
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn any_matching_entry_of_several_is_enough() {
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,abc v2,{} garbage {SPEC_SIGNATURE}",
            &SPEC_SIGNATURE[3..]
        );
        let r = verify(
            &spec_secret(),
            SPEC_ID,
            "1614265330",
            &header,
            SPEC_BODY,
            SPEC_TS,
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn a_changed_body_id_or_timestamp_does_not_verify() {
        let s = spec_secret();
        let ts = SPEC_TS.to_string();
        let body = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(&s, SPEC_ID, &ts, SPEC_SIGNATURE, body, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&s, "msg_other", &ts, SPEC_SIGNATURE, SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        let later = (SPEC_TS + 1).to_string();
        assert_eq!(
            verify(&s, SPEC_ID, &later, SPEC_SIGNATURE, SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn empty_or_partial_signatures_do_not_verify() {
        let s = spec_secret();
        for header in [
            "",
            "v1,",
            "v1",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",
        ] {
            let r = verify(&s, SPEC_ID, "1614265330", header, SPEC_BODY, SPEC_TS);
            assert_eq!(r, Err(VerifyError::NoMatch), "header {header:?}");
        }
    }

    #[test]
    fn another_key_does_not_verify() {
        let other = Secret::parse("whsec_c2VjcmV0LWtleS1vZi1zb21lb25lLWVsc2U=").expect("valid");
        let r = verify(
            &other,
            SPEC_ID,
            "1614265330",
            SPEC_SIGNATURE,
            SPEC_BODY,
            SPEC_TS,
        );
        assert_eq!(r, Err(VerifyError::NoMatch));
    }

    #[test]
    fn timestamps_more_than_five_minutes_off_either_way_are_refused() {
        let s = spec_secret();
        let ts = SPEC_TS.to_string();
        let check = |now| verify(&s, SPEC_ID, &ts, SPEC_SIGNATURE, SPEC_BODY, now);
        assert_eq!(check(SPEC_TS + TOLERANCE_SECS), Ok(()));
        assert_eq!(check(SPEC_TS - TOLERANCE_SECS), Ok(()));
        assert_eq!(
            check(SPEC_TS + TOLERANCE_SECS + 1),
            Err(VerifyError::StaleTimestamp { skew_secs: 301 })
        );
        assert_eq!(
            check(SPEC_TS - TOLERANCE_SECS - 1),
            Err(VerifyError::StaleTimestamp { skew_secs: -301 })
        );
    }

    #[test]
    fn a_timestamp_that_is_not_integer_seconds_is_refused() {
        let s = spec_secret();
        for ts in ["", "abc", "1614265330.5", "2021-02-25T15:02:10Z"] {
            let r = verify(&s, SPEC_ID, ts, SPEC_SIGNATURE, SPEC_BODY, SPEC_TS);
            assert_eq!(r, Err(VerifyError::BadTimestamp), "timestamp {ts:?}");
        }
    }

    #[test]
    fn secrets_without_the_prefix_with_bad_base64_or_an_empty_key_are_refused() {
        let error = |text: &str| Secret::parse(text).err();
        assert_eq!(
            error("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Some(SecretError::MissingPrefix)
        );
        assert_eq!(error(""), Some(SecretError::MissingPrefix));
        assert_eq!(error("whsec_not base64!"), Some(SecretError::BadBase64));
        assert_eq!(error("whsec_"), Some(SecretError::EmptyKey));
        assert!(Secret::parse("  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").is_ok());
    }

    #[test]
    fn a_secret_never_prints_its_key() {
        let shown = format!("{:?} {:#?}", spec_secret(), Some(spec_secret()));
        assert!(!shown.contains("MfKQ"), "{shown}");
        for e in [
            SecretError::MissingPrefix,
            SecretError::BadBase64,
            SecretError::EmptyKey,
        ] {
            assert!(!e.to_string().contains("MfKQ"));
        }
    }
}
