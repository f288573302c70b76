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
fn a_transition_only_allows_the_from_statuses_the_lifecycle_permits() {
    let change = Transition {
        from: vec![OrderStatus::Fulfilled, OrderStatus::Processing],
        to: OrderStatus::Fulfilled,
        attempts: Some(2),
        failure_reason: Some(None),
        at: Timestamp(5),
    };
    let parts = transition_update(&change);
    assert!(parts.update.contains("REMOVE failureReason"));
    assert_eq!(parts.values.get(":from0"), Some(&s("PROCESSING")));
    assert!(
        !parts.values.contains_key(":from1"),
        "FULFILLED cannot change"
    );
}
