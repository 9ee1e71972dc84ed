//! Keyed writes: the first request's response is stored with its effect; a
//! repeat gets it back with no second effect; the key with another request
//! is refused; racing repeats still charge once.

mod common;

use common::{open_with, race, won};
use liteshop::{
    Clock, CouponId, Discount, Error, IdempotencyKey, Keyed, Money, NewCoupon, OrderLine,
    OrderStatus, UserId,
};
use serde_json::json;

fn key(k: &str, fingerprint: &str) -> IdempotencyKey {
    IdempotencyKey::new(k, fingerprint)
}

#[test]
fn a_repeated_charge_is_answered_from_the_store_and_charges_once() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    let first = t
        .shop
        .charge_keyed(kim, won(5_000), &key("k-1", "charge:5000"))
        .unwrap();
    assert_eq!(first, Keyed::Fresh(won(5_000)));
    let before = t.dump();
    let again = t
        .shop
        .charge_keyed(kim, won(5_000), &key("k-1", "charge:5000"))
        .unwrap();
    assert!(again.is_replay());
    assert_eq!(again.to_json(), json!(5_000));
    assert_eq!(t.dump(), before, "a repeat changes nothing");

    assert!(matches!(
        t.shop
            .charge_keyed(kim, won(7_000), &key("k-1", "charge:7000")),
        Err(Error::IdempotencyKeyReused { .. })
    ));
    for bad in ["", "with space", &"x".repeat(256)] {
        assert!(matches!(
            t.shop.charge_keyed(kim, won(1), &key(bad, "f")),
            Err(Error::InvalidIdempotencyKey)
        ));
    }
    assert_eq!(t.dump(), before, "refusals change nothing");

    // Keys belong to their user.
    let lee = t.user("Lee").id;
    assert!(
        !t.shop
            .charge_keyed(lee, won(5_000), &key("k-1", "charge:5000"))
            .unwrap()
            .is_replay()
    );
    assert_eq!(t.shop.balance(kim).unwrap(), won(5_000));
}

#[test]
fn racing_repeats_charge_exactly_once() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    let results = race(20, |_| {
        t.shop
            .charge_keyed(kim, won(1_000), &key("retry-me", "charge:1000"))
            .unwrap()
    });
    assert_eq!(results.iter().filter(|r| !r.is_replay()).count(), 1);
    assert!(results.iter().all(|r| r.to_json() == json!(1_000)));
    assert_eq!(t.shop.balance(kim).unwrap(), won(1_000));
}

#[test]
fn a_refused_request_stores_nothing_and_a_repeat_runs_again() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    let tea = t.product("Tea", 10_000, 5).id;
    let order_key = key("order-1", "order:tea:2");
    assert!(matches!(
        t.shop
            .place_order_keyed(kim, &[OrderLine::new(tea, 2)], &order_key),
        Err(Error::InsufficientBalance { .. })
    ));
    t.shop.charge(kim, won(50_000)).unwrap();
    let placed = t
        .shop
        .place_order_keyed(kim, &[OrderLine::new(tea, 2)], &order_key)
        .unwrap();
    let Keyed::Fresh(order) = placed else {
        panic!("the first success runs")
    };
    let again = t
        .shop
        .place_order_keyed(kim, &[OrderLine::new(tea, 2)], &order_key)
        .unwrap();
    assert_eq!(again.to_json()["id"], json!(order.id));
    assert_eq!(t.shop.product(tea).unwrap().stock, 3, "reserved once");

    let cancel_key = key("cancel-1", "cancel");
    t.shop
        .cancel_order_keyed(kim, order.id, &cancel_key)
        .unwrap();
    let again = t
        .shop
        .cancel_order_keyed(kim, order.id, &cancel_key)
        .unwrap();
    assert_eq!(again.to_json()["status"], json!(OrderStatus::Cancelled));
    assert_eq!(t.shop.product(tea).unwrap().stock, 5);

    // Pruned keys are forgotten: the same key runs as a new request.
    t.clock.advance(std::time::Duration::from_secs(60));
    let pruned = t.shop.prune_idempotency_keys(t.clock.now()).unwrap();
    assert_eq!(pruned, 2);
    let fresh = t
        .shop
        .place_order_keyed(kim, &[OrderLine::new(tea, 2)], &order_key)
        .unwrap();
    assert!(!fresh.is_replay());
}

#[test]
fn checkout_and_coupon_issue_take_keys_too() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    t.shop.charge(kim, won(50_000)).unwrap();
    let tea = t.product("Tea", 10_000, 5).id;
    let now = t.clock.now();
    let coupon = t
        .shop
        .create_coupon(NewCoupon {
            name: "Five".into(),
            discount: Discount::Fixed { amount: won(500) },
            quantity: 1,
            issuable_from: now,
            issuable_until: now.saturating_add(std::time::Duration::from_secs(60)),
            valid_for: std::time::Duration::from_secs(3_600),
            min_order_total: Money::ZERO,
        })
        .unwrap();
    let issue = key("issue-1", "issue");
    t.shop.issue_coupon_keyed(kim, coupon.id, &issue).unwrap();
    assert!(
        t.shop
            .issue_coupon_keyed(kim, coupon.id, &issue)
            .unwrap()
            .is_replay()
    );
    assert_eq!(t.shop.coupon(coupon.id).unwrap().issued, 1);
    assert!(matches!(
        t.shop.issue_coupon_keyed(
            kim,
            CouponId::new(coupon.id.get()),
            &key("issue-2", "issue")
        ),
        Err(Error::CouponAlreadyIssued { .. })
    ));

    t.shop.add_to_cart(kim, tea, 1).unwrap();
    let checkout = key("checkout-1", "checkout");
    let first = t
        .shop
        .checkout_cart_keyed(kim, Some(coupon.id), &checkout)
        .unwrap();
    let again = t
        .shop
        .checkout_cart_keyed(kim, Some(coupon.id), &checkout)
        .unwrap();
    assert_eq!(first.to_json(), again.to_json());
    assert_eq!(again.to_json()["total"], json!(9_500));
    assert!(matches!(
        t.shop.charge_keyed(UserId::new(0), won(1), &key("x", "y")),
        Err(Error::InvalidId { .. })
    ));
}

#[test]
fn a_retried_payment_or_partial_refund_never_runs_twice() {
    let pg = liteshop::FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    t.shop.charge(kim, won(100_000)).unwrap();
    let tea = t.product("Tea", 10_000, 5).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 3)]).unwrap();

    // A declined first attempt is what the key answers from then on.
    pg.push(liteshop::FakeOutcome::decline());
    let declined = key("pay-1", "pay");
    assert!(matches!(
        t.shop.pay_keyed(kim, order.id, &declined),
        Err(Error::PaymentDeclined { .. })
    ));
    let again = t.shop.pay_keyed(kim, order.id, &declined).unwrap();
    assert!(again.is_replay());
    assert_eq!(again.to_json()["status"], json!("declined"));

    // A new key pays; its repeat pays nothing more.
    let paid = t
        .shop
        .pay_keyed(kim, order.id, &key("pay-2", "pay"))
        .unwrap();
    let repeat = t
        .shop
        .pay_keyed(kim, order.id, &key("pay-2", "pay"))
        .unwrap();
    assert!(!paid.is_replay() && repeat.is_replay());
    assert_eq!(paid.to_json()["id"], repeat.to_json()["id"]);
    assert_eq!(t.shop.balance(kim).unwrap(), won(70_000));

    // One unit back, asked twice with one key: one refund.
    let one = [OrderLine::new(tea, 1)];
    let refund_key = key("refund-1", "refund:tea:1");
    let first = t
        .shop
        .refund_keyed(kim, order.id, Some(&one), "broken", &refund_key)
        .unwrap();
    let second = t
        .shop
        .refund_keyed(kim, order.id, Some(&one), "broken", &refund_key)
        .unwrap();
    assert!(!first.is_replay() && second.is_replay());
    assert_eq!(first.to_json()["id"], second.to_json()["id"]);
    assert_eq!(t.shop.refunds(kim, order.id).unwrap().len(), 1);
    assert_eq!(t.shop.order(kim, order.id).unwrap().lines[0].refunded, 1);
    assert_eq!(t.shop.balance(kim).unwrap(), won(80_000));
    assert!(matches!(
        t.shop
            .refund_keyed(kim, order.id, None, "all", &key("refund-1", "refund:all")),
        Err(Error::IdempotencyKeyReused { .. })
    ));
}
