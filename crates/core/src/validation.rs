//! The strict decoder for a submitted order (`POST /order`).
//!
//! It reads a well-formed body once (a malformed one again, to word its
//! refusal), keeps every number's exact text, and reports every
//! broken rule rather than the first: unknown or repeated fields, wrong types,
//! id formats, ranges, decimal places, metadata limits. It never panics, and
//! error messages quote at most a short excerpt of the input.

use crate::money::{Decimal, PriceError};
use crate::order::{Metadata, MetadataValue, NewOrder};
use crate::{CustomerId, Price, ProductId};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Configurable limits (`validation.max_quantity`, `validation.max_price`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted quantity (inclusive).
    pub max_quantity: u32,
    /// Largest accepted price, in cents (inclusive).
    pub max_price: Price,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_quantity: 100,
            max_price: Price::from_cents(1_000_000),
        }
    }
}

/// The most metadata keys an order may carry.
pub const MAX_METADATA_KEYS: usize = 16;
/// The longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// The longest metadata string value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 256;

/// One broken rule: the field (a JSON name such as `price` or `metadata.source`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Why a body is not a valid order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not a JSON object.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but one or more rules are broken (never empty).
    #[error("order is invalid")]
    Invalid(Vec<FieldError>),
}

/// The rules that depend on [`Limits`], checked on an order already
/// decoded (its other rules hold by its types), with the messages of
/// [`decode_order`].
pub fn check_limits(quantity: u32, price: Price, limits: &Limits) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !(1..=limits.max_quantity).contains(&quantity) {
        errors.push(FieldError {
            field: "quantity".into(),
            message: format!("must be an integer from 1 to {}", limits.max_quantity),
        });
    }
    if price.cents() > limits.max_price.cents() {
        errors.push(FieldError {
            field: "price".into(),
            message: format!("must be at most {}", limits.max_price),
        });
    }
    errors
}

const FIELDS: [&str; 5] = ["customerId", "productId", "quantity", "price", "metadata"];

/// Decodes and validates an order body.
pub fn decode_order(body: &[u8], limits: &Limits) -> Result<NewOrder, DecodeError> {
    // A well-formed object is read in one pass; anything else is read again
    // in two (the body as JSON, then as an object) for the words of its refusal.
    let entries = match serde_json::from_slice::<Entries>(body) {
        Ok(entries) => entries,
        Err(_) => body_entries(body)?,
    };

    let mut errors = Vec::new();
    for (i, (key, _)) in entries.0.iter().enumerate() {
        if entries.repeats(i) {
            push_once(&mut errors, excerpt(key), "appears more than once");
        }
        if !FIELDS.contains(&key.as_ref()) {
            push_once(&mut errors, excerpt(key), "is not an allowed field");
        }
    }
    let get = |name: &str| {
        entries
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.get())
    };

    let customer_id = required(&mut errors, get("customerId"), "customerId", |raw| {
        let s = as_string(raw).ok_or("must be a string")?;
        CustomerId::try_from(s).map_err(|_| "must be CUST- followed by 4 to 12 digits".into())
    });
    let product_id = required(&mut errors, get("productId"), "productId", |raw| {
        let s = as_string(raw).ok_or("must be a string")?;
        ProductId::try_from(s).map_err(|_| "must be PROD- followed by 4 to 12 digits".into())
    });
    let quantity = required(&mut errors, get("quantity"), "quantity", |raw| {
        number_text(raw)
            .and_then(Decimal::parse)
            .and_then(|d| d.as_integer())
            .filter(|q| (1..=i128::from(limits.max_quantity)).contains(q))
            .map(|q| q as u32)
            .ok_or_else(|| format!("must be an integer from 1 to {}", limits.max_quantity).into())
    });
    let price = required(&mut errors, get("price"), "price", |raw| {
        let text = number_text(raw).ok_or("must be a number")?;
        Price::from_decimal_text(text, limits.max_price.cents()).map_err(|e| match e {
            PriceError::NotANumber => "must be a number".into(),
            PriceError::NotPositive => "must be greater than 0".into(),
            PriceError::TooPrecise => "must have at most 2 decimal places".into(),
            PriceError::TooLarge => format!("must be at most {}", limits.max_price).into(),
        })
    });
    let metadata = get("metadata").and_then(|raw| decode_metadata(raw, &mut errors));

    match (customer_id, product_id, quantity, price) {
        (Some(customer_id), Some(product_id), Some(quantity), Some(price)) if errors.is_empty() => {
            Ok(NewOrder {
                customer_id,
                product_id,
                quantity,
                price,
                metadata,
            })
        }
        _ => Err(DecodeError::Invalid(errors)),
    }
}

/// The body's entries, or why it is not a JSON object.
fn body_entries(body: &[u8]) -> Result<Entries<'_>, DecodeError> {
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(syntax_message(&e)))?;
    if !raw.get().starts_with('{') {
        return Err(DecodeError::Malformed(
            "the body must be a JSON object".into(),
        ));
    }
    Entries::parse(raw.get()).map_err(|e| DecodeError::Malformed(syntax_message(&e)))
}

/// Checks a required field; the message is made only for a refusal.
fn required<T>(
    errors: &mut Vec<FieldError>,
    raw: Option<&str>,
    field: &str,
    check: impl FnOnce(&str) -> Result<T, Cow<'static, str>>,
) -> Option<T> {
    let Some(raw) = raw else {
        push_once(errors, field.to_owned(), "is required");
        return None;
    };
    match check(raw) {
        Ok(v) => Some(v),
        Err(message) => {
            push_once(errors, field.to_owned(), &message);
            None
        }
    }
}

fn decode_metadata(raw: &str, errors: &mut Vec<FieldError>) -> Option<Metadata> {
    let bad = |errors: &mut Vec<FieldError>, field: String, message: &str| {
        push_once(errors, field, message)
    };
    if !raw.starts_with('{') {
        bad(errors, "metadata".into(), "must be an object");
        return None;
    }
    let Ok(entries) = Entries::parse(raw) else {
        bad(errors, "metadata".into(), "must be an object");
        return None;
    };
    let before = errors.len();
    if entries.0.len() > MAX_METADATA_KEYS {
        bad(errors, "metadata".into(), "must have at most 16 keys");
    }
    let mut out = Vec::with_capacity(entries.0.len());
    for (i, (key, value)) in entries.0.iter().enumerate() {
        let field = || format!("metadata.{}", excerpt(key));
        if entries.repeats(i) {
            bad(errors, field(), "appears more than once");
        }
        let chars = key.chars().count();
        if chars == 0 || chars > MAX_METADATA_KEY_CHARS {
            bad(errors, field(), "key must be 1 to 64 characters");
        }
        let v = value.get();
        // A number must fit a double: every JSON reader (and the order's
        // own rendering, Metadata::to_json) reads it as one, and 1e400
        // would come back as null.
        if number_text(v).is_some_and(|n| !n.parse::<f64>().is_ok_and(f64::is_finite)) {
            bad(
                errors,
                field(),
                "a number must be at most 1.7976931348623157e308 in magnitude",
            );
            continue;
        }
        let parsed = if v.starts_with('"') {
            as_string(v)
                .filter(|s| s.chars().count() <= MAX_METADATA_VALUE_CHARS)
                .map(MetadataValue::String)
        } else if v == "true" || v == "false" {
            Some(MetadataValue::Bool(v == "true"))
        } else {
            number_text(v).map(|n| MetadataValue::Number(n.to_owned()))
        };
        match parsed {
            Some(p) => out.push((key.to_string(), p)),
            None => bad(
                errors,
                field(),
                "must be a string of at most 256 characters, a number or a boolean",
            ),
        }
    }
    (errors.len() == before).then_some(Metadata(out))
}

fn push_once(errors: &mut Vec<FieldError>, field: String, message: &str) {
    if !errors
        .iter()
        .any(|e| e.field == field && e.message == message)
    {
        errors.push(FieldError {
            field,
            message: message.to_owned(),
        });
    }
}

/// The raw text when it is a JSON number (not a string holding one).
fn number_text(raw: &str) -> Option<&str> {
    raw.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        .then_some(raw)
}

fn as_string(raw: &str) -> Option<String> {
    if raw.starts_with('"') {
        serde_json::from_str(raw).ok()
    } else {
        None
    }
}

/// A field name as it may be echoed: at most 64 characters.
fn excerpt(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(61).collect();
        out.push_str("...");
        out
    }
}

/// serde_json's message without the input: it names the line and column only.
fn syntax_message(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "the body ends before the JSON value does",
        serde_json::error::Category::Syntax => "the body is not valid JSON",
        serde_json::error::Category::Data => "the body is not a JSON object",
        serde_json::error::Category::Io => "the body could not be read",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// An object's entries in document order, duplicates kept, values unparsed.
/// Keys and values borrow the body's text (a key is copied only when it
/// has escapes to undo).
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Entries<'a> {
    fn parse(text: &'a str) -> Result<Entries<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Entry `i`'s key appeared before it.
    fn repeats(&self, i: usize) -> bool {
        let key = &self.0[i].0;
        self.0[..i].iter().any(|(k, _)| k == key)
    }
}

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::with_capacity(8);
                while let Some(Key(key)) = map.next_key()? {
                    let value: &RawValue = map.next_value()?;
                    out.push((key, value));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V).map_err(de::Error::custom)
    }
}

/// An object's key, borrowed from the text when it can be.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<NewOrder, DecodeError> {
        decode_order(body.as_bytes(), &Limits::default())
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        match decode(body) {
            Err(DecodeError::Invalid(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn with(field: &str, value: &str) -> String {
        let mut parts = vec![
            ("customerId", r#""CUST-1001""#.to_owned()),
            ("productId", r#""PROD-2001""#.to_owned()),
            ("quantity", "2".to_owned()),
            ("price", "29.99".to_owned()),
        ];
        match parts.iter_mut().find(|(k, _)| *k == field) {
            Some(p) => p.1 = value.to_owned(),
            None => parts.push((
                Box::leak(field.to_owned().into_boxed_str()),
                value.to_owned(),
            )),
        }
        let body: Vec<String> = parts.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    }

    #[test]
    fn the_seed_valid_order_decodes_exactly() {
        let o = decode(r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99,"metadata":{"source":"manual-test"}}"#)
            .expect("valid");
        assert_eq!(o.customer_id.as_str(), "CUST-1001");
        assert_eq!(o.product_id.as_str(), "PROD-2001");
        assert_eq!(o.quantity, 2);
        assert_eq!(o.price, Price::from_cents(2999));
        assert_eq!(
            o.metadata,
            Some(Metadata(vec![(
                "source".into(),
                MetadataValue::String("manual-test".into())
            )]))
        );
    }

    #[test]
    fn the_seed_invalid_order_lists_all_three_fields() {
        let errs = fields(
            r#"{"customerId":"INVALID-FORMAT","productId":"PROD-2001","quantity":0,"price":-10}"#,
        );
        let names: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["customerId", "quantity", "price"]);
        assert_eq!(errs[1].1, "must be an integer from 1 to 100");
        assert_eq!(errs[2].1, "must be greater than 0");
    }

    #[test]
    fn quantity_boundaries() {
        let table = [
            ("1", true),
            ("100", true),
            ("2.0", true),
            ("0", false),
            ("101", false),
            ("-1", false),
            ("2.5", false),
            ("\"2\"", false),
            ("null", false),
            ("1e400", false),
            ("true", false),
        ];
        for (q, ok) in table {
            assert_eq!(decode(&with("quantity", q)).is_ok(), ok, "quantity {q}");
        }
    }

    #[test]
    fn price_boundaries() {
        let table = [
            ("0.01", Ok(())),
            ("10000", Ok(())),
            ("10000.00", Ok(())),
            ("9999.99", Ok(())),
            ("0", Err("must be greater than 0")),
            ("-0.01", Err("must be greater than 0")),
            ("0.001", Err("must have at most 2 decimal places")),
            ("10000.01", Err("must be at most 10000")),
            ("\"29.99\"", Err("must be a number")),
            ("null", Err("must be a number")),
            ("[]", Err("must be a number")),
        ];
        for (p, expected) in table {
            let got = match decode(&with("price", p)) {
                Ok(_) => Ok(()),
                Err(DecodeError::Invalid(e)) => Err(e[0].message.clone()),
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(got, expected.map_err(str::to_owned), "price {p}");
        }
    }

    #[test]
    fn id_boundaries() {
        for (id, ok) in [
            ("\"CUST-1234\"", true),
            ("\"CUST-123456789012\"", true),
            ("\"CUST-123\"", false),
            ("\"CUST-1234567890123\"", false),
            ("\" CUST-1234\"", false),
            ("1234", false),
        ] {
            assert_eq!(
                decode(&with("customerId", id)).is_ok(),
                ok,
                "customerId {id}"
            );
            let pid = id.replace("CUST", "PROD");
            assert_eq!(
                decode(&with("productId", &pid)).is_ok(),
                ok,
                "productId {pid}"
            );
        }
    }

    #[test]
    fn missing_fields_are_each_required() {
        let errs = fields("{}");
        assert_eq!(
            errs,
            ["customerId", "productId", "quantity", "price"]
                .map(|f| (f.to_owned(), "is required".to_owned()))
                .to_vec()
        );
    }

    #[test]
    fn unknown_and_repeated_fields_are_rejected() {
        assert_eq!(
            fields(&with("extra", "1")),
            [("extra".to_owned(), "is not an allowed field".to_owned())]
        );
        let dup = r#"{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"quantity":3,"price":1}"#;
        assert_eq!(
            fields(dup),
            [("quantity".to_owned(), "appears more than once".to_owned())]
        );
        let long = "k".repeat(500);
        let errs = fields(&with(&long, "1"));
        assert!(errs[0].0.len() <= 64, "the field name is cut to an excerpt");
    }

    #[test]
    fn keys_with_escapes_are_read_as_their_text() {
        let escaped = r#"{"customer\u0049d":"CUST-1001","productId":"PROD-2001","quantity":2,"price":1,"metadata":{"\u0073rc":"x"}}"#;
        let order = decode(escaped).expect("escaped keys name the same fields");
        assert_eq!(order.customer_id.as_str(), "CUST-1001");
        let metadata = order.metadata.expect("metadata");
        assert_eq!(metadata.0[0].0, "src");
        let dup = r#"{"customerId":"CUST-1001","customer\u0049d":"CUST-1002","productId":"PROD-2001","quantity":2,"price":1}"#;
        assert_eq!(
            fields(dup),
            [("customerId".to_owned(), "appears more than once".to_owned())]
        );
    }

    #[test]
    fn metadata_rules() {
        let ok = |m: &str| decode(&with("metadata", m)).is_ok();
        assert!(ok(r#"{}"#));
        assert!(ok(r#"{"a":"x","b":1.5,"c":true,"d":-3}"#));
        let sixteen: Vec<String> = (0..16).map(|i| format!("\"k{i}\":1")).collect();
        assert!(ok(&format!("{{{}}}", sixteen.join(","))));
        let seventeen: Vec<String> = (0..17).map(|i| format!("\"k{i}\":1")).collect();
        assert!(!ok(&format!("{{{}}}", seventeen.join(","))));
        assert!(ok(&format!(r#"{{"{}":1}}"#, "k".repeat(64))));
        assert!(!ok(&format!(r#"{{"{}":1}}"#, "k".repeat(65))));
        assert!(!ok(r#"{"":1}"#));
        assert!(ok(&format!(r#"{{"a":"{}"}}"#, "v".repeat(256))));
        assert!(!ok(&format!(r#"{{"a":"{}"}}"#, "v".repeat(257))));
        assert!(!ok(r#"{"a":null}"#));
        assert!(!ok(r#"{"a":{"b":1}}"#));
        assert!(!ok(r#"{"a":[1]}"#));
        assert!(!ok(r#"{"a":1,"a":2}"#));
        assert!(!ok(r#"[]"#));
        assert!(!ok(r#""text""#));
    }

    /// Found by fuzzing (fuzz/fuzz_targets/decode_order.rs): a metadata
    /// number too large for a double was accepted, and the order then showed
    /// it as `null`.
    #[test]
    fn metadata_numbers_must_fit_a_double() {
        let body = |n: &str| with("metadata", &format!(r#"{{"big":{n}}}"#));
        for n in ["1e400", "-1e309", "123456789e301"] {
            assert_eq!(
                fields(&body(n)),
                vec![(
                    "metadata.big".to_owned(),
                    "a number must be at most 1.7976931348623157e308 in magnitude".to_owned()
                )],
                "{n}"
            );
        }
        for n in [
            "1.7976931348623157e308",
            "1e-400",
            "-0",
            "12345678901234567890",
        ] {
            let order = decode(&body(n)).expect(n);
            let shown = order.metadata.expect("metadata").to_json();
            assert!(shown["big"].is_number(), "{n} is shown as {shown}");
        }
    }

    /// Found by fuzzing: a long decimal metadata number was shown one unit
    /// in the last place away from the number the client sent.
    #[test]
    fn metadata_numbers_are_shown_as_the_nearest_double() {
        let text = "44444444444444444444444444444444444444444444444444444444444.444444444444444444444444440";
        let order = decode(&with(
            "metadata",
            &format!(r#"{{"n":{text},"i":-7,"u":18446744073709551615}}"#),
        ))
        .expect("valid");
        let shown = order.metadata.expect("metadata").to_json();
        assert_eq!(shown["n"].as_f64(), text.parse::<f64>().ok());
        assert_eq!(shown["i"], serde_json::json!(-7));
        assert_eq!(shown["u"], serde_json::json!(u64::MAX));
    }

    #[test]
    fn malformed_bodies_are_malformed_json_without_echoing_input() {
        for body in [
            "", "{", "not json", "[1,2]", "\"str\"", "{\"a\":}", "{} {}", "\u{0}",
        ] {
            match decode(body) {
                Err(DecodeError::Malformed(m)) => assert!(!m.contains("not json"), "{m}"),
                other => panic!("{body:?} gave {other:?}"),
            }
        }
        assert!(matches!(
            decode_order(&[0xff, 0xfe], &Limits::default()),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn every_broken_rule_is_listed_not_only_the_first() {
        let errs = fields(
            r#"{"customerId":1,"productId":"x","quantity":"2","price":0.001,"metadata":[],"z":0}"#,
        );
        let names: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "z",
                "customerId",
                "productId",
                "quantity",
                "price",
                "metadata"
            ]
        );
    }

    /// Bodies made of JSON pieces, about half of them objects: keys plain,
    /// escaped or quoting, values of every kind, and now and then a stray
    /// character after the object.
    fn object_like() -> impl proptest::strategy::Strategy<Value = String> {
        let entry = r#""([a-z]|\\u0061|\\")" ?: ?(1|-2\.5e3|"x"|true|null|\[1,\{\}\]|\{"a":1\})"#;
        let body = format!(r#"[ \t\n]?\{{( ?{entry}( ?, ?{entry}){{0,3}})? ?\}} ?x?"#);
        proptest::string::string_regex(&body).expect("a valid regex")
    }

    proptest::proptest! {
        #[test]
        fn no_input_string_panics_the_decoder(s in "\\PC*") {
            let _ = decode(&s);
        }

        #[test]
        fn no_byte_string_panics_the_decoder(b in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_order(&b, &Limits::default());
        }

        /// The one-pass read of a body finds what the two-pass read (the
        /// old one, kept for refusals) finds, whenever it finds anything:
        /// bodies made of JSON-ish pieces, so that many are objects.
        #[test]
        fn the_one_pass_read_agrees_with_the_two_pass_read(
            b in object_like()
        ) {
            let one = serde_json::from_slice::<Entries>(b.as_bytes()).ok();
            let pairs = |e: &Entries| -> Vec<(String, String)> {
                e.0.iter().map(|(k, v)| (k.to_string(), v.get().to_owned())).collect()
            };
            if let Some(one) = one {
                let two = body_entries(b.as_bytes());
                proptest::prop_assert!(two.is_ok(), "{b}");
                if let Ok(two) = two {
                    proptest::prop_assert_eq!(pairs(&one), pairs(&two));
                }
            }
        }

        #[test]
        fn near_valid_orders_never_panic(q in "-?[0-9]{1,5}(\\.[0-9]{1,4})?(e-?[0-9]{1,3})?", p in "-?[0-9]{1,6}(\\.[0-9]{1,4})?(E[+-]?[0-9]{1,4})?") {
            let body = format!(r#"{{"customerId":"CUST-1001","productId":"PROD-2001","quantity":{q},"price":{p}}}"#);
            let _ = decode(&body);
        }
    }
}
