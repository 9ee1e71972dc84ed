//! Operations on the whole file: the audit.

use super::Shop;
use crate::audit::{self, AuditReport};
use crate::error::Result;

impl Shop {
    /// Checks every conservation law of the books in one read snapshot —
    /// balances against the ledger, money in against money held and kept,
    /// stock against orders, payments against orders and refunds, coupons,
    /// the event feed and the per-day sales — and lists each breach with
    /// its subject and figures. The laws are written as equations in
    /// ARCHITECTURE.md, "Guarantees". It reads every row: run it from
    /// operations, not on a request path.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// let kim = shop.create_user("Kim")?;
    /// shop.charge(kim.id, liteshop::Money::new(5_000)?)?;
    /// let report = shop.audit()?;
    /// assert!(report.is_clean(), "{report}");
    /// assert_eq!(report.figures.charged, 5_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// Only storage errors; a breach is in the report, not an error.
    pub fn audit(&self) -> Result<AuditReport> {
        let now = self.now();
        self.inner.store.read(|tx| audit::run(tx, now))
    }
}
