//! The order decoder and validation (`dofs_core::validation::decode_order`)
//! on arbitrary bytes. Besides never panicking, it must keep its promises:
//!
//! - an accepted order respects the limits it was decoded with, and its
//!   JSON rendering (what `GET /orders/{id}` shows) decodes to the same order;
//! - a refusal lists at least one rule, and no message or field name quotes
//!   more than a short excerpt of the input.
#![no_main]

use dofs_core::order::price_json;
use dofs_core::validation::{decode_order, DecodeError, Limits};
use dofs_core::{MetadataValue, NewOrder, Price};
use libfuzzer_sys::fuzz_target;

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

fn check(data: &[u8], limits: &Limits) {
    match decode_order(data, limits) {
        Ok(order) => {
            assert!((1..=limits.max_quantity).contains(&order.quantity));
            assert!(order.price.cents() > 0 && order.price <= limits.max_price);
            let again = decode_order(&render(&order), limits).map(as_doubles);
            assert_eq!(again, Ok(as_doubles(order)), "the rendered order decodes to itself");
        }
        Err(DecodeError::Malformed(message)) => {
            assert!(message.chars().count() <= MAX_MESSAGE_CHARS, "{message}");
        }
        Err(DecodeError::Invalid(details)) => {
            assert!(!details.is_empty(), "a refusal names a rule");
            for d in &details {
                assert!(d.field.chars().count() <= MAX_MESSAGE_CHARS, "{}", d.field);
                assert!(d.message.chars().count() <= MAX_MESSAGE_CHARS, "{}", d.message);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    // Tight limits too, so that the range checks are exercised at their edges.
    check(
        data,
        &Limits {
            max_quantity: 1,
            max_price: Price::from_cents(1),
        },
    );
});
