//! The AWS adapters against moto server: the same port conformance suites the
//! SQLite adapters pass, plus the Step Functions starter, on tables, queues
//! and state machines with random names.
//!
//! Needs `DOFS_MOTO_ENDPOINT` (scripts/test-aws.sh starts moto and sets it).
//! The tests are ignored by a plain `cargo test`; scripts/test-aws.sh runs them
//! with `--include-ignored` and `DOFS_REQUIRE_EMULATOR=1`. Run by hand without
//! the endpoint, each prints SKIP, unless `DOFS_REQUIRE_EMULATOR=1`.

use async_trait::async_trait;
use dofs_aws::setup::{self, QueueOptions, ResourceNames};
use dofs_aws::{
    AwsOperations, DynamoDbOrderStore, SendDedup, SqsQueue, StepFunctionsExecutionLog,
    StepFunctionsWorkflowStarter,
};
use dofs_core::conformance::{queue_suite, store_suite, QueueHarness};
use dofs_core::ports::{
    Clock, ExecutionLog, IdempotencyClaim, Queue, Submitted, SystemClock, WorkflowStarter,
};
use dofs_core::{CustomerId, NewOrder, OrderId, Price, ProductId};
use std::sync::Arc;
use std::time::Duration;

mod cancel;
mod dlq;
mod events;
mod metrics;

async fn emulator() -> Option<aws_config::SdkConfig> {
    let Ok(endpoint) = std::env::var("DOFS_MOTO_ENDPOINT") else {
        assert!(
            std::env::var("DOFS_REQUIRE_EMULATOR").as_deref() != Ok("1"),
            "DOFS_MOTO_ENDPOINT is not set and DOFS_REQUIRE_EMULATOR=1"
        );
        eprintln!("SKIP: DOFS_MOTO_ENDPOINT is not set (run scripts/test-aws.sh)");
        return None;
    };
    let creds =
        aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "test");
    Some(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .load()
            .await,
    )
}

fn random_prefix(what: &str) -> String {
    format!(
        "t{}-{what}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

async fn fresh(config: &aws_config::SdkConfig, what: &str) -> setup::Created {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    setup::create_all(
        &dynamodb,
        &sqs,
        ResourceNames::with_prefix(&random_prefix(what)),
        QueueOptions {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 3,
        },
    )
    .await
    .expect("create tables and queues")
}

/// The order store over `created`'s tables.
fn store(config: &aws_config::SdkConfig, created: &setup::Created) -> DynamoDbOrderStore {
    DynamoDbOrderStore::new(
        aws_sdk_dynamodb::Client::new(config),
        &created.names.orders_table,
        &created.names.failed_orders_table,
        dofs_aws::EventsTable {
            name: created.names.events_table.clone(),
            max_age: Duration::from_secs(86_400),
        },
    )
}

/// The store, the queue and the operator's actions over `created`, as the
/// API function builds them, with the raw SQS client and the DLQ's URL for
/// what a test does behind their back.
struct Stack {
    store: DynamoDbOrderStore,
    queue: SqsQueue,
    ops: AwsOperations,
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
    clock: Arc<dyn Clock>,
}

fn stack(config: &aws_config::SdkConfig, created: &setup::Created) -> Stack {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = store(config, created);
    let sqs = aws_sdk_sqs::Client::new(config);
    let queue = SqsQueue::new(
        sqs.clone(),
        &created.orders_queue_url,
        &created.dlq_url,
        3,
        None,
        clock.clone(),
    );
    let ops = AwsOperations::new(store.clone(), queue.clone(), clock.clone());
    Stack {
        store,
        queue,
        ops,
        sqs,
        dlq_url: created.dlq_url.clone(),
        clock,
    }
}

struct RealTime(SqsQueue);

#[async_trait]
impl QueueHarness for RealTime {
    fn queue(&self) -> &dyn Queue {
        &self.0
    }
    async fn wait(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn the_dynamodb_order_store_passes_the_store_conformance_suite() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "store").await;
    store_suite(&store(&config, &created)).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn the_sqs_queue_passes_the_queue_conformance_suite() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "queue").await;
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&config),
        &created.orders_queue_url,
        &created.dlq_url,
        3,
        Some(SendDedup {
            client: aws_sdk_dynamodb::Client::new(&config),
            table: created.names.idempotency_table.clone(),
        }),
        Arc::new(SystemClock),
    );
    queue_suite(&RealTime(queue)).await;
}

fn sample() -> NewOrder {
    NewOrder {
        customer_id: CustomerId::parse("CUST-1001").expect("id"),
        product_id: ProductId::parse("PROD-2001").expect("id"),
        quantity: 2,
        price: Price::from_cents(2999),
        metadata: None,
    }
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn a_retried_start_never_starts_a_second_execution_and_keys_replay_the_first_order() {
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "sfn").await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let definition = r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#;
    let machine = sfn
        .create_state_machine()
        .name(random_prefix("order-processing"))
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/dofs-test")
        .send()
        .await
        .expect("create state machine")
        .state_machine_arn;
    let starter = StepFunctionsWorkflowStarter::new(
        sfn.clone(),
        aws_sdk_dynamodb::Client::new(&config),
        &machine,
        &created.names.idempotency_table,
        Arc::new(SystemClock),
    );
    let id = OrderId::generate();
    let first = starter
        .start(id, sample(), None, None)
        .await
        .expect("start");
    let again = starter
        .start(id, sample(), None, None)
        .await
        .expect("start again");
    let (Submitted::Started { order: a }, Submitted::Started { order: b }) = (first, again) else {
        panic!("both starts report the execution");
    };
    assert_eq!(a.execution_arn, b.execution_arn, "one execution per order");
    assert!(a.execution_arn.ends_with(&format!(":{id}")));
    let listed = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .expect("list executions")
        .executions;
    assert_eq!(listed.len(), 1, "exactly one execution exists");

    let claim = IdempotencyClaim {
        key: "key-1".into(),
        fingerprint: "fp-1".into(),
    };
    let keyed = OrderId::generate();
    let Submitted::Started { order: started } = starter
        .start(keyed, sample(), Some(claim.clone()), None)
        .await
        .expect("start with key")
    else {
        panic!("a new key starts");
    };
    let replay = starter
        .start(OrderId::generate(), sample(), Some(claim.clone()), None)
        .await
        .expect("replay");
    assert_eq!(
        replay,
        Submitted::Replayed {
            order: started.clone()
        },
        "the same key and body replay the first order"
    );
    let other = IdempotencyClaim {
        fingerprint: "fp-2".into(),
        ..claim
    };
    assert_eq!(
        starter
            .start(OrderId::generate(), sample(), Some(other), None)
            .await
            .expect("reuse"),
        Submitted::KeyReused
    );

    let orders = store(&config, &created);
    let log = StepFunctionsExecutionLog::new(sfn, &machine, orders.clone());
    let execution = log
        .get(&id.to_string())
        .await
        .expect("describe")
        .expect("the execution exists");
    assert_eq!(execution.arn, a.execution_arn);
    assert_eq!(execution.input["order"]["orderId"], id.to_string());

    // A cancel after the workflow ended closes its history.
    use dofs_core::ports::{OrderStore, Transition};
    use dofs_core::OrderStatus;
    orders.put_new(&a).await.expect("store the order");
    let cancel = Transition {
        cancel_reason: Some("customer withdrew".into()),
        ..Transition::new(
            &[OrderStatus::Pending],
            OrderStatus::Cancelled,
            a.created_at,
        )
    };
    orders.transition(id, &cancel).await.expect("cancel");
    let execution = log.get(&id.to_string()).await.expect("describe");
    let last = execution.and_then(|e| e.events.last().cloned());
    assert_eq!(
        last.as_ref().map(|e| (e.kind, &e.details["reason"])),
        Some((
            dofs_core::history::EventKind::OrderCancelled,
            &serde_json::json!("customer withdrew")
        )),
        "{last:?}"
    );
    assert!(log
        .get(&OrderId::generate().to_string())
        .await
        .expect("describe")
        .is_none());
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws.sh runs it"]
async fn orders_page_newest_first_across_the_listing_shards_and_the_legacy_partition() {
    use dofs_core::ports::OrderStore;
    use dofs_core::{Order, Timestamp};
    let Some(config) = emulator().await else {
        return;
    };
    let created = fresh(&config, "shards").await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let store = store(&config, &created);
    // 20 orders a millisecond apart, then 10 in the same millisecond (ties).
    let t0 = Timestamp(1_795_874_400_000);
    let mut ids = Vec::new();
    for i in 0..30 {
        let at = t0.plus_millis(i.min(20));
        let order = Order::new(OrderId::generate(), sample(), "arn:x".into(), at);
        store.put_new(&order).await.expect("put");
        ids.push(order.id.to_string());
    }
    // One order as written before the listing key was sharded.
    dynamodb
        .update_item()
        .table_name(&created.names.orders_table)
        .key(
            "orderId",
            aws_sdk_dynamodb::types::AttributeValue::S(ids[3].clone()),
        )
        .update_expression("SET listPartition = :p")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S(dofs_aws::store::LIST_PARTITION.into()),
        )
        .send()
        .await
        .expect("legacy partition");
    let shards: std::collections::HashSet<String> = ids
        .iter()
        .map(|id| dofs_aws::store::list_partition(id))
        .collect();
    assert!(
        shards.len() > 1,
        "the orders spread over shards: {shards:?}"
    );

    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let page = store
            .list(None, 7, cursor.as_deref())
            .await
            .expect("a page");
        assert!(page.items.len() <= 7);
        seen.extend(
            page.items
                .iter()
                .map(|o| (o.created_at.millis(), o.id.to_string())),
        );
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the pages end");
    let mut got: Vec<String> = seen.iter().map(|(_, id)| id.clone()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        got, want,
        "every order exactly once, the legacy one included"
    );
    assert!(
        seen.windows(2).all(|w| w[0] >= w[1]),
        "newest first (ties by order id): {seen:?}"
    );
}
