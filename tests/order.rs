//! Seed flow 7: placing orders, checkout, cancel and expiry.

mod common;

use std::time::Duration;

use common::{TestShop, open, open_with, won};
use liteshop::{
    CancelReason, Error, ErrorKind, LedgerKind, Money, OrderId, OrderLine, OrderStatus,
    PageRequest, ProductId, Result, UserId,
};

/// A shop with Kim holding 100,000 won and two products: tea (12,000 ×
/// 10) and cup (3,500 × 4).
fn stocked() -> (TestShop, UserId, ProductId, ProductId) {
    stocked_with(open())
}

fn stocked_with(t: TestShop) -> (TestShop, UserId, ProductId, ProductId) {
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(100_000)).unwrap();
    let tea = t.product("Tea", 12_000, 10).id;
    let cup = t.product("Cup", 3_500, 4).id;
    (t, kim, tea, cup)
}

fn stock(t: &TestShop, product: ProductId) -> u32 {
    t.shop.product(product).unwrap().stock
}

#[test]
fn placing_an_order_reserves_stock_and_holds_no_money() -> Result<()> {
    let (t, kim, tea, cup) = stocked();
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 2), OrderLine::new(cup, 1)])?;
    assert_eq!(order.user, kim);
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.cancel_reason, None);
    assert_eq!(order.total, won(27_500));
    assert_eq!(order.lines.len(), 2);
    assert_eq!(
        (
            order.lines[0].product,
            order.lines[0].name.as_str(),
            order.lines[0].unit_price
        ),
        (tea, "Tea", won(12_000))
    );
    assert_eq!(order.lines[0].line_total, won(24_000));
    assert_eq!(
        order.expires_at.as_millis() - order.created_at.as_millis(),
        15 * 60 * 1_000
    );
    assert_eq!((stock(&t, tea), stock(&t, cup)), (8, 3));
    assert_eq!(t.shop.balance(kim)?, won(100_000));
    let ledger = t.shop.ledger(kim, PageRequest::first(10))?;
    assert!(
        ledger
            .items
            .iter()
            .all(|e| e.kind == LedgerKind::HostCredit)
    );
    assert_eq!(t.shop.order(kim, order.id)?, order);
    Ok(())
}

#[test]
fn an_order_keeps_the_price_it_was_placed_at() -> Result<()> {
    let (t, kim, tea, _) = stocked();
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 1)])?;
    t.shop.set_price(tea, won(99_000))?;
    let stored = t.shop.order(kim, order.id)?;
    assert_eq!(stored.lines[0].unit_price, won(12_000));
    assert_eq!(stored.total, won(12_000));
    Ok(())
}

#[test]
fn insufficient_stock_names_the_figures_and_changes_nothing() {
    let (t, kim, tea, cup) = stocked();
    let before = t.dump();
    // The first line fits; the second does not: neither is reserved.
    let err = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 1), OrderLine::new(cup, 5)])
        .unwrap_err();
    assert!(
        matches!(err, Error::InsufficientStock { product, requested: 5, available: 4 } if product == cup),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(t.dump(), before);
}

#[test]
fn an_order_over_the_balance_is_placed_and_only_its_balance_part_is_checked() -> Result<()> {
    let (t, kim, tea, _) = stocked();
    // 9 × 12,000 = 108,000 > 100,000: placing checks stock, not the
    // balance (the order may be paid by card).
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 9)])?;
    assert_eq!(order.total, won(108_000));
    assert_eq!(t.shop.balance(kim)?, won(100_000));
    let before = t.dump();
    let err = t.shop.pay_from_balance(kim, order.id).unwrap_err();
    assert!(
        matches!(err, Error::InsufficientBalance { user, needed, available }
            if user == kim && needed == won(108_000) && available == won(100_000)),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(t.dump(), before);
    // A user with no balance at all may order.
    let lee = t.user("Lee").id;
    t.shop.place_order(lee, &[OrderLine::new(tea, 1)])?;
    assert_eq!(t.shop.balance(lee)?, Money::ZERO);
    Ok(())
}

#[test]
fn paying_from_the_balance_reads_the_total_in_its_own_transaction_and_refuses_what_start_payment_refuses()
-> Result<()> {
    let (t, kim, tea, _) = stocked();
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 2)])?;
    let lee = t.user("Lee").id;
    let before = t.dump();
    // Another user's order is not found, and nothing moves.
    let err = t.shop.pay_from_balance(lee, order.id).unwrap_err();
    assert!(
        matches!(err, Error::OrderNotFound(id) if id == order.id),
        "{err:?}"
    );
    assert_eq!(t.dump(), before);
    let paid = t.shop.pay_from_balance(kim, order.id)?;
    assert_eq!(
        (paid.balance_amount, paid.pg_amount),
        (won(24_000), Money::ZERO)
    );
    assert_eq!(t.shop.balance(kim)?, won(76_000));
    assert_eq!(t.shop.order(kim, order.id)?.status, OrderStatus::Paid);
    // Paid once: a second time is a refused move, and nothing moves.
    let before = t.dump();
    let err = t.shop.pay_from_balance(kim, order.id).unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { order: id, from: OrderStatus::Paid, .. } if id == order.id),
        "{err:?}"
    );
    assert_eq!(t.dump(), before);
    Ok(())
}

#[test]
fn bad_order_input_is_invalid_and_changes_nothing() {
    let (t, kim, tea, cup) =
        stocked_with(open_with(|b| b.max_order_quantity(5).max_order_lines(2)));
    let before = t.dump();
    type Case = (Vec<OrderLine>, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (vec![], |e| matches!(e, Error::EmptyOrder)),
        (vec![OrderLine::new(tea, 0)], |e| {
            matches!(
                e,
                Error::InvalidQuantity {
                    quantity: 0,
                    max: 5
                }
            )
        }),
        (vec![OrderLine::new(tea, 6)], |e| {
            matches!(
                e,
                Error::InvalidQuantity {
                    quantity: 6,
                    max: 5
                }
            )
        }),
        (vec![OrderLine::new(ProductId::new(0), 1)], |e| {
            matches!(e, Error::InvalidId { id: 0, .. })
        }),
        (vec![OrderLine::new(tea, 1), OrderLine::new(tea, 2)], |e| {
            matches!(e, Error::DuplicateOrderLine { .. })
        }),
        (
            vec![
                OrderLine::new(tea, 1),
                OrderLine::new(cup, 1),
                OrderLine::new(ProductId::new(9), 1),
            ],
            |e| matches!(e, Error::TooManyOrderLines { lines: 3, max: 2 }),
        ),
    ];
    for (lines, expected) in cases {
        let err = t.shop.place_order(kim, &lines).unwrap_err();
        assert!(expected(&err), "{lines:?}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(t.dump(), before);
}

#[test]
fn unknown_users_and_products_are_not_found_and_change_nothing() {
    let (t, kim, tea, _) = stocked();
    let before = t.dump();
    let err = t
        .shop
        .place_order(UserId::new(99), &[OrderLine::new(tea, 1)])
        .unwrap_err();
    assert!(matches!(err, Error::UserNotFound(_)), "{err:?}");
    // An unknown product is reported even when an earlier line is short.
    let err = t
        .shop
        .place_order(
            kim,
            &[
                OrderLine::new(tea, 11),
                OrderLine::new(ProductId::new(99), 1),
            ],
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::ProductNotFound(p) if p == ProductId::new(99)),
        "{err:?}"
    );
    assert_eq!(t.dump(), before);
}

#[test]
fn cancelling_a_pending_order_restores_the_stock_exactly() -> Result<()> {
    let (t, kim, tea, cup) = stocked();
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 3), OrderLine::new(cup, 4)])?;
    assert_eq!((stock(&t, tea), stock(&t, cup)), (7, 0));
    t.clock.advance(Duration::from_secs(5));
    let cancelled = t.shop.cancel_order(kim, order.id)?;
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.cancel_reason, Some(CancelReason::User));
    assert!(cancelled.updated_at > order.updated_at);
    assert_eq!(t.shop.order(kim, order.id)?, cancelled);
    assert_eq!((stock(&t, tea), stock(&t, cup)), (10, 4));
    assert_eq!(t.shop.balance(kim)?, won(100_000));
    Ok(())
}

#[test]
fn a_cancelled_order_cannot_be_cancelled_again() -> Result<()> {
    let (t, kim, tea, _) = stocked();
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 3)])?;
    t.shop.cancel_order(kim, order.id)?;
    let before = t.dump();
    let err = t.shop.cancel_order(kim, order.id).unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { order: o, from: OrderStatus::Cancelled, to: OrderStatus::Cancelled } if o == order.id),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert_eq!(t.dump(), before);
    assert_eq!(stock(&t, tea), 10);
    Ok(())
}

#[test]
fn another_users_order_is_not_found_and_cannot_be_cancelled() -> Result<()> {
    let (t, kim, tea, _) = stocked();
    let lee = t.user("Lee").id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 1)])?;
    let before = t.dump();
    assert!(matches!(t.shop.order(lee, order.id), Err(Error::OrderNotFound(id)) if id == order.id));
    assert!(matches!(
        t.shop.cancel_order(lee, order.id),
        Err(Error::OrderNotFound(_))
    ));
    assert!(matches!(
        t.shop.order(kim, OrderId::new(77)),
        Err(Error::OrderNotFound(_))
    ));
    assert!(matches!(
        t.shop.order(kim, OrderId::new(0)),
        Err(Error::InvalidId { id: 0, .. })
    ));
    assert_eq!(t.dump(), before);
    Ok(())
}

#[test]
fn expire_orders_cancels_overdue_orders_and_releases_their_stock() -> Result<()> {
    let (t, kim, tea, cup) =
        stocked_with(open_with(|b| b.reservation_time(Duration::from_secs(600))));
    let first = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 2), OrderLine::new(cup, 1)])?;
    t.clock.advance(Duration::from_secs(300));
    let second = t.shop.place_order(kim, &[OrderLine::new(tea, 3)])?;
    let paid_later = t.shop.place_order(kim, &[OrderLine::new(cup, 1)])?;
    t.shop.cancel_order(kim, paid_later.id)?;
    assert_eq!((stock(&t, tea), stock(&t, cup)), (5, 3));

    // One millisecond short of the first deadline: nothing expires.
    t.clock.advance(Duration::from_millis(300_000 - 1));
    assert_eq!(t.shop.expire_orders()?, 0);
    // At the first deadline, only the first order expires.
    t.clock.advance(Duration::from_millis(1));
    assert_eq!(t.shop.expire_orders()?, 1);
    let expired = t.shop.order(kim, first.id)?;
    assert_eq!(expired.status, OrderStatus::Cancelled);
    assert_eq!(expired.cancel_reason, Some(CancelReason::Expired));
    assert_eq!((stock(&t, tea), stock(&t, cup)), (7, 4));
    assert_eq!(t.shop.order(kim, second.id)?.status, OrderStatus::Pending);

    t.clock.advance(Duration::from_secs(300));
    assert_eq!(t.shop.expire_orders()?, 1);
    assert_eq!(t.shop.expire_orders()?, 0);
    assert_eq!((stock(&t, tea), stock(&t, cup)), (10, 4));
    // An expired order can no longer be cancelled.
    let err = t.shop.cancel_order(kim, second.id).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidTransition {
                from: OrderStatus::Cancelled,
                ..
            }
        ),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn placing_an_order_expires_overdue_orders_holding_its_stock() -> Result<()> {
    let (t, kim, tea, cup) = stocked();
    let lee = t.user("Lee").id;
    t.shop.host_credit(lee, won(100_000))?;
    t.shop.host_credit(kim, won(50_000))?;
    let held = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 10), OrderLine::new(cup, 1)])?;
    // While the reservation runs, Lee cannot have the tea.
    let err = t
        .shop
        .place_order(lee, &[OrderLine::new(tea, 1)])
        .unwrap_err();
    assert!(
        matches!(err, Error::InsufficientStock { available: 0, .. }),
        "{err:?}"
    );

    t.clock.advance(t.shop.reservation_time());
    let order = t.shop.place_order(lee, &[OrderLine::new(tea, 4)])?;
    assert_eq!(order.status, OrderStatus::Pending);
    let expired = t.shop.order(kim, held.id)?;
    assert_eq!(expired.cancel_reason, Some(CancelReason::Expired));
    // All of the expired order's stock came back, the cup included.
    assert_eq!((stock(&t, tea), stock(&t, cup)), (6, 4));
    Ok(())
}

#[test]
fn a_placement_short_even_after_expiring_the_overdue_holders_is_refused_and_changes_nothing()
-> Result<()> {
    let (t, kim, tea, _) = stocked();
    let lee = t.user("Lee").id;
    let held = t.shop.place_order(kim, &[OrderLine::new(tea, 10)])?;
    t.clock.advance(t.shop.reservation_time());
    let before = t.dump();
    // Kim's 10 overdue units would come back, but Lee wants 11: refused
    // with what expiring them would have given, and Kim's order stays.
    let err = t
        .shop
        .place_order(lee, &[OrderLine::new(tea, 11)])
        .unwrap_err();
    assert!(
        matches!(err, Error::InsufficientStock { product, requested: 11, available: 10 } if product == tea),
        "{err:?}"
    );
    assert_eq!(t.dump(), before);
    assert_eq!(t.shop.order(kim, held.id)?.status, OrderStatus::Pending);
    assert_eq!(stock(&t, tea), 0);
    Ok(())
}

/// The rule the model test found the shop keeping: every product short as
/// it stood when the placement began has all of its overdue holders
/// expired — here the cup's second holder too, although the first one's
/// expiry (through the tea) already gave back enough cups.
#[test]
fn a_placement_expires_every_overdue_holder_of_a_product_short_when_it_began() -> Result<()> {
    let (t, kim, tea, cup) = stocked();
    let both = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 10), OrderLine::new(cup, 3)])?;
    let one_cup = t.shop.place_order(kim, &[OrderLine::new(cup, 1)])?;
    assert_eq!((stock(&t, tea), stock(&t, cup)), (0, 0));
    t.clock.advance(t.shop.reservation_time());
    t.shop
        .place_order(kim, &[OrderLine::new(tea, 1), OrderLine::new(cup, 2)])?;
    for id in [both.id, one_cup.id] {
        assert_eq!(
            t.shop.order(kim, id)?.cancel_reason,
            Some(CancelReason::Expired)
        );
    }
    assert_eq!((stock(&t, tea), stock(&t, cup)), (9, 2));
    Ok(())
}
#[test]
fn a_refused_order_does_not_keep_the_expiry_it_triggered() -> Result<()> {
    let (t, kim, tea, _) = stocked();
    let lee = t.user("Lee").id; // holds no coupon
    t.shop.host_credit(kim, won(50_000))?;
    let held = t.shop.place_order(kim, &[OrderLine::new(tea, 10)])?;
    t.clock.advance(t.shop.reservation_time());
    // The coupon is checked after the stock (whose reservation expired the
    // overdue order), so the refusal comes after that expiry.
    let err = t
        .shop
        .place_order(
            lee,
            liteshop::OrderRequest::new(vec![OrderLine::new(tea, 1)])
                .with_coupon(liteshop::CouponId::new(999)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::CouponNotFound(_)), "{err:?}");
    // The whole call rolled back; expire_orders still finds the order.
    assert_eq!(t.shop.order(kim, held.id)?.status, OrderStatus::Pending);
    assert_eq!(t.shop.expire_orders()?, 1);
    assert_eq!(stock(&t, tea), 10);
    Ok(())
}

#[test]
fn checkout_turns_the_cart_into_an_order_and_empties_it() -> Result<()> {
    let (t, kim, tea, cup) = stocked();
    t.shop.add_to_cart(kim, tea, 2)?;
    t.shop.add_to_cart(kim, cup, 3)?;
    let order = t.shop.checkout_cart(kim, None)?;
    assert_eq!(order.total, won(34_500));
    let lines: Vec<(ProductId, u32)> = order
        .lines
        .iter()
        .map(|l| (l.product, l.quantity))
        .collect();
    assert_eq!(lines, vec![(tea, 2), (cup, 3)]);
    assert!(t.shop.cart(kim)?.lines.is_empty());
    assert_eq!((stock(&t, tea), stock(&t, cup)), (8, 1));
    Ok(())
}

#[test]
fn a_refused_checkout_leaves_the_cart_and_stock_as_they_were() -> Result<()> {
    let (t, kim, tea, cup) = stocked();
    t.shop.add_to_cart(kim, tea, 2)?;
    t.shop.add_to_cart(kim, cup, 5)?; // only 4 cups
    let before = t.dump();
    let err = t.shop.checkout_cart(kim, None).unwrap_err();
    assert!(
        matches!(err, Error::InsufficientStock { product, .. } if product == cup),
        "{err:?}"
    );
    assert_eq!(t.dump(), before);
    assert_eq!(t.shop.cart(kim)?.lines.len(), 2);
    Ok(())
}

#[test]
fn checkout_of_an_empty_cart_is_invalid() {
    let (t, kim, _, _) = stocked();
    let before = t.dump();
    let err = t.shop.checkout_cart(kim, None).unwrap_err();
    assert!(
        matches!(err, Error::EmptyCart { user } if user == kim),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(matches!(
        t.shop.checkout_cart(UserId::new(42), None),
        Err(Error::UserNotFound(_))
    ));
    assert_eq!(t.dump(), before);
}

#[test]
fn orders_page_newest_first_with_their_lines() -> Result<()> {
    let (t, kim, tea, cup) = stocked();
    let lee = t.user("Lee").id;
    t.shop.host_credit(lee, won(100_000))?;
    let mut placed = Vec::new();
    for i in 0..5 {
        placed.push(
            t.shop
                .place_order(kim, &[OrderLine::new(tea, 1), OrderLine::new(cup, 1)])?
                .id,
        );
        if i < 3 {
            t.shop.place_order(lee, &[OrderLine::new(tea, 1)])?;
        }
        if i == 1 {
            t.shop.cancel_order(kim, placed[1])?;
        }
    }
    let first = t.shop.orders(kim, PageRequest::first(3))?;
    let second = t
        .shop
        .orders(kim, PageRequest::after(first.next.unwrap(), 3))?;
    assert_eq!(second.next, None);
    let ids: Vec<OrderId> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|o| o.id)
        .collect();
    placed.reverse();
    assert_eq!(ids, placed);
    for order in first.items.iter().chain(&second.items) {
        assert_eq!(order.user, kim);
        assert_eq!(order.lines.len(), 2);
        assert_eq!(&t.shop.order(kim, order.id)?, order);
    }
    assert!(matches!(
        t.shop.orders(UserId::new(99), PageRequest::first(3)),
        Err(Error::UserNotFound(_))
    ));
    Ok(())
}

/// The crate docs' state table (its only copy) against the code, for every
/// pair of states: a row exists exactly when `can_become` allows the move.
#[test]
fn the_documented_state_table_is_the_code_for_every_pair() {
    use OrderStatus::*;
    let docs = include_str!("../src/lib.rs");
    let name = |cell: &str| -> Option<OrderStatus> {
        let cell = cell.trim().trim_matches('`');
        OrderStatus::ALL
            .into_iter()
            .find(|s| format!("{s:?}") == cell)
    };
    let table = &docs[docs
        .find("//! | from | to | by | stock |")
        .expect("the table")..];
    let mut documented = Vec::new();
    for line in table.lines().skip(2) {
        let Some(row) = line.strip_prefix("//! |") else {
            break;
        };
        let cells: Vec<&str> = row.split('|').collect();
        if let (Some(from), Some(to)) = (name(cells[0]), name(cells[1])) {
            documented.push((from, to));
        }
    }
    assert!(documented.len() >= 8, "{documented:?}");
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            assert_eq!(
                from.can_become(to),
                documented.contains(&(from, to)),
                "{from} -> {to}"
            );
        }
    }
    let holding = [Pending, Paying, Paid, PartiallyRefunded];
    for state in OrderStatus::ALL {
        assert_eq!(state.holds_stock(), holding.contains(&state), "{state}");
    }
}

/// One order that cannot be expired (here a trigger planted by another
/// program refuses it) does not stop every other order from expiring.
#[test]
fn expire_orders_expires_every_other_order_when_one_cannot_be() -> Result<()> {
    if common::sqlite_only("the planted trigger is written in SQLite's dialect") {
        return Ok(());
    }
    let t = open_with(|b| b.reservation_time(Duration::from_secs(60)));
    let kim = t.user("Kim");
    let tea = t.product("Tea", 0, 10);
    let orders: Vec<OrderId> = (0..3)
        .map(|_| {
            t.shop
                .place_order(kim.id, &[OrderLine::new(tea.id, 1)])
                .unwrap()
                .id
        })
        .collect();
    let stuck = orders[1];
    let conn = rusqlite::Connection::open(&t.path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER stuck BEFORE UPDATE ON orders WHEN old.id = {stuck}
         BEGIN SELECT RAISE(ABORT, 'stuck'); END;"
    ))
    .unwrap();
    t.clock.advance(Duration::from_secs(61));
    assert_eq!(t.shop.expire_orders()?, 2);
    let status = |id| t.shop.order(kim.id, id).unwrap().status;
    assert_eq!(
        orders.iter().map(|&id| status(id)).collect::<Vec<_>>(),
        [
            OrderStatus::Cancelled,
            OrderStatus::Pending,
            OrderStatus::Cancelled
        ]
    );
    // The stuck order's units stay held; the others' came back.
    assert_eq!(t.shop.product(tea.id)?.stock, 9);
    assert_eq!(t.shop.product(tea.id)?.held, 1);
    Ok(())
}

/// A total that does not fit depends on the prices, not on the request's
/// form: it is a conflict (409 over HTTP), like a short stock, and it
/// changes nothing.
#[test]
fn an_order_whose_total_overflows_is_a_conflict_and_changes_nothing() {
    let t = open();
    let kim = t.user("Kim");
    let gold = t.product("Gold", 1, 5);
    t.shop.set_price(gold.id, liteshop::Money::MAX).unwrap();
    let before = t.dump();
    let err = t
        .shop
        .place_order(kim.id, &[OrderLine::new(gold.id, 2)])
        .unwrap_err();
    assert!(matches!(err, Error::AmountOverflow), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(t.dump(), before);
}

/// A product placements found sold out (`sold_out.rs`; on PostgreSQL a
/// one-line order of it is refused by one read before any write, on
/// SQLite by the placement itself): the refusal has the placement's own
/// figures and changing nothing — and every case that read cannot decide
/// still gets the placement's own answer: a user that does not exist, an
/// overdue holder to expire, stock that came back, a keyed repeat.
#[test]
fn a_product_seen_sold_out_is_refused_as_the_placement_would_refuse_it() -> Result<()> {
    let (t, kim, _, cup) = stocked();
    let lee = t.user("Lee").id;
    t.shop.host_credit(lee, won(100_000))?;
    let key = liteshop::IdempotencyKey::new("3f9b8f0e-1c1a-4c53-9e3e-7d8e3c6f2a10", "cups");
    let kept = t
        .shop
        .idempotent(&key)
        .place_order(kim, &[OrderLine::new(cup, 4)])?
        .into_inner();
    let refused = |user: UserId, quantity: u32| {
        t.shop
            .place_order(user, &[OrderLine::new(cup, quantity)])
            .unwrap_err()
    };
    let before = t.dump();
    // The first refusal marks the cup; the second is the read's, the same.
    for _ in 0..2 {
        let err = refused(lee, 1);
        assert!(
            matches!(err, Error::InsufficientStock { product, requested: 1, available: 0 } if product == cup),
            "{err:?}"
        );
        assert_eq!(t.dump(), before);
    }
    // A user that does not exist is not found, as the placement says first.
    let ghost = UserId::new(999);
    assert!(matches!(refused(ghost, 1), Error::UserNotFound(id) if id == ghost));
    // Kim's keyed order is replayed, not refused.
    let again = t
        .shop
        .idempotent(&key)
        .place_order(kim, &[OrderLine::new(cup, 4)])?;
    assert!(matches!(&again, liteshop::Keyed::Replayed(order) if order.id == kept.id));
    assert_eq!(t.dump(), before);
    // Overdue, Kim's order would give its cups back: the placement runs,
    // expires it and takes them.
    t.clock.advance(t.shop.reservation_time());
    let placed = t.shop.place_order(lee, &[OrderLine::new(cup, 3)])?;
    assert_eq!(placed.status, OrderStatus::Pending);
    assert_eq!(
        t.shop.order(kim, kept.id)?.cancel_reason,
        Some(CancelReason::Expired)
    );
    assert_eq!(stock(&t, cup), 1);
    // Short again (1 left, 2 asked), then restocked: the read lets it run.
    assert!(matches!(
        refused(lee, 2),
        Error::InsufficientStock {
            requested: 2,
            available: 1,
            ..
        }
    ));
    t.shop.restock(cup, 5)?;
    t.shop.place_order(lee, &[OrderLine::new(cup, 2)])?;
    assert_eq!(stock(&t, cup), 4);
    assert!(t.shop.audit()?.is_clean());
    Ok(())
}
