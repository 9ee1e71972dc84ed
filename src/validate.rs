//! Input checks shared by several flows: names and quantities.

use crate::error::{Entity, Error, Result};

/// The longest name, in characters, of a user or a product.
pub const MAX_NAME_CHARS: usize = 100;

/// Checks `name` is 1 to [`MAX_NAME_CHARS`] characters with no control
/// character and no white space at either end. See [`text`].
pub(crate) fn name(entity: Entity, name: &str) -> Result<String> {
    name_up_to(entity, name, MAX_NAME_CHARS)
}

/// As [`name`], with room for `max` characters: a lease's job names the
/// job and what it works on (`event pump: ` and a consumer's name).
pub(crate) fn name_up_to(entity: Entity, name: &str, max: usize) -> Result<String> {
    text(entity, name, max).map_err(|err| match err {
        TextError::Length(length) => Error::InvalidName {
            entity,
            length,
            max,
        },
        TextError::Control(err) => err,
    })
}

/// Why [`text`] refused its input.
pub(crate) enum TextError {
    /// The length in characters, out of bounds.
    Length(usize),
    /// [`Error::InvalidCharacter`].
    Control(Error),
}

/// The one rule for a line of text the shop stores (names, refund
/// reasons): 1 to `max` characters (Unicode scalar values), none of them a
/// control character, and no white space at either end. The text is
/// stored exactly as given: what would need trimming is refused
/// ([`Error::EdgeWhitespace`]), never changed.
///
/// "White space" is what JSON Schema's `\s` (ECMAScript's) matches among
/// non-control characters: Unicode's `White_Space` and U+FEFF. The HTTP
/// server's schema pattern spells the same set, so a name the schema
/// allows is one the shop stores unchanged.
///
/// Refusing control characters (NUL among them) makes Rust's count and
/// SQLite's `length()` agree — `length()` stops at the first NUL — so the
/// schema's `CHECK (length(name) BETWEEN 1 AND 100)` holds exactly what
/// this lets through.
pub(crate) fn text(entity: Entity, text: &str, max: usize) -> Result<String, TextError> {
    if let Some(character) = text.chars().find(|c| c.is_control()) {
        return Err(TextError::Control(Error::InvalidCharacter {
            entity,
            character,
        }));
    }
    let edges = [text.chars().next(), text.chars().next_back()];
    if let Some(character) = edges.into_iter().flatten().find(|c| is_space(*c)) {
        return Err(TextError::Control(Error::EdgeWhitespace {
            entity,
            character,
        }));
    }
    let length = text.chars().count();
    if (1..=max).contains(&length) {
        Ok(text.to_owned())
    } else {
        Err(TextError::Length(length))
    }
}

/// White space as ECMAScript's `\s`: Unicode's `White_Space` and U+FEFF.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
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
    fn names_are_stored_as_sent_and_bounded_in_characters() {
        assert_eq!(name(Entity::User, "Kim Min-ji").unwrap(), "Kim Min-ji");
        for untrimmed in [
            "  kim  ",
            " kim",
            "kim ",
            "   ",
            "\u{a0}kim",
            "kim\u{3000}",
            "\u{feff}kim",
        ] {
            assert!(
                matches!(
                    name(Entity::User, untrimmed),
                    Err(Error::EdgeWhitespace { .. })
                ),
                "{untrimmed:?}"
            );
        }
        assert!(matches!(
            name(Entity::User, ""),
            Err(Error::InvalidName { length: 0, .. })
        ));
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
        // A control character at an end is refused as a control character,
        // never trimmed away: "\u{b}¸" is not stored as "¸".
        assert!(matches!(
            name(Entity::User, "\u{b}\u{b8}"),
            Err(Error::InvalidCharacter {
                character: '\u{b}',
                ..
            })
        ));
    }

    #[test]
    fn quantities_are_one_to_max() {
        assert!(quantity(0, 5).is_err());
        assert_eq!(quantity(5, 5).unwrap(), 5);
        assert!(quantity(6, 5).is_err());
    }
}
