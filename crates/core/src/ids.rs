//! Identifiers. Each is a newtype that can only be built by `parse` (or, for
//! [`OrderId`], generated, or made from its 16 bytes), so a value of the type
//! is always well formed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An order's id: a UUID (version 7 when DOFS generates it, so ids sort by creation time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(uuid::Uuid);

impl OrderId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        OrderId(uuid::Uuid::now_v7())
    }

    /// Parses the hyphenated lower- or upper-case form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() != 36 {
            return Err(IdError::Invalid("orderId"));
        }
        uuid::Uuid::try_parse(s)
            .map(OrderId)
            .map_err(|_| IdError::Invalid("orderId"))
    }

    /// The id's 16 bytes: the compact form, for storage that keys by it.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The id whose [`OrderId::as_bytes`] are `bytes` (any 16 bytes are a UUID).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        OrderId(uuid::Uuid::from_bytes(bytes))
    }

    /// The hyphenated lower-case form on the stack, for the queue's message
    /// ids, execution ARNs and logs: neither `fmt` nor an allocation.
    pub fn text(&self) -> IdText {
        let mut text = [0; 36];
        self.0.hyphenated().encode_lower(&mut text);
        IdText(text)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

/// An [`OrderId`] as text ([`OrderId::text`]).
#[derive(Clone, Copy)]
pub struct IdText([u8; 36]);

impl IdText {
    /// The 36 characters.
    pub fn as_str(&self) -> &str {
        // encode_lower writes only ASCII hex digits and hyphens.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl TryFrom<String> for OrderId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        OrderId::parse(&s)
    }
}

impl From<OrderId> for String {
    fn from(id: OrderId) -> String {
        id.text().as_str().to_owned()
    }
}

/// An id that failed to parse; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0} is not a valid id")]
    Invalid(&'static str),
}

/// `PREFIX-` followed by 4 to 12 ASCII digits.
fn has_prefixed_digits(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(digits) => {
            (4..=12).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `
            #[doc = $prefix]
            /// ` followed by 4 to 12 digits.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                $name::try_from(s.to_owned())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            /// As `parse`, keeping the string.
            fn try_from(s: String) -> Result<Self, IdError> {
                if has_prefixed_digits(&s, $prefix) {
                    Ok($name(s))
                } else {
                    Err(IdError::Invalid($field))
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// A customer's id, `CUST-` and 4 to 12 digits.
    CustomerId, "CUST-", "customerId"
);
prefixed_id!(
    /// A product's id, `PROD-` and 4 to 12 digits.
    ProductId, "PROD-", "productId"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_need_four_to_twelve_digits() {
        assert!(CustomerId::parse("CUST-1001").is_ok());
        assert!(CustomerId::parse("CUST-123456789012").is_ok());
        assert!(CustomerId::parse("CUST-123").is_err());
        assert!(CustomerId::parse("CUST-1234567890123").is_err());
        assert!(CustomerId::parse("CUST-12a4").is_err());
        assert!(CustomerId::parse("cust-1234").is_err());
        assert!(CustomerId::parse("CUST-１２３４").is_err());
        assert!(ProductId::parse("PROD-2001").is_ok());
        assert!(ProductId::parse("CUST-2001").is_err());
    }

    #[test]
    fn generated_order_ids_parse_back_and_sort_by_creation() {
        let a = OrderId::generate();
        let b = OrderId::generate();
        assert_eq!(OrderId::parse(&a.to_string()), Ok(a));
        assert_eq!(a.text().as_str(), a.0.hyphenated().to_string());
        assert!(a < b);
        assert!(OrderId::parse("not-an-id").is_err());
    }

    /// Storage that keys orders by their bytes lists them in that order: it
    /// must be the order of the ids and of their text.
    #[test]
    fn order_ids_come_back_from_their_bytes_which_sort_as_their_text() {
        let ids: Vec<OrderId> = (0..50).map(|_| OrderId::generate()).collect();
        let older = OrderId::parse("01900000-0000-7000-8000-00000000ffff").expect("id");
        let newer = OrderId::parse("01900000-0001-7000-8000-000000000000").expect("id");
        for pair in ids.windows(2).chain([[older, newer].as_slice()]) {
            let (a, b) = (pair[0], pair[1]);
            assert_eq!(OrderId::from_bytes(*a.as_bytes()), a);
            assert_eq!(a.as_bytes() < b.as_bytes(), a.to_string() < b.to_string());
            assert_eq!(a.as_bytes() < b.as_bytes(), a < b);
        }
    }
}
