//! Operations on the whole file: the audit.

use std::path::Path;

use super::Shop;
use crate::audit::{self, AuditReport};
use crate::error::Result;
use crate::store::BackupProgress;

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

    /// Writes a consistent copy of the shop to a new file at `to` while
    /// the shop keeps serving: SQLite's online backup, 256 pages a step,
    /// reading one snapshot, so writers are never blocked (WAL) and the copy
    /// holds every write committed before the backup began and none after.
    /// `progress` is called after each step.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// shop.create_user("Kim")?;
    /// let copy = dir.path().join("copy.db");
    /// let mut last = None;
    /// shop.backup(&copy, |p| last = Some(p))?;
    /// let last = last.expect("at least one step");
    /// assert_eq!(last.copied, last.total);
    /// assert!(liteshop::Shop::open(&copy)?.audit()?.is_clean());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::BackupTargetExists`](crate::Error::BackupTargetExists) (it
    /// never overwrites), storage errors.
    pub fn backup(&self, to: impl AsRef<Path>, progress: impl FnMut(BackupProgress)) -> Result<()> {
        self.inner.store.backup(to.as_ref(), progress)
    }
}
