//! Users: creation and lookup.

mod common;

use common::open;
use liteshop::{Clock, Entity, Error, ErrorKind, Money, Result, UserId};

#[test]
fn create_user_keeps_the_name_as_sent_and_starts_at_zero() -> Result<()> {
    let t = open();
    let kim = t.shop.create_user("Kim  Minji")?;
    assert_eq!(kim.name, "Kim  Minji");
    assert_eq!(kim.created_at, t.clock.now());
    assert_eq!(t.shop.user(kim.id)?, kim);
    assert_eq!(t.shop.balance(kim.id)?, Money::ZERO);
    Ok(())
}

#[test]
fn names_of_one_and_a_hundred_characters_are_accepted() -> Result<()> {
    let t = open();
    t.shop.create_user("a")?;
    let long = t.shop.create_user(&"김".repeat(100))?;
    assert_eq!(long.name.chars().count(), 100);
    Ok(())
}

#[test]
fn a_blank_or_overlong_name_is_refused_and_changes_nothing() {
    let t = open();
    t.user("Kim");
    let before = t.dump();
    for (name, length) in [("", 0), (&*"x".repeat(101), 101)] {
        let err = t.shop.create_user(name).unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { entity: Entity::User, length: l, max: 100 } if l == length),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    // White space at an end is refused, never trimmed: the shop stores
    // exactly what was sent.
    for (name, space) in [
        (" ", ' '),
        ("  Kim", ' '),
        ("Kim\u{a0}", '\u{a0}'),
        ("\u{feff}Kim", '\u{feff}'),
    ] {
        let err = t.shop.create_user(name).unwrap_err();
        assert!(
            matches!(err, Error::EdgeWhitespace { entity: Entity::User, character } if character == space),
            "{name:?}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(t.dump(), before);
}

#[test]
fn an_unknown_user_is_not_found_and_a_bad_id_is_invalid() {
    let t = open();
    assert!(matches!(
        t.shop.user(UserId::new(5)),
        Err(Error::UserNotFound(id)) if id == UserId::new(5)
    ));
    assert!(matches!(
        t.shop.user(UserId::new(0)),
        Err(Error::InvalidId {
            entity: Entity::User,
            id: 0
        })
    ));
}

/// One rule for names: control characters, NUL among them, are refused
/// wherever they stand, before anything is written.
#[test]
fn names_with_control_characters_are_refused_and_change_nothing() {
    let t = open();
    t.user("Kim");
    let before = t.dump();
    for bad in ["\0", "\0Kim", "Ki\0m", "Kim\0", "Ki\nm", "Ki\u{1b}m"] {
        let err = t.shop.create_user(bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidCharacter {
                    entity: Entity::User,
                    ..
                }
            ),
            "{bad:?}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    let err = t
        .shop
        .create_product(liteshop::NewProduct {
            name: "Te\0a".into(),
            price: Money::ZERO,
            stock: 1,
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCharacter {
                entity: Entity::Product,
                character: '\0'
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("U+0000"), "{err}");
    assert_eq!(t.dump(), before);
}
