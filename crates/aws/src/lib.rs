//! The AWS shape's adapters of the DOFS ports (`dofs_core::ports`).
//!
//! - [`store`]: [`DynamoDbOrderStore`], orders and failed orders in DynamoDB,
//!   every write conditional.
//! - [`queue`]: [`SqsQueue`], the orders queue and its DLQ on SQS.
//! - [`workflow`]: [`StepFunctionsWorkflowStarter`] (one execution per order,
//!   named by its id; idempotency keys in DynamoDB) and [`StepFunctionsExecutionLog`].
//! - [`events`]: the order events' outbox items, the feed over them
//!   ([`DynamoDbEventLog`]) and their publisher to EventBridge.
//! - [`metrics`]: [`CloudWatchMetrics`], the functions' counters and
//!   histograms published to CloudWatch and counters read back as fleet sums.
//! - [`ops`]: [`AwsOperations`], the operator actions and readiness.
//! - [`settings`]: [`AwsSettings`], the Lambdas' environment, read once.
//! - [`secrets`]: the `http` fulfillment secret, from SSM at cold start.
//! - [`setup`]: creates the tables and queues as Terraform does (emulator, tests).
//! - [`error`]: SDK errors to port errors.
//!
//! [`AwsAdapters`] builds every adapter from one `aws-config` load, which
//! honours `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`), so the same
//! code runs against AWS and against an emulator.

pub mod error;
pub mod events;
pub mod metrics;
pub mod ops;
pub mod queue;
pub mod secrets;
pub mod settings;
pub mod setup;
pub mod store;
pub mod workflow;

pub use events::publish::EventBridgePublisher;
pub use events::{DynamoDbEventLog, EventsTable};
pub use metrics::CloudWatchMetrics;
pub use ops::AwsOperations;
pub use queue::{SendDedup, SqsQueue};
pub use settings::{AwsSettings, FulfillmentMode, SettingsError};
pub use store::DynamoDbOrderStore;
pub use workflow::{StepFunctionsExecutionLog, StepFunctionsWorkflowStarter};

use dofs_core::ports::{Backend, Clock, SystemClock};
use dofs_core::service::Fulfiller;
use dofs_core::Fulfillment;
use std::sync::Arc;

/// Loads the AWS configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`), once per process.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// Every adapter, over clients built once.
#[derive(Clone)]
pub struct AwsAdapters {
    pub settings: AwsSettings,
    pub store: DynamoDbOrderStore,
    pub queue: SqsQueue,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    /// The custom metrics of `settings.environment` in `settings.metrics_namespace`.
    pub metrics: CloudWatchMetrics,
    pub clock: Arc<dyn Clock>,
}

impl AwsAdapters {
    /// The adapters for `settings` on clients made from `config`.
    pub fn new(settings: AwsSettings, config: &aws_config::SdkConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(config);
        let sqs = aws_sdk_sqs::Client::new(config);
        let sfn = aws_sdk_sfn::Client::new(config);
        let metrics = CloudWatchMetrics::new(
            aws_sdk_cloudwatch::Client::new(config),
            settings.metrics_namespace.clone(),
            settings.environment.clone(),
        );
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = DynamoDbOrderStore::new(
            dynamodb.clone(),
            settings.orders_table.clone(),
            settings.failed_orders_table.clone(),
            settings.events.clone(),
        );
        let queue = SqsQueue::new(
            sqs.clone(),
            settings.orders_queue_url.clone(),
            settings.dlq_url.clone(),
            settings.max_receive_count,
            Some(SendDedup {
                client: dynamodb.clone(),
                table: settings.idempotency_table.clone(),
            }),
            clock.clone(),
        );
        AwsAdapters {
            settings,
            store,
            queue,
            dynamodb,
            sqs,
            sfn,
            metrics,
            clock,
        }
    }

    /// Everything the HTTP API needs; fails without `DOFS_STATE_MACHINE_ARN`.
    pub fn backend(&self) -> Result<Backend, SettingsError> {
        let arn = self.settings.require_state_machine_arn()?.to_owned();
        let accepted = workflow::AcceptedOrderStore {
            store: self.store.clone(),
            sfn: self.sfn.clone(),
            state_machine_arn: arn.clone(),
        };
        Ok(Backend {
            orders: Arc::new(accepted.clone()),
            queue: Arc::new(self.queue.clone()),
            workflow: Arc::new(StepFunctionsWorkflowStarter::new(
                self.sfn.clone(),
                self.dynamodb.clone(),
                arn.clone(),
                self.settings.idempotency_table.clone(),
                self.clock.clone(),
            )),
            executions: Arc::new(StepFunctionsExecutionLog::new(
                self.sfn.clone(),
                arn,
                self.store.clone(),
            )),
            operations: Arc::new(
                AwsOperations::new(self.store.clone(), self.queue.clone(), self.clock.clone())
                    .with_accepted_orders(accepted),
            ),
            events: Arc::new(self.event_log()),
            clock: self.clock.clone(),
        })
    }

    /// The order event feed.
    pub fn event_log(&self) -> DynamoDbEventLog {
        DynamoDbEventLog::new(
            self.dynamodb.clone(),
            self.settings.events.clone(),
            self.clock.clone(),
        )
    }

    /// The publisher of the outbox to `DOFS_EVENTS_BUS_NAME`, when set.
    pub fn publisher(&self, config: &aws_config::SdkConfig) -> Option<EventBridgePublisher> {
        let bus = self.settings.events_bus.clone()?;
        Some(EventBridgePublisher::new(
            self.dynamodb.clone(),
            self.settings.events.name.clone(),
            aws_sdk_eventbridge::Client::new(config),
            bus,
            self.clock.clone(),
        ))
    }

    /// The fulfillment use case over these adapters, its attempts made by `backend`.
    pub fn fulfiller(&self, backend: Arc<dyn Fulfillment>) -> Fulfiller {
        Fulfiller {
            store: Arc::new(self.store.clone()),
            queue: Arc::new(self.queue.clone()),
            clock: self.clock.clone(),
            backend,
            max_receive_count: self.settings.max_receive_count,
            backoff: self.settings.backoff,
        }
    }
}
