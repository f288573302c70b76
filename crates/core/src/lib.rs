//! The DOFS domain, shared by the embedded binary and the AWS Lambdas.
//!
//! Nothing here performs I/O or needs an async runtime. The layout:
//!
//! - [`ids`]: `OrderId`, `CustomerId`, `ProductId`, each built by `parse`.
//! - [`money`]: [`Price`], exact integer cents.
//! - [`time`]: [`Timestamp`], milliseconds since the Unix epoch, printed as RFC 3339.
//! - [`order`]: [`Order`], [`OrderStatus`] and the lifecycle transitions.
//! - [`validation`]: the strict JSON decoder for `POST /order` that lists every broken rule.
//! - [`fulfillment`]: what an attempt does and how it ends (the simulated
//!   backend with its success rate and seed; the port for others).
//! - [`events`]: order events, one per status change.
//! - [`history`]: a workflow execution's history events, the same in both shapes.
//! - [`metric_names`]: the names of the metrics every shape records.
//! - [`ports`]: the narrow traits the adapters implement (order store, queue,
//!   workflow starter, execution log, clock), and their error type.
//! - [`service`]: the use cases that drive the ports: submit, fulfill one message,
//!   record a dead letter.
//! - [`settings`]: the settings both shapes read: keys, variables, defaults, rules.
//! - [`tasks`]: the workflow's Validate Order and Store Order, for both shapes.
//! - `conformance` (feature `conformance`): the port suites every adapter runs.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod events;
pub mod fulfillment;
pub mod history;
pub mod ids;
pub mod metric_names;
pub mod money;
pub mod order;
pub mod ports;
pub mod service;
pub mod settings;
pub mod tasks;
pub mod time;
pub mod validation;

pub use events::{EventType, OrderEvent};
pub use fulfillment::{Fulfillment, FulfillmentPolicy, Outcome};
pub use ids::{CustomerId, OrderId, ProductId};
pub use money::Price;
pub use order::{FailedOrder, Metadata, MetadataValue, NewOrder, Order, OrderStatus};
pub use ports::Clock;
pub use time::Timestamp;
pub use validation::{DecodeError, FieldError, Limits};
