//! Keyed writes: the first request's response is stored with its effect; a
//! repeat gets it back with no second effect; the key with another request
//! is refused; racing repeats still charge once.

mod common;

use common::{open_with, race, won};
use liteshop::{
    Clock, CouponId, Discount, Error, IdempotencyKey, Keyed, Money, NewCoupon, OrderLine,
    OrderStatus, UserId,
};

fn key(k: &str, fingerprint: &str) -> IdempotencyKey {
    IdempotencyKey::new(k, fingerprint)
}

#[test]
fn a_repeated_charge_is_answered_from_the_store_and_charges_once() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    let first = t
        .shop
        .idempotent(&key("k-1", "charge:5000"))
        .host_credit(kim, won(5_000))
        .unwrap();
    assert_eq!(first, Keyed::Fresh(won(5_000)));
    let before = t.dump();
    let again = t
        .shop
        .idempotent(&key("k-1", "charge:5000"))
        .host_credit(kim, won(5_000))
        .unwrap();
    assert!(again.is_replay());
    assert_eq!(again, Keyed::Replayed(won(5_000)));
    assert_eq!(t.dump(), before, "a repeat changes nothing");

    assert!(matches!(
        t.shop
            .idempotent(&key("k-1", "charge:7000"))
            .host_credit(kim, won(7_000)),
        Err(Error::IdempotencyKeyReused { .. })
    ));
    for bad in ["", "with space", &"x".repeat(256)] {
        assert!(matches!(
            t.shop.idempotent(&key(bad, "f")).host_credit(kim, won(1)),
            Err(Error::InvalidIdempotencyKey)
        ));
    }
    assert_eq!(t.dump(), before, "refusals change nothing");

    // Keys belong to their user.
    let lee = t.user("Lee").id;
    assert!(
        !t.shop
            .idempotent(&key("k-1", "charge:5000"))
            .host_credit(lee, won(5_000))
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
            .idempotent(&key("retry-me", "charge:1000"))
            .host_credit(kim, won(1_000))
            .unwrap()
    });
    assert_eq!(results.iter().filter(|r| !r.is_replay()).count(), 1);
    assert!(results.iter().all(|r| *r.value() == won(1_000)));
    assert_eq!(t.shop.balance(kim).unwrap(), won(1_000));
}

#[test]
fn a_refused_request_stores_nothing_and_a_repeat_runs_again() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    let tea = t.product("Tea", 10_000, 1).id;
    let order_key = key("order-1", "order:tea:2");
    assert!(matches!(
        t.shop
            .idempotent(&order_key)
            .place_order(kim, &[OrderLine::new(tea, 2)]),
        Err(Error::InsufficientStock { .. })
    ));
    t.shop.restock(tea, 4).unwrap();
    let placed = t
        .shop
        .idempotent(&order_key)
        .place_order(kim, &[OrderLine::new(tea, 2)])
        .unwrap();
    let Keyed::Fresh(order) = placed else {
        panic!("the first success runs")
    };
    let again = t
        .shop
        .idempotent(&order_key)
        .place_order(kim, &[OrderLine::new(tea, 2)])
        .unwrap();
    assert_eq!(again.value().id, order.id);
    assert!(again.is_replay());
    assert_eq!(t.shop.product(tea).unwrap().stock, 3, "reserved once");

    let cancel_key = key("cancel-1", "cancel");
    t.shop
        .idempotent(&cancel_key)
        .cancel_order(kim, order.id)
        .unwrap();
    let again = t
        .shop
        .idempotent(&cancel_key)
        .cancel_order(kim, order.id)
        .unwrap();
    assert_eq!(again.value().status, OrderStatus::Cancelled);
    assert!(again.is_replay());
    assert_eq!(t.shop.product(tea).unwrap().stock, 5);

    // Pruned keys are forgotten: the same key runs as a new request.
    t.clock.advance(std::time::Duration::from_secs(60));
    let pruned = t.shop.prune_idempotency_keys(t.clock.now()).unwrap();
    assert_eq!(pruned, 2);
    let fresh = t
        .shop
        .idempotent(&order_key)
        .place_order(kim, &[OrderLine::new(tea, 2)])
        .unwrap();
    assert!(!fresh.is_replay());
}

#[test]
fn checkout_and_coupon_issue_take_keys_too() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(50_000)).unwrap();
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
    t.shop
        .idempotent(&issue)
        .issue_coupon(kim, coupon.id)
        .unwrap();
    assert!(
        t.shop
            .idempotent(&issue)
            .issue_coupon(kim, coupon.id)
            .unwrap()
            .is_replay()
    );
    assert_eq!(t.shop.coupon(coupon.id).unwrap().issued, 1);
    assert!(matches!(
        t.shop
            .idempotent(&key("issue-2", "issue"))
            .issue_coupon(kim, CouponId::new(coupon.id.get())),
        Err(Error::CouponAlreadyIssued { .. })
    ));

    t.shop.add_to_cart(kim, tea, 1).unwrap();
    let checkout = key("checkout-1", "checkout");
    let first = t
        .shop
        .idempotent(&checkout)
        .checkout_cart(kim, Some(coupon.id))
        .unwrap();
    let again = t
        .shop
        .idempotent(&checkout)
        .checkout_cart(kim, Some(coupon.id))
        .unwrap();
    assert_eq!(first.value(), again.value());
    assert_eq!(again.value().total, won(9_500));
    assert!(matches!(
        t.shop
            .idempotent(&key("x", "y"))
            .host_credit(UserId::new(0), won(1)),
        Err(Error::InvalidId { .. })
    ));
}

#[test]
fn a_retried_payment_or_partial_refund_never_runs_twice() {
    let pg = liteshop::FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(100_000)).unwrap();
    let tea = t.product("Tea", 10_000, 5).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 3)]).unwrap();

    // A start under a key is what the key answers from then on, as the
    // attempt is now: here declined at the confirm.
    pg.push(liteshop::FakeOutcome::decline());
    let declined = key("pay-1", "pay");
    let started = t
        .shop
        .idempotent(&declined)
        .start_payment(kim, order.id, Money::ZERO)
        .unwrap();
    let id = started.value().id;
    let widget = t.shop.payment(kim, id).unwrap().widget().unwrap();
    assert!(matches!(
        t.shop.confirm_payment(kim, id, &pg.pay_widget(&widget)),
        Err(Error::PaymentDeclined { .. })
    ));
    let again = t
        .shop
        .idempotent(&declined)
        .start_payment(kim, order.id, Money::ZERO)
        .unwrap();
    assert!(again.is_replay());
    assert_eq!(again.value().status, liteshop::PaymentStatus::Declined);

    // A new key pays wholly from the balance; its repeat pays nothing more.
    let paid = t
        .shop
        .idempotent(&key("pay-2", "pay"))
        .start_payment(kim, order.id, won(30_000))
        .unwrap();
    let repeat = t
        .shop
        .idempotent(&key("pay-2", "pay"))
        .start_payment(kim, order.id, won(30_000))
        .unwrap();
    assert!(!paid.is_replay() && repeat.is_replay());
    assert_eq!(paid.value().id, repeat.value().id);
    assert_eq!(t.shop.balance(kim).unwrap(), won(70_000));

    // One unit back, asked twice with one key: one refund.
    let one = [OrderLine::new(tea, 1)];
    let refund_key = key("refund-1", "refund:tea:1");
    let first = t
        .shop
        .idempotent(&refund_key)
        .refund_lines(kim, order.id, &one, "broken")
        .unwrap();
    let second = t
        .shop
        .idempotent(&refund_key)
        .refund_lines(kim, order.id, &one, "broken")
        .unwrap();
    assert!(!first.is_replay() && second.is_replay());
    assert_eq!(first.value().id, second.value().id);
    assert_eq!(t.shop.refunds(kim, order.id).unwrap().len(), 1);
    assert_eq!(t.shop.order(kim, order.id).unwrap().lines[0].refunded, 1);
    assert_eq!(t.shop.balance(kim).unwrap(), won(80_000));
    assert!(matches!(
        t.shop
            .idempotent(&key("refund-1", "refund:all"))
            .refund(kim, order.id, "all"),
        Err(Error::IdempotencyKeyReused { .. })
    ));
}

#[test]
fn a_key_is_one_request_across_every_write_of_a_user() {
    let pg = liteshop::FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    let tea = t.product("Tea", 10_000, 5).id;
    // A host fingerprints the route and the body: the same client key on a
    // charge and then on an order is two requests under one key.
    let shared = "3f0c6d1e-8a34-4c7e-9b1f-2a5d8e7c6b40";
    t.shop
        .idempotent(&key(shared, "charge:50000"))
        .host_credit(kim, won(50_000))
        .unwrap();
    let before = t.dump();
    assert!(matches!(
        t.shop
            .idempotent(&key(shared, "order:tea:1"))
            .place_order(kim, &[OrderLine::new(tea, 1)]),
        Err(Error::IdempotencyKeyReused { .. })
    ));
    assert_eq!(t.dump(), before, "the refused order reserved nothing");

    // A library host that reuses the fingerprint too: the stored response
    // (a balance) is not an order's, so it is another request — never an
    // order made up from a balance.
    assert!(matches!(
        t.shop
            .idempotent(&key(shared, "charge:50000"))
            .place_order(kim, &[OrderLine::new(tea, 1)]),
        Err(Error::IdempotencyKeyReused { .. })
    ));
    assert_eq!(
        t.dump(),
        before,
        "nor did the one under the same fingerprint"
    );

    // One key cannot pay two orders.
    let first = t.shop.place_order(kim, &[OrderLine::new(tea, 1)]).unwrap();
    let second = t.shop.place_order(kim, &[OrderLine::new(tea, 1)]).unwrap();
    let pay_key = "pay-once";
    t.shop
        .idempotent(&key(pay_key, &format!("pay:{}", first.id)))
        .start_payment(kim, first.id, won(10_000))
        .unwrap();
    assert!(matches!(
        t.shop
            .idempotent(&key(pay_key, &format!("pay:{}", second.id)))
            .start_payment(kim, second.id, won(10_000)),
        Err(Error::IdempotencyKeyReused { .. })
    ));
    assert_eq!(
        t.shop.order(kim, second.id).unwrap().status,
        OrderStatus::Pending
    );
    assert_eq!(t.shop.balance(kim).unwrap(), won(40_000), "one payment");
    assert_eq!(
        pg.total_calls(),
        0,
        "paid from the balance: the PG is never asked"
    );
}

#[test]
fn without_a_key_the_same_methods_are_the_plain_writes() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    let plain = t.shop.idempotent(None);
    assert_eq!(
        plain.host_credit(kim, won(700)).unwrap(),
        Keyed::Fresh(won(700))
    );
    assert_eq!(
        plain.host_credit(kim, won(700)).unwrap(),
        Keyed::Fresh(won(1_400))
    );
    assert_eq!(t.shop.balance(kim).unwrap(), won(1_400), "charged twice");
}

#[test]
fn keys_are_visible_ascii_as_documented() {
    let t = open_with(|b| b);
    let kim = t.user("Kim").id;
    // Every visible ASCII character (0x21 to 0x7E) is accepted...
    let visible: String = (0x21u8..=0x7e).map(char::from).collect();
    assert!(
        t.shop
            .idempotent(&key(&visible, "f"))
            .host_credit(kim, won(1))
            .is_ok()
    );
    assert!(
        t.shop
            .idempotent(&key(&"k".repeat(255), "f"))
            .host_credit(kim, won(1))
            .is_ok()
    );
    // ...a space, a control character or a non-ASCII one is not, in the
    // key or the fingerprint.
    let before = t.dump();
    for (k, f) in [
        (" ", "f"),
        ("a b", "f"),
        ("a\tb", "f"),
        ("é", "f"),
        ("k", "a b"),
        ("k", ""),
    ] {
        assert!(
            matches!(
                t.shop.idempotent(&key(k, f)).host_credit(kim, won(1)),
                Err(Error::InvalidIdempotencyKey)
            ),
            "{k:?} {f:?}"
        );
    }
    assert_eq!(t.dump(), before);
}
