//! Tax-free goods (면세): the tax-free part of every PG amount is sent as
//! Toss's `taxFreeAmount`, on the confirm and on each cancel, and the
//! cancels never take more of either part than the PG holds
//! (docs.tosspayments.com/reference#결제-승인, #결제-취소).

mod common;

use common::{open_with, won};
use liteshop::{FakeGateway, OrderLine, RefundStatus, Result};

#[test]
fn the_tax_free_share_of_each_pg_amount_goes_with_the_confirm_and_every_cancel() -> Result<()> {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(50_000))?;
    let rice = t.product("Rice", 10_000, 5).id; // unprocessed food: tax-free
    let cake = t.product("Cake", 5_000, 5).id;
    assert!(!t.shop.product(rice)?.tax_free);
    // An order placed before the product is marked keeps what it was.
    let before = t.shop.place_order(kim, &[OrderLine::new(rice, 1)])?.id;
    assert!(t.shop.set_tax_free(rice, true)?.tax_free);
    let placed = t
        .shop
        .place_order(kim, &[OrderLine::new(rice, 2), OrderLine::new(cake, 1)])?;
    assert_eq!(
        placed.lines.iter().map(|l| l.tax_free).collect::<Vec<_>>(),
        [true, false]
    );
    assert!(!t.shop.order(kim, before)?.lines[0].tax_free);

    // 25,000: 20,000 of it tax-free. 5,000 from the balance, 20,000 by
    // card, whose tax-free share is ⌊20,000 × 20,000 / 25,000⌋ = 16,000.
    let payment = common::pay_split(&t.shop, &pg, kim, placed.id, won(5_000))?;
    assert_eq!(payment.pg_tax_free, won(16_000));
    assert_eq!(pg.tax_free(&payment.pg_order_id), (won(16_000), won(0)));

    // The cake back: 5,000 from the card, all taxable by its line — but
    // the PG holds only 4,000 taxable, so 1,000 of it is tax-free.
    let refund = t
        .shop
        .refund_lines(kim, placed.id, &[OrderLine::new(cake, 1)], "cake")?;
    assert_eq!(
        (refund.status, refund.pg_amount, refund.pg_tax_free),
        (RefundStatus::Completed, won(5_000), won(1_000))
    );
    // A bag of rice: 10,000 by card, all tax-free.
    let refund = t
        .shop
        .refund_lines(kim, placed.id, &[OrderLine::new(rice, 1)], "rice")?;
    assert_eq!(
        (refund.pg_amount, refund.pg_tax_free),
        (won(10_000), won(10_000))
    );
    // The last: 5,000 left by card (all tax-free there), 5,000 to the
    // balance. Both parts at the PG end at zero together.
    let refund = t.shop.refund(kim, placed.id, "the rest")?;
    assert_eq!(
        (refund.pg_amount, refund.balance_amount, refund.pg_tax_free),
        (won(5_000), won(5_000), won(5_000))
    );
    assert_eq!(
        pg.tax_free(&payment.pg_order_id),
        (won(16_000), won(16_000))
    );
    assert_eq!(pg.cancelled(&payment.pg_order_id), won(20_000));
    assert!(t.shop.audit()?.is_clean());
    Ok(())
}

#[test]
fn a_dashboard_cancel_keeps_the_tax_free_part_the_pg_names() -> Result<()> {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    let rice = t.product("Rice", 10_000, 5).id;
    let cake = t.product("Cake", 10_000, 5).id;
    t.shop.set_tax_free(rice, true)?;
    let placed = t
        .shop
        .place_order(kim, &[OrderLine::new(rice, 1), OrderLine::new(cake, 1)])?;
    let payment = common::pay_by_card(&t.shop, &pg, kim, placed.id)?;
    assert_eq!(payment.pg_tax_free, won(10_000));
    // An operator gives 4,000 back in the dashboard, 3,000 of it tax-free.
    pg.cancel_in_dashboard_tax_free(&payment.pg_order_id, won(4_000), won(3_000))
        .unwrap();
    t.shop.payment_changed_at_pg(&payment.pg_order_id)?;
    let external = &t.shop.refunds(kim, placed.id)?[0];
    assert_eq!(
        (external.origin, external.amount, external.pg_tax_free),
        (liteshop::RefundOrigin::Pg, won(4_000), won(3_000))
    );
    // The rest comes back: the PG holds 7,000 tax-free and 9,000 taxable
    // of 16,000, and the last cancel empties both.
    let rest = t.shop.refund(kim, placed.id, "the rest")?;
    assert_eq!(
        (rest.pg_amount, rest.pg_tax_free),
        (won(16_000), won(7_000))
    );
    assert_eq!(
        pg.tax_free(&payment.pg_order_id),
        (won(10_000), won(10_000))
    );
    assert!(t.shop.audit()?.is_clean());
    Ok(())
}
