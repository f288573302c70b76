//! Money. A [`Price`] is a whole number of cents; JSON numbers are converted
//! once, exactly, from their decimal text (see [`Price::from_decimal_text`]).

use std::fmt;

/// A price in integer cents. Always greater than zero when it comes from a valid order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price {
    cents: u64,
}

/// Why a decimal text is not a valid price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceError {
    /// Not a JSON number.
    NotANumber,
    /// Zero or negative.
    NotPositive,
    /// More than two decimal places.
    TooPrecise,
    /// Above the given maximum (in cents).
    TooLarge,
}

impl Price {
    /// A price of `cents` cents.
    pub const fn from_cents(cents: u64) -> Self {
        Price { cents }
    }

    /// The price in cents.
    pub const fn cents(self) -> u64 {
        self.cents
    }

    /// Parses the exact text of a JSON number (`29.99`, `1e2`, `30.50`) into cents,
    /// without passing through floating point. `max_cents` is inclusive.
    pub fn from_decimal_text(text: &str, max_cents: u64) -> Result<Price, PriceError> {
        let d = Decimal::parse(text).ok_or(PriceError::NotANumber)?;
        if d.is_zero() || d.negative {
            return Err(PriceError::NotPositive);
        }
        // value = digits * 10^exponent; cents = digits * 10^(exponent + 2)
        let shift = d.exponent + 2;
        if shift < 0 {
            return Err(PriceError::TooPrecise);
        }
        let cents = pow10(shift as u32)
            .and_then(|p| d.digits.checked_mul(p))
            .ok_or(PriceError::TooLarge)?;
        if cents > u128::from(max_cents) {
            return Err(PriceError::TooLarge);
        }
        Ok(Price {
            cents: cents as u64,
        })
    }
}

impl fmt::Display for Price {
    /// The shortest exact decimal form: `29.99`, `29.9`, `30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.cents / 100;
        let frac = self.cents % 100;
        match frac {
            0 => write!(f, "{whole}"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}"),
        }
    }
}

fn pow10(n: u32) -> Option<u128> {
    10u128.checked_pow(n)
}

/// An exact decimal read from JSON number text: `digits * 10^exponent`,
/// with trailing zeros of the digits folded into the exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub negative: bool,
    pub digits: u128,
    pub exponent: i64,
}

impl Decimal {
    pub fn is_zero(&self) -> bool {
        self.digits == 0
    }

    /// The integer value, when the decimal is a whole number that fits.
    pub fn as_integer(&self) -> Option<i128> {
        if self.digits == 0 {
            return Some(0);
        }
        if self.exponent < 0 {
            return None;
        }
        let v = pow10(u32::try_from(self.exponent).ok()?)?.checked_mul(self.digits)?;
        let v = i128::try_from(v).ok()?;
        Some(if self.negative { -v } else { v })
    }

    /// Parses JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    /// Returns `None` for anything else, and for more than 38 significant digits.
    pub fn parse(text: &str) -> Option<Decimal> {
        let bytes = text.as_bytes();
        let mut i = 0;
        let negative = bytes.first() == Some(&b'-');
        if negative {
            i += 1;
        }
        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &text[int_start..i];
        if int_part.is_empty() || (int_part.len() > 1 && int_part.starts_with('0')) {
            return None;
        }
        let mut frac_part = "";
        if i < bytes.len() && bytes[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &text[start..i];
            if frac_part.is_empty() {
                return None;
            }
        }
        let mut exponent: i64 = 0;
        if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
            i += 1;
            let exp_negative = match bytes.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let exp_text = &text[start..i];
            if exp_text.is_empty() {
                return None;
            }
            // Exponents beyond this are far outside any valid order value.
            let e: i64 = if exp_text.len() > 9 {
                999_999_999
            } else {
                exp_text.parse().ok()?
            };
            exponent = if exp_negative { -e } else { e };
        }
        if i != bytes.len() {
            return None;
        }
        let all_digits = format!("{int_part}{frac_part}");
        let significant = all_digits.trim_start_matches('0');
        let trimmed = significant.trim_end_matches('0');
        let trailing_zeros = (significant.len() - trimmed.len()) as i64;
        exponent = exponent - frac_part.len() as i64 + trailing_zeros;
        if trimmed.is_empty() {
            return Some(Decimal {
                negative,
                digits: 0,
                exponent: 0,
            });
        }
        if trimmed.len() > 38 {
            return None;
        }
        let digits: u128 = trimmed.parse().ok()?;
        Some(Decimal {
            negative,
            digits,
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1_000_000;

    #[test]
    fn prices_convert_exactly_from_decimal_text() {
        assert_eq!(
            Price::from_decimal_text("29.99", MAX),
            Ok(Price::from_cents(2999))
        );
        assert_eq!(
            Price::from_decimal_text("0.01", MAX),
            Ok(Price::from_cents(1))
        );
        assert_eq!(
            Price::from_decimal_text("10000", MAX),
            Ok(Price::from_cents(1_000_000))
        );
        assert_eq!(
            Price::from_decimal_text("1e2", MAX),
            Ok(Price::from_cents(10_000))
        );
        assert_eq!(
            Price::from_decimal_text("29.990", MAX),
            Ok(Price::from_cents(2999))
        );
        assert_eq!(
            Price::from_decimal_text("2999e-2", MAX),
            Ok(Price::from_cents(2999))
        );
    }

    #[test]
    fn prices_reject_zero_negative_too_precise_and_too_large() {
        assert_eq!(
            Price::from_decimal_text("0", MAX),
            Err(PriceError::NotPositive)
        );
        assert_eq!(
            Price::from_decimal_text("-0.0", MAX),
            Err(PriceError::NotPositive)
        );
        assert_eq!(
            Price::from_decimal_text("-10", MAX),
            Err(PriceError::NotPositive)
        );
        assert_eq!(
            Price::from_decimal_text("0.001", MAX),
            Err(PriceError::TooPrecise)
        );
        assert_eq!(
            Price::from_decimal_text("29.999", MAX),
            Err(PriceError::TooPrecise)
        );
        assert_eq!(
            Price::from_decimal_text("10000.01", MAX),
            Err(PriceError::TooLarge)
        );
        assert_eq!(
            Price::from_decimal_text("1e999999999999", MAX),
            Err(PriceError::TooLarge)
        );
        assert_eq!(
            Price::from_decimal_text("1e-999999999999", MAX),
            Err(PriceError::TooPrecise)
        );
        assert_eq!(
            Price::from_decimal_text("01", MAX),
            Err(PriceError::NotANumber)
        );
        assert_eq!(
            Price::from_decimal_text("1.", MAX),
            Err(PriceError::NotANumber)
        );
        assert_eq!(
            Price::from_decimal_text("NaN", MAX),
            Err(PriceError::NotANumber)
        );
    }

    #[test]
    fn prices_print_in_their_shortest_exact_form() {
        assert_eq!(Price::from_cents(2999).to_string(), "29.99");
        assert_eq!(Price::from_cents(2990).to_string(), "29.9");
        assert_eq!(Price::from_cents(3000).to_string(), "30");
        assert_eq!(Price::from_cents(5).to_string(), "0.05");
    }

    #[test]
    fn decimals_know_when_they_are_integers() {
        assert_eq!(Decimal::parse("2").and_then(|d| d.as_integer()), Some(2));
        assert_eq!(Decimal::parse("2.0").and_then(|d| d.as_integer()), Some(2));
        assert_eq!(
            Decimal::parse("1e2").and_then(|d| d.as_integer()),
            Some(100)
        );
        assert_eq!(Decimal::parse("-3").and_then(|d| d.as_integer()), Some(-3));
        assert_eq!(Decimal::parse("2.5").and_then(|d| d.as_integer()), None);
    }
}
