//! The order events (the feed `GET /events`, webhooks and EventBridge).

use serde::Serialize;
use utoipa::ToSchema;

use crate::orders::{Order, OrderStatus};

/// What happened to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum OrderEventType {
    #[serde(rename = "order.accepted")]
    Accepted,
    #[serde(rename = "order.processing")]
    Processing,
    #[serde(rename = "order.fulfilled")]
    Fulfilled,
    #[serde(rename = "order.failed")]
    Failed,
    #[serde(rename = "order.cancelled")]
    Cancelled,
    /// Back to PENDING for another attempt (after a failed attempt, or an operator's retry or redrive).
    #[serde(rename = "order.retried")]
    Retried,
}

impl From<dofs_core::EventType> for OrderEventType {
    fn from(kind: dofs_core::EventType) -> OrderEventType {
        match kind {
            dofs_core::EventType::Accepted => OrderEventType::Accepted,
            dofs_core::EventType::Processing => OrderEventType::Processing,
            dofs_core::EventType::Fulfilled => OrderEventType::Fulfilled,
            dofs_core::EventType::Failed => OrderEventType::Failed,
            dofs_core::EventType::Cancelled => OrderEventType::Cancelled,
            dofs_core::EventType::Retried => OrderEventType::Retried,
        }
    }
}

/// One status change of an order, with the order as it was right after it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// Unique in the feed and the same on every delivery (webhook-id); pass it as `after`.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: OrderEventType,
    pub order_id: String,
    pub status: OrderStatus,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub order: Order,
}

impl From<&dofs_core::OrderEvent> for OrderEvent {
    fn from(e: &dofs_core::OrderEvent) -> OrderEvent {
        OrderEvent {
            event_id: e.id.clone(),
            kind: e.kind.into(),
            order_id: e.order.id.to_string(),
            status: e.order.status.into(),
            attempts: e.order.attempts,
            occurred_at: e.occurred_at.to_string(),
            order: Order::from(&e.order),
        }
    }
}

/// A page of the event feed, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub items: Vec<OrderEvent>,
    /// Pass it as `after` to go on; null only when the feed is empty and no `after` was given.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
