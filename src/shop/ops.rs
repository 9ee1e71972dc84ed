//! Operations on the whole shop: the audit, the backup, and the reads of
//! the operator's console (money in flight, one order whoever owns it, the
//! feed's consumers). These are for operators, not for a user's request:
//! a host keeps them behind its own admin authentication.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Shop;
use crate::audit::{self, AuditReport};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::feed::{self, ConsumerLag, Event};
use crate::ids::{OrderId, UserId};
use crate::payment::{
    self, Payment,
    refund::{self, Refund},
};
use crate::store::BackupProgress;

/// The money in flight: every payment and refund attempt whose outcome is
/// not settled yet (`Requested` or `Unknown`), oldest first, and the latest
/// changes made at the PG outside the shop, read in one snapshot. See
/// [`Shop::unsettled`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsettled {
    /// When it was read, by the shop's clock.
    pub at: Timestamp,
    /// Payments holding their user's money.
    pub payments: Vec<Payment>,
    /// Refunds owing their user money.
    pub refunds: Vec<Refund>,
    /// The latest changes made at the PG outside the shop, newest first (at
    /// most [`Unsettled::EXTERNAL_SHOWN`]): the refunds of origin
    /// [`RefundOrigin::Pg`](crate::RefundOrigin::Pg) the shop recorded when
    /// it found them. They are settled — the books follow the PG — but a
    /// person decides on the goods, and on a top-up's part the customer
    /// had already spent.
    #[serde(default)]
    pub external: Vec<Refund>,
}

impl Unsettled {
    /// How many of the latest external changes [`Unsettled::external`] holds.
    pub const EXTERNAL_SHOWN: u32 = 50;
}

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
    /// shop.host_credit(kim.id, liteshop::Money::new(5_000)?)?;
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
        self.inner.store.read_settled(|tx| audit::run(tx, now))
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

    /// Every payment and refund attempt whose outcome is not settled yet,
    /// oldest first, in one read snapshot: what reconciliation will look at
    /// (those older than [`Shop::review_after`] need a person).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// let unsettled = shop.unsettled()?;
    /// assert!(unsettled.payments.is_empty() && unsettled.refunds.is_empty());
    /// assert!(unsettled.external.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// Only storage errors.
    pub fn unsettled(&self) -> Result<Unsettled> {
        let at = self.now();
        let all = Timestamp::from_millis(i64::MAX);
        self.inner.store.read(|tx| {
            Ok(Unsettled {
                at,
                payments: payment::unsettled(tx, all)?,
                refunds: refund::unsettled(tx, all)?,
                external: refund::latest_external(tx, Unsettled::EXTERNAL_SHOWN)?,
            })
        })
    }

    /// The user who placed the order `order`, for an operator looking an
    /// order up by its id alone; then the user-scoped reads
    /// ([`Shop::order`], [`Shop::payments_for_order`], [`Shop::refunds`])
    /// show it.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`].
    pub fn order_owner(&self, order: OrderId) -> Result<UserId> {
        let order = order.validate()?;
        self.inner
            .store
            .read(|tx| crate::order::owner(tx, order)?.ok_or(Error::OrderNotFound(order)))
    }

    /// Every event of the order `order` still in the feed, in sequence
    /// order.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`]; storage errors.
    pub fn order_events(&self, order: OrderId) -> Result<Vec<Event>> {
        let order = order.validate()?;
        self.inner
            .store
            .read_settled(|tx| feed::for_order(tx, order))
    }

    /// Every registered consumer of the event feed with its cursor, how
    /// far it is behind the head, and the age of the oldest event it has
    /// not acked, by name.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// shop.ack_events("warehouse", 0)?;
    /// let lag = shop.event_consumers()?;
    /// assert_eq!((lag[0].name.as_str(), lag[0].behind), ("warehouse", 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// Only storage errors.
    pub fn event_consumers(&self) -> Result<Vec<ConsumerLag>> {
        // The head counts every committed event: on PostgreSQL those no
        // one has read yet get their numbers first.
        self.inner.store.read_settled(feed::consumers)
    }

    /// How many times this `Shop` ran a write again because the database
    /// ended its transaction to break a deadlock or as a serialization
    /// failure (PostgreSQL; such a transaction changed nothing). Always 0
    /// on SQLite, where writes take turns. A figure for monitoring and
    /// load tests: a number that keeps growing fast points at writes that
    /// take shared rows in different orders.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// assert_eq!(shop.write_retries(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn write_retries(&self) -> u64 {
        self.inner.store.write_retries()
    }
}
