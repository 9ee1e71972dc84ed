//! Best sellers: units and money sold per product per calendar day, kept in
//! `sales_daily` by the transactions that approve payments and complete
//! refunds, so the ranking never disagrees with the books and never scans
//! orders.
//!
//! A day is a calendar day in the UTC offset stored in `settings`
//! (`sales_utc_offset_minutes`, set from
//! [`ShopBuilder::utc_offset_minutes`](crate::ShopBuilder::utc_offset_minutes)).
//! Units count on the day their order was paid; a refund takes its units
//! and money off that same day, so "sold in the last days" means paid in
//! those days and not refunded since.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::{Backend, Db};
use crate::error::{Error, Result};
use crate::ids::{OrderId, ProductId};
use crate::money::Money;
use crate::order::{RefundUnits, refund_value};
use crate::store::failure::corrupt;

const DAY_MILLIS: i64 = 86_400_000;
const OFFSET_SETTING: &str = "sales_utc_offset_minutes";

/// One product in a best-seller ranking.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestSeller {
    /// The product.
    pub product: ProductId,
    /// Its name now.
    pub name: String,
    /// Units sold in the window (paid, less refunded).
    pub units: u64,
    /// What those units were paid, after discounts, less refunds.
    pub revenue: Money,
}

/// The calendar day of `at` in a zone `offset_minutes` east of UTC, as days
/// since 1970-01-01 there.
pub(crate) fn day(at: Timestamp, offset_minutes: i32) -> i64 {
    at.as_millis()
        .saturating_add(i64::from(offset_minutes) * 60_000)
        .div_euclid(DAY_MILLIS)
}

/// The offset the sales table is kept in (`None` before the first open
/// that sets it).
pub(crate) fn stored_offset(conn: &dyn Db) -> Result<Option<i32>> {
    conn.query_opt(
        "SELECT value FROM settings WHERE name = ?1",
        &[&OFFSET_SETTING],
    )?
    .map(|row| row.get(0))
    .transpose()
}

/// One row of `sales_daily`: units and revenue of a product on a day.
pub(crate) type DayRow = (i64, ProductId, i64, i64);

/// The per-day sales recounted from the paid order lines, in the offset
/// stored in `settings`, as `sales_daily` rows in key order. What each line
/// kept is its amount less the refund value of its refunded units
/// (`order::refund_value`: ⌊amount × refunded / quantity⌋, in 128-bit
/// integers). The arithmetic is Rust's, not SQL's: SQL's `bigint` (and
/// SQLite's integers, which silently turn to floats) overflow on the
/// product `amount × refunded` long before the money it stands for does.
/// The rebuild writes it; the audit compares the table with it.
///
/// # Failure
///
/// [`Error::AmountOverflow`] if a day's revenue of one product does not
/// fit a `sales_daily` row (no payment could have put it there either).
pub(crate) fn recount(conn: &dyn Db) -> Result<Vec<DayRow>> {
    let offset = stored_offset(conn)?.unwrap_or(0);
    let mut days: BTreeMap<(i64, ProductId), (i128, i128)> = BTreeMap::new();
    for row in conn.query(
        "SELECT o.paid_at, i.product_id, i.quantity, i.refunded, i.amount
         FROM orders o JOIN order_items i ON i.order_id = o.id
         WHERE o.paid_at IS NOT NULL",
        &[],
    )? {
        let paid_at: Timestamp = row.get(0)?;
        let product: ProductId = row.get(1)?;
        let quantity: u32 = row.get(2)?;
        let refunded: u32 = row.get(3)?;
        let amount: Money = row.get(4)?;
        let given_back = refund_value(amount, quantity, 0, refunded);
        let kept = i128::from(amount.won()) - i128::from(given_back.won());
        let sums = days.entry((day(paid_at, offset), product)).or_default();
        sums.0 += i128::from(quantity) - i128::from(refunded);
        sums.1 += kept;
    }
    days.into_iter()
        .map(|((day, product), (units, revenue))| {
            let fits = |n: i128| i64::try_from(n).map_err(|_| Error::AmountOverflow);
            Ok((day, product, fits(units)?, fits(revenue)?))
        })
        .collect()
}

/// Every row of `sales_daily`, in key order.
pub(crate) fn rows(conn: &dyn Db) -> Result<Vec<DayRow>> {
    conn.query(
        "SELECT day, product_id, units, revenue FROM sales_daily ORDER BY day, product_id",
        &[],
    )?
    .iter()
    .map(|row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
    .collect()
}

/// Makes the sales table agree with `offset_minutes`: if the stored offset
/// differs (or none is stored, as after the migration that added the
/// table), stores it and rebuilds the table from the paid orders. Returns
/// whether it rebuilt.
pub(crate) fn ensure_offset(tx: &dyn Db, offset_minutes: i32) -> Result<bool> {
    if stored_offset(tx)? == Some(offset_minutes) {
        return Ok(false);
    }
    if tx.backend() == Backend::Postgres {
        // Writes run in parallel there: wait until every write that read
        // the offset (to count a sale on its day) has ended, and keep new
        // ones out until the table is rebuilt. Every such write read
        // `settings`, and holds that table's share lock until it ends.
        tx.execute("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE", &[])?;
        if stored_offset(tx)? == Some(offset_minutes) {
            return Ok(false);
        }
    }
    tx.execute(
        "INSERT INTO settings (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&OFFSET_SETTING, &offset_minutes],
    )?;
    tx.execute("DELETE FROM sales_daily", &[])?;
    for (day, product, units, revenue) in recount(tx)? {
        tx.execute(
            "INSERT INTO sales_daily (day, product_id, units, revenue) VALUES (?1, ?2, ?3, ?4)",
            &[&day, &product, &units, &revenue],
        )?;
    }
    Ok(true)
}

/// Counts the lines of order `id`, paid at `paid_at`, as sold that day.
pub(crate) fn add_order(tx: &dyn Db, id: OrderId, paid_at: Timestamp) -> Result<()> {
    let day = day(paid_at, stored_offset(tx)?.unwrap_or(0));
    tx.execute(
        "INSERT INTO sales_daily (day, product_id, units, revenue)
         SELECT ?1, product_id, quantity, amount FROM order_items WHERE order_id = ?2
         ORDER BY product_id
         ON CONFLICT (day, product_id) DO UPDATE
         SET units = sales_daily.units + excluded.units,
             revenue = sales_daily.revenue + excluded.revenue",
        &[&day, &id],
    )?;
    Ok(())
}

/// Takes refunded `units` off the day their order was paid.
pub(crate) fn remove_units(tx: &dyn Db, paid_at: Timestamp, units: &[RefundUnits]) -> Result<()> {
    let day = day(paid_at, stored_offset(tx)?.unwrap_or(0));
    // Rows locked in product order, as every write takes them.
    let mut units = units.to_vec();
    units.sort_by_key(|unit| unit.product);
    for unit in &units {
        let changed = tx.execute(
            "UPDATE sales_daily SET units = units - ?3, revenue = revenue - ?4
             WHERE day = ?1 AND product_id = ?2 AND units >= ?3 AND revenue >= ?4",
            &[&day, &unit.product, &unit.quantity, &unit.amount],
        )?;
        if changed != 1 {
            // The books are right and only the ranking would be off: say so,
            // but never refuse a refund over it.
            tracing::error!(product = %unit.product, day,
                "sales of the refunded units not found; best sellers need a rebuild");
        }
    }
    Ok(())
}

/// The window's rows of `sales_daily` (a range of its primary key), summed
/// per product, ranked, cut to the limit, then named.
pub(crate) const SELECT_BEST_SELLERS: &str = "SELECT s.product_id, p.name, s.units, s.revenue
     FROM (SELECT product_id, CAST(sum(units) AS BIGINT) AS units, CAST(sum(revenue) AS BIGINT) AS revenue
           FROM sales_daily WHERE day BETWEEN ?1 AND ?2
           GROUP BY product_id HAVING CAST(sum(units) AS BIGINT) > 0
           ORDER BY 2 DESC, 1 LIMIT ?3) s
     JOIN products p ON p.id = s.product_id
     ORDER BY s.units DESC, s.product_id";

/// The `limit` products that sold the most units in the `days` calendar
/// days up to and including the day of `now`, most first, ties by product
/// id. Reads only `sales_daily` rows of the window (its primary key range).
pub(crate) fn best_sellers(
    conn: &dyn Db,
    days: u32,
    limit: u32,
    now: Timestamp,
) -> Result<Vec<BestSeller>> {
    let last = day(now, stored_offset(conn)?.unwrap_or(0));
    let first = last - i64::from(days) + 1;
    conn.query(SELECT_BEST_SELLERS, &[&first, &last, &limit])?
        .iter()
        .map(|row| {
            let units: i64 = row.get(2)?;
            Ok(BestSeller {
                product: row.get(0)?,
                name: row.get(1)?,
                units: u64::try_from(units)
                    .map_err(|_| corrupt(format!("a best seller's units out of range: {units}")))?,
                revenue: row.get(3)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_calendar_days_in_the_offset() {
        let kst = 9 * 60;
        // 2026-11-23T15:00:00Z is midnight of the 24th in Seoul.
        let utc_midnight_24th = Timestamp::from_millis(1_795_478_400_000);
        let seoul_midnight_24th = Timestamp::from_millis(1_795_478_400_000 - 9 * 3_600_000);
        assert_eq!(day(utc_midnight_24th, 0), day(seoul_midnight_24th, kst));
        let just_before = Timestamp::from_millis(seoul_midnight_24th.as_millis() - 1);
        assert_eq!(day(just_before, kst), day(seoul_midnight_24th, kst) - 1);
        assert_eq!(day(Timestamp::from_millis(-1), 0), -1);
    }
}
