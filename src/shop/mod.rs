//! [`Shop`], the facade: opening a shop and what every flow shares. The
//! flows live one file per topic beside this one (accounts, catalogue,
//! carts, orders, payments, refunds, reconcile, coupons, the feed, leases,
//! operations); [`ShopBuilder`] and [`Limits`] in `builder.rs`.
//!
//! Every method reads like one of the eight flows the shop began with
//! (ARCHITECTURE.md, "The eight flows"): check the input, open one
//! transaction, call the domain modules in the flow's order of checks,
//! commit. The SQL lives in the domain modules.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::db::Db;
use crate::error::Result;
use crate::ids::UserId;
use crate::payment::flow::PaymentConfig;
use crate::store::{Store, UserTx};

use builder::redacted;
// Named by the docs only.
#[cfg(doc)]
use crate::store::WriteMode;

mod accounts;
mod builder;
mod carts;
mod catalogue;
mod coupons;
mod feed;
mod idempotent;
mod leases;
mod ops;
mod orders;
mod payments;
mod reconcile;
mod refunds;

pub use builder::{Limits, ShopBuilder};
pub use idempotent::Idempotent;
pub use ops::Unsettled;

/// The shop: every flow, behind one synchronous facade over one SQLite file.
///
/// `Shop` is `Clone + Send + Sync`; a clone is a pointer copy sharing the one
/// connection pool, so a host opens it once and hands clones to its threads.
///
/// Every write runs atomically under `BEGIN IMMEDIATE` (see [`WriteMode`] for
/// how concurrent writes share commits) and every multi-step read in one read
/// transaction. A call returns `Ok` only after its changes committed; a call
/// that returns an error has changed nothing.
///
/// See the [crate documentation](crate) for an example.
#[derive(Clone)]
pub struct Shop {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    path: PathBuf,
    limits: Limits,
    reservation_time: Duration,
    payments: PaymentConfig,
    clock: Arc<dyn Clock>,
    utc_offset_minutes: i32,
    /// The products placements here last found short ([`crate::sold_out`]).
    #[cfg(feature = "postgres")]
    short: Arc<crate::sold_out::ShortHints>,
}

impl fmt::Debug for Shop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shop")
            .field("target", &redacted(&self.inner.path))
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Shop {
    /// Opens (or creates) the shop database at `path` with default settings.
    /// Same as `Shop::builder(path).build()`.
    ///
    /// # Failure
    ///
    /// As [`ShopBuilder::build`].
    pub fn open(path: impl AsRef<Path>) -> Result<Shop> {
        Shop::builder(path).build()
    }
    /// A builder for a shop at `path`, to set the pool, durability, limits
    /// and clock before opening.
    pub fn builder(path: impl AsRef<Path>) -> ShopBuilder {
        ShopBuilder::new(path.as_ref().to_path_buf())
    }
    /// The limits this shop enforces.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }
    /// How long a `Pending` order holds its stock.
    pub fn reservation_time(&self) -> Duration {
        self.inner.reservation_time
    }
    /// The shop's UTC offset in minutes ([`ShopBuilder::utc_offset_minutes`]):
    /// the calendar days of best sellers, and the times an operator sees.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.inner.utc_offset_minutes
    }
    /// How old an unsettled payment or refund gets before reconciliation
    /// marks it for a person ([`ShopBuilder::review_after`]).
    pub fn review_after(&self) -> Duration {
        self.inner.payments.review_after
    }
    /// The database file — or, on PostgreSQL, the connection string as
    /// given, which may carry a password: do not log it (`Shop`'s `Debug`
    /// shows it redacted).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
    /// Runs `f` as one write holding `user`'s serialisation; `f` gets the
    /// time, read once per run of it ([`Store::write_user`]).
    pub(crate) fn write_user<T: Send + 'static>(
        &self,
        user: UserId,
        f: impl Fn(&UserTx<'_>, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.inner.store.write_user(user, &self.inner.clock, f)
    }
    /// Runs `f` as one shop-wide write, holding no user's lock
    /// ([`Store::write_shop`]).
    pub(crate) fn write_shop<T: Send + 'static>(
        &self,
        f: impl Fn(&dyn Db, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.inner.store.write_shop(&self.inner.clock, f)
    }
    /// The store, for the crate's whole-shop operations ([`crate::copy`]).
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    const _: () = assert_shareable::<Shop>();
}
