//! Order events on the emulator: one per change, written with it, in the
//! feed in order, and published to EventBridge once swept.

use super::{emulator, fresh, sample};
use dofs_aws::{DynamoDbEventLog, EventBridgePublisher, EventsTable};
use dofs_core::ports::{Clock, EventLog, OrderStore, SystemClock, Transition};
use dofs_core::{Order, OrderId, OrderStatus};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn every_change_writes_one_event_the_feed_lists_in_order_and_the_sweep_publishes() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "events").await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = super::store(&config, &created);
    let table = EventsTable {
        name: created.names.events_table.clone(),
        max_age: Duration::from_secs(86_400),
    };
    let log = DynamoDbEventLog::new(
        aws_sdk_dynamodb::Client::new(&config),
        table.clone(),
        clock.clone(),
    );

    let order = Order::new(OrderId::generate(), sample(), "arn:x".into(), clock.now());
    store.put_new(&order).await.expect("put");
    store
        .put_new(&order)
        .await
        .expect("a repeated put changes nothing");
    let start = Transition {
        attempts: Some(1),
        ..Transition::new(
            &[OrderStatus::Pending],
            OrderStatus::Processing,
            clock.now(),
        )
    };
    store.transition(order.id, &start).await.expect("start");
    let refused = store.transition(order.id, &start).await;
    assert!(refused.is_err(), "a change that did not happen");
    let done = Transition {
        reference: Some("shipment-1".into()),
        ..Transition::new(
            &[OrderStatus::Processing],
            OrderStatus::Fulfilled,
            clock.now(),
        )
    };
    store.transition(order.id, &done).await.expect("fulfil");
    let other = Order::new(OrderId::generate(), sample(), "arn:y".into(), clock.now());
    store.put_new(&other).await.expect("put other");
    store
        .transition(
            other.id,
            &Transition::cancel(Some("no".into()), clock.now()),
        )
        .await
        .expect("cancel");

    let mine = log.of_order(order.id).await.expect("of order");
    let types: Vec<&str> = mine.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        types,
        ["order.accepted", "order.processing", "order.fulfilled"],
        "one event per change that happened, in order"
    );
    assert_eq!(
        mine[2].order.fulfillment_reference.as_deref(),
        Some("shipment-1"),
        "the event carries the order as the change left it"
    );

    // The feed serves events once they are FEED_SETTLE old.
    tokio::time::sleep(dofs_aws::events::FEED_SETTLE + Duration::from_millis(200)).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = log.after(cursor.as_deref(), 2).await.expect("page");
        if page.items.is_empty() {
            assert_eq!(page.next_cursor, cursor, "at the head the cursor stays");
            break;
        }
        seen.extend(page.items.iter().map(|e| e.id.clone()));
        cursor = page.next_cursor;
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first");
    let bogus = log.after(Some("not-an-event"), 10).await;
    assert_eq!(
        bogus.map_err(|e| e.kind).err(),
        Some(dofs_core::ports::ErrorKind::NotFound)
    );

    // EventBridge: a rule on the bus sends every dofs event to a queue.
    let eventbridge = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = format!("{}-bus", created.names.events_table);
    eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("bus");
    let target = sqs
        .create_queue()
        .queue_name(format!("{}-target", created.names.events_table))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let target_arn = sqs
        .get_queue_attributes()
        .queue_url(&target)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("arn");
    eventbridge
        .put_rule()
        .name("all-dofs")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["dofs"]}"#)
        .send()
        .await
        .expect("rule");
    eventbridge
        .put_targets()
        .rule("all-dofs")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(target_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    let publisher = EventBridgePublisher::new(
        aws_sdk_dynamodb::Client::new(&config),
        &table.name,
        eventbridge,
        &bus,
        clock.clone(),
    );
    let swept = publisher.sweep(1000, None).await.expect("sweep");
    assert_eq!((swept.published, swept.failed), (5, 0));
    let again = publisher.sweep(1000, None).await.expect("sweep again");
    assert_eq!(again.published, 0, "published events are marked");
    let mut delivered = Vec::new();
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(&target)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if got.is_empty() && delivered.len() >= 5 {
            break;
        }
        for m in got {
            let v: serde_json::Value =
                serde_json::from_str(m.body.as_deref().unwrap_or("{}")).expect("json");
            assert_eq!(v["source"], "dofs");
            assert_eq!(v["detail-type"], v["detail"]["type"]);
            delivered.push(v["detail"]["eventId"].as_str().unwrap_or("").to_owned());
        }
    }
    delivered.sort();
    assert_eq!(delivered, sorted, "every event reached the bus's target");
}
