//! Payments by bank transfer (Toss's virtual account, 가상계좌): the
//! confirm issues an account instead of approving; the order waits with
//! its units and the balance part held; the deposit notice — checked
//! against the payment's secret — makes it paid; a due date passing with
//! no deposit declines it and gives everything back. Against the
//! FakeGateway, which answers as Toss documents
//! (docs.tosspayments.com/guides/payment/virtual-account,
//! /guides/learn/virtual-account-webhook).

mod common;

use std::time::Duration;

use common::{TestShop, open_with, won};
use liteshop::{
    DEPOSIT_EXPIRED, DEPOSIT_GRACE, FakeGateway, OrderId, OrderLine, OrderStatus, Payment,
    PaymentStatus, ProductId, Result, UserId,
};

struct Shop {
    t: TestShop,
    pg: FakeGateway,
    kim: UserId,
    tea: ProductId,
}

const DAY: Duration = Duration::from_secs(24 * 3_600);

/// Kim holds 50,000 won; tea costs 10,000 (stock 5). The fake PG runs on
/// the shop's clock; reconciliation waits a minute.
fn shop() -> Shop {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| {
        b.gateway(gateway)
            .reconcile_grace(Duration::from_secs(60))
            .review_after(Duration::from_secs(30 * 24 * 3_600))
    });
    pg.set_clock(t.clock.clone());
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(50_000)).unwrap();
    let tea = t.product("Tea", 10_000, 5).id;
    Shop { t, pg, kim, tea }
}

impl Shop {
    /// An order of two teas, 5,000 from the balance and 15,000 by bank
    /// transfer due in `due_in`: the confirmed payment, awaiting the deposit.
    fn awaiting(&self, due_in: Duration) -> (OrderId, Payment) {
        let order = self
            .t
            .shop
            .place_order(self.kim, &[OrderLine::new(self.tea, 2)])
            .unwrap()
            .id;
        let started = self
            .t
            .shop
            .start_payment(self.kim, order, won(5_000))
            .unwrap();
        let redirect = self
            .pg
            .pay_widget_by_transfer(&started.widget().unwrap(), due_in);
        let payment = self
            .t
            .shop
            .confirm_payment(self.kim, started.id, &redirect)
            .unwrap();
        (order, payment)
    }

    fn audit_is_clean(&self) {
        let report = self.t.shop.audit().unwrap();
        assert!(report.is_clean(), "{report}");
        common::assert_ledger_balances(&self.t.shop, self.kim);
    }
}

#[test]
fn a_transfer_waits_with_its_units_held_and_the_deposit_notice_makes_it_paid() -> Result<()> {
    let s = shop();
    let (order, payment) = s.awaiting(DAY);
    // The confirm answers with the account to pay into, not an approval.
    assert_eq!(payment.status, PaymentStatus::Requested);
    let account = payment.deposit.clone().expect("a virtual account");
    assert_eq!(
        account.due_at.as_millis(),
        payment.updated_at.as_millis() + 24 * 3_600_000
    );
    assert!(!account.account_number.is_empty());
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paying);
    assert_eq!(s.t.shop.product(s.tea)?.held, 2);
    assert_eq!(
        s.t.shop.balance(s.kim)?,
        won(45_000),
        "the balance part is held"
    );
    s.audit_is_clean();

    // Reconciliation leaves it to the customer while the account is open,
    // without asking the PG.
    s.t.clock.advance(Duration::from_secs(3_600));
    let calls = s.pg.total_calls();
    let report = s.t.shop.reconcile_payments()?;
    assert!(report.payments.is_empty(), "{report:?}");
    assert_eq!(s.pg.total_calls(), calls);

    // The customer pays in; the PG's deposit notice carries the secret.
    let secret = s.pg.deposit(&payment.pg_order_id).expect("deposited");
    // A notice with another secret changes nothing.
    let before = s.t.dump();
    assert_eq!(
        s.t.shop
            .deposit_notice(&payment.pg_order_id, "ps_forged_secret")?,
        None
    );
    assert_eq!(s.t.shop.deposit_notice("ls-999-unknown", &secret)?, None);
    assert_eq!(s.t.dump(), before);
    // The real one settles it from the PG's record, once.
    let settled =
        s.t.shop
            .deposit_notice(&payment.pg_order_id, &secret)?
            .unwrap();
    assert_eq!(settled.status, PaymentStatus::Approved);
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paid);
    assert_eq!(s.t.shop.balance(s.kim)?, won(45_000));
    let after = s.t.dump();
    for _ in 0..3 {
        let again =
            s.t.shop
                .deposit_notice(&payment.pg_order_id, &secret)?
                .unwrap();
        assert_eq!(again.status, PaymentStatus::Approved);
    }
    assert_eq!(s.t.dump(), after);
    s.audit_is_clean();
    Ok(())
}

#[test]
fn a_due_date_passing_with_no_deposit_declines_it_and_gives_everything_back() -> Result<()> {
    let s = shop();
    let (order, payment) = s.awaiting(DAY);
    assert_eq!(s.t.shop.product(s.tea)?.stock, 3);

    // Past the due date, within the grace: still the customer's.
    s.t.clock.advance(DAY + Duration::from_secs(60));
    let report = s.t.shop.reconcile_payments()?;
    assert!(report.payments.is_empty(), "{report:?}");
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paying);

    // Past the grace: the PG still waits for a deposit the account no
    // longer takes, so the payment is declined and the hold ends.
    s.t.clock.advance(DEPOSIT_GRACE);
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Declined), 1, "{report:?}");
    let declined = s.t.shop.payment(s.kim, payment.id)?;
    assert_eq!(declined.failure.unwrap().code, DEPOSIT_EXPIRED);
    assert_eq!(
        s.t.shop.balance(s.kim)?,
        won(50_000),
        "the balance part is back"
    );
    s.t.shop.expire_orders()?;
    let status = s.t.shop.order(s.kim, order)?.status;
    assert!(
        matches!(status, OrderStatus::Cancelled),
        "the reservation ran out long ago: {status:?}"
    );
    assert_eq!(s.t.shop.product(s.tea)?.stock, 5);
    assert_eq!(s.t.shop.product(s.tea)?.held, 0);
    s.audit_is_clean();
    Ok(())
}

#[test]
fn a_deposit_found_after_the_due_date_is_paid_not_declined() -> Result<()> {
    let s = shop();
    let (order, payment) = s.awaiting(DAY);
    // The customer paid in time, but the notice never came.
    s.pg.deposit(&payment.pg_order_id).unwrap();
    s.t.clock.advance(DAY + DEPOSIT_GRACE);
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Approved), 1, "{report:?}");
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paid);
    s.audit_is_clean();
    Ok(())
}

#[test]
fn an_account_whose_answer_was_lost_is_asked_for_again_with_the_same_key() -> Result<()> {
    let s = shop();
    let order = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 1)])?.id;
    let started = s.t.shop.start_payment(s.kim, order, won(0))?;
    let redirect = s.pg.pay_widget_by_transfer(&started.widget().unwrap(), DAY);
    // The PG issues the account, and its answer is lost on the way.
    s.pg.push(liteshop::FakeOutcome::UnknownAfterCharge);
    let err =
        s.t.shop
            .confirm_payment(s.kim, started.id, &redirect)
            .unwrap_err();
    assert!(
        matches!(err, liteshop::Error::PaymentOutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(s.t.shop.payment(s.kim, started.id)?.deposit, None);

    // Reconciliation finds the PG waiting for a deposit the customer cannot
    // make (the shop never showed the account): it confirms again with the
    // stored key, and the PG's answer names the account.
    s.t.clock.advance(Duration::from_secs(61));
    s.t.shop.reconcile_payments()?;
    let payment = s.t.shop.payment(s.kim, started.id)?;
    assert!(payment.deposit.is_some(), "{payment:?}");
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paying);
    let secret = s.pg.deposit(&payment.pg_order_id).unwrap();
    let settled =
        s.t.shop
            .deposit_notice(&payment.pg_order_id, &secret)?
            .unwrap();
    assert_eq!(settled.status, PaymentStatus::Approved);
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paid);
    s.audit_is_clean();
    Ok(())
}

#[test]
fn a_bank_transfer_is_refunded_to_the_account_the_customer_gives() -> Result<()> {
    let s = shop();
    let (order, payment) = s.awaiting(DAY);
    let secret = s.pg.deposit(&payment.pg_order_id).unwrap();
    s.t.shop.deposit_notice(&payment.pg_order_id, &secret)?;
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paid);

    // With no account to send the money to, the PG refuses the cancel.
    let err =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")
            .unwrap_err();
    assert!(
        matches!(&err, liteshop::Error::RefundDeclined { code, .. } if code == "INVALID_REFUND_ACCOUNT_INFO"),
        "{err:?}"
    );

    // Bad accounts, another user's payment and a card payment are refused
    // and store nothing.
    let account = liteshop::RefundAccount {
        bank: "20".into(),
        account_number: "1002123456789".into(),
        holder_name: "김민지".into(),
    };
    let lee = s.t.user("Lee").id;
    let card = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 1)])?.id;
    let by_card = common::pay_by_card(&s.t.shop, &s.pg, s.kim, card)?;
    let before = s.t.dump();
    for (bad, field) in [
        (
            liteshop::RefundAccount {
                bank: String::new(),
                ..account.clone()
            },
            "bank",
        ),
        (
            liteshop::RefundAccount {
                account_number: "1002-123".into(),
                ..account.clone()
            },
            "account_number",
        ),
        (
            liteshop::RefundAccount {
                holder_name: " 김민지".into(),
                ..account.clone()
            },
            "holder_name",
        ),
    ] {
        let err =
            s.t.shop
                .set_refund_account(s.kim, payment.id, &bad)
                .unwrap_err();
        assert!(
            matches!(err, liteshop::Error::InvalidRefundAccount { field: f } if f == field),
            "{err:?}"
        );
    }
    assert!(matches!(
        s.t.shop.set_refund_account(lee, payment.id, &account),
        Err(liteshop::Error::PaymentNotFound(_))
    ));
    assert!(matches!(
        s.t.shop.set_refund_account(s.kim, by_card.id, &account),
        Err(liteshop::Error::NotABankTransfer { .. })
    ));
    assert_eq!(s.t.dump(), before);
    assert!(!format!("{account:?}").contains("1002123456789"));

    // With the account, the refund runs: 10,000 of the 15,000 transfer
    // back to it (the PG part first), nothing to the balance.
    s.t.shop.set_refund_account(s.kim, payment.id, &account)?;
    let refund =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one back")?;
    assert_eq!(
        (refund.status, refund.pg_amount, refund.balance_amount),
        (liteshop::RefundStatus::Completed, won(10_000), won(0))
    );
    assert_eq!(s.pg.cancelled(&payment.pg_order_id), won(10_000));
    s.audit_is_clean();
    Ok(())
}

#[test]
fn a_deposit_the_bank_reverses_is_reported_for_a_person() -> Result<()> {
    let s = shop();
    let (order, payment) = s.awaiting(DAY);
    let secret = s.pg.deposit(&payment.pg_order_id).unwrap();
    s.t.shop.deposit_notice(&payment.pg_order_id, &secret)?;
    assert_eq!(s.t.shop.order(s.kim, order)?.status, OrderStatus::Paid);
    // The bank reverses it: the PG waits for a deposit again, and its
    // notice finds the shop's paid order no longer paid at the PG.
    assert!(s.pg.reverse_deposit(&payment.pg_order_id));
    let seen =
        s.t.shop
            .deposit_notice(&payment.pg_order_id, &secret)?
            .unwrap();
    assert!(seen.needs_review, "{seen:?}");
    assert_eq!(seen.status, PaymentStatus::Approved);
    s.audit_is_clean();
    Ok(())
}
