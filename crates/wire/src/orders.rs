//! The order: its request, its 202, the order itself, a page of orders, a cancel's
//! body, and what the `http` fulfillment backend posts.

use std::collections::BTreeMap;

use dofs_core::order::price_json;
use serde::Serialize;
use utoipa::ToSchema;

/// A new order. Every broken rule is reported, not only the first. The
/// limits shown are the defaults (`validation.max_quantity`, `validation.max_price`).
/// Described only: `dofs_core::validation::decode_order` reads it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderRequest {
    #[schema(pattern = "^CUST-[0-9]{4,12}$", example = "CUST-1001")]
    pub customer_id: String,
    #[schema(pattern = "^PROD-[0-9]{4,12}$", example = "PROD-2001")]
    pub product_id: String,
    /// A JSON number with no fraction.
    #[schema(minimum = 1, maximum = 100, example = 2)]
    pub quantity: u32,
    /// A JSON number (not a string) greater than 0 with at most 2 decimal places.
    #[schema(
        exclusive_minimum = 0,
        maximum = 10000,
        multiple_of = 0.01,
        example = 29.99
    )]
    pub price: f64,
    /// At most 16 keys of 1 to 64 characters; values are strings (at most
    /// 256 characters), numbers or booleans.
    #[schema(schema_with = metadata_schema, example = json!({"source": "manual-test"}))]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

/// An order's `metadata` as the decoder checks it: an object (not null) of
/// at most 16 keys of 1 to 64 characters, each a string of at most 256
/// characters, a number that fits a double, or a boolean.
fn metadata_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{
        AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type,
    };
    use utoipa::openapi::RefOr;
    let value = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(256)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(-f64::MAX))
                .maximum(Some(f64::MAX)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Boolean));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(16))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(64)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::OneOf(
            value.build(),
        )))))
        .build()
}

/// The answer to an accepted order: it is durably recorded and will reach a terminal status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub order_id: String,
    #[schema(pattern = "^ACCEPTED$", example = "ACCEPTED")]
    pub status: String,
    pub execution_arn: String,
    #[schema(example = "Order received and processing started")]
    pub message: String,
}

impl From<&dofs_core::Order> for Accepted {
    fn from(order: &dofs_core::Order) -> Accepted {
        Accepted {
            order_id: order.id.text().as_str().to_owned(),
            status: "ACCEPTED".into(),
            execution_arn: order.execution_arn.clone(),
            message: "Order received and processing started".into(),
        }
    }
}

/// Where an order is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderStatus {
    Pending,
    Processing,
    Fulfilled,
    Failed,
    Cancelled,
}

impl From<dofs_core::OrderStatus> for OrderStatus {
    fn from(status: dofs_core::OrderStatus) -> OrderStatus {
        match status {
            dofs_core::OrderStatus::Pending => OrderStatus::Pending,
            dofs_core::OrderStatus::Processing => OrderStatus::Processing,
            dofs_core::OrderStatus::Fulfilled => OrderStatus::Fulfilled,
            dofs_core::OrderStatus::Failed => OrderStatus::Failed,
            dofs_core::OrderStatus::Cancelled => OrderStatus::Cancelled,
        }
    }
}

/// A stored order.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub order_id: String,
    pub customer_id: String,
    pub product_id: String,
    pub quantity: u32,
    /// The exact decimal the client sent (`30`, not `30.0`).
    #[schema(value_type = f64)]
    pub price: serde_json::Value,
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<serde_json::Value>,
    pub status: OrderStatus,
    /// Fulfillment attempts made so far.
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub execution_arn: String,
    /// Why the last attempt failed; null unless the order failed.
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// The fulfillment service's reference (`http` mode), once FULFILLED.
    #[schema(required = true)]
    pub fulfillment_reference: Option<String>,
    /// Why the order was cancelled, once CANCELLED with a reason.
    #[schema(required = true)]
    pub cancel_reason: Option<String>,
}

impl From<&dofs_core::Order> for Order {
    fn from(o: &dofs_core::Order) -> Order {
        Order {
            order_id: o.id.to_string(),
            customer_id: o.customer_id.as_str().to_owned(),
            product_id: o.product_id.as_str().to_owned(),
            quantity: o.quantity,
            price: price_json(o.price),
            metadata: o.metadata.as_ref().map(dofs_core::Metadata::to_json),
            status: o.status.into(),
            attempts: o.attempts,
            created_at: o.created_at.to_string(),
            updated_at: o.updated_at.to_string(),
            execution_arn: o.execution_arn.clone(),
            failure_reason: o.failure_reason.clone(),
            fulfillment_reference: o.fulfillment_reference.clone(),
            cancel_reason: o.cancel_reason.clone(),
        }
    }
}

/// A page of orders, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<Order>,
    /// Pass it as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The optional body of a cancel. Described only: the handler reads it field by field
/// to name what is wrong.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    /// Why the order is cancelled.
    #[schema(min_length = 1, max_length = 256)]
    pub reason: Option<String>,
}

/// What the `http` fulfillment backend posts for each attempt: the order as
/// `GET /orders/{id}` shows it, and the attempt's number (1 for the first).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FulfillmentRequest {
    #[serde(flatten)]
    pub order: Order,
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_core::{CustomerId, Metadata, MetadataValue, NewOrder, OrderId, Price, ProductId};
    use dofs_core::{OrderStatus as Status, Timestamp};

    fn order(cents: u64) -> dofs_core::Order {
        let new = NewOrder {
            customer_id: CustomerId::parse("CUST-1001").expect("customer id"),
            product_id: ProductId::parse("PROD-2001").expect("product id"),
            quantity: 2,
            price: Price::from_cents(cents),
            metadata: Some(Metadata(vec![
                ("source".into(), MetadataValue::String("web".into())),
                ("n".into(), MetadataValue::Number("7".into())),
            ])),
        };
        let id = OrderId::parse("01900000-0000-7000-8000-000000000001").expect("order id");
        let mut o = dofs_core::Order::new(id, new, "arn:x".into(), Timestamp(1_700_000_000_000));
        o.status = Status::Fulfilled;
        o.attempts = 1;
        o.fulfillment_reference = Some("ship-1".into());
        o
    }

    #[test]
    fn an_order_shows_every_field_of_the_contract_in_order() {
        let json = serde_json::to_value(Order::from(&order(2999))).expect("JSON");
        let keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "orderId",
                "customerId",
                "productId",
                "quantity",
                "price",
                "metadata",
                "status",
                "attempts",
                "createdAt",
                "updatedAt",
                "executionArn",
                "failureReason",
                "fulfillmentReference",
                "cancelReason",
            ]
        );
        assert_eq!(json["status"], "FULFILLED");
        assert_eq!(
            json["metadata"],
            serde_json::json!({"source": "web", "n": 7})
        );
        assert_eq!(json["failureReason"], serde_json::Value::Null);
    }

    #[test]
    fn a_price_keeps_the_decimal_the_client_sent() {
        let text = |cents| serde_json::to_string(&Order::from(&order(cents))).expect("JSON");
        assert!(text(3000).contains(r#""price":30,"#), "{}", text(3000));
        assert!(text(2999).contains(r#""price":29.99,"#), "{}", text(2999));
        assert!(text(2990).contains(r#""price":29.9,"#), "{}", text(2990));
    }

    #[test]
    fn the_fulfillment_request_is_the_order_with_the_attempt_last() {
        let body = serde_json::to_value(FulfillmentRequest {
            order: Order::from(&order(2999)),
            attempt: 3,
        })
        .expect("JSON");
        let fields = body.as_object().expect("an object");
        assert_eq!(
            fields.keys().next_back().map(String::as_str),
            Some("attempt")
        );
        assert_eq!(body["attempt"], 3);
        assert_eq!(body["orderId"], "01900000-0000-7000-8000-000000000001");
    }

    #[test]
    fn the_202_names_the_order_and_its_execution() {
        let json = serde_json::to_value(Accepted::from(&order(2999))).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "orderId": "01900000-0000-7000-8000-000000000001",
                "status": "ACCEPTED",
                "executionArn": "arn:x",
                "message": "Order received and processing started",
            })
        );
    }
}
