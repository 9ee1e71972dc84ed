//! The invariants checked after a run: every law of the audit, and the
//! totals each side must hold.

use super::*;

pub(super) fn unsettled(place: &Place) -> i64 {
    Peek::open(place).count(
        "SELECT (SELECT count(*) FROM payments WHERE status IN ('requested', 'unknown'))
              + (SELECT count(*) FROM refunds WHERE status IN ('requested', 'unknown'))",
    )
}

pub(super) struct Check {
    pub(super) name: &'static str,
    pub(super) ok: bool,
    pub(super) detail: String,
}

pub(super) fn law_name(law: Law) -> &'static str {
    match law {
        Law::BalanceIsLedgerSum => "audit: balance = ledger sum for every user",
        Law::BalanceNotNegative => "audit: no balance below zero",
        Law::MoneyConserved => "audit: charges = balances + held by payments + kept",
        Law::PaidOrdersMatchPayments => "audit: kept by payments = paid orders less refunds",
        Law::StockConserved => "audit: units stocked = on hand + held, per product",
        Law::HeldUnitsMatchOrders => "audit: units held = live orders' units not refunded",
        Law::OrderTotalsMatchLines => "audit: order totals = their lines",
        Law::OneApprovedPaymentPerPaidOrder => "audit: one approved payment per paid order",
        Law::RefundsAgree => "audit: payment, order, refunds and ledger agree on refunds",
        Law::CouponsWithinQuantity => "audit: coupons issued <= quantity, = holders",
        Law::CouponsUsedByLiveOrders => "audit: a coupon is used exactly by its live order",
        Law::EventFeedWithoutGaps => "audit: event feed without gaps",
        Law::SalesMatchPaidLines => "audit: per-day sales = recount of paid lines",
        _ => "audit: a law this loadgen does not know",
    }
}

pub(super) fn invariants(place: &Place, fake: Option<&FakeGateway>) -> Vec<Check> {
    // The audit first: on PostgreSQL it also numbers any event still
    // waiting for its number, so the feed counted below is settled.
    let audit = place
        .builder()
        .existing_only()
        .build()
        .and_then(|shop| shop.audit())
        .expect("audit the shop");
    let mut peek = Peek::open(place);
    let mut count = |sql: &str| -> i64 { peek.count(sql) };
    let mut checks = Vec::new();
    let mut check = |name, bad: i64, detail: String| {
        checks.push(Check {
            name,
            ok: bad == 0,
            detail,
        })
    };

    // The conservation laws, checked once, by the shop's own audit.
    for law in Law::ALL {
        let broken: Vec<&Violation> = audit.violations.iter().filter(|v| v.law == law).collect();
        let detail = match broken.first() {
            None => "holds".to_owned(),
            Some(v) => format!(
                "{} breaches, e.g. {}: expected {}, found {}",
                broken.len(),
                v.subject,
                v.expected,
                v.found
            ),
        };
        check(law_name(law), broken.len() as i64, detail);
    }
    let unlisted = audit
        .violations
        .iter()
        .filter(|v| !Law::ALL.contains(&v.law))
        .count() as i64;
    check(
        "audit: no other breach",
        unlisted,
        format!("{unlisted} breaches"),
    );

    let bad = count("SELECT count(*) FROM payments WHERE status IN ('requested', 'unknown')");
    check(
        "no payment left requested/unknown after reconciliation",
        bad,
        format!("{bad} payments"),
    );

    let bad = count("SELECT count(*) FROM refunds WHERE status IN ('requested', 'unknown')");
    check(
        "no refund left requested/unknown after reconciliation",
        bad,
        format!("{bad} refunds"),
    );

    let expected = count(
        "SELECT (SELECT count(*) FROM orders)
              + (SELECT count(*) FROM orders WHERE status = 'cancelled')
              + (SELECT count(*) FROM payments WHERE kind = 'order')
              + (SELECT count(*) FROM payments WHERE kind = 'order'
                   AND status IN ('approved', 'refunded', 'declined'))
              + (SELECT count(*) FROM refunds WHERE status = 'completed'
                   AND order_id IS NOT NULL)",
    );
    // (The feed is of orders: a top-up and its refunds have no events.)
    let events = count("SELECT count(*) FROM events");
    let gaps = count(match place {
        Place::File(_) => {
            "SELECT coalesce(max(seq) - min(seq) + 1 - count(*), 0)
                  + coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)
                  - coalesce(max(seq), 0)
             FROM events"
        }
        // Numbers are given after commit, from `feed_head`; an event still
        // without one (negative) counts as missing.
        Place::Postgres { .. } => {
            "SELECT coalesce(max(seq) - min(seq) + 1 - count(*), 0)
                  + (SELECT last FROM feed_head) - coalesce(max(seq), 0)
                  + (SELECT count(*) FROM events WHERE seq < 0)
             FROM events WHERE seq > 0"
        }
    });
    check(
        "one event per state change, sequence without gaps",
        (events - expected).abs() + gaps.abs(),
        format!("{events} events for {expected} changes; {gaps} missing numbers"),
    );

    if let Some(fake) = fake {
        // Only payments with a PG part reached the PG.
        let approved = peek.pairs(
            "SELECT pg_order_id, pg_refunded FROM payments
             WHERE status IN ('approved', 'refunded') AND pg_amount > 0",
        );
        let parts = peek.pairs(
            "SELECT pg_order_id, pg_amount FROM payments
             WHERE status IN ('approved', 'refunded') AND pg_amount > 0",
        );
        let missing = approved
            .iter()
            .filter(|(id, _)| fake.approval(id).is_none())
            .count() as i64;
        let took_other = parts
            .iter()
            .filter(|(id, part)| {
                fake.approval(id)
                    .is_some_and(|a| a.approved_amount.won() != *part)
            })
            .count() as i64;
        check(
            "what the PG took of each payment = the PG part the shop recorded",
            took_other,
            format!("{took_other} payments where the PG took another amount"),
        );
        let extra = fake.approved_count() as i64 - approved.len() as i64;
        check(
            "each approved payment was approved by the PG exactly once, and no other",
            missing + extra.abs(),
            format!("{missing} not approved by the PG, {extra} approved by the PG only"),
        );
        let cancels = fake.cancelled_by_order();
        let differ = approved
            .iter()
            .filter(|(id, refunded)| fake.cancelled(id).won() != *refunded)
            .count() as i64;
        let known: HashSet<&str> = approved.iter().map(|(id, _)| id.as_str()).collect();
        let stray = cancels
            .keys()
            .filter(|id| !known.contains(id.as_str()))
            .count() as i64;
        check(
            "what the PG cancelled of each payment = what the shop refunded of its PG part",
            differ + stray,
            format!("{differ} payments differ, {stray} cancelled by the PG only"),
        );
    }
    checks
}
