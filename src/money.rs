//! [`Money`]: a non-negative count of won with checked arithmetic.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An amount of money: a whole, non-negative number of won (KRW has no unit
/// below the won).
///
/// The only constructors check their input, so a `Money` is never negative.
/// Arithmetic is checked: every `checked_*` method returns `None` instead of
/// overflowing or going below zero, and there are no operator impls that could
/// panic. No floating point is involved anywhere.
///
/// `Display` groups thousands and names the currency: `12,000 KRW`. Serde
/// writes a bare integer and refuses a negative one when reading.
///
/// # Example
///
/// ```
/// use liteshop::Money;
///
/// let price = Money::new(12_000)?;
/// let total = price.checked_mul(3).expect("no overflow");
/// assert_eq!(total, Money::new(36_000)?);
/// assert_eq!(total.to_string(), "36,000 KRW");
/// assert!(Money::new(-1).is_err());
/// assert_eq!(Money::MAX.checked_add(Money::from_won(1)), None);
/// # Ok::<(), liteshop::Error>(())
/// ```
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(description = "An amount of money: a whole number of won, never negative.")
)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Money(i64);

impl Money {
    /// No money at all.
    pub const ZERO: Money = Money(0);
    /// The largest amount a `Money` can hold (`i64::MAX` won).
    pub const MAX: Money = Money(i64::MAX);

    /// Makes an amount from a count of won.
    ///
    /// # Failure
    ///
    /// [`Error::NegativeAmount`] when `won` is below zero.
    pub const fn new(won: i64) -> Result<Money> {
        if won < 0 {
            Err(Error::NegativeAmount { won })
        } else {
            Ok(Money(won))
        }
    }

    /// Makes an amount from a count of won that cannot be negative or too
    /// large, usable in `const` context.
    pub const fn from_won(won: u32) -> Money {
        Money(won as i64)
    }

    /// The number of won.
    pub const fn won(self) -> i64 {
        self.0
    }

    /// Whether this is zero won.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + rhs`, or `None` on overflow.
    #[must_use]
    pub const fn checked_add(self, rhs: Money) -> Option<Money> {
        match self.0.checked_add(rhs.0) {
            Some(won) => Some(Money(won)),
            None => None,
        }
    }

    /// `self - rhs`, or `None` when the result would be below zero.
    #[must_use]
    pub const fn checked_sub(self, rhs: Money) -> Option<Money> {
        if rhs.0 > self.0 {
            None
        } else {
            Some(Money(self.0 - rhs.0))
        }
    }

    /// `self × quantity`, or `None` on overflow: a unit price times a count.
    #[must_use]
    pub const fn checked_mul(self, quantity: u32) -> Option<Money> {
        match self.0.checked_mul(quantity as i64) {
            Some(won) => Some(Money(won)),
            None => None,
        }
    }

    /// An amount computed in `i128` by a rule that keeps it within
    /// `0..=i64::MAX` (a share of an amount that fits); such a rule is
    /// proven where it is written, so this never fails in practice.
    pub(crate) fn from_i128(won: i128) -> Money {
        let won = i64::try_from(won).expect("a share of a Money fits in i64");
        Money::new(won).expect("a share of a Money is not negative")
    }

    /// The sum of `amounts`, or `None` on overflow.
    #[must_use]
    pub fn checked_sum(amounts: impl IntoIterator<Item = Money>) -> Option<Money> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }
}

impl TryFrom<i64> for Money {
    type Error = Error;

    fn try_from(won: i64) -> Result<Money> {
        Money::new(won)
    }
}

impl From<Money> for i64 {
    fn from(money: Money) -> i64 {
        money.0
    }
}

impl From<u32> for Money {
    fn from(won: u32) -> Money {
        Money::from_won(won)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 4);
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        write!(f, "{grouped} KRW")
    }
}

impl crate::db::ToValue for Money {
    fn to_value(&self) -> crate::db::ValueRef<'_> {
        crate::db::ValueRef::Integer(self.0)
    }
}

impl crate::db::FromValue for Money {
    fn from_value(value: &crate::db::Value) -> std::result::Result<Self, String> {
        let won = <i64 as crate::db::FromValue>::from_value(value)?;
        Money::new(won).map_err(|_| format!("{won} won is out of range for money"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_groups_thousands() {
        let cases = [
            (0, "0 KRW"),
            (7, "7 KRW"),
            (999, "999 KRW"),
            (1_000, "1,000 KRW"),
            (12_000, "12,000 KRW"),
            (1_234_567, "1,234,567 KRW"),
            (i64::MAX, "9,223,372,036,854,775,807 KRW"),
        ];
        for (won, text) in cases {
            assert_eq!(Money::new(won).unwrap().to_string(), text);
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        let one = Money::from_won(1);
        assert_eq!(Money::MAX.checked_add(one), None);
        assert_eq!(Money::ZERO.checked_sub(one), None);
        assert_eq!(Money::MAX.checked_mul(2), None);
        assert_eq!(Money::from_won(5).checked_mul(0), Some(Money::ZERO));
        assert_eq!(Money::checked_sum([Money::MAX, one]), None);
        assert_eq!(
            Money::checked_sum([one, one, one]),
            Some(Money::from_won(3))
        );
    }

    #[test]
    fn negative_amounts_are_refused_everywhere() {
        assert!(matches!(
            Money::new(-1),
            Err(Error::NegativeAmount { won: -1 })
        ));
        assert!(serde_json::from_str::<Money>("-5").is_err());
        assert_eq!(
            serde_json::from_str::<Money>("5").unwrap(),
            Money::from_won(5)
        );
        assert_eq!(serde_json::to_string(&Money::from_won(5)).unwrap(), "5");
    }
}

/// The currency of a shop's money: an ISO 4217 code, three uppercase ASCII
/// letters; [`Currency::KRW`] by default ([`ShopBuilder::currency`](crate::ShopBuilder::currency)).
/// The shop sends it with every request to its gateway, so a PG that takes
/// several currencies is told which one every amount is in.
///
/// Every [`Money`] of a shop counts the currency's smallest unit; liteshop's
/// own texts (`Display`, the console) write amounts as won.
///
/// # Example
///
/// ```
/// use liteshop::Currency;
///
/// assert_eq!(Currency::new("KRW")?, Currency::KRW);
/// assert_eq!(Currency::KRW.as_str(), "KRW");
/// assert!(Currency::new("krw").is_err());
/// # Ok::<(), liteshop::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// South Korean won, the default.
    pub const KRW: Currency = Currency(*b"KRW");

    /// The currency with ISO 4217 code `code`.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidConfig`] unless `code` is three uppercase ASCII
    /// letters.
    pub fn new(code: &str) -> Result<Currency> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(Error::InvalidConfig {
                reason: "a currency is an ISO 4217 code: three uppercase ASCII letters",
            }),
        }
    }

    /// The code, e.g. `"KRW"`.
    pub fn as_str(&self) -> &str {
        // Three ASCII letters, checked by the only constructor.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl Default for Currency {
    /// [`Currency::KRW`].
    fn default() -> Currency {
        Currency::KRW
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Currency, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::new(&code).map_err(serde::de::Error::custom)
    }
}
