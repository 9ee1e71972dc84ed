//! The audit: every conservation law of the books, checked in one read
//! snapshot. The laws are written once, as equations, in ARCHITECTURE.md
//! ("Guarantees"); each [`Law`] names one and each query below checks it.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::Db;
use crate::error::Result;
use crate::sales;
use crate::store::Settled;

/// One conservation law of the books (see ARCHITECTURE.md, "Guarantees").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Law {
    /// Each balance equals the sum of its user's ledger entries.
    BalanceIsLedgerSum,
    /// No balance is below zero.
    BalanceNotNegative,
    /// Money in (top-ups, grants, host credits, less take-backs and top-up
    /// refunds) = balances + balance parts held by open payments + balance
    /// parts kept by approved payments (less what was refunded to the
    /// balance).
    MoneyConserved,
    /// Money kept by approved order payments (both parts, less refunds) =
    /// paid orders' totals less refunds.
    PaidOrdersMatchPayments,
    /// Per product: units ever stocked = stock on hand + units held.
    StockConserved,
    /// Per product: units held = units of live orders (pending, paying,
    /// paid, partly refunded) not refunded.
    HeldUnitsMatchOrders,
    /// Per order: total = Σ line amounts, and total + discount = Σ line
    /// totals.
    OrderTotalsMatchLines,
    /// Each paid (or refunded) order has exactly one approved payment.
    OneApprovedPaymentPerPaidOrder,
    /// Per payment: refunded ≤ amount, and refunded = its completed
    /// refunds; the part refunded through the PG = their PG parts; the rest
    /// = the refund credits in the ledger; for the approved payment of an
    /// order, also refunded = the order's refunded.
    RefundsAgree,
    /// Per coupon: issued ≤ quantity, and issued = users holding it.
    CouponsWithinQuantity,
    /// A user's coupon is used exactly by its order while the order is live.
    CouponsUsedByLiveOrders,
    /// The event feed's sequence numbers have no gap.
    EventFeedWithoutGaps,
    /// The per-day sales equal a recount of the paid order lines.
    SalesMatchPaidLines,
}

impl Law {
    /// Every law, in the order of ARCHITECTURE.md, "Guarantees".
    pub const ALL: [Law; 13] = [
        Law::BalanceIsLedgerSum,
        Law::BalanceNotNegative,
        Law::MoneyConserved,
        Law::PaidOrdersMatchPayments,
        Law::StockConserved,
        Law::HeldUnitsMatchOrders,
        Law::OrderTotalsMatchLines,
        Law::OneApprovedPaymentPerPaidOrder,
        Law::RefundsAgree,
        Law::CouponsWithinQuantity,
        Law::CouponsUsedByLiveOrders,
        Law::EventFeedWithoutGaps,
        Law::SalesMatchPaidLines,
    ];

    /// What the law says, in one sentence for a person.
    pub fn statement(self) -> &'static str {
        match self {
            Law::BalanceIsLedgerSum => "Each balance equals the sum of its user's ledger entries.",
            Law::BalanceNotNegative => "No balance is below zero.",
            Law::MoneyConserved => {
                "Money in = balances + balance parts held by open payments + balance parts kept by approved payments."
            }
            Law::PaidOrdersMatchPayments => {
                "Money kept by approved order payments = paid orders' totals less their refunds."
            }
            Law::StockConserved => "Per product: units ever stocked = units on hand + units held.",
            Law::HeldUnitsMatchOrders => {
                "Per product: units held = units of live orders not refunded."
            }
            Law::OrderTotalsMatchLines => {
                "Per order: the total and the discount agree with the lines."
            }
            Law::OneApprovedPaymentPerPaidOrder => {
                "Each paid or refunded order has exactly one approved payment."
            }
            Law::RefundsAgree => {
                "Per payment: refunds never exceed it, and the payment, its refunds and the ledger agree."
            }
            Law::CouponsWithinQuantity => {
                "Per coupon: no more issued than its quantity, one per holder."
            }
            Law::CouponsUsedByLiveOrders => "A coupon is in use exactly while its order is live.",
            Law::EventFeedWithoutGaps => "The event feed's sequence numbers have no gap.",
            Law::SalesMatchPaidLines => {
                "The per-day sales equal a recount of the paid order lines."
            }
        }
    }
}

/// One breach of a law: what it is about, and the two sides that differ.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The law broken.
    pub law: Law,
    /// What it is about, e.g. `"user 3"`, `"product 7"`, `"the shop"`.
    pub subject: String,
    /// The figure the law requires (128 bits: a sum over the whole shop
    /// can pass what one amount can hold).
    pub expected: i128,
    /// The figure found.
    pub found: i128,
}

/// The sums an audit added up, for a person reading the report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFigures {
    /// Money into balances from outside: top-ups, grants and host credits,
    /// less take-backs and top-up refunds.
    pub charged: i128,
    /// Money in balances now.
    pub balances: i128,
    /// Balance parts held by open order payments.
    pub held_by_payments: i128,
    /// Balance parts kept by approved order payments (less what went back
    /// to the balance).
    pub kept: i128,
    /// PG parts kept by approved order payments (less what went back
    /// through the PG).
    pub kept_by_pg: i128,
    /// Money given back by completed refunds of orders, both parts.
    pub refunded: i128,
    /// Units ever stocked, over all products.
    pub units_stocked: i128,
    /// Units on hand.
    pub units_on_hand: i128,
    /// Units held by orders (reserved or sold, not refunded).
    pub units_held: i128,
    /// Events in the feed.
    pub events: i128,
}

/// What [`Shop::audit`](crate::Shop::audit) found.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// When it was taken (one read snapshot).
    pub at: Timestamp,
    /// The sums.
    pub figures: AuditFigures,
    /// Every breach, by law; empty when the books balance.
    pub violations: Vec<Violation>,
}

impl AuditReport {
    /// Whether every law holds.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = &self.figures;
        writeln!(
            f,
            "money in {} = balances {} + held by payments {} + kept from balances {} (kept by the PG {}, refunded {})",
            x.charged, x.balances, x.held_by_payments, x.kept, x.kept_by_pg, x.refunded
        )?;
        writeln!(
            f,
            "units stocked {} = on hand {} + held {}; {} events",
            x.units_stocked, x.units_on_hand, x.units_held, x.events
        )?;
        if self.is_clean() {
            return write!(f, "every law holds");
        }
        write!(f, "{} violations:", self.violations.len())?;
        for v in &self.violations {
            write!(
                f,
                "\n  {:?}: {}: expected {}, found {}",
                v.law, v.subject, v.expected, v.found
            )?;
        }
        Ok(())
    }
}

/// Live orders: those whose units are held (reserved or sold).
macro_rules! live {
    () => {
        "('pending', 'paying', 'paid', 'partially_refunded')"
    };
}

/// Each law with the query that lists its breaches as (subject id,
/// expected, found).
const LAWS: &[(Law, &str, &str)] = &[
    (
        Law::BalanceIsLedgerSum,
        "user",
        "SELECT user_id, ledger_sum, amount FROM
           (SELECT b.user_id, (SELECT coalesce(CAST(sum(l.amount) AS BIGINT), 0) FROM ledger l
                               WHERE l.user_id = b.user_id) AS ledger_sum, b.amount
            FROM balances b) x
         WHERE amount <> ledger_sum",
    ),
    (
        Law::BalanceNotNegative,
        "user",
        "SELECT user_id, 0, amount FROM balances WHERE amount < 0",
    ),
    (
        Law::StockConserved,
        "product",
        "SELECT id, stocked, stock + held FROM products WHERE stocked <> stock + held",
    ),
    (
        Law::HeldUnitsMatchOrders,
        "product",
        concat!(
            "SELECT p.id, coalesce(x.units, 0), p.held FROM products p
             LEFT JOIN (SELECT i.product_id, CAST(sum(i.quantity - i.refunded) AS BIGINT) AS units
                        FROM order_items i JOIN orders o ON o.id = i.order_id
                        WHERE o.status IN ",
            live!(),
            " GROUP BY i.product_id) x ON x.product_id = p.id
             WHERE p.held <> coalesce(x.units, 0)"
        ),
    ),
    (
        Law::OrderTotalsMatchLines,
        "order",
        "SELECT o.id, CAST(sum(i.amount) AS BIGINT), o.total FROM orders o JOIN order_items i ON i.order_id = o.id
         GROUP BY o.id
         HAVING o.total <> CAST(sum(i.amount) AS BIGINT) OR o.total + o.discount <> CAST(sum(i.unit_price * i.quantity) AS BIGINT)",
    ),
    (
        Law::OneApprovedPaymentPerPaidOrder,
        "order",
        "SELECT id, 1, approved FROM
           (SELECT o.id, (SELECT count(*) FROM payments p WHERE p.order_id = o.id
                          AND p.status IN ('approved', 'refunded')) AS approved
            FROM orders o WHERE o.status IN ('paid', 'partially_refunded', 'refunded')) x
         WHERE approved <> 1",
    ),
    (
        Law::RefundsAgree,
        "payment",
        "SELECT p.id, p.refunded, x.other FROM payments p,
           (SELECT p2.id AS id, (SELECT coalesce(CAST(sum(r.amount) AS BIGINT), 0) FROM refunds r
                                 WHERE r.payment_id = p2.id AND r.status = 'completed') AS other
            FROM payments p2
            UNION ALL
            SELECT p2.id, (SELECT o.refunded FROM orders o WHERE o.id = p2.order_id)
            FROM payments p2 WHERE p2.kind = 'order' AND p2.status IN ('approved', 'refunded')
            UNION ALL
            SELECT p2.id, p2.pg_refunded
                + (SELECT coalesce(CAST(sum(l.amount) AS BIGINT), 0) FROM ledger l JOIN refunds r
                   ON r.id = l.refund_id WHERE r.payment_id = p2.id AND l.kind = 'refund')
            FROM payments p2 WHERE p2.kind = 'order'
            UNION ALL
            SELECT p2.id, p2.refunded - p2.pg_refunded
                + (SELECT coalesce(CAST(sum(r.pg_amount) AS BIGINT), 0) FROM refunds r
                   WHERE r.payment_id = p2.id AND r.status = 'completed')
            FROM payments p2
            UNION ALL
            SELECT p2.id, CASE WHEN p2.refunded < p2.amount THEN p2.refunded ELSE p2.amount END
            FROM payments p2) x
         WHERE x.id = p.id AND x.other <> p.refunded",
    ),
    (
        Law::CouponsWithinQuantity,
        "coupon",
        "SELECT id, CASE WHEN quantity < holders THEN quantity ELSE holders END, issued
         FROM (SELECT c.id, c.quantity, c.issued,
                      (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id) AS holders
               FROM coupons c) c
         WHERE c.issued > c.quantity
            OR c.issued <> (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id)",
    ),
    (
        Law::CouponsUsedByLiveOrders,
        "order",
        concat!(
            "SELECT o.id, 1, 0 FROM orders o
             WHERE o.coupon_id IS NOT NULL AND o.status IN ",
            live!(),
            " AND NOT EXISTS (SELECT 1 FROM user_coupons u WHERE u.order_id = o.id
                              AND u.coupon_id = o.coupon_id AND u.user_id = o.user_id)
             UNION ALL
             SELECT o.id, 0, 1 FROM user_coupons u JOIN orders o ON o.id = u.order_id
             WHERE o.status NOT IN ",
            live!()
        ),
    ),
];

/// The SQL that sums `$expr` over the rows of `$from` exactly, on both
/// engines, however many rows reach `Money::MAX`: as the sums of its high
/// and low 32 bits (`$expr >> 32`, an arithmetic shift on both engines, and
/// `$expr & 0xFFFFFFFF`), each of which fits a 64-bit integer for up to
/// 2^31 rows, joined in Rust's 128-bit integers by [`figures`]. (SQLite's
/// `sum` fails on an overflow, and PostgreSQL's `numeric` sum would not fit
/// back into a `BIGINT`.)
macro_rules! figure {
    ($expr:literal, $from:literal) => {
        concat!(
            "SELECT coalesce(CAST(sum((",
            $expr,
            ") >> 32) AS BIGINT), 0), coalesce(CAST(sum((",
            $expr,
            ") & 4294967295) AS BIGINT), 0) FROM ",
            $from
        )
    };
}

/// The global figures, in the order [`run`] reads them.
const FIGURES: &[&str] = &[
    // Money in from outside the shop's payments.
    figure!(
        "amount",
        "ledger WHERE kind IN ('charge', 'top_up', 'grant', 'take_back', 'top_up_refund',
                              'top_up_refund_reversal')"
    ),
    figure!("amount", "balances"),
    figure!(
        "balance_amount",
        "payments WHERE kind = 'order' AND status IN ('started', 'requested', 'unknown')"
    ),
    figure!(
        "balance_amount - (refunded - pg_refunded)",
        "payments WHERE kind = 'order' AND status IN ('approved', 'refunded')"
    ),
    figure!("refunded", "payments WHERE kind = 'order'"),
    figure!(
        "total - refunded",
        "orders WHERE status IN ('paid', 'partially_refunded', 'refunded')"
    ),
    figure!("stocked", "products"),
    figure!("stock", "products"),
    figure!("held", "products"),
    figure!(
        "pg_amount - pg_refunded",
        "payments WHERE kind = 'order' AND status IN ('approved', 'refunded')"
    ),
];

/// The exact sums of [`FIGURES`], in order.
fn figures(conn: &dyn Db) -> Result<Vec<i128>> {
    FIGURES
        .iter()
        .map(|sql| {
            let row = conn.query_row(sql, &[])?;
            let (high, low): (i64, i64) = (row.get(0)?, row.get(1)?);
            Ok((i128::from(high) << 32) + i128::from(low))
        })
        .collect()
}

/// The numbered events (on PostgreSQL an event committed a moment ago may
/// still wait for its number, `seq < 0`: it is not in the feed yet).
const FEED: &str =
    "SELECT count(*), coalesce(min(seq), 1), coalesce(max(seq), 0) FROM events WHERE seq > 0";

/// Checks every law in the snapshot of `conn`'s read transaction.
pub(crate) fn run(conn: &Settled<'_>, at: Timestamp) -> Result<AuditReport> {
    let mut violations = Vec::new();
    for (law, subject, sql) in LAWS {
        for row in conn.query(sql, &[])? {
            violations.push(Violation {
                law: *law,
                subject: format!("{subject} {}", row.get::<i64>(0)?),
                expected: i128::from(row.get::<i64>(1)?),
                found: i128::from(row.get::<i64>(2)?),
            });
        }
    }

    let sums = figures(&**conn)?;
    let mut figures = AuditFigures {
        charged: sums[0],
        balances: sums[1],
        held_by_payments: sums[2],
        kept: sums[3],
        refunded: sums[4],
        units_stocked: sums[6],
        units_on_hand: sums[7],
        units_held: sums[8],
        kept_by_pg: sums[9],
        events: 0,
    };
    let paid_kept = sums[5];
    let shop = |law, expected: i128, found: i128| Violation {
        law,
        subject: "the shop".into(),
        expected,
        found,
    };
    // No sum of a few i64 figures comes near the ends of i128.
    let accounted = figures.balances + figures.held_by_payments + figures.kept;
    if figures.charged != accounted {
        violations.push(shop(Law::MoneyConserved, figures.charged, accounted));
    }
    let kept_by_payments = figures.kept + figures.kept_by_pg;
    if kept_by_payments != paid_kept {
        violations.push(shop(
            Law::PaidOrdersMatchPayments,
            kept_by_payments,
            paid_kept,
        ));
    }

    let row = conn.query_row(FEED, &[])?;
    let (count, first, last): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
    let given = i64::try_from(crate::feed::last_seq(conn)?).unwrap_or(i64::MAX);
    figures.events = i128::from(count);
    // Pruning removes a prefix: what is left runs from `first` to the last
    // number ever given, one row each.
    if count > 0 && (last - first + 1 != count || last != given) {
        violations.push(shop(
            Law::EventFeedWithoutGaps,
            i128::from(given - first + 1),
            i128::from(count),
        ));
    }

    // Rows of the recount of the paid lines (`sales::recount`, exact) and
    // of `sales_daily` that are not in the other.
    let recount: BTreeSet<sales::DayRow> = sales::recount(&**conn)?.into_iter().collect();
    let table: BTreeSet<sales::DayRow> = sales::rows(&**conn)?.into_iter().collect();
    let missing = i128::try_from(recount.difference(&table).count()).unwrap_or(i128::MAX);
    let extra = i128::try_from(table.difference(&recount).count()).unwrap_or(i128::MAX);
    if missing + extra > 0 {
        violations.push(shop(Law::SalesMatchPaidLines, 0, missing + extra));
    }
    Ok(AuditReport {
        at,
        figures,
        violations,
    })
}

#[cfg(test)]
mod law_tests {
    use super::Law;
    use crate::balance::LedgerKind;

    /// "Money in" in `FIGURES` is exactly the ledger kinds that move money
    /// between a balance and the world outside the shop's payments.
    #[test]
    fn money_in_counts_exactly_the_external_ledger_kinds() {
        let listed = super::FIGURES[0]
            .split("WHERE kind IN (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .expect("the first figure lists its kinds");
        for &kind in LedgerKind::VARIANTS {
            assert_eq!(
                listed.contains(&format!("'{}'", kind.as_str())),
                kind.is_external(),
                "{kind:?}"
            );
        }
        assert_eq!(
            listed.matches('\'').count(),
            2 * LedgerKind::VARIANTS
                .iter()
                .filter(|k| k.is_external())
                .count()
        );
    }

    /// `Law::ALL` lists every law once: the match below has no wildcard,
    /// so a new law does not compile until it has a place here.
    #[test]
    fn every_law_is_listed_once_in_order() {
        let place = |law: Law| match law {
            Law::BalanceIsLedgerSum => 0,
            Law::BalanceNotNegative => 1,
            Law::MoneyConserved => 2,
            Law::PaidOrdersMatchPayments => 3,
            Law::StockConserved => 4,
            Law::HeldUnitsMatchOrders => 5,
            Law::OrderTotalsMatchLines => 6,
            Law::OneApprovedPaymentPerPaidOrder => 7,
            Law::RefundsAgree => 8,
            Law::CouponsWithinQuantity => 9,
            Law::CouponsUsedByLiveOrders => 10,
            Law::EventFeedWithoutGaps => 11,
            Law::SalesMatchPaidLines => 12,
        };
        for (i, law) in Law::ALL.into_iter().enumerate() {
            assert_eq!(place(law), i, "{law:?}");
            assert!(law.statement().ends_with('.'));
        }
    }
}
