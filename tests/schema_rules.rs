//! The schema holds the rules it can, on both engines: each write below
//! breaks one `CHECK`, `UNIQUE`, partial unique index or foreign key, and
//! is refused by the database itself — run on SQLite, and under the
//! PostgreSQL switch on PostgreSQL — leaving every row as it was.

mod common;

use common::{open_with, try_execute_outside, won};
use liteshop::{Discount, FakeGateway, NewCoupon, OrderLine, Timestamp};
use std::time::Duration;

#[test]
fn every_rule_of_the_schema_refuses_a_breaking_write() {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(|b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(100_000)).unwrap();
    let tea = t.product("Tea", 1_000, 10).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 2)]).unwrap();
    common::pay_split(&t.shop, &pg, kim, order.id, won(500)).unwrap();
    t.shop.add_to_cart(kim, tea, 1).unwrap();
    let coupon = t
        .shop
        .create_coupon(NewCoupon {
            name: "Ten".into(),
            discount: Discount::Fixed { amount: won(100) },
            quantity: 1,
            issuable_from: Timestamp::from_millis(0),
            issuable_until: Timestamp::from_millis(i64::MAX / 2),
            valid_for: Duration::from_secs(3_600),
            min_order_total: won(0),
        })
        .unwrap();
    t.shop.issue_coupon(kim, coupon.id).unwrap();
    let before = t.dump();
    let (user, product, order_id) = (kim.get(), tea.get(), order.id.get());
    let rules: Vec<(&str, String)> = vec![
        (
            "balance ≥ 0",
            format!("UPDATE balances SET amount = -1 WHERE user_id = {user}"),
        ),
        (
            "stock ≥ 0",
            format!("UPDATE products SET stock = -1 WHERE id = {product}"),
        ),
        (
            "stock + held ≤ u32::MAX",
            format!("UPDATE products SET stock = 4294967295 WHERE id = {product}"),
        ),
        (
            "price ≥ 0",
            format!("UPDATE products SET price = -5 WHERE id = {product}"),
        ),
        (
            "name 1 to 100 characters",
            format!("UPDATE users SET name = '' WHERE id = {user}"),
        ),
        (
            "cart quantity > 0",
            "UPDATE cart_items SET quantity = 0".into(),
        ),
        (
            "a product once per cart",
            format!(
                "INSERT INTO cart_items (user_id, product_id, quantity, created_at)
                 VALUES ({user}, {product}, 1, 0)"
            ),
        ),
        (
            "cart line of a known product",
            format!(
                "INSERT INTO cart_items (user_id, product_id, quantity, created_at)
                 VALUES ({user}, 999999, 1, 0)"
            ),
        ),
        ("ledger amount ≠ 0", "UPDATE ledger SET amount = 0".into()),
        (
            "a payment debit is negative",
            "UPDATE ledger SET amount = 5 WHERE kind = 'payment'".into(),
        ),
        (
            "order status known",
            "UPDATE orders SET status = 'lost'".into(),
        ),
        (
            "cancelled orders have a reason",
            "UPDATE orders SET status = 'cancelled'".into(),
        ),
        (
            "refunded ≤ total",
            "UPDATE orders SET refunded = total + 1".into(),
        ),
        (
            "refunded ≤ the payment",
            "UPDATE payments SET refunded = amount + 1".into(),
        ),
        (
            "one live payment per order",
            format!(
                "INSERT INTO payments (order_id, user_id, amount, status, payment_key, pg_order_id,
                                       idempotency_key, created_at, updated_at, kind,
                                       balance_amount, pg_amount, order_name, customer_key,
                                       expires_at)
                 VALUES ({order_id}, {user}, 5, 'requested', 'k', 'pg-order-x', 'idem-x', 0, 0,
                         'order', 0, 5, 'Tea', 'ls-c-x', 0)"
            ),
        ),
        (
            "an approved payment with a PG part has a PG transaction",
            "UPDATE payments SET pg_transaction_id = NULL".into(),
        ),
        (
            "a payment's two parts add up to its amount",
            "UPDATE payments SET balance_amount = balance_amount + 1".into(),
        ),
        (
            "what went back through the PG never passes the PG part",
            "UPDATE payments SET pg_refunded = pg_amount + 1, refunded = pg_amount + 1".into(),
        ),
        (
            "what went back to the balance never passes the balance part",
            "UPDATE payments SET refunded = balance_amount + 1".into(),
        ),
        (
            "a top-up has no order",
            "UPDATE payments SET kind = 'top_up'".into(),
        ),
        (
            "an operator's grant carries its note",
            format!(
                "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at)
                 VALUES ({user}, 'grant', 5, 100005, 0)"
            ),
        ),
        (
            "a take-back is a debit",
            format!(
                "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at, note)
                 VALUES ({user}, 'take_back', 5, 100005, 0, 'why')"
            ),
        ),
        (
            "coupons never issued past their quantity",
            "UPDATE coupons SET issued = quantity + 1".into(),
        ),
        (
            "a coupon once per user",
            format!(
                "INSERT INTO user_coupons (coupon_id, user_id, issued_at, expires_at)
                 VALUES ({}, {user}, 0, 10)",
                coupon.id.get()
            ),
        ),
        (
            "an order line once per product",
            format!(
                "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity, amount)
                 VALUES ({order_id}, {product}, 'Tea', 1000, 1, 1000)"
            ),
        ),
        (
            "refunded units ≤ the line's",
            "UPDATE order_items SET refunded = quantity + 1".into(),
        ),
        (
            "event kinds known",
            "UPDATE events SET kind = 'order_lost'".into(),
        ),
        (
            "a ledger row of a known user",
            "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at)
             VALUES (999999, 'charge', 5, 5, 0)"
                .into(),
        ),
    ];
    for (rule, sql) in &rules {
        assert!(
            try_execute_outside(&t, sql).is_err(),
            "{rule}: the database took {sql}"
        );
    }
    assert_eq!(
        t.dump(),
        before,
        "every refused write left the rows as they were"
    );
}
