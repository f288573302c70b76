//! API keys (CONTRACT.md section 4). When keys are configured, every route
//! but `/health`, `/ready` and the dashboard's page shell needs a valid
//! `x-api-key`; operator routes (retry, redrive, purge) need an operator key.
//!
//! Keys are kept only as SHA-256 digests and compared in constant time; the
//! presented key is never logged or echoed.

use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
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

/// What a presented key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    None,
    Submit,
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

/// Routes open without a key: probes and the dashboard's page shell (it asks for a key itself).
fn is_open(method: &Method, path: &str) -> bool {
    matches!(path, "/health" | "/ready")
        || (method == Method::GET && (path == "/" || path.starts_with("/assets/")))
}

/// Routes that need an operator key.
pub fn is_operator_route(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (matches!(path, "/dlq/redrive" | "/dlq/purge")
            || (path.starts_with("/orders/") && path.ends_with("/retry")))
}

fn deny(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": error, "message": message })),
    )
        .into_response()
}

/// The middleware: 401 for a missing or wrong key, 403 for a submit key on an operator route.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let keys = state.keys();
    let (method, path) = (request.method(), request.uri().path());
    if !keys.enabled() || is_open(method, path) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok());
    let access = match presented {
        None => {
            return deny(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "an x-api-key header is required",
            )
        }
        Some(k) => keys.access(k),
    };
    match access {
        Access::None => deny(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the x-api-key is not valid",
        ),
        Access::Submit if is_operator_route(method, path) => deny(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "this route needs an operator key",
        ),
        Access::Submit | Access::Operator => next.run(request).await,
    }
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
    fn operator_routes_are_retry_redrive_and_purge() {
        assert!(is_operator_route(&Method::POST, "/orders/abc/retry"));
        assert!(is_operator_route(&Method::POST, "/dlq/redrive"));
        assert!(is_operator_route(&Method::POST, "/dlq/purge"));
        assert!(!is_operator_route(&Method::GET, "/dlq"));
        assert!(!is_operator_route(&Method::POST, "/orders"));
        assert!(is_open(&Method::GET, "/health") && is_open(&Method::GET, "/ready"));
        assert!(!is_open(&Method::GET, "/orders"));
    }
}
