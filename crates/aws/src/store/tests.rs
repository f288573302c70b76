//! Unit tests of the DynamoDB order store's keys and encodings.
use super::*;

#[test]
fn list_partitions_are_stable_spread_and_read_with_the_legacy_one() {
    assert_eq!(
        list_partition("01a222e2-8ecf-72d4-8804-7ea3251d66bc"),
        list_partition("01a222e2-8ecf-72d4-8804-7ea3251d66bc")
    );
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        seen.insert(list_partition(&OrderId::generate().to_string()));
    }
    assert_eq!(seen.len(), LIST_SHARDS as usize, "{seen:?}");
    let all = list_partitions();
    assert_eq!(all.len(), LIST_SHARDS as usize + 1);
    assert!(all.contains(&LIST_PARTITION.to_owned()));
    assert!(seen.iter().all(|p| all.contains(p)));
}

#[test]
fn cursors_round_trip_and_reject_garbage() {
    let id = OrderId::generate().to_string();
    let c = encode_cursor("2026-11-28T14:00:00.000Z", &id);
    assert_eq!(
        decode_cursor(&c),
        Some(("2026-11-28T14:00:00.000Z".to_owned(), id))
    );
    assert_eq!(decode_cursor("zz"), None);
    assert_eq!(decode_cursor(&hex(b"no separator")), None);
}

#[test]
fn metadata_keeps_number_text_and_key_order() {
    let m = Metadata(vec![
        ("b".into(), MetadataValue::Number("1.50".into())),
        ("a".into(), MetadataValue::String("x".into())),
        ("c".into(), MetadataValue::Bool(true)),
    ]);
    assert_eq!(decode_metadata(&encode_metadata(&m)), Some(m));
}

#[test]
fn the_reference_and_the_cancel_reason_round_trip_and_old_items_lack_them() {
    let new = dofs_core::NewOrder {
        customer_id: CustomerId::parse("CUST-1001").expect("id"),
        product_id: ProductId::parse("PROD-2001").expect("id"),
        quantity: 1,
        price: Price::from_cents(100),
        metadata: None,
    };
    let mut o = Order::new(OrderId::generate(), new, "arn:x".into(), Timestamp(7));
    o.status = OrderStatus::Cancelled;
    o.cancel_reason = Some("customer withdrew".into());
    o.fulfillment_reference = Some("shipment-7".into());
    let item = order_item(&o);
    assert_eq!(order_from_item(&item).expect("read"), o);
    let mut old = item.clone();
    old.remove("cancelReason");
    old.remove("fulfillmentReference");
    let read = order_from_item(&old).expect("an item written before the fields");
    assert_eq!(
        (read.cancel_reason, read.fulfillment_reference),
        (None, None)
    );
}
