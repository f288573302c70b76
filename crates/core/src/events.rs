//! Order events: one per status change, recorded with the change (the
//! outbox), served by `GET /events` and delivered to webhooks.

use crate::{Order, OrderId, OrderStatus, Timestamp};

/// What happened to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Accepted and stored (`PENDING`).
    Accepted,
    /// A fulfillment attempt started (`PROCESSING`).
    Processing,
    Fulfilled,
    Failed,
    Cancelled,
    /// Back to `PENDING` for another attempt: after a failed attempt, or an
    /// operator's retry or redrive of a `FAILED` order.
    Retried,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 6] = [
        EventType::Accepted,
        EventType::Processing,
        EventType::Fulfilled,
        EventType::Failed,
        EventType::Cancelled,
        EventType::Retried,
    ];

    /// The wire name, `order.accepted` and so on.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Accepted => "order.accepted",
            EventType::Processing => "order.processing",
            EventType::Fulfilled => "order.fulfilled",
            EventType::Failed => "order.failed",
            EventType::Cancelled => "order.cancelled",
            EventType::Retried => "order.retried",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The event for an order moving from `before` (`None`: a new order) to
    /// `after`. Every change of status has one; so does a new attempt at an
    /// order already `PROCESSING` (its earlier attempt crashed): a new
    /// attempt started.
    pub fn for_change(before: Option<OrderStatus>, after: OrderStatus) -> EventType {
        match (before, after) {
            (None, _) => EventType::Accepted,
            (Some(_), OrderStatus::Pending) => EventType::Retried,
            (Some(_), OrderStatus::Processing) => EventType::Processing,
            (Some(_), OrderStatus::Fulfilled) => EventType::Fulfilled,
            (Some(_), OrderStatus::Failed) => EventType::Failed,
            (Some(_), OrderStatus::Cancelled) => EventType::Cancelled,
        }
    }
}

/// One recorded event: the order as it was right after the change.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderEvent {
    /// Unique within the feed and the same on every delivery; the feed's cursor.
    pub id: String,
    pub kind: EventType,
    /// The order after the change (its `status`, `attempts` and `updatedAt` are the event's).
    pub order: Order,
    pub occurred_at: Timestamp,
}

impl OrderEvent {
    pub fn order_id(&self) -> OrderId {
        self.order.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_of_the_lifecycle_has_its_event() {
        use OrderStatus::*;
        assert_eq!(EventType::for_change(None, Pending), EventType::Accepted);
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                if !from.can_become(to) {
                    continue;
                }
                let t = EventType::for_change(Some(from), to);
                let expected = match to {
                    Pending => "order.retried",
                    Processing => "order.processing",
                    Fulfilled => "order.fulfilled",
                    Failed => "order.failed",
                    Cancelled => "order.cancelled",
                };
                assert_eq!(t.as_str(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn types_round_trip_their_wire_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("order.lost"), None);
    }
}
