//! Replays the kept fuzz corpus (fuzz/corpus/decode_order) through the
//! order decoder with the fuzz target's checks, without libFuzzer, so that
//! every `cargo test` run covers the inputs fuzzing found interesting.

use dofs_core::order::price_json;
use dofs_core::validation::{decode_order, DecodeError, Limits};
use dofs_core::{MetadataValue, NewOrder, Price};
use std::path::Path;

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

fn as_doubles(mut order: NewOrder) -> NewOrder {
    if let Some(metadata) = &mut order.metadata {
        for (_, value) in &mut metadata.0 {
            if let MetadataValue::Number(n) = value {
                let d: f64 = n.parse().expect("a metadata number is a number");
                *n = format!("{:?}", if d == 0.0 { 0.0 } else { d });
            }
        }
    }
    order
}

/// Whether `data` decoded to an order under `limits`.
fn check(name: &str, data: &[u8], limits: &Limits) -> bool {
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
                "{name}: rendered order decodes to itself"
            );
            true
        }
        Err(DecodeError::Malformed(message)) => {
            assert!(message.chars().count() <= 200, "{name}: {message}");
            false
        }
        Err(DecodeError::Invalid(details)) => {
            assert!(!details.is_empty(), "{name}");
            for d in &details {
                assert!(d.field.chars().count() <= 200, "{name}: {}", d.field);
                assert!(d.message.chars().count() <= 200, "{name}: {}", d.message);
            }
            false
        }
    }
}

#[test]
fn the_kept_fuzz_corpus_keeps_the_decoders_promises() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decode_order");
    let mut files = 0;
    let mut valid = 0;
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus directory") {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        let name = path.display().to_string();
        files += 1;
        valid += usize::from(check(&name, &data, &Limits::default()));
        check(
            &name,
            &data,
            &Limits {
                max_quantity: 1,
                max_price: Price::from_cents(1),
            },
        );
    }
    assert!(
        files >= 20,
        "only {files} corpus files in {}",
        dir.display()
    );
    assert!(valid >= 3, "the corpus holds valid orders too ({valid})");
}
