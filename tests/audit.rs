//! The audit: clean books pass; each kind of damage done behind liteshop's
//! back is reported with its law, subject and figures.

mod common;

use common::{TestShop, open_with, won};
use liteshop::{FakeGateway, FakeOutcome, Law, OrderLine, UserId};

fn shop_with_history() -> (TestShop, UserId) {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(100_000)).unwrap();
    let tea = t.product("Tea", 10_000, 10).id;
    let cup = t.product("Cup", 3_000, 10).id;
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 2), OrderLine::new(cup, 1)])
        .unwrap();
    // A declined attempt first: its payment holds no refund, the order's
    // approved one does. Each pays 13,000 from the balance and 10,000 by
    // card; the refund of one tea goes back to the card (the PG part first).
    pg.push(FakeOutcome::decline());
    assert!(common::pay_split(&t.shop, &pg, kim, order.id, won(13_000)).is_err());
    common::pay_split(&t.shop, &pg, kim, order.id, won(13_000)).unwrap();
    t.shop
        .refund_lines(kim, order.id, &[OrderLine::new(tea, 1)], "one")
        .unwrap();
    t.shop.place_order(kim, &[OrderLine::new(cup, 2)]).unwrap();
    t.shop.restock(tea, 5).unwrap();
    // A consumer has read the feed: on PostgreSQL that gives the events
    // their numbers, which the feed's damage below deletes one of.
    assert_eq!(t.shop.events(0, 100).unwrap().len(), 7);
    (t, kim)
}

/// Runs `sql` on the file directly, as a stray tool would.
fn tamper(t: &TestShop, sql: &str) {
    common::execute_outside(t, sql);
}

#[test]
fn clean_books_pass_with_their_figures() {
    let (t, _) = shop_with_history();
    let report = t.shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");
    let f = &report.figures;
    assert_eq!(f.charged, 100_000);
    assert_eq!(f.kept, 13_000, "the balance part");
    assert_eq!(f.kept_by_pg, 0, "the card part, refunded");
    assert_eq!(f.refunded, 10_000);
    assert_eq!(f.balances, 100_000 - 13_000);
    assert_eq!(f.units_stocked, 25);
    assert_eq!(f.units_held, 1 + 1 + 2);
    assert_eq!(f.units_on_hand, 25 - 4);
    assert!(f.events > 0);
}

#[test]
fn each_kind_of_damage_is_reported() {
    let cases: &[(&str, Law, &str)] = &[
        (
            "UPDATE balances SET amount = amount + 1",
            Law::BalanceIsLedgerSum,
            "user 1",
        ),
        (
            "UPDATE products SET stock = stock + 1 WHERE id = 2",
            Law::StockConserved,
            "product 2",
        ),
        (
            "UPDATE products SET held = held + 1, stock = stock - 1 WHERE id = 1",
            Law::HeldUnitsMatchOrders,
            "product 1",
        ),
        (
            "UPDATE order_items SET amount = amount + 1 WHERE id = 1",
            Law::OrderTotalsMatchLines,
            "order 1",
        ),
        (
            "UPDATE orders SET status = 'paid' WHERE id = 2",
            Law::OneApprovedPaymentPerPaidOrder,
            "order 2",
        ),
        (
            "UPDATE orders SET refunded = 0 WHERE id = 1",
            Law::RefundsAgree,
            "payment 2",
        ),
        (
            "DELETE FROM events WHERE seq = 2",
            Law::EventFeedWithoutGaps,
            "the shop",
        ),
        (
            "UPDATE sales_daily SET units = units + 1",
            Law::SalesMatchPaidLines,
            "the shop",
        ),
        (
            "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at)
            VALUES (1, 'refund', 5, 87005, 0);
          UPDATE balances SET amount = amount + 5",
            Law::MoneyConserved,
            "the shop",
        ),
    ];
    for (sql, law, subject) in cases {
        let (t, _) = shop_with_history();
        tamper(&t, sql);
        let report = t.shop.audit().unwrap();
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.law == *law && v.subject == *subject),
            "{sql}: {report}"
        );
    }
}

#[test]
fn the_shops_sums_are_exact_past_what_one_amount_holds() {
    // Three balances near Money::MAX and two paid orders of 3·10^18 won:
    // every global figure passes i64::MAX, on both engines.
    let t = open_with(|b| {
        b.gateway(FakeGateway::new())
            .max_balance(liteshop::Money::MAX)
            .max_charge(liteshop::Money::MAX)
    });
    let unit = 3_000_000_000_000_000_000_i64;
    let big = t.product("Gold bar", unit, 10).id;
    let mut balances = 0_i128;
    for name in ["Kim", "Lee", "Park"] {
        let user = t.user(name).id;
        t.shop.host_credit(user, won(i64::MAX - 7)).unwrap();
        balances += i128::from(i64::MAX - 7);
        if name != "Park" {
            let order = t.shop.place_order(user, &[OrderLine::new(big, 1)]).unwrap();
            t.shop.pay_from_balance(user, order.id).unwrap();
            balances -= i128::from(unit);
        }
    }
    let report = t.shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");
    let f = &report.figures;
    assert_eq!(f.charged, 3 * i128::from(i64::MAX - 7));
    assert_eq!(f.balances, balances);
    assert_eq!(f.kept, 2 * i128::from(unit));
    assert!(f.charged > i128::from(i64::MAX));

    // A breach is reported with its exact figures, too.
    tamper(
        &t,
        "UPDATE balances SET amount = amount - 1 WHERE user_id = 1",
    );
    let report = t.shop.audit().unwrap();
    let breach = report
        .violations
        .iter()
        .find(|v| v.law == Law::MoneyConserved)
        .expect("money is not conserved");
    assert_eq!((breach.expected, breach.found), (f.charged, f.charged - 1));
}
