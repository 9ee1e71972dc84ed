//! [`Shop`], the facade, and [`ShopBuilder`], its configuration.
//!
//! Every method reads like one flow of the seed's sequence diagrams: check
//! the input, open one transaction, call the domain modules in the seed's
//! order of checks, commit. The SQL lives in the domain modules.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::balance::{self, LedgerEntry};
use crate::cart::{self, Cart, CartLine};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::{Entity, Error, Result};
use crate::gateway::{PaymentGateway, RetryPolicy};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{CartItemId, CouponId, OrderId, PaymentId, ProductId, UserId};
use crate::money::{Currency, Money};
use crate::order::{self, Order, OrderLine, OrderRequest};
use crate::page::{Page, PageRequest};
use crate::payment::flow::{PaymentConfig, Payments, Replay};
use crate::payment::reconcile::{ReconcileReport, ReconciledPayment, Reconciler};
use crate::payment::refund::{self, Refund};
use crate::payment::{self, Payment, PaymentEvent};
use crate::product::{self, NewProduct, Product};
use crate::sales::{self, BestSeller};
use crate::store::{self, Durability, Scope, Store, StoreConfig, WriteMode};
use crate::user::{self, User};
use crate::validate;

mod coupons;
mod feed;
mod idempotent;
mod leases;
mod ops;
mod payments;

pub use idempotent::Idempotent;
pub use ops::Unsettled;

/// The limits the shop enforces on money and quantities.
///
/// Set them with the [`ShopBuilder`]; read them back with [`Shop::limits`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// The most one charge may add to a balance.
    pub max_charge: Money,
    /// The most a balance may hold.
    pub max_balance: Money,
    /// The most units of one product in one cart line.
    pub max_cart_quantity: u32,
    /// The most units of one product in one order line.
    pub max_order_quantity: u32,
    /// The most lines (distinct products) in one order.
    pub max_order_lines: usize,
}

impl Limits {
    /// Default per-charge limit: 2,000,000 KRW.
    pub const DEFAULT_MAX_CHARGE: Money = Money::from_won(2_000_000);
    /// Default balance limit: 10,000,000 KRW.
    pub const DEFAULT_MAX_BALANCE: Money = Money::from_won(10_000_000);
    /// Default most units of one product in one cart line: 99.
    pub const DEFAULT_MAX_CART_QUANTITY: u32 = 99;
    /// Default most units of one product in one order line: 99.
    pub const DEFAULT_MAX_ORDER_QUANTITY: u32 = 99;
    /// Default most lines in one order: 100.
    pub const DEFAULT_MAX_ORDER_LINES: usize = 100;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_charge: Limits::DEFAULT_MAX_CHARGE,
            max_balance: Limits::DEFAULT_MAX_BALANCE,
            max_cart_quantity: Limits::DEFAULT_MAX_CART_QUANTITY,
            max_order_quantity: Limits::DEFAULT_MAX_ORDER_QUANTITY,
            max_order_lines: Limits::DEFAULT_MAX_ORDER_LINES,
        }
    }
}

/// Configures and opens a [`Shop`]. Made by [`Shop::builder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use liteshop::{Durability, ManualClock, Money, Shop};
///
/// let dir = tempfile::tempdir()?;
/// let shop = Shop::builder(dir.path().join("shop.db"))
///     .pool_size(4)
///     .busy_timeout(Duration::from_secs(2))
///     .durability(Durability::Full)
///     .max_charge(Money::new(500_000)?)
///     .max_balance(Money::new(1_000_000)?)
///     .max_cart_quantity(10)
///     .clock(ManualClock::default())
///     .build()?;
/// assert_eq!(shop.limits().max_cart_quantity, 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct ShopBuilder {
    path: PathBuf,
    store: StoreConfig,
    limits: Limits,
    reservation_time: Duration,
    payments: PaymentConfig,
    clock: Arc<dyn Clock>,
    utc_offset_minutes: Option<i32>,
    pg_schema: String,
    existing_only: bool,
}

impl ShopBuilder {
    /// Default PostgreSQL schema of liteshop's tables: `liteshop`.
    pub const DEFAULT_PG_SCHEMA: &'static str = "liteshop";

    /// Default number of pooled connections: 8.
    pub const DEFAULT_POOL_SIZE: u32 = 8;
    /// Default time to wait for a lock or a pooled connection: 5 seconds.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default page cache per connection: 64 MiB (SQLite's own is 2 MB).
    /// Measured on a 2 GB file (README, "Big files"): the mix kept 0.85× of
    /// a small file's throughput, against about 0.75× with 2 MB; a
    /// connection fills it only with pages it reads.
    pub const DEFAULT_CACHE_KIB: u32 = 65_536;
    /// Default memory map per connection: none (SQLite's default).
    pub const DEFAULT_MMAP_BYTES: u64 = 0;
    /// Default WAL size, in pages, after which a commit checkpoints: 1,000
    /// (SQLite's own default, about 4 MB).
    pub const DEFAULT_WAL_AUTOCHECKPOINT: u32 = 1_000;
    /// Default time an unpaid order holds its stock: 15 minutes.
    pub const DEFAULT_RESERVATION_TIME: Duration = Duration::from_secs(15 * 60);
    /// Default time a started payment waits for its confirm: 30 minutes,
    /// the time Toss Payments keeps a payment window open.
    pub const DEFAULT_PAYMENT_WINDOW: Duration = Duration::from_secs(30 * 60);
    /// Default age before reconciliation touches an unsettled payment: 2
    /// minutes.
    pub const DEFAULT_RECONCILE_GRACE: Duration = Duration::from_secs(2 * 60);
    /// Default age past which an unsettled payment is reported for review:
    /// 24 hours.
    pub const DEFAULT_REVIEW_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

    fn new(path: PathBuf) -> ShopBuilder {
        ShopBuilder {
            path,
            store: StoreConfig {
                pool_size: Self::DEFAULT_POOL_SIZE,
                busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
                durability: Durability::default(),
                write_mode: WriteMode::default(),
                wal_autocheckpoint: Self::DEFAULT_WAL_AUTOCHECKPOINT,
                cache_kib: Self::DEFAULT_CACHE_KIB,
                mmap_bytes: Self::DEFAULT_MMAP_BYTES,
            },
            limits: Limits::default(),
            reservation_time: Self::DEFAULT_RESERVATION_TIME,
            payments: PaymentConfig {
                gateway: None,
                retry: RetryPolicy::default(),
                reconcile_grace: Self::DEFAULT_RECONCILE_GRACE,
                review_after: Self::DEFAULT_REVIEW_AFTER,
                window: Self::DEFAULT_PAYMENT_WINDOW,
                currency: Currency::KRW,
            },
            clock: Arc::new(SystemClock),
            utc_offset_minutes: None,
            pg_schema: Self::DEFAULT_PG_SCHEMA.to_owned(),
            existing_only: false,
        }
    }

    /// Opens only a shop that exists — a file, or a PostgreSQL schema
    /// holding liteshop's tables — and never creates one: a missing one is
    /// [`Error::ShopMissing`], and nothing is created. For operators'
    /// tools, which must not make an empty shop out of a typo.
    pub fn existing_only(mut self) -> ShopBuilder {
        self.existing_only = true;
        self
    }

    /// PostgreSQL only: the schema liteshop's tables live in (`liteshop` by
    /// default), so a host's own tables can sit beside them in one
    /// database. A lower-case SQL identifier. Two shops in one database
    /// are two schemas.
    pub fn pg_schema(mut self, schema: &str) -> ShopBuilder {
        schema.clone_into(&mut self.pg_schema);
        self
    }

    /// The most connections the pool opens (at least 1), on either
    /// backend. Readers run in parallel; on SQLite writers take turns on
    /// the one write lock, on PostgreSQL writes of different users run in
    /// parallel, up to this many at once. On PostgreSQL callers beyond
    /// the pool's size wait for a connection in arrival order, so a few
    /// connections per core serve many callers best: measured on two
    /// cores, 64 callers ran faster with a tail half as long on 4–8
    /// connections as on 64 (README, "Outgrow one machine").
    pub fn pool_size(mut self, size: u32) -> ShopBuilder {
        self.store.pool_size = size;
        self
    }

    /// How long a call waits for the write lock (on PostgreSQL: a user's
    /// lock or a row another write holds) or a free connection before it
    /// gives up with [`Error::Busy`]; 5 seconds by default. Both backends
    /// (on PostgreSQL it is the connection's `lock_timeout`).
    ///
    /// Under [`WriteMode::Batched`] a write waits for its turn in the queue
    /// at most this long; if no batch has taken it by then, it is taken out
    /// of the queue and returns `Busy`, and it never runs afterwards. A write
    /// a batch has taken waits for that batch, whose own wait for SQLite's
    /// lock (held, say, by another process) is bounded by this timeout too.
    pub fn busy_timeout(mut self, timeout: Duration) -> ShopBuilder {
        self.store.busy_timeout = timeout;
        self
    }

    /// SQLite only: how hard a commit works to survive a power loss; see
    /// [`Durability`]. The default is [`Durability::Full`]. (On PostgreSQL
    /// the server's `synchronous_commit` decides.)
    pub fn durability(mut self, durability: Durability) -> ShopBuilder {
        self.store.durability = durability;
        self
    }

    /// SQLite only: how writers reach the database; [`WriteMode::Batched`]
    /// (group commit) by default.
    pub fn write_mode(mut self, mode: WriteMode) -> ShopBuilder {
        self.store.write_mode = mode;
        self
    }

    /// The most one charge may add (at least 1 won).
    pub fn max_charge(mut self, limit: Money) -> ShopBuilder {
        self.limits.max_charge = limit;
        self
    }

    /// The most a balance may hold (at least 1 won).
    pub fn max_balance(mut self, limit: Money) -> ShopBuilder {
        self.limits.max_balance = limit;
        self
    }

    /// The most units of one product in one cart line (at least 1).
    pub fn max_cart_quantity(mut self, limit: u32) -> ShopBuilder {
        self.limits.max_cart_quantity = limit;
        self
    }

    /// The most units of one product in one order line (at least 1). A cart
    /// line over this limit is refused at checkout.
    pub fn max_order_quantity(mut self, limit: u32) -> ShopBuilder {
        self.limits.max_order_quantity = limit;
        self
    }

    /// The most lines in one order (at least 1).
    pub fn max_order_lines(mut self, limit: usize) -> ShopBuilder {
        self.limits.max_order_lines = limit;
        self
    }

    /// How long a `Pending` order holds its stock before it expires (at least
    /// one millisecond); 15 minutes by default. See [`Shop::expire_orders`].
    pub fn reservation_time(mut self, time: Duration) -> ShopBuilder {
        self.reservation_time = time;
        self
    }

    /// The payment gateway that approves, looks up and cancels payments.
    /// Without one, a payment or top-up with a PG part
    /// ([`Shop::start_payment`], [`Shop::start_top_up`],
    /// [`Shop::confirm_payment`]), a refund with a PG part and
    /// [`Shop::reconcile_payments`] fail with [`Error::NoGateway`]; a
    /// payment wholly by balance needs none.
    pub fn gateway(mut self, gateway: impl PaymentGateway + 'static) -> ShopBuilder {
        self.payments.gateway = Some(Arc::new(gateway));
        self
    }

    /// How gateway calls that provably never reached the gateway are
    /// retried; 2 retries from 200 ms by default.
    pub fn gateway_retry(mut self, retry: RetryPolicy) -> ShopBuilder {
        self.payments.retry = retry;
        self
    }

    /// How old an unsettled payment must be before reconciliation touches it;
    /// 2 minutes by default. Keep it longer than the slowest gateway call
    /// (its timeouts times its retries), so reconciliation never races a
    /// payment whose approval is still in flight.
    pub fn reconcile_grace(mut self, grace: Duration) -> ShopBuilder {
        self.payments.reconcile_grace = grace;
        self
    }

    /// SQLite only: after how many WAL pages a commit checkpoints the WAL
    /// into the database file; `None` turns automatic checkpoints off.
    /// 1,000 pages by default.
    ///
    /// Turn them off only when something else checkpoints — Litestream does,
    /// and wants to be the only one that does (see the README, "Replicate
    /// with Litestream"); otherwise the WAL grows without bound.
    pub fn wal_autocheckpoint(mut self, pages: Option<u32>) -> ShopBuilder {
        self.store.wal_autocheckpoint = pages.unwrap_or(0);
        self
    }

    /// SQLite only: the page cache of each connection, in KiB. Every pooled
    /// connection and the writer has its own.
    pub fn cache_size_kib(mut self, kib: u32) -> ShopBuilder {
        self.store.cache_kib = kib;
        self
    }

    /// SQLite only: how much of the file each connection reads through a
    /// memory map (`PRAGMA mmap_size`), in bytes; 0 turns it off. The map shares the
    /// operating system's page cache, so it costs address space, not
    /// memory per connection.
    pub fn mmap_size(mut self, bytes: u64) -> ShopBuilder {
        self.store.mmap_bytes = bytes;
        self
    }

    /// The UTC offset, in minutes east of UTC (−14 h to +14 h), whose
    /// calendar days [`Shop::best_sellers`] counts in. A Korean shop sets
    /// `9 * 60`. The offset is stored in the file: without this call a shop
    /// opens in the offset the file holds (UTC for a new file), so an
    /// operator's tool that opens a served shop never changes it. Opening
    /// with another offset rebuilds the sales table from the paid orders,
    /// once, in one transaction; every process that sets an offset on one
    /// file should set the same.
    pub fn utc_offset_minutes(mut self, minutes: i32) -> ShopBuilder {
        self.utc_offset_minutes = Some(minutes);
        self
    }

    /// How long a started payment waits for the customer to pay in the PG's
    /// widget and the shop to confirm; 30 minutes by default. Past it the
    /// payment ends ([`Shop::expire_payments`]) and a confirm is refused
    /// without reaching the PG.
    pub fn payment_window(mut self, window: Duration) -> ShopBuilder {
        self.payments.window = window;
        self
    }

    /// The currency of the shop's money, sent with every request to the
    /// gateway; [`Currency::KRW`] by default. [`HttpGateway`](crate::HttpGateway)
    /// (Toss Payments) takes only KRW and refuses any other before sending.
    pub fn currency(mut self, currency: Currency) -> ShopBuilder {
        self.payments.currency = currency;
        self
    }

    /// How old an unsettled payment must be before reconciliation reports it
    /// for review; 24 hours by default.
    pub fn review_after(mut self, age: Duration) -> ShopBuilder {
        self.payments.review_after = age;
        self
    }

    /// The source of time; [`SystemClock`] by default. Tests pass a
    /// [`ManualClock`](crate::ManualClock) to move time without sleeping.
    pub fn clock(mut self, clock: impl Clock + 'static) -> ShopBuilder {
        self.clock = Arc::new(clock);
        self
    }

    /// Opens the database (creating the file if it does not exist), migrates
    /// it to the current schema, and starts the pool.
    ///
    /// # Failure
    ///
    /// - [`Error::InvalidConfig`] for a pool size, limit, quantity or
    ///   reservation time of zero;
    /// - [`Error::SchemaTooNew`] for a database written by a newer liteshop;
    /// - [`Error::NotADatabase`] for a file that is not an SQLite database,
    ///   or is another program's;
    /// - [`Error::Storage`], [`Error::Migration`], [`Error::Pool`] when SQLite
    ///   fails.
    ///
    /// A refused file is left byte for byte as it was.
    pub fn build(self) -> Result<Shop> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if self.store.pool_size == 0 {
            return invalid("pool size must be at least 1");
        }
        if self.limits.max_charge.is_zero() {
            return invalid("max charge must be at least 1 won");
        }
        if self.limits.max_balance.is_zero() {
            return invalid("max balance must be at least 1 won");
        }
        if self.limits.max_cart_quantity == 0 {
            return invalid("max cart quantity must be at least 1");
        }
        if self.limits.max_order_quantity == 0 {
            return invalid("max order quantity must be at least 1");
        }
        if self.limits.max_order_lines == 0 {
            return invalid("max order lines must be at least 1");
        }
        if self.reservation_time.as_millis() == 0 {
            return invalid("reservation time must be at least 1 millisecond");
        }
        if self.payments.window.as_millis() == 0 {
            return invalid("payment window must be at least 1 millisecond");
        }
        if self.utc_offset_minutes.is_some_and(|m| m.abs() > 14 * 60) {
            return invalid("the UTC offset must be within -14 and +14 hours");
        }
        let store = self.open_store()?;
        let asked = self.utc_offset_minutes;
        let (offset, rebuilt) = store.write(Scope::Shop, &self.clock, move |tx, _| {
            let offset = match asked {
                Some(offset) => offset,
                None => sales::stored_offset(tx)?.unwrap_or(0),
            };
            Ok((offset, sales::ensure_offset(tx, offset)?))
        })?;
        if rebuilt {
            debug!(
                offset_minutes = offset,
                "sales table rebuilt for the UTC offset"
            );
        }
        debug!(target = %redacted(&self.path), "shop opened");
        Ok(Shop {
            inner: Arc::new(Inner {
                store,
                path: self.path,
                limits: self.limits,
                reservation_time: self.reservation_time,
                payments: self.payments,
                clock: self.clock,
                utc_offset_minutes: offset,
            }),
        })
    }
}

impl ShopBuilder {
    /// The store the target names: a PostgreSQL connection string (a
    /// `postgres://` or `postgresql://` URL, or libpq's `host=… port=…`
    /// pairs, several hosts included) or a file.
    fn open_store(&self) -> Result<Store> {
        let target = self.path.to_str().unwrap_or_default();
        #[cfg(feature = "postgres")]
        if crate::db::is_postgres_target(target) {
            let config = store::postgres::PgConfig {
                url: target.to_owned(),
                schema: self.pg_schema.clone(),
                pool_size: self.store.pool_size,
                busy_timeout: self.store.busy_timeout,
                existing_only: self.existing_only,
            };
            return Ok(Store::Postgres(store::postgres::open(&config)?));
        }
        #[cfg(not(feature = "postgres"))]
        if crate::db::is_postgres_target(target) {
            return Err(Error::InvalidConfig {
                reason: "a PostgreSQL shop needs liteshop built with the `postgres` feature",
            });
        }
        if self.existing_only && !self.path.exists() {
            return Err(Error::ShopMissing {
                target: self.path.display().to_string(),
            });
        }
        Ok(Store::Sqlite(store::open_sqlite(&self.path, &self.store)?))
    }
}

/// The checks of an operator's grant or take-back before any lookup: the
/// id, an amount of at least 1 won, and the note.
/// A refund's reason: 1 to 200 characters, no white space at either end,
/// no control character.
pub(crate) fn refund_reason(reason: &str) -> Result<String> {
    const MAX_REASON: usize = 200;
    validate::text(Entity::Refund, reason, MAX_REASON).map_err(|err| match err {
        validate::TextError::Length(length) => Error::InvalidRefundReason {
            length,
            max: MAX_REASON,
        },
        validate::TextError::Control(err) => err,
    })
}

fn operator_entry(user: UserId, amount: Money, note: &str) -> Result<(UserId, String)> {
    const MAX_NOTE: usize = 200;
    let user = user.validate()?;
    if amount.is_zero() {
        return Err(Error::ZeroAmount);
    }
    let note = validate::text(Entity::LedgerEntry, note, MAX_NOTE).map_err(|err| match err {
        validate::TextError::Length(length) => Error::InvalidNote {
            length,
            max: MAX_NOTE,
        },
        validate::TextError::Control(err) => err,
    })?;
    Ok((user, note))
}

/// A target as it may be shown: a file's path, or a connection string
/// with any password replaced by `***`.
fn redacted(target: &Path) -> String {
    let text = target.display().to_string();
    if let Some(rest) = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
        && let Some((credentials, host)) = rest.split_once('@')
    {
        let user = credentials.split(':').next().unwrap_or_default();
        return format!("postgres://{user}:***@{host}");
    }
    text.split_whitespace()
        .map(|pair| {
            if pair.starts_with("password=") {
                "password=***"
            } else {
                pair
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Debug for ShopBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopBuilder")
            .field("target", &redacted(&self.path))
            .field("pg_schema", &self.pg_schema)
            .field("store", &self.store)
            .field("limits", &self.limits)
            .field("reservation_time", &self.reservation_time)
            .field("payments", &self.payments)
            .field("clock", &self.clock)
            .field("utc_offset_minutes", &self.utc_offset_minutes)
            .finish()
    }
}

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

    /// Runs `f` as one write within `scope`; `f` gets the time, read once
    /// per run of it ([`Store::write`]).
    pub(crate) fn write<T: Send + 'static>(
        &self,
        scope: Scope,
        f: impl Fn(&dyn Db, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.inner.store.write(scope, &self.inner.clock, f)
    }

    /// The store, for the crate's whole-shop operations ([`crate::copy`]).
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    // ----- users -----

    /// Creates a user with a balance of 0 won.
    ///
    /// The name is stored exactly as given: 1 to 100 characters, no
    /// control character, no white space at either end.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`], [`Error::InvalidCharacter`],
    /// [`Error::EdgeWhitespace`].
    pub fn create_user(&self, name: &str) -> Result<User> {
        let name = validate::name(Entity::User, name)?;
        let user = self.write(Scope::Shop, move |tx, now| user::create(tx, &name, now))?;
        debug!(user = %user.id, "user created");
        Ok(user)
    }

    /// The user `id`.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], then [`Error::UserNotFound`].
    pub fn user(&self, id: UserId) -> Result<User> {
        let id = id.validate()?;
        self.inner.store.read_one(|tx| user::get(tx, id))
    }

    // ----- balance: seed flows 1 and 2 -----

    /// The balance of `user` (seed flow 1).
    ///
    /// Checks, in order: the id is valid → the user exists → the balance row
    /// exists.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::UserNotFound`], [`Error::BalanceMissing`].
    pub fn balance(&self, user: UserId) -> Result<Money> {
        let user = user.validate()?;
        self.inner.store.read(|tx| {
            user::ensure_exists(tx, user)?;
            balance::get(tx, user)
        })
    }

    /// Credits `amount` to the balance of `user` as money **the host
    /// vouches for** — money it took by its own means (a till, a bank
    /// transfer it checked) — and returns the new balance. A ledger entry
    /// of kind [`HostCredit`](crate::LedgerKind::HostCredit) is written
    /// with it.
    ///
    /// This is not how a customer tops up: that is
    /// [`Shop::start_top_up`], paid through the PG. Never reach this from a
    /// route a customer's token can call (the reference server does not).
    ///
    /// Checks, in order: the id is valid and the amount is at least 1 won →
    /// the user exists → (one user's writes take turns — SQLite's write
    /// lock, or the user's lock on PostgreSQL — so two credits of one user
    /// never interleave) the amount is within the per-charge limit → the
    /// new balance, plus the money in flight for the user, is within the
    /// balance limit (a sum too large to represent counts as over it).
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{ErrorKind, Money};
    ///
    /// let kim = shop.create_user("Kim")?;
    /// assert_eq!(shop.host_credit(kim.id, Money::new(10_000)?)?, Money::new(10_000)?);
    /// let err = shop.host_credit(kim.id, Money::ZERO).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ZeroAmount`], [`Error::UserNotFound`],
    /// [`Error::ChargeLimitExceeded`], [`Error::BalanceLimitExceeded`].
    pub fn host_credit(&self, user: UserId, amount: Money) -> Result<Money> {
        let balance = self.write(Scope::User(user), self.host_credit_body(user, amount)?)?;
        debug!(user = %user, amount = %amount, balance = %balance, "host credit");
        Ok(balance)
    }

    /// The checks of a host credit before any lookup, and its transaction.
    fn host_credit_body(
        &self,
        user: UserId,
        amount: Money,
    ) -> Result<impl Fn(&dyn Db, Timestamp) -> Result<Money> + Send + 'static> {
        let user = user.validate()?;
        if amount.is_zero() {
            return Err(Error::ZeroAmount);
        }
        let (max_charge, max_balance) =
            (self.inner.limits.max_charge, self.inner.limits.max_balance);
        Ok(move |tx: &dyn Db, now| {
            // The balance is read once, as the check that the user exists.
            let balance = balance::of_user(tx, user)?;
            let cap = payment::cap(tx, user, max_balance)?;
            balance::host_credit(tx, user, balance, amount, max_charge, cap, now)
        })
    }

    /// An operator grants `amount` to the balance of `user` — points,
    /// compensation, a correction — with `note` saying why, and returns the
    /// new balance: a ledger entry of kind
    /// [`Grant`](crate::LedgerKind::Grant) carrying the note, counted by
    /// the audit as money in.
    ///
    /// Checks, in order: the id is valid, the amount at least 1 won, the
    /// note 1 to 200 characters with no white space at either end and no
    /// control character → the user exists → the new balance, with the
    /// money in flight, is within the balance limit. (The per-charge limit
    /// is a customer's; an operator is not bound by it.)
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{LedgerKind, Money, PageRequest};
    ///
    /// let kim = shop.create_user("Kim")?;
    /// shop.grant(kim.id, Money::new(3_000)?, "late delivery")?;
    /// assert_eq!(shop.take_back(kim.id, Money::new(1_000)?, "granted twice")?, Money::new(2_000)?);
    /// let ledger = shop.ledger(kim.id, PageRequest::first(10))?;
    /// assert_eq!(ledger.items[1].kind, LedgerKind::Grant);
    /// assert_eq!(ledger.items[1].note.as_deref(), Some("late delivery"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ZeroAmount`], [`Error::InvalidNote`],
    /// [`Error::InvalidCharacter`], [`Error::EdgeWhitespace`],
    /// [`Error::UserNotFound`], [`Error::BalanceLimitExceeded`].
    pub fn grant(&self, user: UserId, amount: Money, note: &str) -> Result<Money> {
        let body = self.operator_body(true, user, amount, note)?;
        let balance = self.write(Scope::User(user), body)?;
        debug!(user = %user, amount = %amount, balance = %balance, "balance granted");
        Ok(balance)
    }

    /// The checks of an operator's grant or take-back (`grant`: which)
    /// before any lookup, and its transaction.
    pub(crate) fn operator_body(
        &self,
        grant: bool,
        user: UserId,
        amount: Money,
        note: &str,
    ) -> Result<impl Fn(&dyn Db, Timestamp) -> Result<Money> + Send + 'static> {
        let (user, note) = operator_entry(user, amount, note)?;
        let max_balance = self.inner.limits.max_balance;
        Ok(move |tx: &dyn Db, now| {
            let balance = balance::of_user(tx, user)?;
            if grant {
                let cap = payment::cap(tx, user, max_balance)?;
                balance::grant(tx, user, balance, amount, &note, cap, now)
            } else {
                balance::take_back(tx, user, balance, amount, &note, now)
            }
        })
    }

    /// An operator takes `amount` back from the balance of `user`, with
    /// `note` saying why, and returns the new balance: a ledger entry of
    /// kind [`TakeBack`](crate::LedgerKind::TakeBack). Never more than the
    /// balance; money held by a payment in flight is not the balance's.
    ///
    /// Checks, in order: as [`Shop::grant`] → the balance covers it.
    ///
    /// # Failure
    ///
    /// As [`Shop::grant`], but [`Error::InsufficientBalance`] instead of
    /// the balance limit.
    pub fn take_back(&self, user: UserId, amount: Money, note: &str) -> Result<Money> {
        let body = self.operator_body(false, user, amount, note)?;
        let balance = self.write(Scope::User(user), body)?;
        debug!(user = %user, amount = %amount, balance = %balance, "balance taken back");
        Ok(balance)
    }

    /// Deletes the idempotency keys stored before `before` and returns how
    /// many; a repeat after that runs as a new request. Keep keys longer
    /// than any client retries (a day is usual).
    ///
    /// # Failure
    ///
    /// Only storage errors.
    pub fn prune_idempotency_keys(&self, before: Timestamp) -> Result<usize> {
        self.write(Scope::Shop, move |tx, _| idempotency::prune(tx, before))
    }

    /// One page of the ledger of `user`, newest entry first.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidPageSize`], [`Error::UserNotFound`].
    pub fn ledger(&self, user: UserId, page: PageRequest) -> Result<Page<LedgerEntry>> {
        let user = user.validate()?;
        let page = page.validate()?;
        self.inner.store.read(|tx| {
            user::ensure_exists(tx, user)?;
            balance::ledger(tx, user, page)
        })
    }

    // ----- products: seed flow 3 -----

    /// Adds a product to the catalogue.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`], [`Error::InvalidCharacter`],
    /// [`Error::EdgeWhitespace`].
    pub fn create_product(&self, new: NewProduct) -> Result<Product> {
        let name = validate::name(Entity::Product, &new.name)?;
        let product = self.write(Scope::Shop, move |tx, now| {
            product::create(tx, &name, new.price, new.stock, now)
        })?;
        debug!(product = %product.id, price = %product.price, stock = product.stock, "product created");
        Ok(product)
    }

    /// The product `id` (seed flow 3).
    ///
    /// Checks, in order: the id is valid → the product exists.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ProductNotFound`].
    pub fn product(&self, id: ProductId) -> Result<Product> {
        let id = id.validate()?;
        self.inner.store.read_one(|tx| product::get(tx, id))
    }

    /// One page of the catalogue in id order (oldest product first).
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{Money, NewProduct, PageRequest};
    ///
    /// for name in ["a", "b", "c"] {
    ///     shop.create_product(NewProduct { name: name.into(), price: Money::ZERO, stock: 1 })?;
    /// }
    /// let first = shop.products(PageRequest::first(2))?;
    /// assert_eq!(first.items.len(), 2);
    /// let rest = shop.products(PageRequest::after(first.next.unwrap(), 2))?;
    /// assert_eq!(rest.items[0].name, "c");
    /// assert!(rest.next.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidPageSize`].
    pub fn products(&self, page: PageRequest) -> Result<Page<Product>> {
        let page = page.validate()?;
        self.inner.store.read(|tx| product::list(tx, page))
    }

    /// Adds `quantity` units to the stock of `id`; returns the product.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`] (zero),
    /// [`Error::ProductNotFound`], [`Error::StockOverflow`].
    pub fn restock(&self, id: ProductId, quantity: u32) -> Result<Product> {
        let id = id.validate()?;
        let quantity = validate::quantity(quantity, u32::MAX)?;
        let product = self.write(Scope::Shop, move |tx, now| {
            product::restock(tx, id, quantity, now)
        })?;
        debug!(product = %id, quantity, stock = product.stock, "product restocked");
        Ok(product)
    }

    /// Sets the unit price of `id`; returns the product. Carts show the new
    /// price at once.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ProductNotFound`].
    pub fn set_price(&self, id: ProductId, price: Money) -> Result<Product> {
        let id = id.validate()?;
        let product = self.write(Scope::Shop, move |tx, now| {
            product::set_price(tx, id, price, now)
        })?;
        debug!(product = %id, price = %price, "product price set");
        Ok(product)
    }

    /// Marks `id` as sold free of VAT (면세) or not; returns the product.
    /// Orders placed from then on send their tax-free lines' share of each
    /// PG amount as the PG's tax-free amount (Toss: `taxFreeAmount`, which
    /// a shop selling tax-free goods must send); orders placed before keep
    /// what the product was then.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ProductNotFound`].
    pub fn set_tax_free(&self, id: ProductId, tax_free: bool) -> Result<Product> {
        let id = id.validate()?;
        let product = self.write(Scope::Shop, move |tx, now| {
            product::set_tax_free(tx, id, tax_free, now)
        })?;
        debug!(product = %id, tax_free, "product tax status set");
        Ok(product)
    }

    // ----- cart: seed flows 4 to 6 -----

    /// The cart of `user`, with each line's product name, current unit price
    /// and total, and the cart total (seed flow 4). One query, one snapshot.
    ///
    /// A line whose total does not fit in [`Money`] is listed with no total
    /// (and the cart then has none either), so its owner can still see and
    /// remove it.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::UserNotFound`].
    pub fn cart(&self, user: UserId) -> Result<Cart> {
        let user = user.validate()?;
        self.inner.store.read(|tx| cart::get(tx, user))
    }

    /// Puts `quantity` units of `product` into the cart of `user` as a new
    /// line (seed flow 5). A product already in the cart is refused: change
    /// that line with [`Shop::set_cart_quantity`]. Stock is not checked here;
    /// it is checked and reserved when an order is placed.
    ///
    /// Checks, in order: ids valid and quantity 1 to the limit → the user
    /// exists → the product exists → the product is not in the cart yet.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`],
    /// [`Error::UserNotFound`], [`Error::ProductNotFound`],
    /// [`Error::AlreadyInCart`].
    pub fn add_to_cart(&self, user: UserId, product: ProductId, quantity: u32) -> Result<CartLine> {
        let user = user.validate()?;
        let product = product.validate()?;
        let quantity = validate::quantity(quantity, self.inner.limits.max_cart_quantity)?;
        let line = self.write(Scope::User(user), move |tx, now| {
            user::ensure_exists(tx, user)?;
            cart::add(tx, user, product, quantity, now)
        })?;
        debug!(user = %user, product = %product, item = %line.id, quantity, "added to cart");
        Ok(line)
    }

    /// Sets the quantity of the line `item` in the cart of `user`.
    ///
    /// Checks, in order: ids valid and quantity 1 to the limit → the line
    /// exists and is this user's.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`],
    /// [`Error::CartItemNotFound`] (also for another user's line).
    pub fn set_cart_quantity(
        &self,
        user: UserId,
        item: CartItemId,
        quantity: u32,
    ) -> Result<CartLine> {
        let user = user.validate()?;
        let item = item.validate()?;
        let quantity = validate::quantity(quantity, self.inner.limits.max_cart_quantity)?;
        let line = self.write(Scope::User(user), move |tx, _| {
            cart::set_quantity(tx, user, item, quantity)
        })?;
        debug!(user = %user, item = %item, quantity, "cart quantity set");
        Ok(line)
    }

    /// Removes the line `item` from the cart of `user` (seed flow 6).
    ///
    /// Checks, in order: ids valid → the line exists and is this user's.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::CartItemNotFound`] (also for another
    /// user's line).
    pub fn remove_from_cart(&self, user: UserId, item: CartItemId) -> Result<()> {
        let user = user.validate()?;
        let item = item.validate()?;
        self.write(Scope::User(user), move |tx, _| cart::remove(tx, user, item))?;
        debug!(user = %user, item = %item, "removed from cart");
        Ok(())
    }

    // ----- orders: seed flow 7 -----

    /// Places an order for `lines` (seed flow 7): reserves their stock and
    /// saves the order as [`Pending`](crate::OrderStatus::Pending) until the
    /// reservation time runs out. No money is taken: the balance must cover
    /// the total now, and the payment debits it later.
    ///
    /// Checks, in order: at least one line, at most the line limit, valid
    /// ids, quantities 1 to the order quantity limit, no product twice (lines
    /// are not merged) → the user exists → every product exists → each
    /// line's stock suffices (if one is short, overdue orders holding that
    /// product are expired first, and the stock checked again) → the coupon,
    /// if any, is the user's, available, not expired, and the subtotal
    /// reaches its minimum. The balance is not checked here: an order may be
    /// paid by card, and the balance part of a payment is checked (and
    /// held) when the payment starts ([`Shop::start_payment`]). All in one
    /// transaction: a refusal of any line leaves
    /// every stock and the coupon as they were. Unit prices and names are
    /// copied onto the order; the discount is spread over its lines (see
    /// [`OrderItem::amount`](crate::OrderItem::amount)). The coupon is used
    /// from now; it comes back if the order is cancelled, expires or is
    /// fully refunded.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{Money, NewProduct, OrderLine, OrderStatus};
    ///
    /// let kim = shop.create_user("Kim")?;
    /// shop.host_credit(kim.id, Money::new(30_000)?)?;
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(12_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    /// assert_eq!(order.status, OrderStatus::Pending);
    /// assert_eq!(order.total, Money::new(24_000)?);
    /// assert_eq!(shop.product(tea.id)?.stock, 3);
    /// assert_eq!(shop.balance(kim.id)?, Money::new(30_000)?); // not debited yet
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::EmptyOrder`], [`Error::TooManyOrderLines`],
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`],
    /// [`Error::DuplicateOrderLine`], [`Error::UserNotFound`],
    /// [`Error::ProductNotFound`], [`Error::InsufficientStock`],
    /// [`Error::AmountOverflow`], and with a coupon
    /// [`Error::CouponNotFound`] (also one not issued to the user),
    /// [`Error::CouponUsed`], [`Error::CouponExpired`],
    /// [`Error::CouponMinimumNotMet`].
    pub fn place_order(&self, user: UserId, request: impl Into<OrderRequest>) -> Result<Order> {
        let order = self.write(
            Scope::User(user),
            self.place_order_body(user, request.into())?,
        )?;
        debug!(user = %user, order = %order.id, total = %order.total, lines = order.lines.len(), "order placed");
        Ok(order)
    }

    fn place_order_body(
        &self,
        user: UserId,
        request: OrderRequest,
    ) -> Result<impl Fn(&dyn Db, Timestamp) -> Result<Order> + Send + 'static> {
        let OrderRequest { lines, coupon } = request;
        let user = user.validate()?;
        let limits = &self.inner.limits;
        order::validate_lines(&lines, limits.max_order_quantity, limits.max_order_lines)?;
        let coupon = coupon.map(CouponId::validate).transpose()?;
        let reservation = self.inner.reservation_time;
        Ok(move |tx: &dyn Db, now: Timestamp| {
            balance::of_user(tx, user)?; // the user exists
            let expires_at = now.saturating_add(reservation);
            order::place(tx, user, &lines, coupon, expires_at, now)
        })
    }

    /// Places an order for the lines of `user`'s cart, with `coupon` if
    /// given, and empties the cart, in one transaction: if the order is
    /// refused, the cart, the coupon and every stock stay as they were.
    ///
    /// Checks, in order: the id is valid → the user exists → the cart is not
    /// empty → its lines pass the order limits → then as
    /// [`Shop::place_order`].
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::UserNotFound`], [`Error::EmptyCart`],
    /// then as [`Shop::place_order`].
    pub fn checkout_cart(&self, user: UserId, coupon: Option<CouponId>) -> Result<Order> {
        let order = self.write(Scope::User(user), self.checkout_body(user, coupon)?)?;
        debug!(user = %user, order = %order.id, total = %order.total, "cart checked out");
        Ok(order)
    }

    fn checkout_body(
        &self,
        user: UserId,
        coupon: Option<CouponId>,
    ) -> Result<impl Fn(&dyn Db, Timestamp) -> Result<Order> + Send + 'static> {
        let user = user.validate()?;
        let coupon = coupon.map(CouponId::validate).transpose()?;
        let max_quantity = self.inner.limits.max_order_quantity;
        let max_lines = self.inner.limits.max_order_lines;
        let reservation = self.inner.reservation_time;
        Ok(move |tx: &dyn Db, now: Timestamp| {
            balance::of_user(tx, user)?; // the user exists
            let expires_at = now.saturating_add(reservation);
            let lines = cart::order_lines(tx, user)?;
            if lines.is_empty() {
                return Err(Error::EmptyCart { user });
            }
            order::validate_lines(&lines, max_quantity, max_lines)?;
            let order = order::place(tx, user, &lines, coupon, expires_at, now)?;
            cart::clear(tx, user)?;
            Ok(order)
        })
    }

    /// The order `id` of `user`.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order).
    pub fn order(&self, user: UserId, id: OrderId) -> Result<Order> {
        let user = user.validate()?;
        let id = id.validate()?;
        self.inner.store.read(|tx| order::get(tx, user, id))
    }

    /// One page of the orders of `user`, newest first, with their lines.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidPageSize`], [`Error::UserNotFound`].
    pub fn orders(&self, user: UserId, page: PageRequest) -> Result<Page<Order>> {
        let user = user.validate()?;
        let page = page.validate()?;
        self.inner.store.read(|tx| {
            user::ensure_exists(tx, user)?;
            order::list(tx, user, page)
        })
    }

    /// Cancels the order `id` of `user` and puts its stock back. Only a
    /// `Pending` order can be cancelled.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order), [`Error::InvalidTransition`] naming the current state.
    pub fn cancel_order(&self, user: UserId, id: OrderId) -> Result<Order> {
        let order = self.write(Scope::User(user), self.cancel_body(user, id)?)?;
        debug!(user = %user, order = %id, "order cancelled");
        Ok(order)
    }

    fn cancel_body(
        &self,
        user: UserId,
        id: OrderId,
    ) -> Result<impl Fn(&dyn Db, Timestamp) -> Result<Order> + Send + 'static> {
        let user = user.validate()?;
        let id = id.validate()?;
        Ok(move |tx: &dyn Db, now| order::cancel(tx, user, id, now))
    }

    /// Cancels every order still `Pending` at its deadline (placed more than
    /// the reservation time ago), puts its stock back, and returns how many.
    /// First it ends the started payments whose confirm window ran out
    /// ([`Shop::expire_payments`]), so an order nobody paid for in the PG's
    /// widget is `Pending` again and expires here if its reservation ran out
    /// too.
    /// Expired orders have [`CancelReason::Expired`](crate::CancelReason).
    ///
    /// A host calls this periodically; [`Shop::place_order`] also expires
    /// the overdue orders that hold stock it needs.
    ///
    /// Each order expires in a write of its own, under its owner's
    /// serialisation, taking the order's row and then its products in id
    /// order — never one order's products and then another order's row, so
    /// the sweep cannot deadlock with a placement on PostgreSQL. An order
    /// that cannot be expired (a database altered outside liteshop) is
    /// logged and left for a person; the others still expire.
    ///
    /// # Failure
    ///
    /// Only storage errors ([`Error::Busy`], [`Error::Storage`]).
    pub fn expire_orders(&self) -> Result<usize> {
        const BATCH: u32 = 100;
        self.expire_payments()?;
        let mut expired = 0;
        loop {
            let now = self.now();
            let due = self.inner.store.read(|tx| order::due(tx, now, BATCH))?;
            let batch = due.len();
            let before = expired;
            for (id, owner) in due {
                match self.write(Scope::User(owner), move |tx, now| {
                    order::expire_one(tx, id, now)
                }) {
                    Ok(true) => expired += 1,
                    Ok(false) => {}
                    Err(err @ (Error::Busy(_) | Error::CommitOutcomeUnknown)) => return Err(err),
                    Err(err) => {
                        tracing::error!(order = %id, error = %err,
                            "the order could not be expired; left for a person");
                    }
                }
            }
            // A full batch that expired nothing is orders left for a
            // person: the next batch would be the same.
            if batch < BATCH as usize || expired == before {
                break;
            }
        }
        if expired > 0 {
            debug!(expired, "overdue orders expired");
        }
        Ok(expired)
    }

    /// The `limit` products (1 to 100) that sold the most units in the last
    /// `days` calendar days (1 to 30, today included) in the shop's UTC
    /// offset ([`ShopBuilder::utc_offset_minutes`]), most units first, ties
    /// by product id, with units and revenue. "Sold" is paid, less refunded
    /// units: a refund takes its units off the day the order was paid.
    /// Products that sold nothing are left out, so the list may be shorter.
    ///
    /// It reads only the per-day sales rows of the window, which the
    /// payment and refund transactions keep up to date; no order is
    /// scanned.
    ///
    /// # Failure
    ///
    /// [`Error::OutOfRange`] for `days` or `limit` out of bounds.
    pub fn best_sellers(&self, days: u32, limit: u32) -> Result<Vec<BestSeller>> {
        validate::range("days", days, 1, 30)?;
        validate::range("limit", limit, 1, 100)?;
        let now = self.now();
        self.inner
            .store
            .read(|tx| sales::best_sellers(tx, days, limit, now))
    }

    // ----- payments: seed flow 8 -----

    fn gateway(&self) -> Result<&dyn PaymentGateway> {
        self.inner
            .payments
            .gateway
            .as_deref()
            .ok_or(Error::NoGateway)
    }

    /// The context of the flows that call the gateway (which may be
    /// absent: a payment wholly by balance needs none).
    fn payments(&self) -> Payments<'_> {
        Payments {
            store: &self.inner.store,
            gateway: self.inner.payments.gateway.as_deref(),
            config: &self.inner.payments,
            clock: &self.inner.clock,
            max_balance: self.inner.limits.max_balance,
        }
    }

    /// Settles every `Requested` or `Unknown` payment and refund attempt
    /// older than the grace period ([`ShopBuilder::reconcile_grace`]) and
    /// reports each one it looked at, with its id and status after the round.
    ///
    /// With no transaction open during gateway calls, oldest first:
    ///
    /// - a payment: the gateway's `status` for its `pg_order_id` is asked;
    ///   an approval or a decline is recorded as [`Shop::confirm_payment`]
    ///   records it; authenticated but unconfirmed at the PG
    ///   ([`PgPending::InProgress`](crate::PgPending::InProgress)) inside the
    ///   gateway's confirm window, or "never received", means the approval
    ///   is sent again **with the payment's stored idempotency key**, so it
    ///   is charged at most once whatever happened before;
    /// - a refund attempt: its cancel is sent again **with the attempt's
    ///   stored key**, which the gateway treats as the same cancel; the
    ///   answer is recorded as [`Shop::refund`] records it. Past the
    ///   gateway's key lifetime ([`GatewayLimits`](crate::GatewayLimits))
    ///   nothing is sent again: the attempt is settled from the PG's record
    ///   of the payment, or left for a person.
    ///
    /// No definite answer leaves the attempt for the next round. One still
    /// unsettled past [`ShopBuilder::review_after`] is marked
    /// `needs_review` — never settled on a guess, since the gateway may hold
    /// the money.
    ///
    /// A process killed at any point of a payment or a refund leaves a
    /// `Requested` or `Unknown` attempt that this finishes.
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors ([`Error::Busy`]) end the round
    /// early, and the next round continues.
    pub fn reconcile_payments(&self) -> Result<ReconcileReport> {
        self.gateway()?;
        self.payments().reconcile()
    }

    /// The PG says payment attempt `pg_order_id` changed — a webhook such as
    /// Toss's `PAYMENT_STATUS_CHANGED` or `DEPOSIT_CALLBACK` named it. The
    /// notice's body is never trusted: the shop looks the payment up at the
    /// PG and settles it from that record, exactly once, however often and
    /// in whatever order notices arrive (an old notice cannot move a
    /// payment backwards, since only the PG's current record counts).
    ///
    /// An unsettled payment is settled as [`Shop::reconcile_payments`]
    /// settles it, without waiting for the grace period. A settled one is
    /// compared with the PG's record, and a difference made outside the
    /// shop is reported with `needs_review` and logged. A cancel the PG
    /// made on its own (in its dashboard, say) is recorded so the books
    /// follow the PG: a completed [`Refund`](crate::Refund) of origin
    /// [`RefundOrigin::Pg`](crate::RefundOrigin::Pg) that returns no units
    /// (for a top-up, the balance gives back what it still holds of it).
    /// A payment the PG approved that the shop declined is left for a
    /// person. Returns `None` for an attempt the shop does not know
    /// (logged; nothing changes).
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors.
    pub fn payment_changed_at_pg(&self, pg_order_id: &str) -> Result<Option<ReconciledPayment>> {
        self.gateway()?;
        self.payments().settle_at_pg(pg_order_id)
    }

    /// The PG says the deposit into payment attempt `pg_order_id`'s virtual
    /// account changed (Toss's `DEPOSIT_CALLBACK`, whose body carries the
    /// payment's `secret` and no `eventType`). If `secret` is the one the PG
    /// issued with the account ([`Payment::deposit`](crate::Payment::deposit)),
    /// the payment is settled from the PG's record exactly as
    /// [`Shop::payment_changed_at_pg`] settles it — the body's status is
    /// never trusted, so an old notice cannot move a payment backwards.
    /// Any other secret, a payment without a virtual account, or one the
    /// shop does not know: logged, nothing changes, `None`.
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors.
    pub fn deposit_notice(
        &self,
        pg_order_id: &str,
        secret: &str,
    ) -> Result<Option<ReconciledPayment>> {
        self.gateway()?;
        self.payments().settle_deposit_notice(pg_order_id, secret)
    }

    /// Stores the customer's bank account that refunds of `payment`, made by
    /// bank transfer, go to: such a payment has no card to give money back
    /// to, and the PG needs the account to cancel it (Toss:
    /// `refundReceiveAccount`). Set it before asking for the refund; a
    /// later call replaces it. The account is sent only with cancels of
    /// this payment and never shown in `Debug` or logs.
    ///
    /// # Failure
    ///
    /// In order: [`Error::InvalidRefundAccount`] →
    /// [`Error::PaymentNotFound`] (also another user's) →
    /// [`Error::NotABankTransfer`]. Nothing is stored on any of them.
    pub fn set_refund_account(
        &self,
        user: UserId,
        payment: PaymentId,
        account: &crate::RefundAccount,
    ) -> Result<()> {
        let account = account.clone();
        self.inner
            .store
            .write(Scope::User(user), &self.inner.clock, move |tx, now| {
                payment::set_refund_account(tx, user, payment, &account, now)
            })
    }

    /// Compares every payment with a PG part approved in the last `within`
    /// with the PG's record, as [`Shop::payment_changed_at_pg`] does for
    /// one: the sweep that finds changes made outside the shop when no
    /// webhook told of them (a PG that sends none, or a notice lost after
    /// its retries). One lookup per payment, oldest first; run it as often
    /// as the PG's rate limits allow (a daily sweep over a week, say).
    /// Returns every payment it looked at.
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors end the sweep early.
    pub fn compare_with_pg(&self, within: Duration) -> Result<Vec<ReconciledPayment>> {
        self.gateway()?;
        self.payments().sweep_pg(within)
    }

    /// Starts a background thread that runs [`Shop::reconcile_payments`]
    /// every `interval` and logs each report with `tracing`. It stops when
    /// the returned handle is dropped or [`stop`](Reconciler::stop)ped.
    pub fn spawn_reconciler(&self, interval: Duration) -> Reconciler {
        Reconciler::spawn(self.clone(), interval)
    }

    /// Refunds every unit of the paid order `order` of `user` not refunded
    /// yet. See [`Shop::refund_lines`] for the steps, checks and errors.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use liteshop::{FakeGateway, Money, NewProduct, OrderLine, OrderStatus, RefundStatus, Shop};
    ///
    /// let pg = FakeGateway::new();
    /// let shop = Shop::builder(dir.path().join("shop.db")).gateway(pg.clone()).build()?;
    /// let kim = shop.create_user("Kim")?;
    /// shop.grant(kim.id, Money::new(30_000)?, "welcome points")?;
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(5_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 3)])?;
    /// // 10,000 from the balance, 5,000 by card.
    /// let started = shop.start_payment(kim.id, order.id, Money::new(10_000)?)?;
    /// shop.confirm_payment(kim.id, started.id, &pg.pay_widget(&started.widget().unwrap()))?;
    ///
    /// // The PG part goes back first: this unit goes back to the card.
    /// let one = shop.refund_lines(kim.id, order.id, &[OrderLine::new(tea.id, 1)], "one broke")?;
    /// assert_eq!((one.status, one.pg_amount), (RefundStatus::Completed, Money::new(5_000)?));
    /// assert_eq!(shop.order(kim.id, order.id)?.status, OrderStatus::PartiallyRefunded);
    ///
    /// let rest = shop.refund(kim.id, order.id, "changed my mind")?;
    /// assert_eq!(rest.balance_amount, Money::new(10_000)?);
    /// assert_eq!(shop.order(kim.id, order.id)?.status, OrderStatus::Refunded);
    /// assert_eq!(shop.balance(kim.id)?, Money::new(30_000)?);
    /// assert_eq!(shop.product(tea.id)?.stock, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// As [`Shop::refund_lines`].
    pub fn refund(&self, user: UserId, order: OrderId, reason: &str) -> Result<Refund> {
        self.refund_inner(user, order, None, reason, None)
            .map(|(refund, _)| refund)
    }

    /// Refunds `lines` (products and unit counts) of the paid order `order`
    /// of `user`: credits what those units were paid, puts them back into
    /// stock, and moves the order to `PartiallyRefunded`, or to `Refunded`
    /// once no unit is left.
    ///
    /// The steps, exactly once whatever happens:
    ///
    /// 1. In one write transaction — checks, in order: ids valid, lines
    ///    valid (as for an order: at least one, no product twice, quantities
    ///    at least 1), reason 1 to 200 characters with no white space at
    ///    either end and no control character → the order exists and is the user's → it is
    ///    `Paid` or `PartiallyRefunded` → no other refund of it is in flight
    ///    → each line's product is on the order with that many units not yet
    ///    refunded → the credit, plus the money already in flight, fits under
    ///    the balance limit. Then the attempt is recorded as `Requested` with
    ///    its own fresh idempotency key and its lines; from now on its amount
    ///    counts as in flight, so the credit will fit when it comes.
    /// 2. With no transaction open, the gateway is asked to cancel that
    ///    amount with that key, retrying only calls that provably never
    ///    reached it.
    /// 3. In a second write transaction the answer is recorded: cancelled →
    ///    [`RefundStatus::Completed`](crate::RefundStatus::Completed), the
    ///    balance credited (a [`Refund`](crate::LedgerKind::Refund) ledger
    ///    entry), the units released, the order moved, `Ok`; declined →
    ///    `Declined`, nothing moved, [`Error::RefundDeclined`] (a later
    ///    refund is a new attempt with a new key); no definite answer →
    ///    `Unknown`, nothing moved yet, [`Error::RefundOutcomeUnknown`] —
    ///    [`Shop::reconcile_payments`] settles it later.
    ///
    /// The money of a line is spread over its units so that the refunds of
    /// a line, in any split, add up to exactly what it was paid
    /// ([`OrderItem::amount`](crate::OrderItem::amount)); the completed
    /// refunds of a payment never add up to more than it.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::EmptyOrder`],
    /// [`Error::TooManyOrderLines`], [`Error::InvalidQuantity`],
    /// [`Error::DuplicateOrderLine`], [`Error::InvalidRefundReason`],
    /// [`Error::InvalidCharacter`], [`Error::EdgeWhitespace`],
    /// [`Error::NoGateway`],
    /// [`Error::OrderNotFound`], [`Error::InvalidTransition`],
    /// [`Error::RefundInProgress`], [`Error::RefundExceedsOrder`],
    /// [`Error::BalanceLimitExceeded`] (all changing nothing); then
    /// [`Error::RefundDeclined`], [`Error::GatewayUnavailable`],
    /// [`Error::GatewayRejected`] (the attempt recorded `Declined`, nothing
    /// else moved) or [`Error::RefundOutcomeUnknown`] (the attempt held for
    /// reconciliation; also when the answer could not be recorded).
    pub fn refund_lines(
        &self,
        user: UserId,
        order: OrderId,
        lines: &[OrderLine],
        reason: &str,
    ) -> Result<Refund> {
        self.refund_inner(user, order, Some(lines), reason, None)
            .map(|(refund, _)| refund)
    }

    /// A refund of `lines` (`None`: every unit left), under `key` if there
    /// is one: every check of [`Shop::refund_lines`], in its order, then the
    /// flow.
    fn refund_inner(
        &self,
        user: UserId,
        order: OrderId,
        lines: Option<&[OrderLine]>,
        reason: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<(Refund, Replay)> {
        if let Some(lines) = lines {
            let limits = &self.inner.limits;
            order::validate_lines(lines, limits.max_order_quantity, limits.max_order_lines)?;
        }
        let lines = lines.map(<[OrderLine]>::to_vec);
        let user = user.validate()?;
        let order = order.validate()?;
        let reason = refund_reason(reason)?;
        self.payments().refund(user, order, lines, reason, key)
    }

    /// Every refund attempt of the order `order` of `user`, oldest first,
    /// with its lines and status.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order).
    pub fn refunds(&self, user: UserId, order: OrderId) -> Result<Vec<Refund>> {
        let user = user.validate()?;
        let order = order.validate()?;
        self.inner
            .store
            .read(|tx| refund::for_order(tx, user, order))
    }

    /// The payment `id` of `user`.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::PaymentNotFound`] (also for another
    /// user's payment).
    pub fn payment(&self, user: UserId, id: PaymentId) -> Result<Payment> {
        let user = user.validate()?;
        let id = id.validate()?;
        self.inner
            .store
            .read(|tx| payment::get_for_user(tx, user, id))
    }

    /// Every payment attempt of the order `order` of `user`, oldest first.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order).
    pub fn payments_for_order(&self, user: UserId, order: OrderId) -> Result<Vec<Payment>> {
        let user = user.validate()?;
        let order = order.validate()?;
        self.inner
            .store
            .read(|tx| payment::for_order(tx, user, order))
    }

    /// The history of the payment `id` of `user`: every status change, with
    /// its time and detail, oldest first.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::PaymentNotFound`] (also for another
    /// user's payment).
    pub fn payment_history(&self, user: UserId, id: PaymentId) -> Result<Vec<PaymentEvent>> {
        let user = user.validate()?;
        let id = id.validate()?;
        self.inner.store.read(|tx| {
            payment::get_for_user(tx, user, id)?;
            payment::events(tx, id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    const _: () = assert_shareable::<Shop>();
}
