//! How orders, failed orders, cursors and status changes are written as
//! DynamoDB items and expressions, and read back.
//!
//! Attributes added later (`fulfillmentReference`, `cancelReason`) are
//! optional: items written before them read as `None`.

use super::*;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn str_attr<'a>(item: &'a Item, key: &str) -> Result<&'a str, PortError> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(key)),
    }
}

pub(crate) fn num_attr<T: std::str::FromStr>(item: &Item, key: &str) -> Result<T, PortError> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(key)),
        _ => Err(corrupt(key)),
    }
}

pub(super) fn encode_metadata(m: &Metadata) -> String {
    let list: Vec<serde_json::Value> =
        m.0.iter()
            .map(|(k, v)| {
                let (t, text) = match v {
                    MetadataValue::String(s) => ("s", s.clone()),
                    MetadataValue::Number(n) => ("n", n.clone()),
                    MetadataValue::Bool(b) => ("b", b.to_string()),
                };
                serde_json::json!([k, t, text])
            })
            .collect();
    serde_json::Value::Array(list).to_string()
}

pub(super) fn decode_metadata(text: &str) -> Option<Metadata> {
    let list: Vec<(String, String, String)> = serde_json::from_str(text).ok()?;
    let mut out = Vec::with_capacity(list.len());
    for (k, t, v) in list {
        let value = match t.as_str() {
            "s" => MetadataValue::String(v),
            "n" => MetadataValue::Number(v),
            "b" => MetadataValue::Bool(v == "true"),
            _ => return None,
        };
        out.push((k, value));
    }
    Some(Metadata(out))
}

/// The item of an order.
pub(crate) fn order_item(o: &Order) -> Item {
    let mut item = Item::new();
    item.insert("orderId".into(), s(o.id.to_string()));
    item.insert("customerId".into(), s(o.customer_id.as_str()));
    item.insert("productId".into(), s(o.product_id.as_str()));
    item.insert("quantity".into(), n(o.quantity));
    item.insert("priceCents".into(), n(o.price.cents()));
    if let Some(m) = &o.metadata {
        item.insert("metadata".into(), s(encode_metadata(m)));
    }
    item.insert("status".into(), s(o.status.as_str()));
    item.insert("attempts".into(), n(o.attempts));
    item.insert("createdAt".into(), s(o.created_at.to_string()));
    item.insert("createdAtMs".into(), n(o.created_at.millis()));
    item.insert("updatedAtMs".into(), n(o.updated_at.millis()));
    item.insert("executionArn".into(), s(o.execution_arn.clone()));
    if let Some(r) = &o.failure_reason {
        item.insert("failureReason".into(), s(r.clone()));
    }
    if let Some(r) = &o.fulfillment_reference {
        item.insert("fulfillmentReference".into(), s(r.clone()));
    }
    if let Some(r) = &o.cancel_reason {
        item.insert("cancelReason".into(), s(r.clone()));
    }
    item.insert("listPartition".into(), s(list_partition(&o.id.to_string())));
    item
}

/// The order of an item.
pub(crate) fn order_from_item(item: &Item) -> Result<Order, PortError> {
    let metadata = match item.get("metadata") {
        Some(AttributeValue::S(text)) => {
            Some(decode_metadata(text).ok_or_else(|| corrupt("metadata"))?)
        }
        _ => None,
    };
    Ok(Order {
        id: OrderId::parse(str_attr(item, "orderId")?).map_err(|_| corrupt("orderId"))?,
        customer_id: CustomerId::parse(str_attr(item, "customerId")?)
            .map_err(|_| corrupt("customerId"))?,
        product_id: ProductId::parse(str_attr(item, "productId")?)
            .map_err(|_| corrupt("productId"))?,
        quantity: num_attr(item, "quantity")?,
        price: Price::from_cents(num_attr(item, "priceCents")?),
        metadata,
        status: OrderStatus::parse(str_attr(item, "status")?).ok_or_else(|| corrupt("status"))?,
        attempts: num_attr(item, "attempts")?,
        created_at: Timestamp(num_attr(item, "createdAtMs")?),
        updated_at: Timestamp(num_attr(item, "updatedAtMs")?),
        execution_arn: str_attr(item, "executionArn")?.to_owned(),
        failure_reason: optional_str(item, "failureReason"),
        fulfillment_reference: optional_str(item, "fulfillmentReference"),
        cancel_reason: optional_str(item, "cancelReason"),
    })
}

/// An optional text attribute; items written before it existed lack it.
fn optional_str(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(super) fn failed_from_item(item: &Item) -> Result<FailedOrder, PortError> {
    Ok(FailedOrder {
        order_id: OrderId::parse(str_attr(item, "orderId")?).map_err(|_| corrupt("orderId"))?,
        reason: str_attr(item, "reason")?.to_owned(),
        attempts: num_attr(item, "attempts")?,
        failed_at: Timestamp(num_attr(item, "failedAtMs")?),
        order: serde_json::from_str(str_attr(item, "order")?).map_err(|_| corrupt("order"))?,
    })
}

/// Whether two orders were submitted with the same content.
pub(super) fn same_content(a: &Order, b: &Order) -> bool {
    a.customer_id == b.customer_id
        && a.product_id == b.product_id
        && a.quantity == b.quantity
        && a.price == b.price
        && a.metadata == b.metadata
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// An opaque cursor: the sort key and order id of the last item seen.
pub(super) fn encode_cursor(sort: &str, id: &str) -> String {
    hex(format!("{sort}|{id}").as_bytes())
}

pub(super) fn decode_cursor(c: &str) -> Option<(String, String)> {
    let text = String::from_utf8(unhex(c)?).ok()?;
    let (sort, id) = text.split_once('|')?;
    OrderId::parse(id).ok()?;
    Some((sort.to_owned(), id.to_owned()))
}
