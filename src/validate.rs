//! Input checks shared by several flows: names and quantities.

use crate::error::{Entity, Error, Result};

/// The longest name, in characters after trimming, of a user or a product.
pub const MAX_NAME_CHARS: usize = 100;

/// Trims `name` and checks it is 1 to [`MAX_NAME_CHARS`] characters.
pub(crate) fn name(entity: Entity, name: &str) -> Result<String> {
    let trimmed = name.trim();
    let length = trimmed.chars().count();
    if (1..=MAX_NAME_CHARS).contains(&length) {
        Ok(trimmed.to_owned())
    } else {
        Err(Error::InvalidName {
            entity,
            length,
            max: MAX_NAME_CHARS,
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
    fn quantities_are_one_to_max() {
        assert!(quantity(0, 5).is_err());
        assert_eq!(quantity(5, 5).unwrap(), 5);
        assert!(quantity(6, 5).is_err());
    }
}
