//! An order's row: the columns read, how the execution ARN is stored, and
//! the order made again from them.

use dofs_core::order::Metadata;
use dofs_core::ports::{ErrorKind, PortError};
use dofs_core::{CustomerId, Order, OrderId, OrderStatus, Price, ProductId, Timestamp};
use rusqlite::Row;

/// The columns [`order_from_row`] reads, in its order.
pub(crate) const ORDER_COLUMNS: &str =
    "id, customer_id, product_id, quantity, price_cents, metadata, status, attempts, \
     created_at, updated_at, execution_arn, failure_reason, fulfillment_reference, cancel_reason";

/// How many columns [`ORDER_COLUMNS`] names.
pub(crate) const ORDER_COLUMN_COUNT: usize = 14;

// The two above agree, or the build fails.
const _: () = {
    let bytes = ORDER_COLUMNS.as_bytes();
    let (mut i, mut commas) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            commas += 1;
        }
        i += 1;
    }
    assert!(commas + 1 == ORDER_COLUMN_COUNT);
};

/// The execution ARN of an order accepted here: Step Functions' form, in the
/// region `local` of account `000000000000`, named by the order's id.
pub(crate) fn local_execution_arn(state_machine: &str, id: &str) -> String {
    dofs_core::ports::execution_arn("local", "000000000000", state_machine, id)
}

/// What the `execution_arn` column holds for an order with this ARN: only
/// the state machine's name when the ARN is [`local_execution_arn`] of that
/// name and the order's id (every ARN this build makes; 81 of its 106 bytes
/// not stored), else the whole ARN. A name has no `:`, so it never starts
/// with `arn:` as a whole ARN does; a value that is neither cannot be told
/// apart from a name when read, so it is refused.
pub(super) fn arn_to_store<'a>(arn: &'a str, id: &str) -> Result<&'a str, PortError> {
    let name = arn
        .strip_prefix(local_arn_prefix())
        .and_then(|rest| rest.strip_suffix(id))
        .and_then(|rest| rest.strip_suffix(':'))
        .filter(|name| !name.contains(':'));
    match name {
        Some(name) => Ok(name),
        _ if arn.starts_with("arn:") => Ok(arn),
        _ => Err(PortError::new(
            ErrorKind::Internal,
            format!("order {id}: its execution ARN {arn:?} does not start with \"arn:\""),
        )),
    }
}

/// What every [`local_execution_arn`] has before the state machine's name
/// (which the order's id follows after a `:`), made once from that function
/// so that the ARN's form stays in one place: each insert compares with it
/// rather than making the ARN again.
fn local_arn_prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        let unnamed = local_execution_arn("", "");
        unnamed.strip_suffix(':').unwrap_or(&unnamed).to_owned()
    })
}

/// The ARN that [`arn_to_store`] stored as `stored`.
fn arn_from_stored(stored: String, id: &str) -> String {
    if stored.starts_with("arn:") {
        stored
    } else {
        local_execution_arn(&stored, id)
    }
}

pub(super) fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

/// Reads an order row selected with [`ORDER_COLUMNS`] (its first
/// [`ORDER_COLUMN_COUNT`] columns).
pub(crate) fn order_from_row(row: &Row<'_>) -> rusqlite::Result<Order> {
    // The id and status are read in place; the strings the order keeps are
    // moved into it.
    // A value that is not 16 bytes fails here, named by its column.
    let id = OrderId::from_bytes(row.get(0)?);
    let execution_arn = arn_from_stored(row.get(10)?, id.text().as_str());
    let metadata: Option<String> = row.get(5)?;
    Ok(Order {
        id,
        customer_id: CustomerId::try_from(row.get::<_, String>(1)?)
            .map_err(|_| corrupt("orders.customer_id"))?,
        product_id: ProductId::try_from(row.get::<_, String>(2)?)
            .map_err(|_| corrupt("orders.product_id"))?,
        quantity: row.get(3)?,
        price: Price::from_cents(row.get::<_, i64>(4)? as u64),
        metadata: metadata
            .map(|m| Metadata::from_json(&m).ok_or_else(|| corrupt("orders.metadata")))
            .transpose()?,
        status: OrderStatus::parse(row.get_ref(6)?.as_str()?)
            .ok_or_else(|| corrupt("orders.status"))?,
        attempts: row.get(7)?,
        created_at: Timestamp(row.get(8)?),
        updated_at: Timestamp(row.get(9)?),
        execution_arn,
        failure_reason: row.get(11)?,
        fulfillment_reference: row.get(12)?,
        cancel_reason: row.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local ARN of the order's own id is stored as its state machine's
    /// name; any other ARN whole. Both read back as they were.
    #[test]
    fn an_execution_arn_is_stored_short_when_it_can_be_made_again() {
        let id = "01900000-0000-7000-8000-000000000001";
        let stored = |arn: &str| arn_to_store(arn, id).map(str::to_owned);
        let local = local_execution_arn("dofs-dev-order-processing", id);
        assert_eq!(
            stored(&local).ok().as_deref(),
            Some("dofs-dev-order-processing")
        );
        let other_id = local_execution_arn("dofs-dev-order-processing", "another");
        let other_region = local.replace(":local:", ":eu-west-1:");
        let unnamed = local_execution_arn("", id);
        let colon = local_execution_arn("a:b", id);
        for arn in [&local, &other_id, &other_region, &unnamed, &colon] {
            let kept = stored(arn).expect("an ARN is stored");
            assert_eq!(&arn_from_stored(kept, id), arn);
        }
        assert_eq!(stored(&other_id).ok(), Some(other_id.clone()));
        assert_eq!(stored(&other_region).ok(), Some(other_region.clone()));
        assert_eq!(
            stored(&colon).ok(),
            Some(colon.clone()),
            "a name has no ':'"
        );
        // Not an ARN: it would read back as a state machine's name.
        let refused = stored("exec-1").expect_err("not an ARN");
        assert_eq!(refused.kind, ErrorKind::Internal);
    }
}
