//! Unit tests of the event keys and items.
use super::*;
use dofs_core::{CustomerId, NewOrder, Order, OrderStatus, Price, ProductId};

fn order() -> Order {
    let new = NewOrder {
        customer_id: CustomerId::parse("CUST-1001").expect("id"),
        product_id: ProductId::parse("PROD-2001").expect("id"),
        quantity: 2,
        price: Price::from_cents(2999),
        metadata: None,
    };
    Order::new(
        OrderId::generate(),
        new,
        "arn:x".into(),
        Timestamp(1_795_874_400_000),
    )
}

#[test]
fn event_ids_sort_by_time_then_order_then_change_and_parse_back() {
    let o = order().id;
    let a = event_id(Timestamp(1_795_874_400_000), &o, 1);
    let b = event_id(Timestamp(1_795_874_400_000), &o, 2);
    let c = event_id(Timestamp(1_795_874_400_001), &o, 1);
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(
        parse_event_id(&b),
        Some((Timestamp(1_795_874_400_000), o, 2))
    );
    for bad in [
        "",
        "x",
        "1795874400000-not-an-order-000001",
        &format!("179587440000-{o}-000001"),
        &format!("1795874400000-{o}-1"),
        &format!("1795874400000-{o}000001"),
    ] {
        assert_eq!(parse_event_id(bad), None, "{bad}");
    }
}

#[test]
fn an_orders_events_never_go_back_in_time() {
    assert_eq!(event_time(Timestamp(5), Timestamp(9)), Timestamp(9));
    assert_eq!(event_time(Timestamp(12), Timestamp(9)), Timestamp(12));
}

#[test]
fn an_event_id_names_its_own_key_and_the_shards_spread() {
    let o = order().id;
    let id = event_id(Timestamp(1_795_874_400_000), &o, 3);
    let key = key_of(&id).expect("key");
    let feed = match key.get("feed") {
        Some(AttributeValue::S(f)) => f.clone(),
        _ => panic!("feed"),
    };
    assert!(feed.starts_with("2026-11-28#"), "{feed}");
    let shards: std::collections::HashSet<String> = (0..100)
        .map(|_| publish_shard(&OrderId::generate()))
        .collect();
    assert_eq!(shards.len(), EVENT_SHARDS as usize);
}

#[test]
fn an_event_item_round_trips_with_its_ttl_and_publish_mark() {
    let mut o = order();
    o.status = OrderStatus::Fulfilled;
    o.fulfillment_reference = Some("shipment-7".into());
    let event = OrderEvent {
        id: event_id(o.updated_at, &o.id, 3),
        kind: EventType::Fulfilled,
        order: o.clone(),
        occurred_at: o.updated_at,
    };
    let item = event_item(&event, Duration::from_secs(3600)).expect("item");
    assert_eq!(event_from_item(&item).expect("read"), event);
    assert_eq!(
        item.get("expiresAt"),
        Some(&n(o.updated_at.millis() / 1000 + 3600))
    );
    assert_eq!(
        item.get("publishShard"),
        Some(&s(publish_shard(&o.id))),
        "written unpublished"
    );
}
