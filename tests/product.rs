//! Seed flow 3, product lookup, and the catalogue around it.

mod common;

use common::{open, won};
use liteshop::{Entity, Error, ErrorKind, Money, NewProduct, PageRequest, ProductId, Result};

#[test]
fn a_created_product_can_be_looked_up() -> Result<()> {
    let t = open();
    let tea = t.shop.create_product(NewProduct {
        name: "Green tea".into(),
        price: won(12_000),
        stock: 10,
    })?;
    assert_eq!(tea.name, "Green tea");
    assert_eq!(tea.price, won(12_000));
    assert_eq!(tea.stock, 10);
    assert_eq!(t.shop.product(tea.id)?, tea);
    Ok(())
}

#[test]
fn a_free_product_with_no_stock_is_allowed() -> Result<()> {
    let t = open();
    let sample = t.product("Sample", 0, 0);
    assert_eq!(t.shop.product(sample.id)?.price, Money::ZERO);
    Ok(())
}

#[test]
fn a_product_with_a_bad_name_is_refused_and_changes_nothing() {
    let t = open();
    let before = t.dump();
    let named = |name: &str| {
        t.shop
            .create_product(NewProduct {
                name: name.into(),
                price: won(1),
                stock: 1,
            })
            .unwrap_err()
    };
    let err = named("");
    assert!(
        matches!(
            err,
            Error::InvalidName {
                entity: Entity::Product,
                length: 0,
                ..
            }
        ),
        "{err:?}"
    );
    // Text is stored exactly as sent or refused: never trimmed.
    for untrimmed in [" ", " Green tea", "Green tea ", "\u{3000}Green tea"] {
        let err = named(untrimmed);
        assert!(
            matches!(
                err,
                Error::EdgeWhitespace {
                    entity: Entity::Product,
                    ..
                }
            ),
            "{untrimmed:?}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(t.dump(), before);
}

#[test]
fn an_unknown_product_is_not_found_and_a_bad_id_is_invalid() {
    let t = open();
    let err = t.shop.product(ProductId::new(3)).unwrap_err();
    assert!(matches!(err, Error::ProductNotFound(id) if id == ProductId::new(3)));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = t.shop.product(ProductId::new(-2)).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidId {
            entity: Entity::Product,
            id: -2
        }
    ));
}

#[test]
fn products_page_through_the_catalogue_in_id_order() -> Result<()> {
    let t = open();
    let created: Vec<ProductId> = (0..23)
        .map(|i| t.product(&format!("p{i}"), i, 1).id)
        .collect();
    let mut seen = Vec::new();
    let mut page = t.shop.products(PageRequest::first(10))?;
    let mut pages = 1;
    while let Some(cursor) = page.next {
        seen.extend(page.items.iter().map(|p| p.id));
        page = t.shop.products(PageRequest::after(cursor, 10))?;
        pages += 1;
    }
    seen.extend(page.items.iter().map(|p| p.id));
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    Ok(())
}

#[test]
fn a_full_last_page_has_no_next_cursor() -> Result<()> {
    let t = open();
    for i in 0..4 {
        t.product(&format!("p{i}"), 1, 1);
    }
    let page = t.shop.products(PageRequest::first(4))?;
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.next, None);
    Ok(())
}

#[test]
fn products_refuse_bad_page_sizes() {
    let t = open();
    for size in [0, 101] {
        assert!(matches!(
            t.shop.products(PageRequest::first(size)),
            Err(Error::InvalidPageSize { requested, max: 100 }) if requested == size
        ));
    }
}

#[test]
fn restock_adds_to_the_stock() -> Result<()> {
    let t = open();
    let tea = t.product("Tea", 1_000, 3);
    assert_eq!(t.shop.restock(tea.id, 7)?.stock, 10);
    assert_eq!(t.shop.product(tea.id)?.stock, 10);
    Ok(())
}

#[test]
fn bad_restocks_are_refused_and_change_nothing() {
    let t = open();
    let tea = t.product("Tea", 1_000, u32::MAX - 1);
    let before = t.dump();

    let err = t.shop.restock(tea.id, 0).unwrap_err();
    assert!(
        matches!(err, Error::InvalidQuantity { quantity: 0, .. }),
        "{err:?}"
    );

    let err = t.shop.restock(tea.id, 2).unwrap_err();
    assert!(
        matches!(err, Error::StockOverflow { product, stock, quantity: 2, held: 0 }
            if product == tea.id && stock == u32::MAX - 1),
        "{err:?}"
    );

    let err = t.shop.restock(ProductId::new(99), 1).unwrap_err();
    assert!(matches!(err, Error::ProductNotFound(_)), "{err:?}");
    assert_eq!(t.dump(), before);
}

#[test]
fn set_price_changes_the_price() -> Result<()> {
    let t = open();
    let tea = t.product("Tea", 1_000, 3);
    t.clock.advance(std::time::Duration::from_secs(60));
    let updated = t.shop.set_price(tea.id, won(1_500))?;
    assert_eq!(updated.price, won(1_500));
    assert!(updated.updated_at > tea.updated_at);
    assert_eq!(t.shop.product(tea.id)?.price, won(1_500));
    Ok(())
}

#[test]
fn set_price_of_an_unknown_product_is_not_found_and_changes_nothing() {
    let t = open();
    t.product("Tea", 1_000, 3);
    let before = t.dump();
    let err = t.shop.set_price(ProductId::new(2), won(5)).unwrap_err();
    assert!(matches!(err, Error::ProductNotFound(_)), "{err:?}");
    assert_eq!(t.dump(), before);
}
