//! Orders and their lifecycle.
//!
//! `PENDING` (stored and queued) → `PROCESSING` (an attempt is running) →
//! `FULFILLED` or `FAILED`. A failed attempt puts the order back to `PENDING`
//! until the queue's receive limit sends its message to the dead-letter queue.
//! An operator's retry or redrive moves `FAILED` back to `PENDING`, and a
//! cancel moves `PENDING` or `FAILED` to `CANCELLED`, which is final.

use crate::{CustomerId, OrderId, Price, ProductId, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an order is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Processing,
    Fulfilled,
    Failed,
    Cancelled,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Processing,
        OrderStatus::Fulfilled,
        OrderStatus::Failed,
        OrderStatus::Cancelled,
    ];

    /// The wire name: `PENDING`, `PROCESSING`, `FULFILLED`, `FAILED`, `CANCELLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Fulfilled => "FULFILLED",
            OrderStatus::Failed => "FAILED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// `FULFILLED`, `CANCELLED` and `FAILED` are terminal (`FAILED` until an
    /// operator acts): no attempt starts from them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Fulfilled | OrderStatus::Failed | OrderStatus::Cancelled
        )
    }

    /// Whether a cancel may move an order in this status to `CANCELLED`
    /// (`PENDING`, queued or waiting for a retry, and `FAILED`).
    pub fn can_cancel(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::Failed)
    }

    /// Whether the lifecycle allows moving from `self` to `to`.
    ///
    /// `PROCESSING → PROCESSING` is allowed: a message whose attempt crashed is
    /// delivered again. `FULFILLED` and `CANCELLED` never change.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Processing)
                | (Processing, Processing)
                | (Processing, Fulfilled)
                | (Processing, Pending)
                | (Pending, Failed)
                | (Processing, Failed)
                | (Failed, Pending)
                | (Pending, Cancelled)
                | (Failed, Cancelled)
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metadata value: a string (at most 256 characters), a number or a boolean.
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataValue {
    String(String),
    /// The number's exact JSON text.
    Number(String),
    Bool(bool),
}

/// Free-form metadata: at most 16 keys, in the order the client sent them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata(pub Vec<(String, MetadataValue)>);

impl Metadata {
    /// Metadata as a JSON object; numbers as doubles (the decoder accepts
    /// only numbers that fit one).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Reads back the JSON text that [`Metadata`]'s `Serialize` wrote (a
    /// store's copy), straight into entries: no map is built. A number keeps
    /// the text it was written as, so it reads back as the same double
    /// (serde_json's own float parsing can be one unit in the last place
    /// off). It checks the form only, not the limits that
    /// [`crate::validation::decode_order`] applies. `None` for anything but
    /// an object of strings, numbers and booleans.
    pub fn from_json(text: &str) -> Option<Metadata> {
        serde_json::from_str::<StoredMetadata>(text)
            .ok()
            .map(|m| m.0)
    }
}

impl Serialize for Metadata {
    /// A JSON object, an entry per key in their order; numbers as
    /// [`number_json`] makes them. The keys are distinct, as
    /// [`crate::validation::decode_order`] makes sure.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                MetadataValue::String(text) => map.serialize_entry(k, text)?,
                MetadataValue::Bool(b) => map.serialize_entry(k, b)?,
                MetadataValue::Number(n) => map.serialize_entry(k, &number_json(n))?,
            }
        }
        map.end()
    }
}

/// [`Metadata`] as [`Metadata::from_json`] reads it.
struct StoredMetadata(Metadata);

impl<'de> Deserialize<'de> for StoredMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = StoredMetadata;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings, numbers and booleans")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StoredMetadata, A::Error> {
                use serde::de::Error;
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<String>()? {
                    let raw = map.next_value::<&serde_json::value::RawValue>()?.get();
                    let value = match raw.as_bytes().first() {
                        Some(b'"') => MetadataValue::String(
                            serde_json::from_str(raw).map_err(A::Error::custom)?,
                        ),
                        Some(b't' | b'f') => MetadataValue::Bool(raw == "true"),
                        Some(b'-' | b'0'..=b'9') => MetadataValue::Number(raw.to_owned()),
                        _ => return Err(A::Error::custom("not a string, number or boolean")),
                    };
                    out.push((key, value));
                }
                Ok(StoredMetadata(Metadata(out)))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// A metadata number's text as a JSON number: an integer when it is one
/// that fits 64 bits, else the nearest double. Parsed with the standard
/// library, which rounds correctly (serde_json's own float parsing may be one
/// unit in the last place off for long inputs).
fn number_json(n: &str) -> serde_json::Value {
    if let Ok(i) = n.parse::<i64>() {
        return i.into();
    }
    if let Ok(u) = n.parse::<u64>() {
        return u.into();
    }
    n.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A valid order as a client submitted it, before it has an id.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub product_id: ProductId,
    pub quantity: u32,
    pub price: Price,
    pub metadata: Option<Metadata>,
}

/// A stored order.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub product_id: ProductId,
    pub quantity: u32,
    pub price: Price,
    pub metadata: Option<Metadata>,
    pub status: OrderStatus,
    /// Fulfillment attempts made so far.
    pub attempts: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub execution_arn: String,
    /// Why the last attempt failed (while retrying) or why the order is `FAILED`.
    pub failure_reason: Option<String>,
    /// What the fulfillment service called the fulfillment (`http` mode), once `FULFILLED`.
    pub fulfillment_reference: Option<String>,
    /// Why the order was cancelled, once `CANCELLED` (when the cancel gave one).
    pub cancel_reason: Option<String>,
}

impl Order {
    /// A new `PENDING` order with no attempts.
    pub fn new(id: OrderId, order: NewOrder, execution_arn: String, now: Timestamp) -> Order {
        Order {
            id,
            customer_id: order.customer_id,
            product_id: order.product_id,
            quantity: order.quantity,
            price: order.price,
            metadata: order.metadata,
            status: OrderStatus::Pending,
            attempts: 0,
            created_at: now,
            updated_at: now,
            execution_arn,
            failure_reason: None,
            fulfillment_reference: None,
            cancel_reason: None,
        }
    }

    /// The order as submitted (the workflow's input and the failed-orders record):
    /// id, customer, product, quantity, price and metadata.
    pub fn submitted_json(&self) -> serde_json::Value {
        use serde_json::Value;
        // Room for the workflow input's `acceptedAtMs` too (`tasks::workflow_input`).
        let mut fields = serde_json::Map::with_capacity(7);
        fields.insert(
            "orderId".into(),
            Value::String(self.id.text().as_str().to_owned()),
        );
        fields.insert(
            "customerId".into(),
            Value::String(self.customer_id.as_str().to_owned()),
        );
        fields.insert(
            "productId".into(),
            Value::String(self.product_id.as_str().to_owned()),
        );
        fields.insert("quantity".into(), self.quantity.into());
        fields.insert("price".into(), price_json(self.price));
        if let Some(m) = &self.metadata {
            fields.insert("metadata".into(), m.to_json());
        }
        Value::Object(fields)
    }
}

/// A price as a JSON number with its exact decimal text: an integer when
/// it is whole, else the double nearest its decimal value (which prints as
/// that decimal). Below 2^53 cents, the quotient `cents / 100` of two exact
/// doubles is that nearest double; above, the decimal text is parsed.
pub fn price_json(price: Price) -> serde_json::Value {
    const EXACT_CENTS: u64 = 1 << 53;
    let cents = price.cents();
    match (cents % 100, cents < EXACT_CENTS) {
        (0, _) => serde_json::Value::from(cents / 100),
        (_, true) => serde_json::Value::from(cents as f64 / 100.0),
        (_, false) => serde_json::from_str(&price.to_string()).unwrap_or(serde_json::Value::Null),
    }
}

/// A row of the failed-orders table: a dead letter, recorded once.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedOrder {
    pub order_id: OrderId,
    pub reason: String,
    pub attempts: u32,
    pub failed_at: Timestamp,
    /// The order as submitted.
    pub order: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    /// What a store writes (`Serialize`) is the object `to_json` makes, and
    /// reads back (`from_json`) as the entries that object holds: the old
    /// way, through a `serde_json::Value`, gave the same.
    /// Every double a client's metadata can hold reads back from the store
    /// as the same double: the text it was written as is kept, not parsed
    /// by serde_json, whose own float parsing can be a unit in the last
    /// place off (it was for 1,491 of these 5,000 when the store's copy was
    /// read through a `serde_json::Value`).
    #[test]
    fn stored_metadata_numbers_read_back_as_the_same_double() {
        let mut bits: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut checked = 0;
        while checked < 5_000 {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let x = f64::from_bits(bits);
            if !x.is_finite() {
                continue;
            }
            let metadata = Metadata(vec![("x".into(), MetadataValue::Number(x.to_string()))]);
            let text = serde_json::to_string(&metadata).expect("serialize");
            let read = Metadata::from_json(&text).expect("read back");
            assert_eq!(
                read.to_json()["x"].as_f64(),
                Some(x),
                "{x:e} stored as {text}"
            );
            checked += 1;
        }
    }

    #[test]
    fn metadata_written_and_read_back_is_its_json_object() {
        let metadata = Metadata(vec![
            ("z".into(), MetadataValue::String("a \"quoted\" ü".into())),
            ("n".into(), MetadataValue::Number("1.50".into())),
            ("e".into(), MetadataValue::Number("2e3".into())),
            ("i".into(), MetadataValue::Number("-7".into())),
            (
                "u".into(),
                MetadataValue::Number("18446744073709551615".into()),
            ),
            ("b".into(), MetadataValue::Bool(false)),
        ]);
        let text = serde_json::to_string(&metadata).expect("serialize");
        assert_eq!(text, metadata.to_json().to_string());
        let through_value = |text: &str| {
            let serde_json::Value::Object(map) = serde_json::from_str(text).expect("object") else {
                panic!("not an object");
            };
            let entries = map.into_iter().map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => MetadataValue::String(s),
                    serde_json::Value::Bool(b) => MetadataValue::Bool(b),
                    serde_json::Value::Number(n) => MetadataValue::Number(n.to_string()),
                    other => panic!("{other}"),
                };
                (k, v)
            });
            Metadata(entries.collect())
        };
        let read = Metadata::from_json(&text).expect("read back");
        assert_eq!(read, through_value(&text));
        assert_eq!(read.0[1].1, MetadataValue::Number("1.5".into()));
        assert_eq!(read.0[2].1, MetadataValue::Number("2000.0".into()));
        assert_eq!(read.0[4].1, MetadataValue::Number(u64::MAX.to_string()));
        assert_eq!(read.to_json(), metadata.to_json());
        for bad in [
            "[1]",
            "{\"a\":null}",
            "{\"a\":{}}",
            "{\"a\":[1]}",
            "{",
            "\"s\"",
        ] {
            assert_eq!(Metadata::from_json(bad), None, "{bad}");
        }
    }

    #[test]
    fn fulfilled_is_final_and_failed_only_goes_back_to_pending() {
        for to in OrderStatus::ALL {
            assert!(!Fulfilled.can_become(to), "FULFILLED -> {to}");
        }
        assert!(Failed.can_become(Pending));
        assert!(!Failed.can_become(Processing));
        assert!(!Failed.can_become(Fulfilled));
    }

    #[test]
    fn an_attempt_runs_from_pending_and_ends_fulfilled_pending_or_failed() {
        assert!(Pending.can_become(Processing));
        assert!(Processing.can_become(Fulfilled));
        assert!(Processing.can_become(Pending));
        assert!(Processing.can_become(Failed));
        assert!(Processing.can_become(Processing));
        assert!(!Pending.can_become(Fulfilled));
    }

    #[test]
    fn cancelled_is_final_and_comes_only_from_pending_or_failed() {
        for to in OrderStatus::ALL {
            assert!(!Cancelled.can_become(to), "CANCELLED -> {to}");
        }
        for from in OrderStatus::ALL {
            assert_eq!(from.can_become(Cancelled), from.can_cancel(), "{from}");
        }
        assert!(Cancelled.is_terminal());
    }

    #[test]
    fn statuses_round_trip_their_wire_names() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("pending"), None);
    }
    /// A price's JSON number prints as the price's own decimal text, for
    /// every price up to 1,000.00 and a spread of larger ones up to the
    /// largest `validation.max_price` allows; past that, it is the double
    /// nearest the price.
    #[test]
    fn price_numbers_print_as_the_price_text() {
        let mut cents: Vec<u64> = (0..=100_000).collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cents.push(x % 100_000_000_001);
        }
        cents.extend([
            99_999_999_999,
            100_000_000_000,
            (1 << 53) - 1,
            1 << 53,
            u64::MAX,
        ]);
        for c in cents {
            let price = Price::from_cents(c);
            let json = price_json(price);
            // Past 15 significant digits a double cannot hold every decimal.
            if c <= 100_000_000_000 {
                assert_eq!(json.to_string(), price.to_string(), "{c} cents");
            }
            assert_eq!(
                json.as_f64(),
                price.to_string().parse::<f64>().ok(),
                "{c} cents"
            );
        }
    }
}
