//! Coupons: first come first served issuing under races, the life cycle of
//! a user's coupon through every order outcome, and every refusal leaving
//! the database unchanged.

mod common;

use std::time::Duration;

use common::{TestShop, open_with, race, won};
use liteshop::{
    Clock, Coupon, CouponId, CouponState, Discount, Error, EventPayload, FakeGateway, FakeOutcome,
    Money, NewCoupon, OrderLine, OrderRequest, OrderStatus, PageRequest, ProductId, UserId,
};

const DAY: Duration = Duration::from_secs(86_400);

struct CouponShop {
    t: TestShop,
    pg: FakeGateway,
    kim: UserId,
    tea: ProductId,
    cup: ProductId,
}

/// Kim holds 1,000,000 won; tea costs 10,000 (stock 50), cups 3,333 (stock
/// 50).
fn shop() -> CouponShop {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| b.gateway(gateway).max_balance(won(100_000_000)));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(1_000_000)).unwrap();
    let tea = t.product("Tea", 10_000, 50).id;
    let cup = t.product("Cup", 3_333, 50).id;
    CouponShop {
        t,
        pg,
        kim,
        tea,
        cup,
    }
}

impl CouponShop {
    /// A coupon issuable for a day from now, valid for a week, minimum order
    /// 10,000.
    fn coupon(&self, discount: Discount, quantity: u32) -> Coupon {
        let now = self.t.clock.now();
        self.t
            .shop
            .create_coupon(NewCoupon {
                name: "Promo".into(),
                discount,
                quantity,
                issuable_from: now,
                issuable_until: now.saturating_add(DAY),
                valid_for: 7 * DAY,
                min_order_total: won(10_000),
            })
            .unwrap()
    }

    fn state(&self, user: UserId, coupon: CouponId) -> CouponState {
        let page = self
            .t
            .shop
            .user_coupons(user, PageRequest::first(100))
            .unwrap();
        page.items
            .iter()
            .find(|c| c.coupon.id == coupon)
            .expect("the user holds the coupon")
            .state
    }

    fn order_with(&self, coupon: CouponId) -> liteshop::Order {
        self.t
            .shop
            .place_order(
                self.kim,
                OrderRequest::new(vec![
                    OrderLine::new(self.tea, 2),
                    OrderLine::new(self.cup, 3),
                ])
                .with_coupon(coupon),
            )
            .unwrap()
    }
}

fn percent(percent: u8, cap: Option<i64>) -> Discount {
    Discount::Percent {
        percent,
        cap: cap.map(won),
    }
}

#[test]
fn a_thousand_threads_get_exactly_the_hundred_coupons_offered() {
    let s = shop();
    let coupon = s.coupon(percent(10, None), 100);
    let users: Vec<UserId> = (0..1_000).map(|i| s.t.user(&format!("u{i}")).id).collect();
    let results = race(1_000, |i| s.t.shop.issue_coupon(users[i], coupon.id));
    let issued = results.iter().filter(|r| r.is_ok()).count();
    let sold_out = results
        .iter()
        .filter(|r| matches!(r, Err(Error::CouponSoldOut { quantity: 100, .. })))
        .count();
    assert_eq!((issued, sold_out), (100, 900));
    assert_eq!(s.t.shop.coupon(coupon.id).unwrap().issued, 100);
    let held: usize = users
        .iter()
        .map(|&u| {
            s.t.shop
                .user_coupons(u, PageRequest::first(10))
                .unwrap()
                .items
                .len()
        })
        .sum();
    assert_eq!(held, 100);
}

#[test]
fn fifty_threads_of_one_user_get_exactly_one() {
    let s = shop();
    let coupon = s.coupon(percent(10, None), 100);
    let results = race(50, |_| s.t.shop.issue_coupon(s.kim, coupon.id));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::CouponAlreadyIssued { .. })))
    );
    assert_eq!(s.t.shop.coupon(coupon.id).unwrap().issued, 1);
}

#[test]
fn two_orders_racing_for_one_coupon_one_gets_it() {
    let s = shop();
    let coupon = s.coupon(Discount::Fixed { amount: won(5_000) }, 10);
    s.t.shop.issue_coupon(s.kim, coupon.id).unwrap();
    let results = race(2, |_| {
        s.t.shop.place_order(
            s.kim,
            OrderRequest::new(vec![OrderLine::new(s.tea, 1)]).with_coupon(coupon.id),
        )
    });
    let placed: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(placed.len(), 1);
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(Error::CouponUsed { order, .. }) if *order == placed[0].id))
    );
    assert_eq!(placed[0].total, won(5_000));
    // The refused order reserved nothing.
    assert_eq!(s.t.shop.product(s.tea).unwrap().stock, 49);
}

#[test]
fn an_order_paid_wholly_from_the_balance_is_announced_with_its_lines_and_coupon() {
    let s = shop();
    let coupon = s.coupon(percent(15, None), 10);
    s.t.shop.issue_coupon(s.kim, coupon.id).unwrap();
    let order = s.order_with(coupon.id);
    s.t.shop.pay_from_balance(s.kim, order.id).unwrap();
    let paid = s.t.shop.order(s.kim, order.id).unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
    let events = s.t.shop.events(0, 100).unwrap();
    let approved: Vec<_> = events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::PaymentApproved {
                amount,
                lines,
                subtotal,
                discount,
                coupon,
            } => Some((*amount, lines.clone(), *subtotal, *discount, *coupon)),
            _ => None,
        })
        .collect();
    // What the event says is the order as it is now, paid.
    assert_eq!(
        approved,
        [(
            won(25_500),
            paid.lines.clone(),
            won(29_999),
            won(4_499),
            Some(coupon.id)
        )]
    );
}

#[test]
fn discounts_round_down_and_never_exceed_the_subtotal() {
    let s = shop();
    // 2 × 10,000 + 3 × 3,333 = 29,999; 15 % = 4,499.85 → 4,499.
    let coupon = s.coupon(percent(15, None), 10);
    s.t.shop.issue_coupon(s.kim, coupon.id).unwrap();
    let order = s.order_with(coupon.id);
    assert_eq!(order.subtotal, won(29_999));
    assert_eq!(order.discount, won(4_499));
    assert_eq!(order.total, won(25_500));
    assert_eq!(order.coupon, Some(coupon.id));
    let amounts: Vec<Money> = order.lines.iter().map(|l| l.amount).collect();
    assert_eq!(
        Money::checked_sum(amounts.iter().copied()),
        Some(order.total)
    );

    let capped = s.coupon(percent(50, Some(1_000)), 10);
    s.t.shop.issue_coupon(s.kim, capped.id).unwrap();
    assert_eq!(s.order_with(capped.id).discount, won(1_000));

    let big = s.coupon(
        Discount::Fixed {
            amount: won(1_000_000),
        },
        10,
    );
    s.t.shop.issue_coupon(s.kim, big.id).unwrap();
    let free = s.order_with(big.id);
    assert_eq!((free.discount, free.total), (won(29_999), Money::ZERO));
}

#[test]
fn a_coupon_comes_back_when_its_order_is_cancelled_or_expires_and_keeps_its_expiry() {
    let s = shop();
    let coupon = s.coupon(percent(10, None), 10);
    let issued = s.t.shop.issue_coupon(s.kim, coupon.id).unwrap();
    assert_eq!(s.state(s.kim, coupon.id), CouponState::Available);

    let order = s.order_with(coupon.id);
    assert_eq!(
        s.state(s.kim, coupon.id),
        CouponState::Used { order: order.id }
    );
    s.t.shop.cancel_order(s.kim, order.id).unwrap();
    assert_eq!(s.state(s.kim, coupon.id), CouponState::Available);

    let order = s.order_with(coupon.id);
    s.t.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(s.t.shop.expire_orders().unwrap(), 1);
    assert_eq!(s.state(s.kim, coupon.id), CouponState::Available);
    assert_ne!(
        s.t.shop.order(s.kim, order.id).unwrap().status,
        OrderStatus::Pending
    );
    let again =
        s.t.shop
            .user_coupons(s.kim, PageRequest::first(10))
            .unwrap();
    assert_eq!(again.items[0].expires_at, issued.expires_at);

    // Past its validity it is Expired, and an order with it is refused.
    s.t.clock.advance(7 * DAY);
    assert_eq!(s.state(s.kim, coupon.id), CouponState::Expired);
    let before = s.t.dump();
    let err =
        s.t.shop
            .place_order(
                s.kim,
                OrderRequest::new(vec![OrderLine::new(s.tea, 2)]).with_coupon(coupon.id),
            )
            .unwrap_err();
    assert!(
        matches!(err, Error::CouponExpired { expired_at, .. } if expired_at == issued.expires_at)
    );
    assert_eq!(s.t.dump(), before);
}

#[test]
fn a_declined_payment_keeps_the_coupon_used_and_only_a_full_refund_gives_it_back() {
    let s = shop();
    let coupon = s.coupon(Discount::Fixed { amount: won(2_999) }, 10);
    s.t.shop.issue_coupon(s.kim, coupon.id).unwrap();
    let order = s.order_with(coupon.id);
    assert_eq!(order.total, won(27_000));

    s.pg.push(FakeOutcome::decline());
    assert!(matches!(
        common::pay_by_card(&s.t.shop, &s.pg, s.kim, order.id),
        Err(Error::PaymentDeclined { .. })
    ));
    assert_eq!(
        s.state(s.kim, coupon.id),
        CouponState::Used { order: order.id }
    );

    let balance = s.t.shop.balance(s.kim).unwrap();
    common::pay_by_card(&s.t.shop, &s.pg, s.kim, order.id).unwrap();
    s.t.shop
        .refund_lines(s.kim, order.id, &[OrderLine::new(s.cup, 1)], "broken")
        .unwrap();
    assert_eq!(
        s.state(s.kim, coupon.id),
        CouponState::Used { order: order.id }
    );
    s.t.shop.refund(s.kim, order.id, "all of it").unwrap();
    assert_eq!(s.state(s.kim, coupon.id), CouponState::Available);
    // Every refund together gave back exactly what was paid.
    assert_eq!(s.t.shop.balance(s.kim).unwrap(), balance);
    let refunded = s.t.shop.order(s.kim, order.id).unwrap();
    assert_eq!(
        (refunded.status, refunded.refunded),
        (OrderStatus::Refunded, won(27_000))
    );
}

#[test]
fn each_refusal_is_typed_and_changes_nothing() {
    let s = shop();
    let coupon = s.coupon(percent(10, None), 1);
    let lee = s.t.user("Lee").id;
    s.t.shop.host_credit(lee, won(100_000)).unwrap();

    let before = s.t.dump();
    let now = s.t.clock.now();
    let bad = |discount, quantity, until: Duration, valid: Duration| NewCoupon {
        name: "Bad".into(),
        discount,
        quantity,
        issuable_from: now,
        issuable_until: now.saturating_add(until),
        valid_for: valid,
        min_order_total: Money::ZERO,
    };
    for new in [
        bad(percent(0, None), 1, DAY, DAY),
        bad(percent(101, None), 1, DAY, DAY),
        bad(percent(10, Some(0)), 1, DAY, DAY),
        bad(
            Discount::Fixed {
                amount: Money::ZERO,
            },
            1,
            DAY,
            DAY,
        ),
        bad(percent(10, None), 0, DAY, DAY),
        bad(percent(10, None), 1, Duration::ZERO, DAY),
        bad(percent(10, None), 1, DAY, Duration::ZERO),
    ] {
        assert!(
            matches!(
                s.t.shop.create_coupon(new.clone()),
                Err(Error::InvalidCoupon { .. })
            ),
            "{new:?}"
        );
    }
    assert!(matches!(
        s.t.shop.create_coupon(NewCoupon {
            name: "\0".into(),
            ..bad(percent(10, None), 1, DAY, DAY)
        }),
        Err(Error::InvalidCharacter { .. })
    ));
    assert!(matches!(
        s.t.shop.issue_coupon(s.kim, CouponId::new(99)),
        Err(Error::CouponNotFound(_))
    ));
    assert!(matches!(
        s.t.shop.issue_coupon(s.kim, CouponId::new(0)),
        Err(Error::InvalidId { .. })
    ));
    assert!(matches!(
        s.t.shop.issue_coupon(UserId::new(99), coupon.id),
        Err(Error::UserNotFound(_))
    ));
    // Kim never got it: an order with it is "not found".
    assert!(matches!(
        s.t.shop.place_order(
            s.kim,
            OrderRequest::new(vec![OrderLine::new(s.tea, 2)]).with_coupon(coupon.id)
        ),
        Err(Error::CouponNotFound(_))
    ));
    assert_eq!(s.t.dump(), before);

    s.t.shop.issue_coupon(lee, coupon.id).unwrap();
    let before = s.t.dump();
    assert!(matches!(
        s.t.shop.issue_coupon(s.kim, coupon.id),
        Err(Error::CouponSoldOut { quantity: 1, .. })
    ));
    assert!(matches!(
        s.t.shop.issue_coupon(lee, coupon.id),
        Err(Error::CouponAlreadyIssued { .. })
    ));
    // Lee's coupon, used by Kim: not found.
    assert!(matches!(
        s.t.shop.place_order(
            s.kim,
            OrderRequest::new(vec![OrderLine::new(s.tea, 2)]).with_coupon(coupon.id)
        ),
        Err(Error::CouponNotFound(_))
    ));
    // Below the minimum of 10,000.
    assert!(matches!(
        s.t.shop.place_order(
            lee,
            OrderRequest::new(vec![OrderLine::new(s.cup, 1)]).with_coupon(coupon.id)
        ),
        Err(Error::CouponMinimumNotMet { subtotal, minimum, .. })
            if subtotal == won(3_333) && minimum == won(10_000)
    ));
    assert!(matches!(
        s.t.shop.checkout_cart(lee, Some(coupon.id)),
        Err(Error::EmptyCart { .. })
    ));
    assert_eq!(s.t.dump(), before);

    // Outside the issue window.
    let later = s.coupon(percent(10, None), 5);
    s.t.clock.advance(2 * DAY);
    let before = s.t.dump();
    assert!(matches!(
        s.t.shop.issue_coupon(s.kim, later.id),
        Err(Error::CouponNotIssuable { .. })
    ));
    assert_eq!(s.t.dump(), before);
}

#[test]
fn checkout_takes_a_coupon_and_a_refused_one_keeps_the_cart() {
    let s = shop();
    let coupon = s.coupon(Discount::Fixed { amount: won(1_000) }, 5);
    s.t.shop.add_to_cart(s.kim, s.tea, 1).unwrap();
    let before = s.t.dump();
    assert!(matches!(
        s.t.shop.checkout_cart(s.kim, Some(coupon.id)),
        Err(Error::CouponNotFound(_))
    ));
    assert_eq!(s.t.dump(), before);
    s.t.shop.issue_coupon(s.kim, coupon.id).unwrap();
    let order = s.t.shop.checkout_cart(s.kim, Some(coupon.id)).unwrap();
    assert_eq!((order.total, order.coupon), (won(9_000), Some(coupon.id)));
    assert!(s.t.shop.cart(s.kim).unwrap().lines.is_empty());
}
