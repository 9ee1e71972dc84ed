//! Input checks shared by several flows: names and quantities.

use crate::error::{Entity, Error, Result};

/// The longest name, in characters after trimming, of a user or a product.
pub const MAX_NAME_CHARS: usize = 100;

/// Trims `name` and checks it is 1 to [`MAX_NAME_CHARS`] characters with
/// no control character. See [`text`].
pub(crate) fn name(entity: Entity, name: &str) -> Result<String> {
    text(entity, name, MAX_NAME_CHARS).map_err(|err| match err {
        TextError::Length(length) => Error::InvalidName {
            entity,
            length,
            max: MAX_NAME_CHARS,
        },
        TextError::Control(err) => err,
    })
}

/// Why [`text`] refused its input.
pub(crate) enum TextError {
    /// The length in characters after trimming, out of bounds.
    Length(usize),
    /// [`Error::InvalidCharacter`].
    Control(Error),
}

/// The one rule for a line of text the shop stores (names, refund
/// reasons): trimmed of white space at both ends, then 1 to `max`
/// characters (Unicode scalar values), none of them a control character.
///
/// Refusing control characters (NUL among them) makes Rust's count and
/// SQLite's `length()` agree — `length()` stops at the first NUL — so the
/// schema's `CHECK (length(name) BETWEEN 1 AND 100)` holds exactly what
/// this lets through.
pub(crate) fn text(entity: Entity, text: &str, max: usize) -> Result<String, TextError> {
    let trimmed = text.trim();
    if let Some(character) = trimmed.chars().find(|c| c.is_control()) {
        return Err(TextError::Control(Error::InvalidCharacter {
            entity,
            character,
        }));
    }
    let length = trimmed.chars().count();
    if (1..=max).contains(&length) {
        Ok(trimmed.to_owned())
    } else {
        Err(TextError::Length(length))
    }
}

/// Checks that `value` of the parameter `what` is `min` to `max`.
pub(crate) fn range(what: &'static str, value: u32, min: u32, max: u32) -> Result<u32> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::OutOfRange {
            what,
            value,
            min,
            max,
        })
    }
}

/// Checks that `quantity` is 1 to `max`.
pub(crate) fn quantity(quantity: u32, max: u32) -> Result<u32> {
    if (1..=max).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(Error::InvalidQuantity { quantity, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(name(Entity::User, "  kim  ").unwrap(), "kim");
        assert!(name(Entity::User, "   ").is_err());
        // 100 Hangul syllables are 300 bytes but 100 characters: allowed.
        assert!(name(Entity::Product, &"가".repeat(100)).is_ok());
        assert!(matches!(
            name(Entity::Product, &"가".repeat(101)),
            Err(Error::InvalidName {
                length: 101,
                max: 100,
                ..
            })
        ));
    }

    #[test]
    fn control_characters_are_refused_wherever_they_stand() {
        for bad in [
            "\0",
            "\0Kim",
            "Ki\0m",
            "Kim\0",
            "Ki\nm",
            "Ki\u{7f}m",
            "\u{9f}",
        ] {
            assert!(
                matches!(
                    name(Entity::User, bad),
                    Err(Error::InvalidCharacter {
                        entity: Entity::User,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        // Leading and trailing white space, tabs and newlines included, is
        // trimmed before the check.
        assert_eq!(name(Entity::User, "\tKim\n").unwrap(), "Kim");
    }

    #[test]
    fn quantities_are_one_to_max() {
        assert!(quantity(0, 5).is_err());
        assert_eq!(quantity(5, 5).unwrap(), 5);
        assert!(quantity(6, 5).is_err());
    }
}
