//! Reading requests by the contract's rules, so that every rejection is the
//! contract's JSON rather than one of axum's plain-text rejections:
//! `Content-Type`, `Idempotency-Key`, a size-limited body, and listing queries.

use crate::error::ApiError;
use axum::body::{Body, HttpBody};
use axum::http::{header, HeaderMap};
use dofs_core::{FieldError, OrderId, OrderStatus};
use sha2::{Digest, Sha256};
use std::future::poll_fn;
use std::pin::pin;

/// The largest accepted order body, in bytes (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest accepted `Idempotency-Key`, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The default and the largest page size of a listing.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page size of a listing.
pub const MAX_LIMIT: usize = 500;

/// The longest cursor accepted, in bytes; store cursors are far shorter.
const MAX_CURSOR_BYTES: usize = 4096;

/// The header name of the idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whether the request declares a JSON body: `application/json`, any case,
/// parameters such as `; charset=utf-8` allowed.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// The `Idempotency-Key`, if any: 1 to 255 visible ASCII characters (0x21 to 0x7E), sent once.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid =
        |rule: &str| ApiError::invalid_field("request is invalid", "Idempotency-Key", rule);
    if values.next().is_some() {
        return Err(invalid("must be sent once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(invalid("must be 1 to 255 characters"));
    }
    if !bytes.iter().all(|b| (0x21..=0x7E).contains(b)) {
        return Err(invalid(
            "must contain only visible ASCII characters (no spaces)",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Reads the whole body, refusing it with 413 as soon as it exceeds `limit`
/// bytes: from `Content-Length` before reading, and while reading otherwise
/// (a chunked body, or one longer than it declared).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = pin!(body);
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "request body could not be read");
            ApiError::MalformedJson("the body could not be read".into())
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The idempotency fingerprint of a body: the lower-case hex SHA-256 of its exact bytes.
pub fn fingerprint(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a listing's cursor must look like before it reaches the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorRule {
    /// An order id (the orders listing pages by id).
    OrderId,
    /// Whatever the store produced: checked for size and control characters only.
    Opaque,
}

/// The query parameters of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only orders of this status (`/orders` only).
    pub status: Option<OrderStatus>,
    /// 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

/// Parses a listing's query pairs, reporting every bad parameter: unknown
/// or repeated names, a `limit` outside 1 to 500, an unknown `status`, a
/// cursor of the wrong shape. `status` is allowed only when `with_status`.
pub fn list_query(
    pairs: &[(String, String)],
    with_status: bool,
    cursor_rule: CursorRule,
) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery {
        status: None,
        limit: DEFAULT_LIMIT,
        cursor: None,
    };
    let mut details: Vec<FieldError> = Vec::new();
    let mut bad = |field: &str, message: &str| {
        let e = FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        if !details.contains(&e) {
            details.push(e);
        }
    };
    for (i, (name, value)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(n, _)| n == name) {
            bad(&excerpt(name), "appears more than once");
            continue;
        }
        match name.as_str() {
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => query.limit = n,
                _ => bad("limit", "must be an integer from 1 to 500"),
            },
            "status" if with_status => match OrderStatus::parse(value) {
                Some(s) => query.status = Some(s),
                None => bad(
                    "status",
                    "must be one of PENDING, PROCESSING, FULFILLED, FAILED, CANCELLED",
                ),
            },
            "cursor" => {
                if cursor_is_well_formed(value, cursor_rule) {
                    query.cursor = Some(value.clone());
                } else {
                    bad("cursor", "is not a valid cursor");
                }
            }
            _ => bad(&excerpt(name), "is not an allowed parameter"),
        }
    }
    if details.is_empty() {
        Ok(query)
    } else {
        Err(ApiError::Validation {
            message: "query parameters are invalid",
            details,
        })
    }
}

fn cursor_is_well_formed(cursor: &str, rule: CursorRule) -> bool {
    match rule {
        CursorRule::OrderId => OrderId::parse(cursor).is_ok(),
        CursorRule::Opaque => {
            !cursor.is_empty()
                && cursor.len() <= MAX_CURSOR_BYTES
                && !cursor.chars().any(char::is_control)
        }
    }
}

/// A client-supplied name as it may be echoed: at most 64 characters.
pub fn excerpt(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(61).collect();
        out.push_str("...");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                *name,
                HeaderValue::from_bytes(value).expect("test header value"),
            );
        }
        h
    }

    fn details(e: ApiError) -> Vec<(String, String)> {
        match e {
            ApiError::Validation { details, .. } => {
                details.into_iter().map(|d| (d.field, d.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_any_case() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ",
        ] {
            assert!(
                is_json(&headers(&[("content-type", ok.as_bytes())])),
                "{ok}"
            );
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "application/json-patch+json",
            "",
        ] {
            assert!(
                !is_json(&headers(&[("content-type", bad.as_bytes())])),
                "{bad}"
            );
        }
        assert!(!is_json(&HeaderMap::new()), "a missing Content-Type");
        assert!(!is_json(&headers(&[(
            "content-type",
            b"application/json\xff"
        )])));
    }

    #[test]
    fn idempotency_keys_are_one_to_255_visible_ascii_characters() {
        assert_eq!(idempotency_key(&HeaderMap::new()), Ok(None));
        let longest = "k".repeat(255);
        for ok in ["a", "order-123_ABC:~!", longest.as_str()] {
            assert_eq!(
                idempotency_key(&headers(&[(IDEMPOTENCY_KEY, ok.as_bytes())])),
                Ok(Some(ok.to_owned())),
                "{ok}"
            );
        }
        let too_long = "k".repeat(256);
        let cases: [&[u8]; 5] = [
            b"",
            too_long.as_bytes(),
            b"has space",
            b"tab\there",
            b"caf\xc3\xa9",
        ];
        for bad in cases {
            let e =
                idempotency_key(&headers(&[(IDEMPOTENCY_KEY, bad)])).expect_err("an invalid key");
            let d = details(e);
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].0, "Idempotency-Key");
        }
    }

    #[test]
    fn an_idempotency_key_sent_twice_is_rejected() {
        let h = headers(&[(IDEMPOTENCY_KEY, b"a"), (IDEMPOTENCY_KEY, b"b")]);
        assert_eq!(
            details(idempotency_key(&h).expect_err("two keys")),
            [("Idempotency-Key".to_owned(), "must be sent once".to_owned())]
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_or_without_a_content_length() {
        let big = vec![b'x'; MAX_BODY_BYTES + 1];
        let declared = headers(&[("content-length", b"65537")]);
        assert_eq!(
            read_body(&declared, Body::from(big.clone()), MAX_BODY_BYTES).await,
            Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES))
        );
        assert_eq!(
            read_body(&HeaderMap::new(), Body::from(big), MAX_BODY_BYTES).await,
            Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES))
        );
        let lying = headers(&[("content-length", b"10")]);
        assert_eq!(
            read_body(&lying, Body::from(vec![b'x'; 100]), 50).await,
            Err(ApiError::PayloadTooLarge(50))
        );
        let exact = vec![b'x'; MAX_BODY_BYTES];
        assert_eq!(
            read_body(&HeaderMap::new(), Body::from(exact.clone()), MAX_BODY_BYTES).await,
            Ok(exact)
        );
    }

    #[test]
    fn fingerprints_are_the_hex_sha256_of_the_exact_bytes() {
        assert_eq!(
            fingerprint(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(fingerprint(b"{\"a\":1}"), fingerprint(b"{\"a\": 1}"));
    }

    #[test]
    fn listing_parameters_default_to_fifty_newest_of_any_status() {
        assert_eq!(
            list_query(&[], true, CursorRule::OrderId),
            Ok(ListQuery {
                status: None,
                limit: 50,
                cursor: None
            })
        );
        let id = OrderId::generate().to_string();
        assert_eq!(
            list_query(
                &pairs(&[("status", "FAILED"), ("limit", "500"), ("cursor", &id)]),
                true,
                CursorRule::OrderId
            ),
            Ok(ListQuery {
                status: Some(OrderStatus::Failed),
                limit: 500,
                cursor: Some(id)
            })
        );
    }

    #[test]
    fn every_bad_listing_parameter_is_reported() {
        let e = list_query(
            &pairs(&[
                ("status", "pending"),
                ("limit", "0"),
                ("cursor", "not-an-id"),
                ("sort", "asc"),
            ]),
            true,
            CursorRule::OrderId,
        )
        .expect_err("bad parameters");
        let fields: Vec<String> = details(e).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["status", "limit", "cursor", "sort"]);
    }

    #[test]
    fn limits_outside_one_to_five_hundred_are_rejected() {
        for bad in [
            "0",
            "501",
            "-1",
            "ten",
            "",
            "1.5",
            "99999999999999999999999",
        ] {
            assert!(
                list_query(&pairs(&[("limit", bad)]), false, CursorRule::Opaque).is_err(),
                "limit {bad}"
            );
        }
        for ok in ["1", "500", "050"] {
            assert!(
                list_query(&pairs(&[("limit", ok)]), false, CursorRule::Opaque).is_ok(),
                "limit {ok}"
            );
        }
    }

    #[test]
    fn status_is_only_a_parameter_where_the_listing_has_statuses() {
        let e = list_query(&pairs(&[("status", "FAILED")]), false, CursorRule::Opaque)
            .expect_err("status on failed-orders");
        assert_eq!(
            details(e),
            [(
                "status".to_owned(),
                "is not an allowed parameter".to_owned()
            )]
        );
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        let e = list_query(
            &pairs(&[("limit", "5"), ("limit", "6")]),
            true,
            CursorRule::OrderId,
        )
        .expect_err("repeated limit");
        assert_eq!(
            details(e),
            [("limit".to_owned(), "appears more than once".to_owned())]
        );
    }

    #[test]
    fn opaque_cursors_pass_through_unless_empty_huge_or_with_control_characters() {
        let q = list_query(
            &pairs(&[("cursor", "eyJrIjoxfQ==")]),
            false,
            CursorRule::Opaque,
        );
        assert_eq!(q.map(|q| q.cursor), Ok(Some("eyJrIjoxfQ==".to_owned())));
        let huge = "c".repeat(MAX_CURSOR_BYTES + 1);
        for bad in ["", "a\nb", huge.as_str()] {
            assert!(list_query(&pairs(&[("cursor", bad)]), false, CursorRule::Opaque).is_err());
        }
    }

    #[test]
    fn unknown_parameter_names_are_echoed_only_as_a_short_excerpt() {
        let long = "x".repeat(1000);
        let e = list_query(&pairs(&[(&long, "1")]), true, CursorRule::OrderId)
            .expect_err("unknown parameter");
        let d = details(e);
        assert_eq!(d[0].0.chars().count(), 64);
    }
}
