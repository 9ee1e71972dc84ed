//! Moving a shop: `liteshop::copy` into an empty shop keeps every row, id,
//! sequence number and cursor, and both audits agree; a shop with rows is
//! refused untouched. (tests/postgres.rs copies a SQLite file into
//! PostgreSQL.)

mod common;

use common::{TestShop, open_with, won};
use liteshop::{Error, FakeGateway, OrderLine, PageRequest};

/// A shop with some of everything: charges, paid and refunded orders,
/// a cancelled one, a cart, an acked consumer, keyed writes.
pub fn busy_shop() -> TestShop {
    let t = open_with(|b| b.gateway(FakeGateway::new()).utc_offset_minutes(540));
    let kim = t.user("Kim").id;
    let lee = t.user("Lee").id;
    t.shop.host_credit(kim, won(200_000)).unwrap();
    t.shop.host_credit(lee, won(50_000)).unwrap();
    let tea = t.product("Tea", 12_000, 20).id;
    let cup = t.product("Cup", 30_000, 5).id;
    let paid = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 3), OrderLine::new(cup, 1)])
        .unwrap();
    t.shop.pay_from_balance(kim, paid.id).unwrap();
    t.shop
        .refund_lines(kim, paid.id, &[OrderLine::new(tea, 1)], "one broke")
        .unwrap();
    let cancelled = t.shop.place_order(lee, &[OrderLine::new(tea, 1)]).unwrap();
    t.shop.cancel_order(lee, cancelled.id).unwrap();
    t.shop.add_to_cart(lee, cup, 1).unwrap();
    let key = liteshop::IdempotencyKey::new("copy-key", "charge:1000");
    t.shop
        .idempotent(&key)
        .host_credit(lee, won(1_000))
        .unwrap();
    t.shop.ack_events("warehouse", 2).unwrap();
    t
}

#[test]
fn a_copy_keeps_every_row_and_both_audits_agree() {
    let source = busy_shop();
    let target = open_with(|b| b.gateway(FakeGateway::new()));
    let report = liteshop::copy(&source.shop, &target.shop).unwrap();
    assert_eq!(report.figures, source.shop.audit().unwrap().figures);
    assert!(
        report
            .rows
            .iter()
            .any(|(table, n)| table == "ledger" && *n == 5)
    );
    // The same users, orders, feed and cursors, by id.
    let (kim, lee) = (liteshop::UserId::new(1), liteshop::UserId::new(2));
    assert_eq!(
        target.shop.balance(kim).unwrap(),
        source.shop.balance(kim).unwrap()
    );
    assert_eq!(
        target.shop.orders(kim, PageRequest::first(10)).unwrap(),
        source.shop.orders(kim, PageRequest::first(10)).unwrap()
    );
    assert_eq!(
        target.shop.events(0, 100).unwrap(),
        source.shop.events(0, 100).unwrap()
    );
    assert_eq!(target.shop.event_cursor("warehouse").unwrap(), 2);
    assert_eq!(
        target.shop.cart(lee).unwrap(),
        source.shop.cart(lee).unwrap()
    );
    // A keyed write repeated against the copy is a replay.
    let key = liteshop::IdempotencyKey::new("copy-key", "charge:1000");
    assert!(
        target
            .shop
            .idempotent(&key)
            .host_credit(lee, won(1_000))
            .unwrap()
            .is_replay()
    );
    // New rows continue after the copied ids and sequence numbers.
    let next = target.shop.create_user("Park").unwrap();
    assert_eq!(next.id.get(), 3);
    let tea = liteshop::ProductId::new(1);
    target.shop.host_credit(next.id, won(20_000)).unwrap();
    let order = target
        .shop
        .place_order(next.id, &[OrderLine::new(tea, 1)])
        .unwrap();
    assert_eq!(order.id.get(), 3);
    let last = source.shop.events(0, 100).unwrap().last().unwrap().seq;
    assert_eq!(target.shop.events(last, 10).unwrap()[0].seq, last + 1);
    assert!(target.shop.audit().unwrap().is_clean());
}

#[test]
fn a_copy_into_a_shop_with_rows_is_refused_and_writes_nothing() {
    let source = busy_shop();
    let target = open_with(|b| b);
    target.user("Already here");
    let before = target.dump();
    let err = liteshop::copy(&source.shop, &target.shop).unwrap_err();
    assert!(
        matches!(err, Error::CopyTargetNotEmpty { ref table } if table == "users"),
        "{err:?}"
    );
    assert_eq!(err.kind(), liteshop::ErrorKind::Conflict);
    assert_eq!(target.dump(), before);
}
