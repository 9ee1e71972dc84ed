//! The PG's own record is the truth: a payment cancelled outside the shop
//! never pays out again, a lost confirm is sent again while the PG holds the
//! payment, a key that may have outlived the PG's memory is never re-sent,
//! and a partial cancel the PG forbids is a decline, not a refund held for
//! ever. Against the FakeGateway, which answers as Toss documents.

mod common;

use std::time::Duration;

use common::{TestShop, open_with, won};
use liteshop::{
    Error, FakeGateway, FakeOutcome, GatewayLimits, Money, NOT_CANCELLED_AT_PG, OrderId, OrderLine,
    OrderStatus, PaymentGateway, PaymentId, PaymentStatus, PgPending, PgStatus, ProductId,
    RefundOrigin, RefundStatus, Result, RetryPolicy, StatusRequest, UserId,
};

struct Shop {
    t: TestShop,
    pg: FakeGateway,
    kim: UserId,
    tea: ProductId,
}

/// Kim holds 100,000 won; tea costs 10,000 (stock 20). Reconciliation
/// waits a minute; review after 30 days (so only the rules under test
/// hand an attempt to a person).
fn shop() -> Shop {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| {
        b.gateway(gateway)
            .gateway_retry(RetryPolicy {
                retries: 1,
                base: Duration::from_millis(1),
            })
            .reconcile_grace(Duration::from_secs(60))
            .review_after(Duration::from_secs(30 * 24 * 3_600))
    });
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(100_000)).unwrap();
    let tea = t.product("Tea", 10_000, 20).id;
    Shop { t, pg, kim, tea }
}

impl Shop {
    /// An order of `teas` teas paid wholly by card.
    fn paid(&self, teas: u32) -> OrderId {
        let order = self
            .t
            .shop
            .place_order(self.kim, &[OrderLine::new(self.tea, teas)])
            .unwrap();
        common::pay_by_card(&self.t.shop, &self.pg, self.kim, order.id).unwrap();
        order.id
    }

    fn pg_order_id(&self, order: OrderId) -> String {
        self.t.shop.payments_for_order(self.kim, order).unwrap()[0]
            .pg_order_id
            .clone()
    }

    fn balance(&self) -> Money {
        self.t.shop.balance(self.kim).unwrap()
    }

    fn assert_ledger_balances(&self) {
        common::assert_ledger_balances(&self.t.shop, self.kim);
    }

    /// An order of `teas` teas paid wholly by card whose confirm the PG
    /// answers as `lost` says (before or after it charged): the order, the
    /// payment (unknown to the shop) and its id at the PG.
    fn lost_card_payment(&self, teas: u32, lost: FakeOutcome) -> (OrderId, PaymentId, String) {
        let order = self
            .t
            .shop
            .place_order(self.kim, &[OrderLine::new(self.tea, teas)])
            .unwrap()
            .id;
        self.pg.push(lost);
        let Err(Error::PaymentOutcomeUnknown { payment, .. }) =
            common::pay_by_card(&self.t.shop, &self.pg, self.kim, order)
        else {
            panic!("the answer to the confirm was lost");
        };
        let pg_order_id = self.t.shop.payment(self.kim, payment).unwrap().pg_order_id;
        (order, payment, pg_order_id)
    }

    fn advance(&self, by: Duration) {
        self.t.clock.advance(by);
    }
}

const DAY: Duration = Duration::from_secs(24 * 3_600);

#[test]
fn a_payment_cancelled_in_the_pgs_dashboard_never_pays_out_again() -> Result<()> {
    let s = shop();
    let order = s.paid(3); // 30,000 by card
    let pg_order_id = s.pg_order_id(order);
    s.pg.cancel_in_dashboard(&pg_order_id, won(30_000))
        .expect("the operator cancels it whole");
    let balance = s.balance();

    // The customer asks for one tea back: the PG answers "already
    // cancelled", a decline, and nothing is credited. The decline makes
    // the shop read the PG's record, so its books now hold the
    // dashboard's cancel: 30,000 given back, through the PG, once.
    let err =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")
            .unwrap_err();
    assert!(
        matches!(&err, Error::RefundDeclined { code, .. } if code == "ALREADY_CANCELED_PAYMENT"),
        "{err:?}"
    );
    assert_eq!(s.balance(), balance);
    let placed = s.t.shop.order(s.kim, order)?;
    assert_eq!(
        (placed.status, placed.refunded),
        (OrderStatus::PartiallyRefunded, won(30_000))
    );
    let payment = &s.t.shop.payments_for_order(s.kim, order)?[0];
    assert_eq!(
        (payment.refunded, payment.pg_refunded),
        (won(30_000), won(30_000))
    );

    // The teas come back one by one: the money went back already, so
    // each refund returns its units and no won, and never asks the PG.
    let calls = s.pg.total_calls();
    for _ in 0..3 {
        let refund =
            s.t.shop
                .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")?;
        assert_eq!(
            (refund.status, refund.amount),
            (RefundStatus::Completed, won(0))
        );
    }
    assert_eq!(s.pg.total_calls(), calls);
    assert_eq!(s.balance(), balance);
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Refunded);
    assert_eq!(s.t.shop.product(s.tea)?.stock, 20);
    assert_eq!(
        s.pg.cancelled(&pg_order_id),
        won(30_000),
        "the PG's one cancel"
    );
    let refunds = s.t.shop.refunds(s.kim, order)?;
    assert_eq!(
        refunds
            .iter()
            .map(|r| (r.origin, r.status, r.amount))
            .collect::<Vec<_>>(),
        [
            (RefundOrigin::Shop, RefundStatus::Declined, won(10_000)),
            (RefundOrigin::Pg, RefundStatus::Completed, won(30_000)),
            (RefundOrigin::Shop, RefundStatus::Completed, won(0)),
            (RefundOrigin::Shop, RefundStatus::Completed, won(0)),
            (RefundOrigin::Shop, RefundStatus::Completed, won(0)),
        ]
    );
    s.assert_ledger_balances();
    assert!(s.t.shop.audit()?.is_clean(), "{}", s.t.shop.audit()?);
    Ok(())
}

/// A top-up cancelled in the dashboard: the customer's refund of it is
/// declined (the debit given back), and at once the shop records the
/// dashboard's cancel, so the balance does not keep money the card got back.
#[test]
fn a_top_up_cancelled_in_the_dashboard_leaves_no_balance_behind() -> Result<()> {
    let s = shop();
    let lee = s.t.user("Lee").id;
    common::top_up(&s.t.shop, &s.pg, lee, won(30_000))?;
    let top_up = s.t.shop.top_ups(lee, Default::default())?.items[0].clone();
    s.pg.cancel_in_dashboard(&top_up.pg_order_id, won(30_000))
        .unwrap();
    let err =
        s.t.shop
            .refund_top_up(lee, top_up.id, won(30_000), "back to my card")
            .unwrap_err();
    assert!(
        matches!(&err, Error::TopUpRefundDeclined { code, .. } if code == "ALREADY_CANCELED_PAYMENT"),
        "{err:?}"
    );
    assert_eq!(s.t.shop.balance(lee)?, won(0));
    assert_eq!(
        s.t.shop.payment(lee, top_up.id)?.status,
        PaymentStatus::Refunded
    );
    assert_eq!(s.pg.cancelled(&top_up.pg_order_id), won(30_000));
    common::assert_ledger_balances(&s.t.shop, lee);
    assert!(s.t.shop.audit()?.is_clean(), "{}", s.t.shop.audit()?);
    Ok(())
}

#[test]
fn a_completed_refund_stores_the_pgs_key_for_its_cancel() -> Result<()> {
    let s = shop();
    let order = s.paid(2);
    let refund =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")?;
    let cancels = s.pg.cancels(&s.pg_order_id(order));
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        refund.pg_transaction_key.as_deref(),
        Some(cancels[0].transaction_key.as_str())
    );
    Ok(())
}

#[test]
fn a_lost_confirm_is_sent_again_while_the_pg_holds_it_in_progress() -> Result<()> {
    let s = shop();
    let (order, _, pg_order_id) = s.lost_card_payment(1, FakeOutcome::UnknownBeforeCharge);
    // Toss keeps an authenticated, unconfirmed payment as IN_PROGRESS.
    assert_eq!(
        s.pg.status(&StatusRequest {
            pg_order_id: pg_order_id.clone(),
            payment_key: None,
        }),
        Ok(PgStatus::Pending(PgPending::InProgress))
    );
    s.advance(Duration::from_secs(61));
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Approved), 1, "{report:?}");
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paid);
    assert_eq!(s.pg.approved_count(), 1);
    Ok(())
}

#[test]
fn past_the_confirm_window_nothing_is_resent_and_the_pgs_expiry_declines_it() -> Result<()> {
    let s = shop();
    let order = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 1)])?.id;
    // 4,000 from the balance, 6,000 by card; the confirm is lost.
    let started = s.t.shop.start_payment(s.kim, order, won(4_000))?;
    let redirect = s.pg.pay_widget(&started.widget().unwrap());
    s.pg.push(FakeOutcome::UnknownBeforeCharge);
    assert!(matches!(
        s.t.shop.confirm_payment(s.kim, started.id, &redirect),
        Err(Error::PaymentOutcomeUnknown { .. })
    ));
    assert_eq!(s.balance(), won(96_000), "the balance part is held");
    let key = s.t.shop.payment(s.kim, started.id)?.idempotency_key;

    // Eleven minutes on: the PG no longer takes the confirm, so the shop
    // does not send it; the payment waits for the PG to settle it.
    s.advance(Duration::from_secs(11 * 60));
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Unknown), 1, "{report:?}");
    assert_eq!(s.pg.calls(&key), 1, "not sent again");

    // The PG expires it: declined, the balance part given back.
    s.pg.expire_unconfirmed();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Declined), 1, "{report:?}");
    assert_eq!(s.pg.calls(&key), 1);
    assert_eq!(s.balance(), won(100_000));
    assert_eq!(s.pg.approved_count(), 0);
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn a_refund_past_its_keys_lifetime_is_settled_by_the_pgs_record_never_resent() -> Result<()> {
    // The cancel ran at the PG and its reply was lost: completed from the
    // PG's record, with the PG's key; never a second cancel.
    let s = shop();
    let order = s.paid(2);
    let pg_order_id = s.pg_order_id(order);
    s.pg.push_cancel(FakeOutcome::UnknownAfterCharge);
    let Err(Error::RefundOutcomeUnknown { refund, .. }) =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")
    else {
        panic!("the reply was lost");
    };
    let key = s.t.shop.refunds(s.kim, order)?[0].idempotency_key.clone();
    s.advance(16 * DAY);
    s.pg.forget_keys();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.refunds_in(RefundStatus::Completed), 1, "{report:?}");
    assert_eq!(s.pg.calls(&key), 1, "never sent again past the key's life");
    assert_eq!(s.pg.cancelled(&pg_order_id), won(10_000), "cancelled once");
    let settled = &s.t.shop.refunds(s.kim, order)?[0];
    assert_eq!(settled.id, refund);
    assert_eq!(
        settled.pg_transaction_key.as_deref(),
        Some(s.pg.cancels(&pg_order_id)[0].transaction_key.as_str())
    );
    assert_eq!(
        s.t.shop.order(s.kim, order)?.status,
        OrderStatus::PartiallyRefunded
    );

    // The cancel never reached the PG: declined from the PG's record, so a
    // new attempt (a new key) can run.
    let s = shop();
    let order = s.paid(2);
    let pg_order_id = s.pg_order_id(order);
    s.pg.push_cancel(FakeOutcome::UnknownBeforeCharge);
    assert!(
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")
            .is_err()
    );
    let key = s.t.shop.refunds(s.kim, order)?[0].idempotency_key.clone();
    s.advance(16 * DAY);
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.refunds_in(RefundStatus::Declined), 1, "{report:?}");
    let declined = &s.t.shop.refunds(s.kim, order)?[0];
    assert_eq!(
        declined.failure.as_ref().map(|f| f.code.as_str()),
        Some(NOT_CANCELLED_AT_PG)
    );
    assert_eq!(s.pg.calls(&key), 1, "never sent again");
    assert_eq!(s.pg.cancelled(&pg_order_id), won(0));
    s.t.shop
        .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "again")?;
    assert_eq!(s.pg.cancelled(&pg_order_id), won(10_000));
    Ok(())
}

#[test]
fn a_refund_the_pg_cannot_attribute_is_left_for_a_person() -> Result<()> {
    let s = shop();
    let order = s.paid(3);
    let pg_order_id = s.pg_order_id(order);
    s.pg.push_cancel(FakeOutcome::UnknownAfterCharge);
    assert!(
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")
            .is_err()
    );
    // Meanwhile an operator cancels another 10,000 in the dashboard: two
    // cancels of the same amount the shop never recorded.
    s.pg.cancel_in_dashboard(&pg_order_id, won(10_000)).unwrap();
    s.advance(16 * DAY);
    let balance = s.balance();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.refunds_in(RefundStatus::Unknown), 1, "{report:?}");
    assert_eq!(s.balance(), balance);
    assert_eq!(s.pg.cancelled(&pg_order_id), won(20_000), "nothing more");
    Ok(())
}

#[test]
fn a_partial_refund_the_pg_forbids_is_declined_and_the_whole_one_still_runs() -> Result<()> {
    let s = shop();
    let order = s.paid(2);
    let pg_order_id = s.pg_order_id(order);
    s.pg.forbid_partial_cancel(&pg_order_id);
    let err =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")
            .unwrap_err();
    assert!(
        matches!(&err, Error::RefundDeclined { code, .. } if code == "NOT_ALLOWED_PARTIAL_REFUND"),
        "{err:?}"
    );
    // Not held "in flight": the whole refund runs at once.
    let refund = s.t.shop.refund(s.kim, order, "all back")?;
    assert_eq!(refund.status, RefundStatus::Completed);
    assert_eq!(s.pg.cancelled(&pg_order_id), won(20_000));
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Refunded);
    Ok(())
}

#[test]
fn a_payment_the_pg_approved_and_cancelled_outside_the_shop_is_reported() -> Result<()> {
    let s = shop();
    let (_, _, pg_order_id) = s.lost_card_payment(2, FakeOutcome::UnknownAfterCharge);
    // Before reconciliation runs, an operator cancels part of it.
    s.pg.cancel_in_dashboard(&pg_order_id, won(5_000)).unwrap();
    s.advance(Duration::from_secs(61));
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Approved), 1);
    assert!(
        report.needs_review(),
        "a change outside the shop: {report:?}"
    );

    // Cancelled whole before the shop heard: nothing was paid.
    let s = shop();
    let (order, _, pg_order_id) = s.lost_card_payment(1, FakeOutcome::UnknownAfterCharge);
    s.pg.cancel_in_dashboard(&pg_order_id, won(10_000)).unwrap();
    s.advance(Duration::from_secs(61));
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Declined), 1);
    assert!(report.needs_review());
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Pending);
    Ok(())
}

#[test]
fn a_gateway_declares_its_limits() {
    assert_eq!(FakeGateway::new().limits(), GatewayLimits::TOSS);
    // Toss keeps a key 15 days from the day of its first use: 14, to be
    // safe of the PG's day boundary.
    assert_eq!(GatewayLimits::TOSS.key_lifetime, 14 * DAY);
    assert_eq!(GatewayLimits::TOSS.confirm_window, Duration::from_secs(600));
    let pg = FakeGateway::new();
    let short = GatewayLimits {
        key_lifetime: DAY,
        confirm_window: Duration::from_secs(60),
    };
    pg.set_limits(short);
    assert_eq!(pg.limits(), short);
}

#[test]
fn a_webhook_settles_from_the_pgs_record_exactly_once_whatever_it_says() -> Result<()> {
    let s = shop();
    let (order, payment, pg_order_id) = s.lost_card_payment(1, FakeOutcome::UnknownAfterCharge);

    // No grace period: the notice settles it at once, from the PG's record.
    let settled = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert_eq!(
        (settled.payment, settled.status, settled.needs_review),
        (payment, PaymentStatus::Approved, false)
    );
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paid);
    // The same notice again, and again: nothing moves.
    let before = s.t.dump();
    for _ in 0..3 {
        let again = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
        assert_eq!(again.status, PaymentStatus::Approved);
        assert!(!again.needs_review);
    }
    assert_eq!(s.t.dump(), before);
    assert_eq!(s.pg.approved_count(), 1);

    // A notice for a payment the shop does not know changes nothing.
    assert_eq!(s.t.shop.payment_changed_at_pg("ls-999-unknown")?, None);
    assert_eq!(s.t.dump(), before);

    // An operator cancels part of it in the dashboard: the notice finds
    // the cancel in the PG's record, records it once so the books follow
    // the PG, and reports it for a person.
    let key = s.pg.cancel_in_dashboard(&pg_order_id, won(4_000)).unwrap();
    let changed = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert!(changed.needs_review, "{changed:?}");
    let refunds = s.t.shop.refunds(s.kim, order)?;
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        (
            refunds[0].origin,
            refunds[0].status,
            refunds[0].amount,
            refunds[0].pg_amount
        ),
        (
            RefundOrigin::Pg,
            RefundStatus::Completed,
            won(4_000),
            won(4_000)
        )
    );
    assert_eq!(refunds[0].pg_transaction_key.as_deref(), Some(key.as_str()));
    assert!(
        refunds[0].lines.is_empty(),
        "no units come back by themselves"
    );
    let after = s.t.dump();
    for _ in 0..3 {
        let again = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
        assert!(!again.needs_review, "recorded once: {again:?}");
    }
    assert_eq!(s.t.dump(), after);
    assert!(s.t.shop.audit()?.is_clean(), "{}", s.t.shop.audit()?);
    Ok(())
}

#[test]
fn a_dashboard_cancel_of_an_order_is_given_back_once_however_the_units_come_back() -> Result<()> {
    let s = shop();
    let order = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 3)])?.id;
    // 30,000: 10,000 from the balance, 20,000 by card.
    common::pay_split(&s.t.shop, &s.pg, s.kim, order, won(10_000))?;
    let pg_order_id = s.pg_order_id(order);
    assert_eq!(s.balance(), won(90_000));
    s.pg.cancel_in_dashboard(&pg_order_id, won(5_000)).unwrap();
    let seen = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert!(seen.needs_review);
    let placed = s.t.shop.order(s.kim, order)?;
    assert_eq!(
        (placed.status, placed.refunded),
        (OrderStatus::PartiallyRefunded, won(5_000))
    );
    assert_eq!(s.t.shop.product(s.tea)?.held, 3, "the goods stay sold");
    assert_eq!(s.balance(), won(90_000), "the cancel went to the card");
    assert!(s.t.shop.audit()?.is_clean(), "{}", s.t.shop.audit()?);

    // Every unit comes back: the refund returns what is left of the
    // 30,000 — 15,000 more to the card, 10,000 to the balance — not 30,000.
    let refund = s.t.shop.refund(s.kim, order, "all back")?;
    assert_eq!(
        (refund.status, refund.pg_amount, refund.balance_amount),
        (RefundStatus::Completed, won(15_000), won(10_000))
    );
    assert_eq!(s.pg.cancelled(&pg_order_id), won(20_000));
    assert_eq!(s.balance(), won(100_000));
    let refunded = s.t.shop.order(s.kim, order)?;
    assert_eq!(
        (refunded.status, refunded.refunded),
        (OrderStatus::Refunded, won(30_000))
    );
    assert_eq!(s.t.shop.product(s.tea)?.stock, 20);
    assert!(s.t.shop.audit()?.is_clean(), "{}", s.t.shop.audit()?);
    s.assert_ledger_balances();
    let seen = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert!(!seen.needs_review, "the books match the PG: {seen:?}");
    Ok(())
}

#[test]
fn a_dashboard_cancel_of_a_top_up_takes_back_what_the_balance_still_holds() -> Result<()> {
    let s = shop();
    let lee = s.t.user("Lee").id;
    common::top_up(&s.t.shop, &s.pg, lee, won(30_000))?;
    let top_up = s.t.shop.top_ups(lee, Default::default())?.items[0].clone();
    // Lee spends 20,000 of it, by balance.
    let order = s.t.shop.place_order(lee, &[OrderLine::new(s.tea, 2)])?.id;
    s.t.shop.start_payment(lee, order, won(20_000))?;
    assert_eq!(s.t.shop.balance(lee)?, won(10_000));

    // An operator cancels the whole top-up in the dashboard; no webhook
    // comes, and the sweep finds it.
    s.pg.cancel_in_dashboard(&top_up.pg_order_id, won(30_000))
        .unwrap();
    let swept = s.t.shop.compare_with_pg(DAY)?;
    let found = swept.iter().find(|p| p.payment == top_up.id).unwrap();
    assert!(found.needs_review);
    assert_eq!(found.status, PaymentStatus::Refunded);
    assert_eq!(
        s.t.shop.balance(lee)?,
        won(0),
        "the balance gives back what it holds; 20,000 is for a person"
    );
    let unsettled = s.t.shop.unsettled()?;
    assert_eq!(unsettled.external.len(), 1);
    assert_eq!(unsettled.external[0].payment, top_up.id);
    assert_eq!(unsettled.external[0].origin, RefundOrigin::Pg);
    assert!(s.t.shop.audit()?.is_clean(), "{}", s.t.shop.audit()?);
    common::assert_ledger_balances(&s.t.shop, lee);

    // A second sweep changes nothing.
    let before = s.t.dump();
    let again = s.t.shop.compare_with_pg(DAY)?;
    assert!(again.iter().all(|p| !p.needs_review), "{again:?}");
    assert_eq!(s.t.dump(), before);
    Ok(())
}

#[test]
fn a_dashboard_cancel_while_a_refund_is_in_flight_waits_for_it() -> Result<()> {
    let s = shop();
    let order = s.paid(2);
    let pg_order_id = s.pg_order_id(order);
    s.pg.push_cancel(FakeOutcome::UnknownBeforeCharge);
    let Err(Error::RefundOutcomeUnknown { .. }) =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")
    else {
        panic!("the cancel's answer was lost");
    };
    s.pg.cancel_in_dashboard(&pg_order_id, won(3_000)).unwrap();
    let before = s.t.dump();
    let seen = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert_eq!(
        s.t.dump(),
        before,
        "the refund in flight may be that cancel"
    );
    assert!(!seen.needs_review);

    // Once reconciliation settles the refund, the next notice records the
    // dashboard's cancel.
    s.advance(Duration::from_secs(61));
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.refunds_in(RefundStatus::Completed), 1);
    let seen = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert!(seen.needs_review);
    let refunds = s.t.shop.refunds(s.kim, order)?;
    assert_eq!(
        refunds
            .iter()
            .map(|r| (r.origin, r.amount))
            .collect::<Vec<_>>(),
        [
            (RefundOrigin::Shop, won(10_000)),
            (RefundOrigin::Pg, won(3_000))
        ]
    );
    assert_eq!(s.t.shop.order(s.kim, order)?.refunded, won(13_000));
    assert!(s.t.shop.audit()?.is_clean(), "{}", s.t.shop.audit()?);
    Ok(())
}

#[test]
fn a_webhook_for_a_refunded_payment_matches_the_shops_refunds() -> Result<()> {
    let s = shop();
    let order = s.paid(2);
    let pg_order_id = s.pg_order_id(order);
    s.t.shop
        .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")?;
    let seen = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert_eq!(seen.status, PaymentStatus::Approved);
    assert!(
        !seen.needs_review,
        "the PG's one cancel is the shop's refund"
    );
    s.t.shop.refund(s.kim, order, "the rest")?;
    let seen = s.t.shop.payment_changed_at_pg(&pg_order_id)?.unwrap();
    assert_eq!(seen.status, PaymentStatus::Refunded);
    assert!(!seen.needs_review);
    Ok(())
}

#[test]
fn a_webhook_before_the_confirm_leaves_the_payment_to_its_customer() -> Result<()> {
    let s = shop();
    let order = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 1)])?.id;
    let started = s.t.shop.start_payment(s.kim, order, won(0))?;
    s.pg.pay_widget(&started.widget().unwrap());
    let before = s.t.dump();
    let seen =
        s.t.shop
            .payment_changed_at_pg(&started.pg_order_id)?
            .unwrap();
    assert_eq!(seen.status, PaymentStatus::Started);
    assert!(!seen.needs_review);
    assert_eq!(s.t.dump(), before);
    assert_eq!(
        s.pg.approved_count(),
        0,
        "the shop confirms only a redirect"
    );
    Ok(())
}

/// A gateway that answers every cancel with a key longer than any PG's.
struct LongKeys(FakeGateway);

impl PaymentGateway for LongKeys {
    fn approve(
        &self,
        request: &liteshop::ApproveRequest,
    ) -> std::result::Result<liteshop::Approval, liteshop::GatewayError> {
        self.0.approve(request)
    }
    fn status(
        &self,
        request: &StatusRequest,
    ) -> std::result::Result<PgStatus, liteshop::GatewayError> {
        self.0.status(request)
    }
    fn cancel(
        &self,
        request: &liteshop::CancelRequest,
    ) -> std::result::Result<liteshop::Cancellation, liteshop::GatewayError> {
        self.0.cancel(request).map(|mut cancel| {
            cancel.transaction_key = "k".repeat(300);
            cancel
        })
    }
}

#[test]
fn a_cancel_key_too_long_to_keep_does_not_fail_the_refund() -> Result<()> {
    let pg = FakeGateway::new();
    let gateway = LongKeys(pg.clone());
    let t = open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    let tea = t.product("Tea", 10_000, 5).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 2)])?.id;
    common::pay_by_card(&t.shop, &pg, kim, order)?;
    let refund = t
        .shop
        .refund_lines(kim, order, &[OrderLine::new(tea, 1)], "one back")?;
    assert_eq!(refund.status, RefundStatus::Completed);
    assert_eq!(refund.pg_transaction_key, None);
    assert_eq!(
        t.shop.order(kim, order)?.status,
        OrderStatus::PartiallyRefunded
    );
    Ok(())
}

#[test]
fn the_fake_refuses_another_currency_and_a_payment_key_it_never_issued() -> Result<()> {
    let s = shop();
    let order = s.paid(2);
    let payment = &s.t.shop.payments_for_order(s.kim, order)?[0];
    let cancel = liteshop::CancelRequest {
        payment_key: payment.payment_key.clone().unwrap(),
        pg_order_id: payment.pg_order_id.clone(),
        amount: won(10_000),
        currency: liteshop::Currency::KRW,
        tax_free_amount: Money::ZERO,
        reason: "one back".into(),
        idempotency_key: "pg-record-fake-refusals".into(),
        refund_account: None,
    };
    for (request, code) in [
        (
            liteshop::CancelRequest {
                currency: liteshop::Currency::new("USD")?,
                ..cancel.clone()
            },
            "INVALID_CURRENCY",
        ),
        (
            liteshop::CancelRequest {
                payment_key: "fake_pk_never_issued".into(),
                ..cancel.clone()
            },
            "NOT_FOUND_PAYMENT",
        ),
    ] {
        let err = s.pg.cancel(&request).unwrap_err();
        assert!(
            matches!(&err, liteshop::GatewayError::Invalid { code: c, .. } if c == code),
            "{code}: {err:?}"
        );
    }
    assert_eq!(s.pg.cancelled(&payment.pg_order_id), won(0));
    Ok(())
}
