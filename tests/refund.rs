//! Refunds, exactly once, whole or partial — every outcome, every refusal,
//! and the races — against the FakeGateway.

mod common;

use std::time::Duration;

use common::{TestShop, open_with, race, won};
use liteshop::{
    Approval, ApproveRequest, CancelRequest, Cancellation, Error, ErrorKind, FakeGateway,
    FakeOutcome, GatewayError, LedgerKind, Money, OrderId, OrderLine, OrderStatus, PageRequest,
    PaymentGateway, PaymentStatus, PgStatus, ProductId, RefundStatus, Result, RetryPolicy,
    ShopBuilder, StatusRequest, UserId,
};

const FAST_RETRY: RetryPolicy = RetryPolicy {
    retries: 2,
    base: Duration::from_millis(1),
};

struct RefundShop {
    t: TestShop,
    pg: FakeGateway,
    kim: UserId,
    tea: ProductId,
    cup: ProductId,
}

/// Kim holds 100,000 won; tea costs 10,000 (stock 20), cups 3,000 (stock
/// 10). Reconciliation waits a minute; review after an hour.
fn shop() -> RefundShop {
    shop_with(|b| b)
}

fn shop_with(configure: impl FnOnce(ShopBuilder) -> ShopBuilder) -> RefundShop {
    let pg = FakeGateway::new();
    let gateway = pg.clone();
    let t = open_with(move |b| {
        configure(
            b.gateway(gateway)
                .gateway_retry(FAST_RETRY)
                .reconcile_grace(Duration::from_secs(60))
                .review_after(Duration::from_secs(3_600)),
        )
    });
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(100_000)).unwrap();
    let tea = t.product("Tea", 10_000, 20).id;
    let cup = t.product("Cup", 3_000, 10).id;
    RefundShop {
        t,
        pg,
        kim,
        tea,
        cup,
    }
}

impl RefundShop {
    /// A paid order of `tea` teas and `cups` cups.
    fn paid(&self, tea: u32, cups: u32) -> OrderId {
        let mut lines = vec![OrderLine::new(self.tea, tea)];
        if cups > 0 {
            lines.push(OrderLine::new(self.cup, cups));
        }
        let order = self.t.shop.place_order(self.kim, &lines).unwrap();
        common::pay_by_card(&self.t.shop, &self.pg, self.kim, order.id).unwrap();
        order.id
    }

    /// A paid order of `tea` teas and `cups` cups, `balance_part` of it
    /// from the balance and the rest by card.
    fn paid_by(&self, tea: u32, cups: u32, balance_part: Money) -> OrderId {
        let mut lines = vec![OrderLine::new(self.tea, tea)];
        if cups > 0 {
            lines.push(OrderLine::new(self.cup, cups));
        }
        let order = self.t.shop.place_order(self.kim, &lines).unwrap();
        common::pay_split(&self.t.shop, &self.pg, self.kim, order.id, balance_part).unwrap();
        order.id
    }

    fn balance(&self) -> Money {
        self.t.shop.balance(self.kim).unwrap()
    }

    fn status(&self, order: OrderId) -> OrderStatus {
        self.t.shop.order(self.kim, order).unwrap().status
    }

    fn stock(&self, product: ProductId) -> (u32, u32) {
        let p = self.t.shop.product(product).unwrap();
        (p.stock, p.held)
    }

    fn pg_order_id(&self, order: OrderId) -> String {
        self.t.shop.payments_for_order(self.kim, order).unwrap()[0]
            .pg_order_id
            .clone()
    }

    /// The balance equals its ledger, and the PG cancelled exactly what the
    /// shop's completed refunds gave back.
    fn assert_books(&self, order: OrderId) {
        common::assert_ledger_balances(&self.t.shop, self.kim);
        let payment = &self.t.shop.payments_for_order(self.kim, order).unwrap()[0];
        let refunds = self.t.shop.refunds(self.kim, order).unwrap();
        let done = || {
            refunds
                .iter()
                .filter(|r| r.status == RefundStatus::Completed)
        };
        let completed = Money::checked_sum(done().map(|r| r.amount)).unwrap();
        let by_pg = Money::checked_sum(done().map(|r| r.pg_amount)).unwrap();
        assert_eq!(payment.refunded, completed, "payment's refunded money");
        assert_eq!(payment.pg_refunded, by_pg, "payment's refunded PG part");
        assert_eq!(
            self.pg.cancelled(&payment.pg_order_id),
            by_pg,
            "the PG's cancels: the refunds' PG parts"
        );
        assert!(by_pg <= payment.pg_amount);
        assert!(completed <= payment.amount);
    }

    fn past_grace(&self) {
        self.t.clock.advance(Duration::from_secs(61));
    }
}

#[test]
fn a_whole_refund_credits_releases_and_moves_the_order_to_refunded() -> Result<()> {
    let s = shop();
    // 29,000: 9,000 from the balance, 20,000 by card.
    let order = s.paid_by(2, 3, won(9_000));
    assert_eq!(s.balance(), won(91_000));
    assert_eq!(s.stock(s.tea), (18, 2));

    let refund = s.t.shop.refund(s.kim, order, "changed my mind")?;
    assert_eq!(refund.status, RefundStatus::Completed);
    assert_eq!(refund.amount, won(29_000));
    assert_eq!(refund.reason, "changed my mind");
    assert_eq!(
        (refund.pg_amount, refund.balance_amount),
        (won(20_000), won(9_000)),
        "each part back the way it came"
    );
    let lines: Vec<(ProductId, u32, Money)> = refund
        .lines
        .iter()
        .map(|l| (l.product, l.quantity, l.amount))
        .collect();
    assert_eq!(
        lines,
        [(s.tea, 2, won(20_000)), (s.cup, 3, won(9_000))],
        "every unit left"
    );
    assert_eq!(s.balance(), won(100_000));
    assert_eq!((s.stock(s.tea), s.stock(s.cup)), ((20, 0), (10, 0)));
    let after = s.t.shop.order(s.kim, order)?;
    assert_eq!(
        (after.status, after.refunded),
        (OrderStatus::Refunded, won(29_000))
    );
    let payment = &s.t.shop.payments_for_order(s.kim, order)?[0];
    assert_eq!(payment.status, PaymentStatus::Refunded);
    assert!(s.pg.is_cancelled(&payment.pg_order_id));
    let newest = &s.t.shop.ledger(s.kim, PageRequest::first(1))?.items[0];
    assert_eq!(
        (newest.kind, newest.amount, newest.payment, newest.refund),
        (
            LedgerKind::Refund,
            won(9_000),
            Some(payment.id),
            Some(refund.id)
        )
    );
    let history: Vec<PaymentStatus> =
        s.t.shop
            .payment_history(s.kim, payment.id)?
            .iter()
            .map(|e| e.status)
            .collect();
    assert_eq!(
        history,
        [
            PaymentStatus::Started,
            PaymentStatus::Requested,
            PaymentStatus::Approved,
            PaymentStatus::Refunded
        ]
    );
    s.assert_books(order);

    // Nothing is left: a second refund is refused and changes nothing.
    let before = s.t.dump();
    let err = s.t.shop.refund(s.kim, order, "again").unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidTransition {
                from: OrderStatus::Refunded,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.t.dump(), before);
    Ok(())
}

#[test]
fn partial_refunds_add_up_to_exactly_what_was_paid() -> Result<()> {
    let s = shop();
    let order = s.paid(3, 2); // 36,000
    let one =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "one")?;
    assert_eq!(
        (one.status, one.amount),
        (RefundStatus::Completed, won(10_000))
    );
    let after = s.t.shop.order(s.kim, order)?;
    assert_eq!(
        (after.status, after.refunded),
        (OrderStatus::PartiallyRefunded, won(10_000))
    );
    let refunded: Vec<u32> = after.lines.iter().map(|l| l.refunded).collect();
    assert_eq!(refunded, [1, 0]);
    assert_eq!(s.stock(s.tea), (18, 2));
    let payment = &s.t.shop.payments_for_order(s.kim, order)?[0];
    assert_eq!(
        (payment.status, payment.refunded),
        (PaymentStatus::Approved, won(10_000))
    );
    s.assert_books(order);

    // Lines asked in any order; another partial refund keeps the state.
    let two = s.t.shop.refund_lines(
        s.kim,
        order,
        &[OrderLine::new(s.cup, 2), OrderLine::new(s.tea, 1)],
        "two more",
    )?;
    assert_eq!(two.amount, won(16_000));
    assert_eq!(s.status(order), OrderStatus::PartiallyRefunded);

    // The rest: the last tea.
    let rest = s.t.shop.refund(s.kim, order, "the rest")?;
    assert_eq!(rest.amount, won(10_000));
    assert_eq!(s.status(order), OrderStatus::Refunded);
    assert_eq!(s.balance(), won(100_000));
    assert_eq!((s.stock(s.tea), s.stock(s.cup)), ((20, 0), (10, 0)));
    assert_eq!(s.t.shop.refunds(s.kim, order)?.len(), 3);
    // Three attempts, three keys.
    let keys: std::collections::HashSet<String> =
        s.t.shop
            .refunds(s.kim, order)?
            .into_iter()
            .map(|r| r.idempotency_key)
            .collect();
    assert_eq!(keys.len(), 3);
    s.assert_books(order);
    Ok(())
}

#[test]
fn a_declined_refund_moves_nothing_and_a_retry_is_a_new_attempt_with_a_new_key() -> Result<()> {
    let s = shop();
    let order = s.paid(2, 0);
    s.pg.push_cancel(FakeOutcome::Decline {
        code: "EXCEED_CANCEL_LIMIT".into(),
        message: "try again tomorrow".into(),
    });
    let balance = s.balance();
    let err = s.t.shop.refund(s.kim, order, "broken").unwrap_err();
    let Error::RefundDeclined {
        order: o,
        refund,
        ref code,
        ..
    } = err
    else {
        panic!("expected RefundDeclined, got {err:?}");
    };
    assert_eq!((o, code.as_str()), (order, "EXCEED_CANCEL_LIMIT"));
    assert_eq!(err.kind(), ErrorKind::PaymentDeclined);
    assert_eq!(s.balance(), balance);
    assert_eq!(s.status(order), OrderStatus::Paid);
    assert_eq!(s.stock(s.tea), (18, 2));
    let declined = &s.t.shop.refunds(s.kim, order)?[0];
    assert_eq!(
        (declined.id, declined.status),
        (refund, RefundStatus::Declined)
    );
    assert_eq!(
        declined.failure.as_ref().unwrap().code,
        "EXCEED_CANCEL_LIMIT"
    );

    // The PG replays a key's outcome; a new attempt has a new key and goes through.
    let retried = s.t.shop.refund(s.kim, order, "broken")?;
    assert_ne!(retried.idempotency_key, declined.idempotency_key);
    assert_eq!(retried.status, RefundStatus::Completed);
    assert_eq!(s.status(order), OrderStatus::Refunded);
    assert_eq!(s.pg.calls(&declined.idempotency_key), 1);
    assert_eq!(s.pg.calls(&retried.idempotency_key), 1);
    s.assert_books(order);
    Ok(())
}

#[test]
fn an_unknown_refund_is_held_and_reconciliation_completes_it_once() -> Result<()> {
    for lost in [
        FakeOutcome::UnknownAfterCharge,
        FakeOutcome::UnknownBeforeCharge,
    ] {
        let s = shop();
        let order = s.paid(2, 0);
        s.pg.push_cancel(lost.clone());
        let balance = s.balance();
        let err =
            s.t.shop
                .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 1)], "lost")
                .unwrap_err();
        let Error::RefundOutcomeUnknown { order: o, refund } = err else {
            panic!("{lost:?}: expected RefundOutcomeUnknown, got {err:?}");
        };
        assert_eq!(o, order);
        assert_eq!(err.kind(), ErrorKind::PaymentOutcomeUnknown);
        assert_eq!(s.balance(), balance, "{lost:?}: nothing credited yet");
        assert_eq!(s.status(order), OrderStatus::Paid);

        // While it is in flight, no other refund of the order starts.
        let before = s.t.dump();
        assert!(matches!(
            s.t.shop.refund(s.kim, order, "again"),
            Err(Error::RefundInProgress { refund: r, .. }) if r == refund
        ));
        assert_eq!(s.t.dump(), before);

        // Within the grace period reconciliation leaves it alone.
        let report = s.t.shop.reconcile_payments()?;
        assert!(report.refunds.is_empty(), "{report:?}");

        s.past_grace();
        let report = s.t.shop.reconcile_payments()?;
        assert_eq!(report.refunds.len(), 1, "{report:?}");
        let settled = &report.refunds[0];
        assert_eq!(
            (
                settled.refund,
                settled.order,
                settled.status,
                settled.needs_review
            ),
            (refund, Some(order), RefundStatus::Completed, false)
        );
        assert_eq!(s.balance(), balance, "it went back to the card");
        assert_eq!(s.status(order), OrderStatus::PartiallyRefunded);
        let key = &s.t.shop.refunds(s.kim, order)?[0].idempotency_key;
        assert_eq!(s.pg.calls(key), 2, "{lost:?}: sent again with the same key");
        s.assert_books(order);

        // A second round finds nothing.
        assert!(s.t.shop.reconcile_payments()?.refunds.is_empty());
    }
    Ok(())
}

#[test]
fn a_refund_unsettled_past_the_review_age_is_reported_and_never_guessed() -> Result<()> {
    let s = shop();
    let order = s.paid(1, 0);
    s.pg.push_cancel(FakeOutcome::UnknownBeforeCharge);
    s.t.shop.refund(s.kim, order, "lost").unwrap_err();
    // The gateway stays unreachable.
    for _ in 0..20 {
        s.pg.push_cancel(FakeOutcome::Unavailable);
    }
    s.t.clock.advance(Duration::from_secs(3_601));
    let balance = s.balance();
    let report = s.t.shop.reconcile_payments()?;
    assert!(report.needs_review(), "{report:?}");
    assert_eq!(report.refunds[0].status, RefundStatus::Unknown);
    assert_eq!(s.balance(), balance);
    s.pg.clear_scripts();
    let report = s.t.shop.reconcile_payments()?;
    assert!(report.all_settled() && !report.needs_review(), "{report:?}");
    assert_eq!(s.status(order), OrderStatus::Refunded);
    s.assert_books(order);
    Ok(())
}

#[test]
fn an_unreachable_gateway_declines_the_attempt_and_moves_nothing() -> Result<()> {
    let s = shop();
    let order = s.paid(1, 0);
    for _ in 0..3 {
        s.pg.push_cancel(FakeOutcome::Unavailable);
    }
    let balance = s.balance();
    let err = s.t.shop.refund(s.kim, order, "offline").unwrap_err();
    assert!(matches!(err, Error::GatewayUnavailable { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Busy);
    let attempt = &s.t.shop.refunds(s.kim, order)?[0];
    assert_eq!(attempt.status, RefundStatus::Declined);
    assert_eq!(attempt.failure.as_ref().unwrap().code, "PG_UNAVAILABLE");
    assert_eq!(s.pg.calls(&attempt.idempotency_key), 3, "retried twice");
    assert_eq!((s.balance(), s.status(order)), (balance, OrderStatus::Paid));

    // A request the gateway calls invalid is our bug: Internal, nothing moved.
    s.pg.push_cancel(FakeOutcome::Invalid {
        code: "INVALID_REQUEST".into(),
        message: "bad".into(),
    });
    let err = s.t.shop.refund(s.kim, order, "bug").unwrap_err();
    assert!(matches!(err, Error::GatewayRejected { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!((s.balance(), s.status(order)), (balance, OrderStatus::Paid));
    s.t.shop.refund(s.kim, order, "at last")?;
    s.assert_books(order);
    Ok(())
}

#[test]
fn refusals_before_the_gateway_change_nothing() -> Result<()> {
    let s = shop();
    let order = s.paid(2, 1);
    let pending = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 1)])?.id;
    let lee = s.t.user("Lee").id;
    let before = s.t.dump();
    let calls = s.pg.total_calls();
    let tea = |n| OrderLine::new(s.tea, n);
    let refusals: Vec<(&str, liteshop::Result<liteshop::Refund>)> = vec![
        ("blank reason", s.t.shop.refund(s.kim, order, "   ")),
        ("empty reason", s.t.shop.refund(s.kim, order, "")),
        (
            "untrimmed reason",
            s.t.shop.refund(s.kim, order, " changed my mind "),
        ),
        (
            "long reason",
            s.t.shop.refund(s.kim, order, &"x".repeat(201)),
        ),
        ("NUL in the reason", s.t.shop.refund(s.kim, order, "a\0b")),
        ("no lines", s.t.shop.refund_lines(s.kim, order, &[], "x")),
        (
            "zero units",
            s.t.shop.refund_lines(s.kim, order, &[tea(0)], "x"),
        ),
        (
            "a product twice",
            s.t.shop.refund_lines(s.kim, order, &[tea(1), tea(1)], "x"),
        ),
        ("bad order id", s.t.shop.refund(s.kim, OrderId::new(0), "x")),
        ("another user's order", s.t.shop.refund(lee, order, "x")),
        ("a pending order", s.t.shop.refund(s.kim, pending, "x")),
        (
            "more units than bought",
            s.t.shop.refund_lines(s.kim, order, &[tea(3)], "x"),
        ),
        (
            "a product not on the order",
            s.t.shop
                .refund_lines(s.kim, order, &[OrderLine::new(ProductId::new(99), 1)], "x"),
        ),
    ];
    let kinds: Vec<(&str, ErrorKind)> = refusals
        .into_iter()
        .map(|(what, result)| (what, result.unwrap_err().kind()))
        .collect();
    use ErrorKind::*;
    assert_eq!(
        kinds,
        [
            ("blank reason", InvalidInput),
            ("empty reason", InvalidInput),
            ("untrimmed reason", InvalidInput),
            ("long reason", InvalidInput),
            ("NUL in the reason", InvalidInput),
            ("no lines", InvalidInput),
            ("zero units", InvalidInput),
            ("a product twice", InvalidInput),
            ("bad order id", InvalidInput),
            ("another user's order", NotFound),
            ("a pending order", Conflict),
            ("more units than bought", Conflict),
            ("a product not on the order", Conflict),
        ]
    );
    assert!(matches!(
        s.t.shop.refund_lines(s.kim, order, &[tea(3)], "x"),
        Err(Error::RefundExceedsOrder {
            requested: 3,
            refundable: 2,
            ..
        })
    ));
    assert_eq!(s.t.dump(), before);
    assert_eq!(s.pg.total_calls(), calls, "the gateway was never asked");
    Ok(())
}

#[test]
fn a_refund_that_would_pass_the_balance_limit_is_refused_before_the_gateway() -> Result<()> {
    let s = shop_with(|b| b.max_balance(won(100_000)));
    let order = s.paid_by(2, 0, won(20_000)); // from the balance: 80,000 left
    s.t.shop.host_credit(s.kim, won(15_000))?; // 95,000
    let before = s.t.dump();
    let err = s.t.shop.refund(s.kim, order, "too much").unwrap_err();
    assert!(
        matches!(err, Error::BalanceLimitExceeded { amount, .. } if amount == won(20_000)),
        "{err:?}"
    );
    assert_eq!(s.t.dump(), before);
    Ok(())
}

/// The money a refund in flight owes counts against the balance limit, so a
/// charge cannot take the room its credit needs.
#[test]
fn money_owed_by_a_refund_in_flight_counts_against_the_balance_limit() -> Result<()> {
    let s = shop_with(|b| b.max_balance(won(100_000)));
    // 10,000 from the balance (90,000 left) and 10,000 by card.
    let order = s.paid_by(2, 0, won(10_000));
    s.pg.push_cancel(FakeOutcome::UnknownAfterCharge);
    s.t.shop.refund(s.kim, order, "lost").unwrap_err();
    let err = s.t.shop.host_credit(s.kim, won(1)).unwrap_err();
    assert!(
        matches!(err, Error::BalanceLimitExceeded { held, .. } if held == won(10_000)),
        "{err:?}"
    );
    s.past_grace();
    s.t.shop.reconcile_payments()?;
    assert_eq!(s.balance(), won(100_000));
    s.assert_books(order);
    Ok(())
}

/// The cancel succeeds at the PG but the shop cannot record it (the
/// database stays locked): the attempt is held, never lost, and
/// reconciliation completes it exactly once.
#[test]
fn a_cancel_the_shop_could_not_record_is_completed_by_reconciliation() -> Result<()> {
    if common::sqlite_only("it holds SQLite's write lock from another connection") {
        return Ok(());
    }
    struct LockingPg {
        inner: FakeGateway,
        path: std::path::PathBuf,
        held: std::sync::Mutex<Option<rusqlite::Connection>>,
        locked: std::sync::atomic::AtomicBool,
    }
    impl PaymentGateway for LockingPg {
        fn approve(&self, r: &ApproveRequest) -> Result<Approval, GatewayError> {
            self.inner.approve(r)
        }
        fn status(&self, r: &StatusRequest) -> Result<PgStatus, GatewayError> {
            self.inner.status(r)
        }
        fn cancel(&self, r: &CancelRequest) -> Result<Cancellation, GatewayError> {
            let answer = self.inner.cancel(r);
            // The first time, another process takes the write lock as the
            // reply comes back.
            if !self.locked.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let conn = rusqlite::Connection::open(&self.path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                *self.held.lock().unwrap() = Some(conn);
            }
            answer
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let pg = FakeGateway::new();
    let locking = std::sync::Arc::new(LockingPg {
        inner: pg.clone(),
        path: path.clone(),
        held: std::sync::Mutex::new(None),
        locked: std::sync::atomic::AtomicBool::new(false),
    });
    let shop = liteshop::Shop::builder(&path)
        .gateway(locking.clone())
        .busy_timeout(Duration::from_millis(50))
        .reconcile_grace(Duration::ZERO)
        .build()?;
    let kim = shop.create_user("Kim")?.id;
    shop.host_credit(kim, won(50_000))?;
    let tea = shop
        .create_product(liteshop::NewProduct {
            name: "Tea".into(),
            price: won(10_000),
            stock: 5,
        })?
        .id;
    let order = shop.place_order(kim, &[OrderLine::new(tea, 2)])?.id;
    let payment = common::pay_by_card(&shop, &pg, kim, order)?;

    let err = shop.refund(kim, order, "locked out").unwrap_err();
    assert!(matches!(err, Error::RefundOutcomeUnknown { .. }), "{err:?}");
    locking.held.lock().unwrap().take(); // the other process lets go
    assert_eq!(pg.cancelled(&payment.pg_order_id), won(20_000));
    assert_eq!(shop.balance(kim)?, won(50_000), "paid and refunded by card");
    assert_eq!(shop.refunds(kim, order)?[0].status, RefundStatus::Requested);

    let report = shop.reconcile_payments()?;
    assert_eq!(report.refunds_in(RefundStatus::Completed), 1, "{report:?}");
    assert_eq!(shop.balance(kim)?, won(50_000));
    assert_eq!(shop.order(kim, order)?.status, OrderStatus::Refunded);
    assert_eq!(pg.cancelled(&payment.pg_order_id), won(20_000), "once");
    Ok(())
}

#[test]
fn refunds_racing_over_overlapping_lines_never_credit_more_than_was_paid() -> Result<()> {
    let s = shop();
    s.pg.set_delay(Duration::from_millis(5));
    let order = s.paid(5, 0); // 50,000
    let results = race(12, |i| {
        if i % 3 == 0 {
            s.t.shop.refund(s.kim, order, "all")
        } else {
            s.t.shop
                .refund_lines(s.kim, order, &[OrderLine::new(s.tea, 2)], "two")
        }
    });
    for result in &results {
        if let Err(err) = result {
            assert!(
                matches!(
                    err,
                    Error::RefundInProgress { .. }
                        | Error::RefundExceedsOrder { .. }
                        | Error::InvalidTransition { .. }
                ),
                "{err:?}"
            );
        }
    }
    let credited: i64 = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.amount.won())
        .sum();
    assert!(credited <= 50_000, "{credited}");
    let after = s.t.shop.order(s.kim, order)?;
    assert_eq!(after.refunded, won(credited));
    assert_eq!(s.balance(), won(100_000), "paid and refunded by card");
    let (stock, held) = s.stock(s.tea);
    assert_eq!(stock + held, 20);
    assert_eq!(held, 5 - after.lines[0].refunded);
    s.assert_books(order);
    Ok(())
}

#[test]
fn a_refund_racing_reconciliation_completes_once() -> Result<()> {
    for _ in 0..5 {
        let s = shop_with(|b| b.reconcile_grace(Duration::ZERO));
        let order = s.paid(2, 0);
        s.pg.set_delay(Duration::from_millis(20));
        let (refund, _) = std::thread::scope(|scope| {
            let refund = scope.spawn(|| s.t.shop.refund(s.kim, order, "race"));
            let reconcile = scope.spawn(|| {
                for _ in 0..10 {
                    s.t.shop.reconcile_payments().unwrap();
                    std::thread::sleep(Duration::from_millis(3));
                }
            });
            (refund.join().unwrap(), reconcile.join().unwrap())
        });
        let refund = refund?;
        assert_eq!(refund.status, RefundStatus::Completed);
        assert_eq!(s.balance(), won(100_000));
        let credits =
            s.t.shop
                .ledger(s.kim, PageRequest::first(100))?
                .items
                .iter()
                .filter(|e| e.kind == LedgerKind::Refund)
                .count();
        assert_eq!(credits, 0, "it went back to the card");
        assert_eq!(s.pg.cancelled(&s.pg_order_id(order)), won(20_000));
        s.assert_books(order);
    }
    Ok(())
}

#[test]
fn a_refund_of_free_units_only_completes_without_the_gateway() -> Result<()> {
    let s = shop();
    let gift = s.t.product("Gift", 0, 5).id;
    let order =
        s.t.shop
            .place_order(s.kim, &[OrderLine::new(s.tea, 1), OrderLine::new(gift, 2)])?
            .id;
    common::pay_by_card(&s.t.shop, &s.pg, s.kim, order)?;
    let calls = s.pg.total_calls();
    let free =
        s.t.shop
            .refund_lines(s.kim, order, &[OrderLine::new(gift, 2)], "unwanted gift")?;
    assert_eq!(
        (free.status, free.amount),
        (RefundStatus::Completed, Money::ZERO)
    );
    assert_eq!(s.pg.total_calls(), calls);
    assert_eq!(s.stock(gift), (5, 0));
    assert_eq!(s.status(order), OrderStatus::PartiallyRefunded);
    s.t.shop.refund(s.kim, order, "the tea too")?;
    assert_eq!(s.status(order), OrderStatus::Refunded);
    s.assert_books(order);
    Ok(())
}

#[test]
fn stock_plus_held_units_never_pass_the_largest_stock_so_releases_always_fit() -> Result<()> {
    let s = shop();
    let order = s.paid(3, 0);
    let pending = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 2)])?.id;
    assert_eq!(s.stock(s.tea), (15, 5));
    let room = u32::MAX - 15 - 5;
    let before = s.t.dump();
    let err = s.t.shop.restock(s.tea, room + 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::StockOverflow {
                stock: 15,
                held: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.t.dump(), before);
    assert_eq!(s.t.shop.restock(s.tea, room)?.stock, u32::MAX - 5);

    // Every release still fits: a cancel, an expiry, a refund.
    s.t.shop.cancel_order(s.kim, pending)?;
    let overdue = s.t.shop.place_order(s.kim, &[OrderLine::new(s.tea, 1)])?.id;
    s.t.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(s.t.shop.expire_orders()?, 1);
    assert_eq!(s.status(overdue), OrderStatus::Cancelled);
    s.t.shop.refund(s.kim, order, "full")?;
    assert_eq!(s.stock(s.tea), (u32::MAX, 0));
    Ok(())
}

#[test]
fn reconciliation_reports_payments_and_refunds_by_id() -> Result<()> {
    let s = shop();
    let paid = s.paid(1, 0);
    let paying = s.t.shop.place_order(s.kim, &[OrderLine::new(s.cup, 1)])?.id;
    s.pg.push_for_order(paying, FakeOutcome::UnknownAfterCharge);
    let payment = match common::pay_by_card(&s.t.shop, &s.pg, s.kim, paying).unwrap_err() {
        Error::PaymentOutcomeUnknown { payment, .. } => payment,
        other => panic!("{other:?}"),
    };
    s.pg.push_cancel(FakeOutcome::UnknownAfterCharge);
    let refund = match s.t.shop.refund(s.kim, paid, "x").unwrap_err() {
        Error::RefundOutcomeUnknown { refund, .. } => refund,
        other => panic!("{other:?}"),
    };
    s.past_grace();
    let report = s.t.shop.reconcile_payments()?;
    assert_eq!(report.payments.len(), 1);
    assert_eq!(
        (
            report.payments[0].payment,
            report.payments[0].order,
            report.payments[0].status
        ),
        (payment, Some(paying), PaymentStatus::Approved)
    );
    assert_eq!(
        (
            report.refunds[0].refund,
            report.refunds[0].order,
            report.refunds[0].status
        ),
        (refund, Some(paid), RefundStatus::Completed)
    );
    Ok(())
}
