//! The DOFS domain, shared by the embedded binary and the AWS Lambdas.
//!
//! Nothing here performs I/O or needs an async runtime. The layout:
//!
//! - [`ids`]: `OrderId`, `CustomerId`, `ProductId`, each built by `parse`.
//! - [`money`]: [`Price`], exact integer cents.
//! - [`time`]: [`Timestamp`], milliseconds since the Unix epoch, printed as RFC 3339.
//! - [`order`]: [`Order`], [`OrderStatus`] and the lifecycle transitions.
//! - [`validation`]: the strict JSON decoder for `POST /order` that lists every broken rule.
//! - [`fulfillment`]: whether a fulfillment attempt succeeds (success rate, seed).
//! - [`ports`]: the narrow traits the adapters implement (order store, queue,
//!   workflow starter, execution log, clock), and their error type.
//! - [`service`]: the use cases that drive the ports: submit, fulfill one message,
//!   record a dead letter.
//! - `conformance` (feature `conformance`): the port suites every adapter runs.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod fulfillment;
pub mod ids;
pub mod money;
pub mod order;
pub mod ports;
pub mod service;
pub mod time;
pub mod validation;

pub use fulfillment::FulfillmentPolicy;
pub use ids::{CustomerId, OrderId, ProductId};
pub use money::Price;
pub use order::{FailedOrder, Metadata, MetadataValue, NewOrder, Order, OrderStatus};
pub use ports::Clock;
pub use time::Timestamp;
pub use validation::{DecodeError, FieldError, Limits};
