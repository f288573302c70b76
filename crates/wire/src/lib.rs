//! The contract's JSON shapes as Rust types, written once.
//!
//! The HTTP handlers answer with these types, webhooks and EventBridge carry
//! [`OrderEvent`], the `http` fulfillment backend posts [`FulfillmentRequest`], and the
//! OpenAPI document (`GET /openapi.json`, assembled in `dofs_server::api_doc`) is
//! generated from their `ToSchema` derives: a field renamed or dropped here changes the
//! answer and its description together, and a handler that builds the wrong shape does
//! not compile. The conversions from the domain's types are here too; the domain
//! (`dofs-core`) knows no API shape.
//!
//! One shape is read elsewhere and only described here: the order request
//! ([`OrderRequest`], read by `dofs_core::validation`'s decoder, which reports every
//! broken rule rather than the first).
//!
//! Layout: `orders` (the order, its request, its 202, pages, the fulfillment request),
//! `events` (the order events' feed), `operations` (failed orders, the DLQ, executions,
//! probes, alerts) and `errors` (every error body).

mod errors;
mod events;
mod operations;
mod orders;

pub use errors::{Error, FieldError};
pub use events::{EventPage, OrderEvent, OrderEventType};
pub use operations::{
    Alert, AlertList, DeadLetter, DeadLetterPage, EventType, Execution, ExecutionEvent,
    ExecutionStatus, FailedOrder, FailedOrderPage, Health, Purged, Readiness, Redriven,
};
pub use orders::{
    Accepted, CancelRequest, FulfillmentRequest, Order, OrderPage, OrderRequest, OrderStatus,
};
