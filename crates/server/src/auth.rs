//! API keys (CONTRACT.md section 4). When keys are configured, every route
//! but `/health`, `/ready` and the dashboard's page shell needs a valid
//! `x-api-key`; operator routes (retry, redrive, purge) need an operator key.
//! Which routes need what is decided by the route group they are mounted in
//! ([`crate::router_with`]), not here: this module checks keys and offers
//! the layer that requires a level ([`require`]).
//!
//! Keys are kept only as SHA-256 digests and compared in constant time; the
//! presented key is never logged or echoed.

use crate::layer::Check;
use crate::{ApiError, AppState};
use axum::extract::Request;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// The configured keys, hashed.
#[derive(Clone, Default)]
pub struct Keys {
    api: Vec<[u8; 32]>,
    operator: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keys({} api, {} operator)",
            self.api.len(),
            self.operator.len()
        )
    }
}

/// What a presented key may do, and what a route group needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key (a wrong key grants nothing; an open group needs nothing).
    None,
    /// An API key: every route but the operator's.
    Submit,
    /// An operator key: every route.
    Operator,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares every stored digest without stopping early.
fn any_matches(stored: &[[u8; 32]], presented: &[u8; 32]) -> bool {
    let mut found = 0u8;
    for d in stored {
        let diff = d
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        found |= u8::from(diff == 0);
    }
    found == 1
}

impl Keys {
    /// Hashes the API keys and the operator keys; an operator key may also submit.
    pub fn new<S: AsRef<str>>(api: &[S], operator: &[S]) -> Keys {
        Keys {
            api: api.iter().map(|k| digest(k.as_ref())).collect(),
            operator: operator.iter().map(|k| digest(k.as_ref())).collect(),
        }
    }

    /// Whether any key is configured (authentication is on).
    pub fn enabled(&self) -> bool {
        !self.api.is_empty() || !self.operator.is_empty()
    }

    /// A name for the holder of `presented` that rate limits count against
    /// (a prefix of the key's digest, never the key), or `None` for a wrong key.
    pub fn client_id(&self, presented: &str) -> Option<String> {
        if self.access(presented) == Access::None {
            return None;
        }
        let d = digest(presented);
        Some(format!(
            "key:{}",
            d[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }

    /// What `presented` may do.
    pub fn access(&self, presented: &str) -> Access {
        let d = digest(presented);
        if any_matches(&self.operator, &d) {
            Access::Operator
        } else if any_matches(&self.api, &d) {
            Access::Submit
        } else {
            Access::None
        }
    }
}

/// Checks the request's `x-api-key` against what a route group needs
/// (`Access::Submit`: any valid key; `Access::Operator`: an operator key).
/// Always passes when no key is configured. The failures are [`ApiError`]s,
/// which turn them into the contract's 401 and 403.
pub fn check(keys: &Keys, headers: &HeaderMap, needed: Access) -> Result<(), ApiError> {
    if !keys.enabled() || needed == Access::None {
        return Ok(());
    }
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::KeyMissing)?;
    match (keys.access(presented), needed) {
        (Access::None, _) => Err(ApiError::KeyInvalid),
        (Access::Submit, Access::Operator) => Err(ApiError::OperatorKeyRequired),
        _ => Ok(()),
    }
}

/// What a trusted front (API Gateway, through the Lambda adapter) verified
/// the request's key may do. Set as a request extension by the server's own
/// code, never by a client; when present it decides instead of `x-api-key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedAccess(pub Access);

/// [`check`], or the [`VerifiedAccess`] the request carries.
fn check_request(keys: &Keys, request: &Request, needed: Access) -> Result<(), ApiError> {
    match request.extensions().get::<VerifiedAccess>() {
        Some(VerifiedAccess(access)) => match (*access, needed) {
            (_, Access::None) | (Access::Operator, _) | (Access::Submit, Access::Submit) => Ok(()),
            (Access::None, _) => Err(ApiError::KeyMissing),
            (Access::Submit, Access::Operator) => Err(ApiError::OperatorKeyRequired),
        },
        None => check(keys, request.headers(), needed),
    }
}

/// The layer a route group is mounted with: a key that gives `needed`
/// (when keys are configured), or the contract's 401 or 403.
pub fn require(
    state: AppState,
    needed: Access,
) -> Check<impl Fn(&Request) -> Result<(), ApiError> + Clone + Send + Sync + 'static> {
    Check::new(move |request: &Request| check_request(state.keys(), request, needed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_grant_submit_or_operator_access_and_nothing_else() {
        let keys = Keys::new(&["submit-key-0123456789"], &["operator-key-0123456789"]);
        assert!(keys.enabled());
        assert_eq!(keys.access("submit-key-0123456789"), Access::Submit);
        assert_eq!(keys.access("operator-key-0123456789"), Access::Operator);
        assert_eq!(keys.access("submit-key-012345678"), Access::None);
        assert_eq!(keys.access(""), Access::None);
        assert!(!Keys::default().enabled());
        assert!(
            !format!("{keys:?}").contains("submit-key"),
            "keys never print"
        );
    }

    #[test]
    fn a_group_needs_the_level_of_key_it_names() {
        let keys = Keys::new(&["submit-key-0123456789"], &["operator-key-0123456789"]);
        let with = |key: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-api-key", key.parse().expect("header value"));
            h
        };
        let none = HeaderMap::new();
        let submit = with("submit-key-0123456789");
        let operator = with("operator-key-0123456789");
        let wrong = with("not-a-key");
        assert_eq!(
            check(&keys, &none, Access::Submit),
            Err(ApiError::KeyMissing)
        );
        assert_eq!(
            check(&keys, &wrong, Access::Submit),
            Err(ApiError::KeyInvalid)
        );
        assert_eq!(check(&keys, &submit, Access::Submit), Ok(()));
        assert_eq!(check(&keys, &operator, Access::Submit), Ok(()));
        assert_eq!(
            check(&keys, &submit, Access::Operator),
            Err(ApiError::OperatorKeyRequired)
        );
        assert_eq!(check(&keys, &operator, Access::Operator), Ok(()));
        assert_eq!(check(&keys, &none, Access::None), Ok(()), "open group");
        assert_eq!(
            check(&Keys::default(), &none, Access::Operator),
            Ok(()),
            "no keys configured: no authentication"
        );
    }
}
