//! Request bodies as the API reads them: strict JSON (every body refuses
//! unknown fields), integers read exactly from their text, and the lines
//! of an order or a refund as a map of product id to quantity.

use axum::body::Bytes;
use axum::http::StatusCode;
use liteshop::{OrderLine, ProductId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::problem::{ApiError, Problem};

/// Parses a JSON body, answering malformed JSON, a wrong type or an
/// unknown field (named in the detail) with a 400 problem rather than
/// axum's plain-text rejection.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::from(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            err.to_string(),
        ))
    })
}

/// Reads an integer exactly from its JSON text. JSON Schema counts `6`,
/// `6.0`, `6e0` and `0.6e1` as the integer 6, so all are accepted; `6.5`
/// is not an integer, and nothing is rounded on the way — the text is
/// never read as a float, so `4118338983036210.0` is 4118338983036210 and
/// `9007199254740993.0` is 9007199254740993.
pub(crate) fn int<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error as _;
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    let text = raw.get();
    match exact_integer(text) {
        Some(Ok(n)) => i64::try_from(n)
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| D::Error::custom(format!("{text} is out of range"))),
        Some(Err(OutOfRange)) => Err(D::Error::custom(format!("{text} is out of range"))),
        None => Err(D::Error::custom(format!("{text} is not an integer"))),
    }
}

/// [`int`] for an optional field: `null` or absent is `None`.
pub(crate) fn opt_int<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    #[derive(Deserialize)]
    struct Wrapped<T: TryFrom<i64>>(#[serde(deserialize_with = "int")] T);
    Option::<Wrapped<T>>::deserialize(deserializer).map(|w| w.map(|Wrapped(v)| v))
}

/// A field that may be absent (with `#[serde(default)]`) but, when sent,
/// must hold a value: `null` is refused, not read as "absent".
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A number too large for the API's integers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OutOfRange;

/// The integer a JSON number's text denotes: `None` if the text is not a
/// number or the number is not whole, `Some(Err)` if it is whole but
/// beyond what an `i128` can hold (the caller narrows to its own range).
fn exact_integer(text: &str) -> Option<Result<i128, OutOfRange>> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (mantissa, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return None;
    }
    if mantissa.contains('.') && fraction.is_empty() {
        return None;
    }
    // The number is digits × 10^scale.
    let mut digits: String = format!("{whole}{fraction}")
        .trim_start_matches('0')
        .to_owned();
    if digits.is_empty() {
        return Some(Ok(0)); // 0, -0, 0.000, 0e999…
    }
    let exponent: i128 = match exponent {
        None => 0,
        Some(e) => {
            let (sign, e) = match e.strip_prefix('-') {
                Some(e) => (-1, e),
                None => (1, e.strip_prefix('+').unwrap_or(e)),
            };
            if e.is_empty() || !digits_only(e) {
                return None;
            }
            // An exponent too long to read is out of range one way or the
            // other: huge, or so small the (non-zero) number is a fraction.
            match e.trim_start_matches('0').parse::<i64>() {
                Ok(e) => sign * i128::from(e),
                Err(_) if e.trim_start_matches('0').is_empty() => 0,
                Err(_) if sign > 0 => return Some(Err(OutOfRange)),
                Err(_) => return None,
            }
        }
    };
    let fraction_len = i128::try_from(fraction.len()).ok()?;
    let mut scale = exponent - fraction_len;
    while scale < 0 && digits.ends_with('0') {
        digits.pop();
        scale += 1;
    }
    if scale < 0 {
        return None; // a fraction is left
    }
    // i128 holds 38 digits; anything longer is far out of any API range.
    let length = i128::try_from(digits.len()).ok()?;
    if length + scale > 38 {
        return Some(Err(OutOfRange));
    }
    let mut value: i128 = digits.parse().ok()?;
    for _ in 0..scale {
        value *= 10;
    }
    Some(Ok(if negative { -value } else { value }))
}

/// The lines of an order or a refund: product id → quantity, in the order
/// given. A map, so that a product appears once by construction (the shop
/// refuses an order naming a product twice).
#[derive(Debug, Clone)]
pub(crate) struct Lines(pub(crate) Vec<OrderLine>);

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Lines, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Lines;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of product id to quantity")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Lines, A::Error> {
                use serde::de::Error as _;
                #[derive(Deserialize)]
                struct Quantity(#[serde(deserialize_with = "int")] u32);
                let mut lines = Vec::new();
                while let Some(product) = map.next_key::<String>()? {
                    let product: i64 = product.parse().map_err(|_| {
                        A::Error::custom(format!("{product:?} is not a product id"))
                    })?;
                    let Quantity(quantity) = map.next_value()?;
                    lines.push(OrderLine::new(ProductId::new(product), quantity));
                }
                Ok(Lines(lines))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Price {
        #[serde(deserialize_with = "int")]
        price: i64,
    }

    fn price(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Price>(&format!(r#"{{"price": {json}}}"#))
            .map(|p| p.price)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integers_are_read_exactly_in_every_json_spelling() {
        for (json, value) in [
            ("6", 6),
            ("6.0", 6),
            ("6.000", 6),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1e+3", 1000),
            ("0.6e1", 6),
            ("600e-2", 6),
            ("1.0", 1),
            ("-0", 0),
            ("-0.0", 0),
            ("0e999999999999999999999", 0),
            ("4118338983036210.0", 4_118_338_983_036_210),
            ("9007199254740991", 9_007_199_254_740_991), // 2^53 − 1
            ("9007199254740992.0", 9_007_199_254_740_992), // 2^53
            ("9007199254740993.0", 9_007_199_254_740_993), // 2^53 + 1
            ("9007199254740993", 9_007_199_254_740_993),
            ("9223372036854775807", i64::MAX),
            ("9.223372036854775807e18", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(price(json), Ok(value), "{json}");
        }
    }

    #[test]
    fn fractions_are_refused_and_large_numbers_are_out_of_range() {
        for json in [
            "6.5",
            "4503599627370496.5", // 2^52 + ½: a float would round it to an integer
            "1.0000000000000000001",
            "1e-1",
            "1e-99999999999999999999",
        ] {
            let err = price(json).unwrap_err();
            assert!(err.contains("is not an integer"), "{json}: {err}");
        }
        for json in [
            "9223372036854775808",
            "1e19",
            "1e400",
            "1e99999999999999999999",
            "-1e40",
        ] {
            let err = price(json).unwrap_err();
            assert!(err.contains("is out of range"), "{json}: {err}");
        }
        for json in ["\"6\"", "null", "true", "[6]"] {
            assert!(price(json).is_err(), "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = serde_json::from_str::<Price>(r#"{"price": 1, "currency": "USD"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `currency`"),
            "{err}"
        );
    }
}
