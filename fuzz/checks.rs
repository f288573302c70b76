//! The promises the order decoder keeps on any input, checked by the fuzz
//! target (`fuzz_targets/decode_order.rs`) and by the corpus replay that every
//! `cargo test` runs (`crates/core/tests/fuzz_corpus.rs`); both include this
//! file, so the two check exactly the same things.
//!
//! - an accepted order respects the limits it was decoded with, and its
//!   JSON rendering (what `GET /orders/{id}` shows) decodes to the same order;
//! - a refusal lists at least one rule, and no message or field name quotes
//!   more than a short excerpt of the input.

use dofs_core::order::price_json;
use dofs_core::validation::{decode_order, DecodeError, Limits};
use dofs_core::{MetadataValue, NewOrder};

/// The longest text an error may carry (the decoder quotes at most 64 characters).
const MAX_MESSAGE_CHARS: usize = 200;

fn render(order: &NewOrder) -> Vec<u8> {
    let mut value = serde_json::json!({
        "customerId": order.customer_id.as_str(),
        "productId": order.product_id.as_str(),
        "quantity": order.quantity,
        "price": price_json(order.price),
    });
    if let (Some(metadata), Some(map)) = (&order.metadata, value.as_object_mut()) {
        map.insert("metadata".into(), metadata.to_json());
    }
    serde_json::to_vec(&value).expect("an order renders as JSON")
}

/// The order with its metadata numbers as the doubles they denote: the
/// rendering writes `1.5e3` as `1500.0`, which is the same number.
fn as_doubles(mut order: NewOrder) -> NewOrder {
    if let Some(metadata) = &mut order.metadata {
        for (_, value) in &mut metadata.0 {
            if let MetadataValue::Number(n) = value {
                let d: f64 = n.parse().expect("a metadata number is a number");
                // -0 and 0 are the same number (the rendering writes -0 as 0).
                *n = format!("{:?}", if d == 0.0 { 0.0 } else { d });
            }
        }
    }
    order
}

/// Checks the decoder's promises on `data` (named `name` in a failure);
/// returns whether it decoded to an order under `limits`.
pub fn check(name: &str, data: &[u8], limits: &Limits) -> bool {
    match decode_order(data, limits) {
        Ok(order) => {
            assert!(
                (1..=limits.max_quantity).contains(&order.quantity),
                "{name}"
            );
            assert!(
                order.price.cents() > 0 && order.price <= limits.max_price,
                "{name}"
            );
            let again = decode_order(&render(&order), limits).map(as_doubles);
            assert_eq!(
                again,
                Ok(as_doubles(order)),
                "{name}: the rendered order decodes to itself"
            );
            true
        }
        Err(DecodeError::Malformed(message)) => {
            assert!(
                message.chars().count() <= MAX_MESSAGE_CHARS,
                "{name}: {message}"
            );
            false
        }
        Err(DecodeError::Invalid(details)) => {
            assert!(!details.is_empty(), "{name}: a refusal names a rule");
            for d in &details {
                assert!(
                    d.field.chars().count() <= MAX_MESSAGE_CHARS,
                    "{name}: {}",
                    d.field
                );
                assert!(
                    d.message.chars().count() <= MAX_MESSAGE_CHARS,
                    "{name}: {}",
                    d.message
                );
            }
            false
        }
    }
}
