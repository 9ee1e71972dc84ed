//! Best sellers, kept incrementally per day, against a brute-force count
//! over the orders themselves, over random histories with refunds and day
//! boundaries in a UTC offset.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestShop, open_with, won};
use liteshop::{
    BestSeller, Clock, Error, FakeGateway, Money, OrderLine, PageRequest, ProductId, Shop,
    Timestamp, UserId,
};
use proptest::prelude::*;

const KST: i32 = 9 * 60;

fn shop(offset: i32) -> (TestShop, UserId, Vec<ProductId>) {
    let t = open_with(|b| {
        b.gateway(FakeGateway::new())
            .utc_offset_minutes(offset)
            .max_balance(Money::MAX)
            .max_charge(Money::MAX)
    });
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(1_000_000_000)).unwrap();
    let products = (0..6)
        .map(|i| t.product(&format!("p{i}"), 1_000 + 250 * i, 10_000).id)
        .collect();
    (t, kim, products)
}

fn day(at: Timestamp, offset: i32) -> i64 {
    (at.as_millis() + i64::from(offset) * 60_000).div_euclid(86_400_000)
}

/// The same ranking from every paid order's lines.
fn brute_force(
    shop: &Shop,
    user: UserId,
    days: u32,
    limit: u32,
    offset: i32,
    now: Timestamp,
) -> Vec<BestSeller> {
    let last = day(now, offset);
    let first = last - i64::from(days) + 1;
    let mut sold: BTreeMap<ProductId, (String, u64, i64)> = BTreeMap::new();
    let mut page = PageRequest::first(100);
    loop {
        let orders = shop.orders(user, page).unwrap();
        for order in &orders.items {
            let Some(paid_at) = order.paid_at else {
                continue;
            };
            if !(first..=last).contains(&day(paid_at, offset)) {
                continue;
            }
            for line in &order.lines {
                let kept = line.amount.won()
                    - line.amount.won() * i64::from(line.refunded) / i64::from(line.quantity);
                let entry = sold
                    .entry(line.product)
                    .or_insert((line.name.clone(), 0, 0));
                entry.1 += u64::from(line.quantity - line.refunded);
                entry.2 += kept;
            }
        }
        match orders.next {
            Some(cursor) => page = PageRequest::after(cursor, 100),
            None => break,
        }
    }
    let mut ranked: Vec<BestSeller> = sold
        .into_iter()
        .filter(|(_, (_, units, _))| *units > 0)
        .map(|(product, (name, units, revenue))| BestSeller {
            product,
            name,
            units,
            revenue: Money::new(revenue).unwrap(),
        })
        .collect();
    ranked.sort_by(|a, b| b.units.cmp(&a.units).then(a.product.cmp(&b.product)));
    ranked.truncate(limit as usize);
    ranked
}

#[derive(Clone, Debug)]
struct Step {
    hours: u64,
    product: usize,
    quantity: u32,
    second: Option<(usize, u32)>,
    refund: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..20u64,
        0..6usize,
        1..4u32,
        proptest::option::of((0..6usize, 1..3u32)),
        0..4u8,
    )
        .prop_map(|(hours, product, quantity, second, refund)| Step {
            hours,
            product,
            quantity,
            second,
            refund,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn best_sellers_equal_a_recount_of_the_orders(
        steps in proptest::collection::vec(step(), 1..30),
        offset in prop_oneof![Just(0), Just(KST), Just(-5 * 60 - 30)],
    ) {
        let (t, kim, products) = shop(offset);
        let mut paid = Vec::new();
        for s in &steps {
            t.clock.advance(Duration::from_secs(s.hours * 3_600 + 17 * 60));
            let mut lines = vec![OrderLine::new(products[s.product], s.quantity)];
            if let Some((p, q)) = s.second && p != s.product {
                lines.push(OrderLine::new(products[p], q));
            }
            let order = t.shop.place_order(kim, &lines).unwrap();
            t.shop.pay_from_balance(kim, order.id).unwrap();
            paid.push((order.id, lines));
            // Sometimes refund one unit of an earlier order, or all of it.
            let (id, lines) = &paid[s.refund as usize % paid.len()];
            match s.refund {
                0 => { let _ = t.shop.refund(kim, *id, "all"); }
                1 => { let _ = t.shop.refund_lines(kim, *id, &[OrderLine::new(lines[0].product, 1)], "one"); }
                _ => {}
            }
            for (days, limit) in [(1, 5), (3, 5), (30, 100), (2, 1)] {
                let now = t.clock.now();
                prop_assert_eq!(
                    t.shop.best_sellers(days, limit).unwrap(),
                    brute_force(&t.shop, kim, days, limit, offset, now)
                );
            }
        }
    }
}

#[test]
fn a_sale_counts_on_its_calendar_day_in_the_offset() {
    let (t, kim, products) = shop(KST);
    // The manual clock starts at a UTC midnight: 09:00 in Seoul. Move to
    // 23:59 in Seoul, sell, then cross midnight there.
    t.clock.advance(Duration::from_secs(14 * 3_600 + 59 * 60));
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(products[0], 3)])
        .unwrap();
    t.shop.pay_from_balance(kim, order.id).unwrap();
    assert_eq!(t.shop.best_sellers(1, 5).unwrap()[0].units, 3);
    t.clock.advance(Duration::from_secs(120));
    assert!(
        t.shop.best_sellers(1, 5).unwrap().is_empty(),
        "a new day in Seoul"
    );
    assert_eq!(t.shop.best_sellers(2, 5).unwrap()[0].units, 3);

    // A refund takes its units off the day of the sale.
    t.shop
        .refund_lines(kim, order.id, &[OrderLine::new(products[0], 1)], "one")
        .unwrap();
    let top = &t.shop.best_sellers(2, 5).unwrap()[0];
    assert_eq!((top.units, top.revenue), (2, won(2_000)));
}

#[test]
fn reopening_with_another_offset_rebuilds_the_days() {
    let (t, kim, products) = shop(0);
    // 20:00 UTC is 05:00 the next day in Seoul.
    t.clock.advance(Duration::from_secs(20 * 3_600));
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(products[1], 2)])
        .unwrap();
    t.shop.pay_from_balance(kim, order.id).unwrap();
    t.clock.advance(Duration::from_secs(3 * 3_600)); // 23:00 UTC, 08:00 in Seoul
    assert_eq!(t.shop.best_sellers(1, 5).unwrap()[0].units, 2);

    let seoul = t
        .builder()
        .clock(t.clock.clone())
        .utc_offset_minutes(KST)
        .build()
        .unwrap();
    assert_eq!(seoul.best_sellers(1, 5).unwrap()[0].units, 2);
    t.clock.advance(Duration::from_secs(2 * 3_600)); // 01:00 UTC, 10:00 in Seoul
    assert_eq!(
        seoul.best_sellers(1, 5).unwrap()[0].units,
        2,
        "still the same day in Seoul"
    );
}

#[test]
fn out_of_range_windows_are_refused() {
    let (t, _, _) = shop(0);
    for (days, limit) in [(0, 5), (31, 5), (3, 0), (3, 101)] {
        assert!(matches!(
            t.shop.best_sellers(days, limit),
            Err(Error::OutOfRange { .. })
        ));
    }
    assert!(matches!(
        Shop::builder(t.path.with_extension("other"))
            .utc_offset_minutes(15 * 60)
            .build(),
        Err(Error::InvalidConfig { .. })
    ));
}

/// An operator's tool opens a served shop without naming an offset: it
/// takes the file's, and never rebuilds the sales table under another.
#[test]
fn opening_without_an_offset_keeps_the_files() {
    let (t, kim, products) = shop(KST);
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(products[0], 3)])
        .unwrap();
    t.shop.pay_from_balance(kim, order.id).unwrap();
    let before = t.shop.best_sellers(1, 5).unwrap();
    let tool = t.builder().clock(t.clock.clone()).build().unwrap();
    assert_eq!(tool.utc_offset_minutes(), KST);
    assert_eq!(tool.best_sellers(1, 5).unwrap(), before);
    assert_eq!(t.shop.utc_offset_minutes(), KST);
    // A new shop starts in UTC.
    if t.pg_schema.is_none() {
        let fresh = Shop::open(t.path.with_extension("fresh")).unwrap();
        assert_eq!(fresh.utc_offset_minutes(), 0);
    }
}

/// Money at the extremes: a line of 2 units at 3·10^18 won each (its
/// amount 6·10^18, a product `amount × refunded` of 1.2·10^19 — past any
/// 64-bit integer) paid and refunded whole. The audit's recount and the
/// rebuild under another offset are exact on both engines: no `bigint out
/// of range`, no float.
#[test]
fn money_at_the_extremes_is_counted_exactly() {
    let t = open_with(|b| {
        b.gateway(FakeGateway::new())
            .max_balance(Money::MAX)
            .max_charge(Money::MAX)
            .max_order_quantity(u32::MAX)
    });
    let kim = t.user("Kim").id;
    let unit = 3_000_000_000_000_000_000_i64;
    t.shop.host_credit(kim, won(2 * unit)).unwrap();
    let big = t.product("Gold bar", unit, 10).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(big, 2)]).unwrap();
    t.shop.pay_from_balance(kim, order.id).unwrap();
    let report = t.shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(t.shop.best_sellers(1, 5).unwrap()[0].revenue, won(2 * unit));

    // One unit back, then the other: 3·10^18 each, exactly.
    let one = t
        .shop
        .refund_lines(kim, order.id, &[OrderLine::new(big, 1)], "one")
        .unwrap();
    assert_eq!(one.amount, won(unit));
    let report = t.shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");
    t.shop.refund(kim, order.id, "the other").unwrap();
    let report = t.shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(t.shop.balance(kim).unwrap(), won(2 * unit));

    // A second line of 4,294,967,295 units at 2 won, a third of it refunded:
    // ⌊amount × refunded / quantity⌋ needs 128 bits on the way.
    let many = t.product("Grain", 2, u32::MAX).id;
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(many, u32::MAX)])
        .unwrap();
    t.shop.pay_from_balance(kim, order.id).unwrap();
    t.shop
        .refund_lines(
            kim,
            order.id,
            &[OrderLine::new(many, u32::MAX / 3)],
            "a third",
        )
        .unwrap();
    let report = t.shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");

    // Reopened in another offset, the sales table is rebuilt from the same
    // exact recount.
    let seoul = t
        .builder()
        .clock(t.clock.clone())
        .gateway(FakeGateway::new())
        .utc_offset_minutes(KST)
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .build()
        .unwrap();
    let report = seoul.audit().unwrap();
    assert!(report.is_clean(), "{report}");
    let grain = seoul
        .best_sellers(1, 5)
        .unwrap()
        .into_iter()
        .find(|b| b.product == many)
        .unwrap();
    let left = u32::MAX - u32::MAX / 3;
    assert_eq!(grain.units, u64::from(left));
}
