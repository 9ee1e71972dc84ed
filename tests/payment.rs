//! Seed flow 8: payments through a gateway, exactly once, with
//! reconciliation and refunds — against the FakeGateway.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::{TestShop, open_with, won};
use liteshop::{
    Approval, ApproveRequest, CancelRequest, Cancellation, Error, ErrorKind, FakeGateway,
    FakeOutcome, GatewayError, LedgerEntry, LedgerKind, Money, OrderId, OrderLine, OrderStatus,
    PageRequest, PaymentGateway, PaymentId, PaymentStatus, PgStatus, ProductId, ReconcileReport,
    RefundStatus, Result, RetryPolicy, Shop, ShopBuilder, StatusRequest, UserId,
};

const FAST_RETRY: RetryPolicy = RetryPolicy {
    retries: 2,
    base: Duration::from_millis(1),
};

/// The part of each payment [`PayShop::pay`] takes by card.
const PG_PART: Money = Money::from_won(1_000);

struct PayShop {
    t: TestShop,
    pg: FakeGateway,
    kim: UserId,
    tea: ProductId,
}

/// A shop with a FakeGateway, Kim holding 50,000 won, and tea at 10,000 ×
/// 20; reconciliation waits a minute and asks for review after an hour.
fn shop() -> PayShop {
    shop_with(|b| {
        b.reconcile_grace(Duration::from_secs(60))
            .review_after(Duration::from_secs(3_600))
    })
}

/// As [`shop`], configured by `configure` instead.
fn shop_with(configure: impl FnOnce(ShopBuilder) -> ShopBuilder) -> PayShop {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| configure(b.gateway(gateway).gateway_retry(FAST_RETRY)));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(50_000)).unwrap();
    let tea = t.product("Tea", 10_000, 20).id;
    PayShop { t, pg, kim, tea }
}

impl PayShop {
    fn order(&self, quantity: u32) -> OrderId {
        self.t
            .shop
            .place_order(self.kim, &[OrderLine::new(self.tea, quantity)])
            .unwrap()
            .id
    }

    fn status(&self, order: OrderId) -> OrderStatus {
        self.t.shop.order(self.kim, order).unwrap().status
    }

    fn balance(&self) -> Money {
        self.t.shop.balance(self.kim).unwrap()
    }

    fn ledger(&self) -> Vec<LedgerEntry> {
        self.t
            .shop
            .ledger(self.kim, PageRequest::first(100))
            .unwrap()
            .items
    }

    /// The balance equals the sum of the ledger, as always.
    fn assert_ledger_balances(&self) {
        let sum: i64 = self.ledger().iter().map(LedgerEntry::signed_won).sum();
        assert_eq!(won(sum), self.balance());
    }

    /// Pays `order` by tender: all but [`PG_PART`] from the balance, the
    /// rest by card in the fake's widget.
    fn pay(&self, order: OrderId) -> Result<liteshop::Payment> {
        self.pay_on(&self.t.shop, order)
    }

    /// [`PayShop::pay`] through `shop` (another handle on the same data).
    fn pay_on(&self, shop: &Shop, order: OrderId) -> Result<liteshop::Payment> {
        let total = shop.order(self.kim, order)?.total;
        let balance_part = total.checked_sub(PG_PART).unwrap_or(Money::ZERO);
        common::pay_split(shop, &self.pg, self.kim, order, balance_part)
    }

    fn only_payment(&self, order: OrderId) -> liteshop::Payment {
        let payments = self.t.shop.payments_for_order(self.kim, order).unwrap();
        assert_eq!(payments.len(), 1, "{payments:?}");
        payments.into_iter().next().unwrap()
    }

    /// Pays `order` from a second shop on the same file whose process "dies"
    /// between the first transaction and the gateway call; returns the
    /// payment it left behind.
    fn crash_before_the_gateway_call(&self, order: OrderId) -> liteshop::Payment {
        let crashing = self
            .t
            .builder()
            .gateway(Crashing)
            .clock(self.t.clock.clone())
            .build()
            .unwrap();
        let died = catch_unwind(AssertUnwindSafe(|| self.pay_on(&crashing, order)));
        assert!(died.is_err());
        self.only_payment(order)
    }

    fn past_grace(&self) {
        self.t.clock.advance(Duration::from_secs(61));
    }
}

/// Payments the round left open and not yet due for review.
fn still_unknown(report: &ReconcileReport) -> usize {
    report
        .payments
        .iter()
        .filter(|p| p.status.is_unsettled() && !p.needs_review)
        .count()
}

/// Payments the round marked for a person.
fn review(report: &ReconcileReport) -> Vec<PaymentId> {
    report
        .payments
        .iter()
        .filter(|p| p.needs_review)
        .map(|p| p.payment)
        .collect()
}

#[test]
fn an_approved_payment_pays_the_order_and_debits_once() -> Result<()> {
    let s = shop();
    let order = s.order(2);
    let payment = s.pay(order)?;
    assert_eq!(payment.status, PaymentStatus::Approved);
    assert_eq!(payment.amount, won(20_000));
    assert_eq!(payment.order, Some(order));
    assert_eq!(
        (payment.balance_amount, payment.pg_amount),
        (won(19_000), PG_PART)
    );
    assert!(payment.pg_transaction_id.is_some());
    assert!(payment.failure.is_none());
    assert!(
        payment
            .payment_key
            .as_deref()
            .unwrap()
            .starts_with("fake_pk_")
    );
    assert!((6..=64).contains(&payment.pg_order_id.len()));
    assert_eq!(s.status(order), OrderStatus::Paid);
    assert_eq!(s.balance(), won(31_000));

    let newest = &s.ledger()[0];
    assert_eq!(
        (newest.kind, newest.amount, newest.payment),
        (LedgerKind::Payment, won(19_000), Some(payment.id))
    );
    s.assert_ledger_balances();
    assert_eq!(s.pg.approved_count(), 1);
    assert_eq!(s.pg.calls(&payment.idempotency_key), 1);
    assert_eq!(s.t.shop.payment(s.kim, payment.id)?, payment);

    let history = s.t.shop.payment_history(s.kim, payment.id)?;
    let statuses: Vec<PaymentStatus> = history.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            PaymentStatus::Started,
            PaymentStatus::Requested,
            PaymentStatus::Approved
        ]
    );
    Ok(())
}

#[test]
fn a_declined_payment_gives_the_money_back_and_the_order_can_be_paid_again() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    s.pg.push(FakeOutcome::decline());
    let err = s.pay(order).unwrap_err();
    let Error::PaymentDeclined {
        payment,
        order: o,
        code,
        ..
    } = &err
    else {
        panic!("expected a decline, got {err:?}");
    };
    assert_eq!((*o, code.as_str()), (order, "REJECT_CARD_PAYMENT"));
    assert_eq!(err.kind(), ErrorKind::PaymentDeclined);
    assert_eq!(s.status(order), OrderStatus::Pending);
    assert_eq!(s.balance(), won(50_000));
    let declined = s.t.shop.payment(s.kim, *payment)?;
    assert_eq!(declined.status, PaymentStatus::Declined);
    assert_eq!(
        declined.failure.as_ref().unwrap().code,
        "REJECT_CARD_PAYMENT"
    );
    let kinds: Vec<LedgerKind> = s.ledger().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            LedgerKind::PaymentReversal,
            LedgerKind::Payment,
            LedgerKind::HostCredit
        ]
    );
    s.assert_ledger_balances();

    // A new attempt gets its own pg_order_id and idempotency key.
    let second = s.pay(order)?;
    assert_eq!(second.status, PaymentStatus::Approved);
    assert_ne!(second.pg_order_id, declined.pg_order_id);
    assert_ne!(second.idempotency_key, declined.idempotency_key);
    assert_eq!(s.t.shop.payments_for_order(s.kim, order)?.len(), 2);
    assert_eq!(s.status(order), OrderStatus::Paid);
    assert_eq!(s.balance(), won(41_000));
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn an_unknown_outcome_holds_the_money_until_reconciliation_finds_it_approved() -> Result<()> {
    // The PG approved, but the shop never saw the reply.
    let s = shop();
    let order = s.order(1);
    s.pg.push(FakeOutcome::UnknownAfterCharge);
    let err = s.pay(order).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PaymentOutcomeUnknown);
    let Error::PaymentOutcomeUnknown { payment, .. } = err else {
        panic!("expected an unknown outcome, got {err:?}");
    };
    assert_eq!(s.status(order), OrderStatus::Paying);
    assert_eq!(s.balance(), won(41_000));
    assert_eq!(
        s.t.shop.payment(s.kim, payment)?.status,
        PaymentStatus::Unknown
    );

    // Within the grace period reconciliation leaves it alone.
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(
        (
            report.payments_in(PaymentStatus::Approved),
            report.payments_in(PaymentStatus::Declined),
            still_unknown(&report)
        ),
        (0, 0, 0)
    );

    s.past_grace();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(
        (
            report.payments_in(PaymentStatus::Approved),
            report.payments_in(PaymentStatus::Declined),
            still_unknown(&report)
        ),
        (1, 0, 0)
    );
    assert_eq!(s.status(order), OrderStatus::Paid);
    let settled = s.t.shop.payment(s.kim, payment)?;
    assert_eq!(settled.status, PaymentStatus::Approved);
    // Exactly one debit, and the approval was not sent again.
    assert_eq!(s.balance(), won(41_000));
    assert_eq!(s.pg.calls(&settled.idempotency_key), 1);
    assert_eq!(s.pg.approved_count(), 1);
    s.assert_ledger_balances();
    // Nothing left to do.
    assert_eq!(s.t.shop.reconcile_payments()?, Default::default());
    Ok(())
}

#[test]
fn a_never_received_approval_is_sent_again_with_the_same_key() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    s.pg.push(FakeOutcome::UnknownBeforeCharge);
    let payment = match s.pay(order) {
        Err(Error::PaymentOutcomeUnknown { payment, .. }) => payment,
        other => panic!("expected an unknown outcome, got {other:?}"),
    };
    s.past_grace();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Approved), 1);
    let settled = s.t.shop.payment(s.kim, payment)?;
    assert_eq!(settled.status, PaymentStatus::Approved);
    assert_eq!(s.pg.calls(&settled.idempotency_key), 2);
    assert_eq!(s.pg.approved_count(), 1);
    assert_eq!(s.balance(), won(41_000));
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn an_unknown_outcome_that_the_gateway_declines_on_resend_gives_the_money_back() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    s.pg.push(FakeOutcome::UnknownBeforeCharge);
    s.pg.push(FakeOutcome::decline());
    assert!(matches!(
        s.pay(order),
        Err(Error::PaymentOutcomeUnknown { .. })
    ));
    s.past_grace();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(
        (
            report.payments_in(PaymentStatus::Approved),
            report.payments_in(PaymentStatus::Declined)
        ),
        (0, 1)
    );
    assert_eq!(s.status(order), OrderStatus::Pending);
    assert_eq!(s.balance(), won(50_000));
    assert_eq!(s.only_payment(order).status, PaymentStatus::Declined);
    s.assert_ledger_balances();
    Ok(())
}

/// A gateway that dies (panics) when asked to approve: the process stopped
/// between the first transaction and the gateway call.
struct Crashing;

impl PaymentGateway for Crashing {
    fn approve(&self, _: &ApproveRequest) -> Result<Approval, GatewayError> {
        panic!("the process died before the request left");
    }
    fn status(&self, _: &StatusRequest) -> Result<PgStatus, GatewayError> {
        unreachable!()
    }
    fn cancel(&self, _: &CancelRequest) -> Result<Cancellation, GatewayError> {
        unreachable!()
    }
}

#[test]
fn a_crash_before_the_gateway_call_is_finished_by_reconciliation() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    let payment = s.crash_before_the_gateway_call(order);
    assert_eq!(payment.status, PaymentStatus::Requested);
    assert_eq!(s.status(order), OrderStatus::Paying);
    assert_eq!(s.balance(), won(41_000));

    s.past_grace();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments_in(PaymentStatus::Approved), 1);
    assert_eq!(s.status(order), OrderStatus::Paid);
    assert_eq!(s.pg.calls(&payment.idempotency_key), 1);
    assert_eq!(s.balance(), won(41_000));
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn a_crash_after_the_gateway_declined_is_recorded_as_declined_by_reconciliation() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    let payment = s.crash_before_the_gateway_call(order);
    // The request did reach the PG, which declined it; the shop never heard.
    s.pg.push(FakeOutcome::decline());
    let request = ApproveRequest {
        payment_key: payment.payment_key.clone().unwrap(),
        pg_order_id: payment.pg_order_id.clone(),
        amount: payment.pg_amount,
        currency: liteshop::Currency::KRW,
        tax_free_amount: liteshop::Money::ZERO,
        idempotency_key: payment.idempotency_key.clone(),
        order: Some(order),
    };
    assert!(matches!(
        s.pg.approve(&request),
        Err(GatewayError::Declined { .. })
    ));

    s.past_grace();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(
        (
            report.payments_in(PaymentStatus::Approved),
            report.payments_in(PaymentStatus::Declined)
        ),
        (0, 1)
    );
    let settled = s.t.shop.payment(s.kim, payment.id)?;
    assert_eq!(settled.status, PaymentStatus::Declined);
    assert_eq!(settled.failure.unwrap().code, "REJECT_CARD_PAYMENT");
    // Settled from the PG's status: the approval was not sent again.
    assert_eq!(s.pg.calls(&payment.idempotency_key), 1);
    assert_eq!(s.status(order), OrderStatus::Pending);
    assert_eq!(s.balance(), won(50_000));
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn an_unreachable_gateway_is_retried_with_the_same_key() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    s.pg.fail_unavailable(2);
    let payment = s.pay(order)?;
    assert_eq!(payment.status, PaymentStatus::Approved);
    assert_eq!(s.pg.calls(&payment.idempotency_key), 3);
    assert_eq!(s.pg.total_calls(), 3);
    assert_eq!(s.only_payment(order).id, payment.id);
    Ok(())
}

#[test]
fn a_gateway_unreachable_after_every_retry_gives_the_money_back() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    s.pg.fail_unavailable(3);
    let err = s.pay(order).unwrap_err();
    assert!(matches!(err, Error::GatewayUnavailable { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Busy);
    let payment = s.only_payment(order);
    assert_eq!(payment.status, PaymentStatus::Declined);
    assert_eq!(payment.failure.unwrap().code, "PG_UNAVAILABLE");
    assert_eq!(s.pg.calls(&payment.idempotency_key), 3);
    assert_eq!(s.status(order), OrderStatus::Pending);
    assert_eq!(s.balance(), won(50_000));
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn a_request_the_gateway_calls_invalid_is_an_internal_error_and_gives_the_money_back() {
    let s = shop();
    let order = s.order(1);
    s.pg.push(FakeOutcome::Invalid {
        code: "INVALID_API_KEY".into(),
        message: "bad key".into(),
    });
    let err = s.pay(order).unwrap_err();
    assert!(
        matches!(&err, Error::GatewayRejected { code, .. } if code == "INVALID_API_KEY"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(s.status(order), OrderStatus::Pending);
    assert_eq!(s.balance(), won(50_000));
}

#[test]
fn refusals_before_the_gateway_change_nothing() {
    let s = shop();
    let lee = s.t.user("Lee").id;
    let order = s.order(1);
    let big = s.order(3);
    let first = s.order(3);
    s.pay(first).unwrap(); // 21,000 left: not enough for `big`'s 29,000
    let started = s.order(1);
    let attempt = s.t.shop.start_payment(s.kim, started, Money::ZERO).unwrap();
    let widget = attempt.widget().unwrap();
    let cancelled = s.order(1);
    s.t.shop.cancel_order(s.kim, cancelled).unwrap();
    let before = s.t.dump();

    type Case = (Result<liteshop::Payment>, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (s.t.shop.start_payment(lee, order, Money::ZERO), |e| {
            matches!(e, Error::OrderNotFound(_))
        }),
        (
            s.t.shop
                .start_payment(s.kim, OrderId::new(999), Money::ZERO),
            |e| matches!(e, Error::OrderNotFound(_)),
        ),
        (
            s.t.shop.start_payment(s.kim, OrderId::new(0), Money::ZERO),
            |e| matches!(e, Error::InvalidId { .. }),
        ),
        (s.pay(big), |e| {
            matches!(e, Error::InsufficientBalance { needed, available, .. }
                if *needed == won(29_000) && *available == won(21_000))
        }),
        (s.t.shop.start_payment(s.kim, order, won(10_001)), |e| {
            matches!(e, Error::BalancePartTooLarge { total, balance_part, .. }
                if *total == won(10_000) && *balance_part == won(10_001))
        }),
        (s.pay(cancelled), |e| {
            matches!(
                e,
                Error::InvalidTransition {
                    from: OrderStatus::Cancelled,
                    to: OrderStatus::Paying,
                    ..
                }
            )
        }),
        (
            s.t.shop.confirm_payment(
                s.kim,
                attempt.id,
                &liteshop::PgRedirect {
                    payment_key: "bad key!".into(),
                    pg_order_id: widget.pg_order_id.clone(),
                    amount: widget.amount,
                },
            ),
            |e| matches!(e, Error::InvalidPaymentKey),
        ),
        // A tampered redirect: another amount, or another order id.
        (
            s.t.shop.confirm_payment(
                s.kim,
                attempt.id,
                &s.pg.pay_in_widget(&widget.pg_order_id, won(1)),
            ),
            |e| matches!(e, Error::RedirectMismatch { expected_amount, .. } if *expected_amount == won(10_000)),
        ),
        (
            s.t.shop.confirm_payment(
                s.kim,
                attempt.id,
                &s.pg.pay_in_widget("ls-999-deadbeef", widget.amount),
            ),
            |e| matches!(e, Error::RedirectMismatch { .. }),
        ),
        // Another user's started payment is not found.
        (
            s.t.shop
                .confirm_payment(lee, attempt.id, &s.pg.pay_widget(&widget)),
            |e| matches!(e, Error::PaymentNotFound(_)),
        ),
    ];
    for (result, expected) in cases {
        let err = result.unwrap_err();
        assert!(expected(&err), "{err:?}");
    }
    assert_eq!(s.t.dump(), before);
    assert_eq!(s.pg.total_calls(), 1);
}

#[test]
fn a_shop_without_a_gateway_refuses_to_pay_and_changes_nothing() {
    let t = common::open();
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(10_000)).unwrap();
    let tea = t.product("Tea", 1_000, 5).id;
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 1)])
        .unwrap()
        .id;
    let before = t.dump();
    let err = t.shop.start_payment(kim, order, won(999)).unwrap_err();
    assert!(matches!(err, Error::NoGateway), "{err:?}");
    assert!(err.to_string().contains("no payment gateway"));
    assert!(matches!(
        t.shop.start_top_up(kim, won(1_000)),
        Err(Error::NoGateway)
    ));
    assert!(matches!(t.shop.reconcile_payments(), Err(Error::NoGateway)));
    assert_eq!(t.dump(), before);

    // Wholly by balance needs no PG, and neither does its refund.
    let paid = t.shop.pay_from_balance(kim, order).unwrap();
    assert_eq!(
        (paid.status, paid.pg_amount),
        (PaymentStatus::Approved, Money::ZERO)
    );
    t.shop.refund(kim, order, "x").unwrap();
    assert_eq!(t.shop.balance(kim).unwrap(), won(10_000));
}

#[test]
fn a_zero_total_order_has_nothing_to_pay() {
    let s = shop();
    let free = s.t.product("Sample", 0, 5).id;
    let order =
        s.t.shop
            .place_order(s.kim, &[OrderLine::new(free, 1)])
            .unwrap()
            .id;
    let before = s.t.dump();
    let err = s.pay(order).unwrap_err();
    assert!(
        matches!(err, Error::NothingToPay { order: o } if o == order),
        "{err:?}"
    );
    assert_eq!(s.t.dump(), before);
}

#[test]
fn paid_and_paying_orders_cannot_be_paid_or_cancelled_again() -> Result<()> {
    let s = shop();
    let paid = s.order(1);
    s.pay(paid)?;
    let paying = s.order(1);
    s.pg.push(FakeOutcome::UnknownBeforeCharge);
    assert!(s.pay(paying).is_err());
    let before = s.t.dump();
    for (order, state) in [(paid, OrderStatus::Paid), (paying, OrderStatus::Paying)] {
        let err = s.pay(order).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTransition { from, .. } if from == state),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let err = s.t.shop.cancel_order(s.kim, order).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTransition { from, .. } if from == state),
            "{err:?}"
        );
    }
    // Expiry does not touch them either.
    s.t.clock.advance(s.t.shop.reservation_time());
    assert_eq!(s.t.shop.expire_orders()?, 0);
    assert_eq!(s.t.dump(), before);
    Ok(())
}

#[test]
fn the_confirm_sends_the_key_the_widget_issued_and_only_the_pg_part() -> Result<()> {
    let s = shop();
    let order = s.order(2);
    let started = s.t.shop.start_payment(s.kim, order, won(5_000))?;
    assert_eq!(started.status, PaymentStatus::Started);
    let widget = started.widget().unwrap();
    assert_eq!(widget.amount, won(15_000));
    assert_eq!(widget.order_name, "Tea");
    assert_eq!(s.balance(), won(45_000), "the balance part is held");
    let redirect = s.pg.pay_widget(&widget);
    let payment = s.t.shop.confirm_payment(s.kim, started.id, &redirect)?;
    assert_eq!(
        payment.payment_key.as_deref(),
        Some(redirect.payment_key.as_str())
    );
    assert_eq!(payment.status, PaymentStatus::Approved);
    assert_eq!(
        s.pg.approval(&payment.pg_order_id).unwrap().approved_amount,
        won(15_000),
        "the PG took its part only"
    );
    assert_eq!(s.balance(), won(45_000), "the balance took its part only");
    // A refreshed redirect returns the payment as it is and sends nothing.
    let calls = s.pg.total_calls();
    assert_eq!(
        s.t.shop.confirm_payment(s.kim, started.id, &redirect)?,
        payment
    );
    assert_eq!(s.pg.total_calls(), calls);
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn a_confirm_with_an_invented_key_is_declined_by_the_pg_and_gives_the_balance_part_back()
-> Result<()> {
    let s = shop();
    let order = s.order(1);
    let started = s.t.shop.start_payment(s.kim, order, won(4_000))?;
    let widget = started.widget().unwrap();
    let invented = liteshop::PgRedirect {
        payment_key: "lsk_invented".into(),
        pg_order_id: widget.pg_order_id.clone(),
        amount: widget.amount,
    };
    let err =
        s.t.shop
            .confirm_payment(s.kim, started.id, &invented)
            .unwrap_err();
    assert!(
        matches!(&err, Error::PaymentDeclined { code, .. } if code == "NOT_FOUND_PAYMENT"),
        "{err:?}"
    );
    assert_eq!(s.pg.approved_count(), 0);
    assert_eq!(s.balance(), won(50_000));
    assert_eq!(s.status(order), OrderStatus::Pending);
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn another_users_payment_is_not_found() -> Result<()> {
    let s = shop();
    let lee = s.t.user("Lee").id;
    let order = s.order(1);
    let payment = s.pay(order)?;
    assert!(matches!(
        s.t.shop.payment(lee, payment.id),
        Err(Error::PaymentNotFound(_))
    ));
    assert!(matches!(
        s.t.shop.payment_history(lee, payment.id),
        Err(Error::PaymentNotFound(_))
    ));
    assert!(matches!(
        s.t.shop.payments_for_order(lee, order),
        Err(Error::OrderNotFound(_))
    ));
    assert!(matches!(
        s.t.shop.refund(lee, order, "mine"),
        Err(Error::OrderNotFound(_))
    ));
    Ok(())
}

#[test]
fn money_held_by_a_payment_in_flight_counts_against_the_balance_limit() -> Result<()> {
    let s = shop_with(|b| b.max_balance(won(50_000)));
    let order = s.order(1);
    s.pg.push(FakeOutcome::UnknownBeforeCharge);
    assert!(s.pay(order).is_err());
    assert_eq!(s.balance(), won(41_000));

    let err = s.t.shop.host_credit(s.kim, won(1)).unwrap_err();
    assert!(
        matches!(err, Error::BalanceLimitExceeded { balance, held, .. }
            if balance == won(41_000) && held == won(9_000)),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_payment_unsettled_past_the_review_age_is_reported_and_never_declined() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    s.pg.push(FakeOutcome::UnknownBeforeCharge);
    assert!(s.pay(order).is_err());
    let unknown = || GatewayError::Unknown {
        reason: "timeout".into(),
    };

    s.past_grace();
    s.pg.fail_status(unknown());
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!((still_unknown(&report), review(&report).len()), (1, 0));

    s.t.clock.advance(Duration::from_secs(3_600));
    s.pg.fail_status(unknown());
    let report = s.t.shop.reconcile_payments()?;
    let payment = s.only_payment(order);
    assert_eq!(review(&report), vec![payment.id]);
    assert_eq!(payment.status, PaymentStatus::Unknown);
    assert_eq!(s.status(order), OrderStatus::Paying);
    assert_eq!(s.balance(), won(41_000));
    Ok(())
}

#[test]
fn the_background_reconciler_settles_payments_and_stops_when_dropped() -> Result<()> {
    let s = shop_with(|b| b.reconcile_grace(Duration::ZERO));
    let order = s.order(1);
    s.pg.push(FakeOutcome::UnknownAfterCharge);
    assert!(s.pay(order).is_err());

    let reconciler = s.t.shop.spawn_reconciler(Duration::from_millis(5));
    // Bounded wait for the thread's first rounds; the assertion is on the
    // outcome, not on how fast it came.
    let mut status = OrderStatus::Paying;
    for _ in 0..1_000 {
        status = s.status(order);
        if status == OrderStatus::Paid {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    reconciler.stop();
    assert_eq!(status, OrderStatus::Paid);
    assert_eq!(s.balance(), won(41_000));
    Ok(())
}

#[test]
fn ten_threads_paying_ten_orders_from_one_balance_pay_exactly_five() -> Result<()> {
    let s = shop();
    let orders: Vec<OrderId> = (0..10).map(|_| s.order(1)).collect();
    let results = common::race(10, |i| s.pay(orders[i]));
    let paid = results.iter().filter(|r| r.is_ok()).count();
    let short = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InsufficientBalance { .. })))
        .count();
    assert_eq!((paid, short), (5, 5), "{results:?}");
    assert_eq!(
        s.balance(),
        won(5_000),
        "50,000 less five balance parts of 9,000"
    );
    assert_eq!(s.pg.approved_count(), 5);
    assert_eq!(s.pg.total_calls(), 5);
    let statuses: Vec<OrderStatus> = orders.iter().map(|&o| s.status(o)).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|&&st| st == OrderStatus::Paid)
            .count(),
        5
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|&&st| st == OrderStatus::Pending)
            .count(),
        5
    );
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn ten_threads_paying_one_order_make_one_payment_and_one_gateway_call() -> Result<()> {
    let s = shop();
    let order = s.order(2);
    // A slow gateway keeps the first payment in flight while the others try.
    s.pg.set_delay(Duration::from_millis(20));
    let results = common::race(10, |_| s.pay(order));
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(
                e,
                Error::InvalidTransition {
                    from: OrderStatus::Paying | OrderStatus::Paid,
                    ..
                }
            ))
    );
    assert_eq!(s.only_payment(order).status, PaymentStatus::Approved);
    assert_eq!(s.pg.total_calls(), 1);
    assert_eq!(s.balance(), won(31_000));
    Ok(())
}

#[test]
fn pay_and_reconciliation_racing_on_one_payment_record_one_outcome() -> Result<()> {
    // The approval is slow; reconciliation (with no grace) finds the payment
    // Requested meanwhile, asks, and re-sends with the same key.
    let s = shop_with(|b| b.reconcile_grace(Duration::ZERO));
    let (t, pg, kim) = (&s.t, &s.pg, s.kim);
    t.shop.host_credit(kim, won(50_000))?;
    for _ in 0..10 {
        let order = s.order(1);
        pg.set_delay(Duration::from_millis(10));
        let results = common::race(2, |i| {
            if i == 0 {
                s.pay(order).map(|_| ())
            } else {
                t.shop.reconcile_payments().map(|_| ())
            }
        });
        assert!(results[1].is_ok(), "{results:?}");
        pg.set_delay(Duration::ZERO);
        t.shop.reconcile_payments()?;
        let payments = t.shop.payments_for_order(kim, order)?;
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0].status, PaymentStatus::Approved);
        assert_eq!(t.shop.order(kim, order)?.status, OrderStatus::Paid);
    }
    // Ten orders of 10,000, each debited exactly once.
    assert_eq!(
        s.balance(),
        won(10_000),
        "each debited its balance part once"
    );
    assert_eq!(pg.approved_count(), 10);
    let ledger = t.shop.ledger(kim, PageRequest::first(100))?.items;
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.kind == LedgerKind::Payment)
            .count(),
        10
    );
    assert!(ledger.iter().all(|e| e.kind != LedgerKind::PaymentReversal));
    Ok(())
}

/// A gateway that approves (or cancels), and then, before the shop can
/// record it, lets another process take the database's write lock and keep
/// it.
struct AnswerThenLock {
    fake: FakeGateway,
    path: std::path::PathBuf,
    lock: std::sync::Mutex<Option<rusqlite::Connection>>,
}

impl AnswerThenLock {
    fn new(s: &PayShop) -> std::sync::Arc<AnswerThenLock> {
        std::sync::Arc::new(AnswerThenLock {
            fake: s.pg.clone(),
            path: s.t.path.clone(),
            lock: std::sync::Mutex::new(None),
        })
    }

    /// A shop on the same file that answers through `gateway` and waits
    /// only 50 ms for the write lock.
    fn shop(s: &PayShop, gateway: &std::sync::Arc<AnswerThenLock>) -> Result<Shop> {
        Shop::builder(&s.t.path)
            .gateway(gateway.clone())
            .busy_timeout(Duration::from_millis(50))
            .clock(s.t.clock.clone())
            .build()
    }

    fn take_the_lock(&self) {
        let other = rusqlite::Connection::open(&self.path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        *self.lock.lock().unwrap() = Some(other);
    }

    /// The other process lets go.
    fn let_go(&self) {
        drop(self.lock.lock().unwrap().take());
    }
}

impl PaymentGateway for AnswerThenLock {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        self.take_the_lock();
        self.fake.approve(request)
    }
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        self.fake.status(request)
    }
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        self.take_the_lock();
        self.fake.cancel(request)
    }
}

#[test]
fn an_approval_that_cannot_be_recorded_is_reported_unknown_and_reconciled() -> Result<()> {
    if common::sqlite_only("it holds SQLite's write lock from another connection") {
        return Ok(());
    }
    let s = shop();
    let order = s.order(1);
    let gateway = AnswerThenLock::new(&s);
    let locking = AnswerThenLock::shop(&s, &gateway)?;
    let err = s.pay_on(&locking, order).unwrap_err();
    assert!(
        matches!(err, Error::PaymentOutcomeUnknown { order: o, .. } if o == order),
        "{err:?}"
    );
    gateway.let_go();

    // The PG approved; the shop holds the money with the payment unsettled.
    assert_eq!(s.only_payment(order).status, PaymentStatus::Requested);
    assert_eq!(s.balance(), won(41_000));
    s.past_grace();
    assert_eq!(
        s.t.shop
            .reconcile_payments()?
            .payments_in(PaymentStatus::Approved),
        1
    );
    assert_eq!(s.status(order), OrderStatus::Paid);
    assert_eq!(s.pg.approved_count(), 1);
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn a_cancel_that_cannot_be_recorded_is_reported_unknown_and_reconciled() -> Result<()> {
    if common::sqlite_only("it holds SQLite's write lock from another connection") {
        return Ok(());
    }
    let s = shop();
    let order = s.order(1);
    s.pay(order)?;
    assert_eq!(s.balance(), won(41_000));
    let gateway = AnswerThenLock::new(&s);
    let locking = AnswerThenLock::shop(&s, &gateway)?;
    let err = locking.refund(s.kim, order, "changed my mind").unwrap_err();
    assert!(
        matches!(err, Error::RefundOutcomeUnknown { order: o, .. } if o == order),
        "{err:?}"
    );
    gateway.let_go();

    // The PG gave the card part back; the shop has not recorded it yet.
    let refunds = s.t.shop.refunds(s.kim, order)?;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].status, RefundStatus::Requested);
    assert_eq!(s.status(order), OrderStatus::Paid);
    assert_eq!(s.balance(), won(41_000));
    s.past_grace();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.refunds.len(), 1, "{report:?}");
    assert_eq!(report.refunds[0].status, RefundStatus::Completed);
    assert_eq!(s.status(order), OrderStatus::Refunded);
    assert_eq!(
        s.balance(),
        won(50_000),
        "the balance part is given back once"
    );
    let pg_order_id = s.only_payment(order).pg_order_id;
    assert_eq!(s.pg.cancels(&pg_order_id).len(), 1, "cancelled once");
    assert_eq!(s.pg.cancelled(&pg_order_id), PG_PART);
    s.assert_ledger_balances();
    Ok(())
}

/// An order past its reservation time is expired for `pay` as for
/// `place_order`, even before a sweep has run.
#[test]
fn an_order_past_its_reservation_cannot_be_paid_and_nothing_changes() -> Result<()> {
    let s = shop();
    let order = s.order(1);
    s.t.clock.advance(ShopBuilder::DEFAULT_RESERVATION_TIME);
    let before = s.t.dump();
    let err = s.pay(order).unwrap_err();
    assert!(
        matches!(err, Error::OrderExpired { order: o, .. } if o == order),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(s.t.dump(), before);
    assert_eq!(s.pg.total_calls(), 0);
    Ok(())
}

#[test]
fn a_started_payment_nobody_confirms_expires_gives_the_balance_part_back_and_refuses_its_confirm()
-> Result<()> {
    let s = shop_with(|b| b.payment_window(Duration::from_secs(600)));
    let order = s.order(2);
    let started = s.t.shop.start_payment(s.kim, order, won(5_000))?;
    let redirect = s.pg.pay_widget(&started.widget().unwrap());
    assert_eq!(s.balance(), won(45_000));
    s.t.clock.advance(Duration::from_secs(601));

    // Past the window a confirm is refused, changes nothing, sends nothing.
    let before = s.t.dump();
    let err =
        s.t.shop
            .confirm_payment(s.kim, started.id, &redirect)
            .unwrap_err();
    assert!(
        matches!(err, Error::PaymentExpired { payment, .. } if payment == started.id),
        "{err:?}"
    );
    assert_eq!(s.t.dump(), before);
    assert_eq!(s.pg.total_calls(), 0);

    // Expiry ends it: the balance part comes back, the order is payable again.
    assert_eq!(s.t.shop.expire_payments()?, 1);
    assert_eq!(s.t.shop.expire_payments()?, 0);
    let ended = s.t.shop.payment(s.kim, started.id)?;
    assert_eq!(ended.status, PaymentStatus::Declined);
    assert_eq!(ended.failure.unwrap().code, "CONFIRM_WINDOW_EXPIRED");
    assert_eq!(s.balance(), won(50_000));
    assert_eq!(s.status(order), OrderStatus::Pending);
    // A late redirect returns the ended attempt as it is.
    assert_eq!(
        s.t.shop
            .confirm_payment(s.kim, started.id, &redirect)?
            .status,
        PaymentStatus::Declined
    );
    assert_eq!(s.pg.total_calls(), 0);
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn the_pgs_failure_redirect_ends_the_attempt_at_once_and_gives_the_balance_part_back() -> Result<()>
{
    let s = shop();
    let order = s.order(1);
    let started = s.t.shop.start_payment(s.kim, order, won(3_000))?;
    let fail = liteshop::PgFailRedirect {
        code: "PAY_PROCESS_CANCELED".into(),
        message: "the customer closed the widget".into(),
        pg_order_id: started.pg_order_id.clone(),
    };
    // Another order id is refused and changes nothing.
    let before = s.t.dump();
    let wrong = liteshop::PgFailRedirect {
        pg_order_id: "ls-1-00000000".into(),
        ..fail.clone()
    };
    assert!(matches!(
        s.t.shop.fail_payment(s.kim, started.id, &wrong),
        Err(Error::RedirectMismatch { .. })
    ));
    assert_eq!(s.t.dump(), before);
    // So is a code or message a browser could not have been sent.
    for bad in [
        liteshop::PgFailRedirect {
            code: String::new(),
            ..fail.clone()
        },
        liteshop::PgFailRedirect {
            code: "PAY PROCESS".into(),
            ..fail.clone()
        },
        liteshop::PgFailRedirect {
            message: "a\u{7}bell".into(),
            ..fail.clone()
        },
        liteshop::PgFailRedirect {
            message: "x".repeat(501),
            ..fail.clone()
        },
    ] {
        assert!(matches!(
            s.t.shop.fail_payment(s.kim, started.id, &bad),
            Err(Error::InvalidFailRedirect)
        ));
    }
    assert_eq!(s.t.dump(), before);

    let ended = s.t.shop.fail_payment(s.kim, started.id, &fail)?;
    assert_eq!(ended.status, PaymentStatus::Declined);
    assert_eq!(ended.failure.unwrap().code, "PAY_PROCESS_CANCELED");
    assert_eq!(s.balance(), won(50_000));
    assert_eq!(s.status(order), OrderStatus::Pending);
    assert_eq!(s.pg.total_calls(), 0);
    // Paying again is a new attempt.
    assert_eq!(s.pay(order)?.status, PaymentStatus::Approved);
    s.assert_ledger_balances();
    Ok(())
}

#[test]
fn a_top_up_is_credited_once_under_twenty_concurrent_confirms() -> Result<()> {
    let s = shop();
    let started = s.t.shop.start_top_up(s.kim, won(30_000))?;
    assert_eq!(s.balance(), won(50_000), "nothing before the PG approves");
    let redirect = s.pg.pay_widget(&started.widget().unwrap());
    s.pg.set_delay(Duration::from_millis(10));
    let results = common::race(20, |_| {
        s.t.shop.confirm_payment(s.kim, started.id, &redirect)
    });
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(s.balance(), won(80_000));
    assert_eq!(s.pg.approved_count(), 1);
    assert_eq!(s.pg.calls(&started.idempotency_key), 1);
    let top_ups: Vec<LedgerKind> = s
        .ledger()
        .iter()
        .filter(|e| e.kind == LedgerKind::TopUp)
        .map(|e| e.kind)
        .collect();
    assert_eq!(top_ups.len(), 1);
    s.assert_ledger_balances();
    assert!(s.t.shop.audit()?.is_clean());
    Ok(())
}

#[test]
fn a_declined_top_up_credits_nothing_and_over_the_limits_is_refused_untouched() -> Result<()> {
    let s = shop_with(|b| b.max_charge(won(50_000)).max_balance(won(100_000)));
    let before = s.t.dump();
    assert!(matches!(
        s.t.shop.start_top_up(s.kim, won(50_001)),
        Err(Error::ChargeLimitExceeded { .. })
    ));
    assert_eq!(s.t.dump(), before);
    let started = s.t.shop.start_top_up(s.kim, won(40_000))?; // 50,000 + 40,000 in flight
    assert!(matches!(
        s.t.shop.start_top_up(s.kim, won(10_001)),
        Err(Error::BalanceLimitExceeded { held, .. }) if held == won(40_000)
    ));
    s.pg.push(FakeOutcome::decline());
    let err =
        s.t.shop
            .confirm_payment(
                s.kim,
                started.id,
                &s.pg.pay_widget(&started.widget().unwrap()),
            )
            .unwrap_err();
    assert!(
        matches!(err, Error::TopUpDeclined { payment, .. } if payment == started.id),
        "{err:?}"
    );
    assert_eq!(s.balance(), won(50_000));
    s.assert_ledger_balances();
    Ok(())
}

/// Tops Kim up by `amount` through the PG; the top-up's id.
fn topped_up(s: &PayShop, amount: i64) -> PaymentId {
    let started = s.t.shop.start_top_up(s.kim, won(amount)).unwrap();
    let redirect = s.pg.pay_widget(&started.widget().unwrap());
    s.t.shop
        .confirm_payment(s.kim, started.id, &redirect)
        .unwrap();
    started.id
}

#[test]
fn a_top_up_goes_back_to_the_card_only_while_its_money_is_unspent() -> Result<()> {
    let s = shop();
    let top_up = topped_up(&s, 30_000);
    let pg_order = s.t.shop.payment(s.kim, top_up)?.pg_order_id;
    assert_eq!(s.balance(), won(80_000));

    // Refusals change nothing: more than the top-up, zero, no reason,
    // another user's top-up, a payment of an order.
    let order = s.order(1);
    let paid = s.pay(order)?;
    let before = s.t.dump();
    assert!(matches!(
        s.t.shop.refund_top_up(s.kim, top_up, won(30_001), "too much"),
        Err(Error::RefundExceedsTopUp { refundable, .. }) if refundable == won(30_000)
    ));
    assert!(matches!(
        s.t.shop
            .refund_top_up(s.kim, top_up, Money::ZERO, "nothing"),
        Err(Error::ZeroAmount)
    ));
    assert!(matches!(
        s.t.shop.refund_top_up(s.kim, top_up, won(1), ""),
        Err(Error::InvalidRefundReason { .. })
    ));
    assert!(matches!(
        s.t.shop.refund_top_up(s.kim, paid.id, won(1), "an order's"),
        Err(Error::TopUpNotRefundable { .. })
    ));
    assert_eq!(s.t.dump(), before);
    let lee = s.t.user("Lee").id;
    let with_lee = s.t.dump();
    assert!(matches!(
        s.t.shop.refund_top_up(lee, top_up, won(1), "not mine"),
        Err(Error::PaymentNotFound(_))
    ));
    assert_eq!(s.t.dump(), with_lee);

    // Spend all but 5,000 of the balance: only that much can go back.
    let balance = s.balance();
    s.t.shop.take_back(
        s.kim,
        balance.checked_sub(won(5_000)).unwrap(),
        "spent elsewhere",
    )?;
    let before = s.t.dump();
    assert!(matches!(
        s.t.shop.refund_top_up(s.kim, top_up, won(5_001), "all of it"),
        Err(Error::InsufficientBalance { available, .. }) if available == won(5_000)
    ));
    assert_eq!(s.t.dump(), before);

    // Declined at the PG: the amount comes back to the balance.
    s.pg.push_cancel(FakeOutcome::decline());
    assert!(matches!(
        s.t.shop.refund_top_up(s.kim, top_up, won(4_000), "first try"),
        Err(Error::TopUpRefundDeclined { payment, .. }) if payment == top_up
    ));
    assert_eq!(s.balance(), won(5_000));
    assert_eq!(s.pg.cancelled(&pg_order), Money::ZERO);

    // No answer: the amount stays out of the balance until reconciliation.
    s.pg.push_cancel(FakeOutcome::UnknownBeforeCharge);
    let unknown =
        s.t.shop
            .refund_top_up(s.kim, top_up, won(4_000), "second try");
    let Err(Error::TopUpRefundOutcomeUnknown { refund, .. }) = unknown else {
        panic!("{unknown:?}");
    };
    assert_eq!(s.balance(), won(1_000));
    assert!(matches!(
        s.t.shop.refund_top_up(s.kim, top_up, won(1_000), "meanwhile"),
        Err(Error::TopUpRefundInProgress { refund: r, .. }) if r == refund
    ));
    assert!(s.t.shop.audit()?.is_clean());
    s.t.clock.advance(Duration::from_secs(120));
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.refunds.len(), 1, "{report:?}");
    assert_eq!(report.refunds[0].order, None);
    let refunds = s.t.shop.top_up_refunds(s.kim, top_up)?;
    assert_eq!(refunds.len(), 2, "the refused third try left no attempt");
    assert_eq!(refunds[0].status, RefundStatus::Declined);
    assert_eq!(refunds[1].status, RefundStatus::Completed);
    assert_eq!(s.pg.cancelled(&pg_order), won(4_000));
    assert_eq!(s.balance(), won(1_000));

    // The rest of what is unspent, exactly once under one key.
    let key = liteshop::IdempotencyKey::new("refund-the-rest", "fp");
    for _ in 0..2 {
        let rest =
            s.t.shop
                .idempotent(&key)
                .refund_top_up(s.kim, top_up, won(1_000), "the rest")?;
        assert_eq!(rest.value().status, liteshop::RefundStatus::Completed);
    }
    assert_eq!(s.pg.cancelled(&pg_order), won(5_000));
    assert_eq!(s.balance(), Money::ZERO);
    let payment = s.t.shop.payment(s.kim, top_up)?;
    assert_eq!(
        (payment.status, payment.refunded, payment.pg_refunded),
        (PaymentStatus::Approved, won(5_000), won(5_000))
    );
    let kinds: Vec<LedgerKind> = s.ledger().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[..4],
        [
            LedgerKind::TopUpRefund,
            LedgerKind::TopUpRefund,
            LedgerKind::TopUpRefundReversal,
            LedgerKind::TopUpRefund
        ]
    );
    s.assert_ledger_balances();
    assert!(s.t.shop.audit()?.is_clean());
    Ok(())
}

#[test]
fn a_whole_top_up_refund_leaves_it_refunded() -> Result<()> {
    let s = shop();
    let top_up = topped_up(&s, 20_000);
    let refund =
        s.t.shop
            .refund_top_up(s.kim, top_up, won(20_000), "not needed")?;
    assert_eq!(
        (refund.order, refund.pg_amount, refund.balance_amount),
        (None, won(20_000), Money::ZERO)
    );
    assert_eq!(s.balance(), won(50_000));
    assert_eq!(
        s.t.shop.payment(s.kim, top_up)?.status,
        PaymentStatus::Refunded
    );
    assert!(matches!(
        s.t.shop.refund_top_up(s.kim, top_up, won(1), "again"),
        Err(Error::TopUpNotRefundable {
            status: PaymentStatus::Refunded,
            ..
        })
    ));
    assert!(s.t.shop.audit()?.is_clean());
    Ok(())
}

/// A gateway that answers for one won less than it was asked: it approves,
/// and cancels, some other amount.
struct ShortByOneWon(FakeGateway);

impl PaymentGateway for ShortByOneWon {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        let mut approval = self.0.approve(request)?;
        approval.approved_amount = approval.approved_amount.checked_sub(won(1)).unwrap();
        Ok(approval)
    }
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        self.0.status(request)
    }
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        let mut cancellation = self.0.cancel(request)?;
        cancellation.cancelled_amount = cancellation.cancelled_amount.checked_sub(won(1)).unwrap();
        Ok(cancellation)
    }
}

/// An answer for another amount than asked moves nothing on its word: the
/// payment (and the refund) is held as unknown, for a person.
#[test]
fn an_approval_or_a_cancel_of_another_amount_is_held_as_unknown() -> Result<()> {
    let s = shop();
    let short =
        s.t.builder()
            .gateway(ShortByOneWon(s.pg.clone()))
            .gateway_retry(FAST_RETRY)
            .clock(s.t.clock.clone())
            .build()?;

    let order = s.order(1);
    let err = s.pay_on(&short, order).unwrap_err();
    assert!(
        matches!(err, Error::PaymentOutcomeUnknown { order: o, .. } if o == order),
        "{err:?}"
    );
    let payment = s.only_payment(order);
    assert_eq!(payment.status, PaymentStatus::Unknown);
    assert_eq!(s.status(order), OrderStatus::Paying);
    assert_eq!(s.balance(), won(41_000), "the balance part stays held");

    let paid = s.order(1);
    s.pay(paid)?;
    let before = s.balance();
    let err = short.refund(s.kim, paid, "changed my mind").unwrap_err();
    assert!(
        matches!(err, Error::RefundOutcomeUnknown { order: o, .. } if o == paid),
        "{err:?}"
    );
    let refunds = s.t.shop.refunds(s.kim, paid)?;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].status, RefundStatus::Unknown);
    assert_eq!(s.status(paid), OrderStatus::Paid);
    assert_eq!(s.balance(), before, "nothing is given back on its word");
    s.assert_ledger_balances();
    Ok(())
}
