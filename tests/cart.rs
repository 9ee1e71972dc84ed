//! Seed flows 4 to 6: cart list, add and remove, plus quantity changes.

mod common;

use common::{open, open_with, won};
use liteshop::{CartItemId, Error, ErrorKind, Money, ProductId, Result, UserId};

#[test]
fn a_new_users_cart_is_empty() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let cart = t.shop.cart(kim.id)?;
    assert_eq!(cart.user, kim.id);
    assert!(cart.lines.is_empty());
    assert_eq!(cart.total, Some(Money::ZERO));
    Ok(())
}

#[test]
fn the_cart_of_an_unknown_user_is_not_found() {
    let t = open();
    let err = t.shop.cart(UserId::new(4)).unwrap_err();
    assert!(
        matches!(err, Error::UserNotFound(id) if id == UserId::new(4)),
        "{err:?}"
    );
}

#[test]
fn the_cart_lists_lines_with_product_data_and_totals() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 12_000, 10);
    let cup = t.product("Cup", 3_500, 10);
    let tea_line = t.shop.add_to_cart(kim.id, tea.id, 3)?;
    assert_eq!(tea_line.product, tea.id);
    assert_eq!(tea_line.line_total, Some(won(36_000)));
    t.shop.add_to_cart(kim.id, cup.id, 2)?;

    let cart = t.shop.cart(kim.id)?;
    assert_eq!(cart.lines.len(), 2);
    assert_eq!(cart.lines[0], tea_line);
    let cup_line = &cart.lines[1];
    assert_eq!(
        (
            cup_line.name.as_str(),
            cup_line.unit_price,
            cup_line.quantity,
            cup_line.line_total
        ),
        ("Cup", won(3_500), 2, Some(won(7_000)))
    );
    assert_eq!(cart.total, Some(won(43_000)));
    Ok(())
}

#[test]
fn the_cart_shows_the_current_price() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    t.shop.add_to_cart(kim.id, tea.id, 2)?;
    t.shop.set_price(tea.id, won(1_200))?;
    let cart = t.shop.cart(kim.id)?;
    assert_eq!(cart.lines[0].unit_price, won(1_200));
    assert_eq!(cart.total, Some(won(2_400)));
    Ok(())
}

#[test]
fn carts_are_per_user() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let lee = t.user("Lee");
    let tea = t.product("Tea", 1_000, 10);
    t.shop.add_to_cart(kim.id, tea.id, 1)?;
    t.shop.add_to_cart(lee.id, tea.id, 5)?;
    assert_eq!(t.shop.cart(kim.id)?.total, Some(won(1_000)));
    assert_eq!(t.shop.cart(lee.id)?.total, Some(won(5_000)));
    Ok(())
}

#[test]
fn adding_a_product_already_in_the_cart_is_a_conflict_and_changes_nothing() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    let line = t.shop.add_to_cart(kim.id, tea.id, 1)?;
    let before = t.dump();
    let err = t.shop.add_to_cart(kim.id, tea.id, 2).unwrap_err();
    assert!(
        matches!(err, Error::AlreadyInCart { user, product, item }
            if user == kim.id && product == tea.id && item == line.id),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(t.dump(), before);
    Ok(())
}

#[test]
fn adding_an_unknown_product_or_for_an_unknown_user_is_not_found_and_changes_nothing() {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    let before = t.dump();
    let err = t
        .shop
        .add_to_cart(kim.id, ProductId::new(77), 1)
        .unwrap_err();
    assert!(
        matches!(err, Error::ProductNotFound(id) if id == ProductId::new(77)),
        "{err:?}"
    );
    let err = t.shop.add_to_cart(UserId::new(77), tea.id, 1).unwrap_err();
    assert!(
        matches!(err, Error::UserNotFound(id) if id == UserId::new(77)),
        "{err:?}"
    );
    assert_eq!(t.dump(), before);
}

#[test]
fn adding_a_bad_quantity_is_invalid_and_changes_nothing() {
    let t = open_with(|b| b.max_cart_quantity(5));
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    let before = t.dump();
    for quantity in [0, 6] {
        let err = t.shop.add_to_cart(kim.id, tea.id, quantity).unwrap_err();
        assert!(
            matches!(err, Error::InvalidQuantity { quantity: q, max: 5 } if q == quantity),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    let err = t
        .shop
        .add_to_cart(kim.id, ProductId::new(0), 1)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidId { id: 0, .. }), "{err:?}");
    assert_eq!(t.dump(), before);
}

#[test]
fn add_to_cart_checks_input_then_user_then_product() {
    let t = open();
    // Bad quantity wins over an unknown user and product.
    let err = t
        .shop
        .add_to_cart(UserId::new(9), ProductId::new(9), 0)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidQuantity { .. }), "{err:?}");
    // An unknown user wins over an unknown product.
    let err = t
        .shop
        .add_to_cart(UserId::new(9), ProductId::new(9), 1)
        .unwrap_err();
    assert!(matches!(err, Error::UserNotFound(_)), "{err:?}");
}

#[test]
fn set_cart_quantity_changes_the_line() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    let line = t.shop.add_to_cart(kim.id, tea.id, 1)?;
    let updated = t.shop.set_cart_quantity(kim.id, line.id, 4)?;
    assert_eq!(
        (updated.id, updated.quantity, updated.line_total),
        (line.id, 4, Some(won(4_000)))
    );
    assert_eq!(t.shop.cart(kim.id)?.total, Some(won(4_000)));
    Ok(())
}

#[test]
fn set_cart_quantity_on_another_users_line_is_not_found_and_changes_nothing() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let lee = t.user("Lee");
    let tea = t.product("Tea", 1_000, 10);
    let line = t.shop.add_to_cart(kim.id, tea.id, 1)?;
    let before = t.dump();
    let err = t.shop.set_cart_quantity(lee.id, line.id, 3).unwrap_err();
    assert!(
        matches!(err, Error::CartItemNotFound(id) if id == line.id),
        "{err:?}"
    );
    let err = t
        .shop
        .set_cart_quantity(kim.id, CartItemId::new(99), 3)
        .unwrap_err();
    assert!(matches!(err, Error::CartItemNotFound(_)), "{err:?}");
    let err = t.shop.set_cart_quantity(kim.id, line.id, 0).unwrap_err();
    assert!(matches!(err, Error::InvalidQuantity { .. }), "{err:?}");
    assert_eq!(t.dump(), before);
    Ok(())
}

#[test]
fn remove_from_cart_removes_the_line() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    let cup = t.product("Cup", 500, 10);
    let tea_line = t.shop.add_to_cart(kim.id, tea.id, 1)?;
    t.shop.add_to_cart(kim.id, cup.id, 1)?;
    t.shop.remove_from_cart(kim.id, tea_line.id)?;
    let cart = t.shop.cart(kim.id)?;
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(cart.lines[0].product, cup.id);
    // Removed lines can be added again.
    t.shop.add_to_cart(kim.id, tea.id, 2)?;
    assert_eq!(t.shop.cart(kim.id)?.total, Some(won(2_500)));
    Ok(())
}

#[test]
fn removing_another_users_line_is_not_found_and_changes_nothing() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let lee = t.user("Lee");
    let tea = t.product("Tea", 1_000, 10);
    let line = t.shop.add_to_cart(kim.id, tea.id, 1)?;
    let before = t.dump();
    let err = t.shop.remove_from_cart(lee.id, line.id).unwrap_err();
    assert!(
        matches!(err, Error::CartItemNotFound(id) if id == line.id),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = t
        .shop
        .remove_from_cart(kim.id, CartItemId::new(-1))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidId { id: -1, .. }), "{err:?}");
    assert_eq!(t.dump(), before);
    Ok(())
}

#[test]
fn removing_a_line_twice_is_not_found_the_second_time() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    let line = t.shop.add_to_cart(kim.id, tea.id, 1)?;
    t.shop.remove_from_cart(kim.id, line.id)?;
    let before = t.dump();
    assert!(matches!(
        t.shop.remove_from_cart(kim.id, line.id),
        Err(Error::CartItemNotFound(_))
    ));
    assert_eq!(t.dump(), before);
    Ok(())
}

/// A cart whose total does not fit in Money (after a huge price) is still
/// listed, so its owner can find the line and remove it.
#[test]
fn a_cart_whose_total_overflows_is_listed_and_can_be_emptied() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 5);
    let gold = t.product("Gold", 1, 5);
    t.shop.add_to_cart(kim.id, tea.id, 1)?;
    let line = t.shop.add_to_cart(kim.id, gold.id, 2)?;
    t.shop.set_price(gold.id, Money::MAX)?;
    let cart = t.shop.cart(kim.id)?;
    assert_eq!(cart.lines.len(), 2);
    assert_eq!(cart.lines[0].line_total, Some(won(1_000)));
    assert_eq!(cart.lines[1].line_total, None);
    assert_eq!(cart.total, None);
    assert!(matches!(
        t.shop.checkout_cart(kim.id, None),
        Err(Error::AmountOverflow)
    ));
    t.shop.remove_from_cart(kim.id, line.id)?;
    assert_eq!(t.shop.cart(kim.id)?.total, Some(won(1_000)));
    Ok(())
}
