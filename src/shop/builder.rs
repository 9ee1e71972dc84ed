//! [`ShopBuilder`]: a shop's configuration and limits, and opening its
//! store.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{Inner, Shop};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::gateway::{PaymentGateway, RetryPolicy};
use crate::money::{Currency, Money};
use crate::payment::flow::PaymentConfig;
use crate::sales;
use crate::store::{self, Durability, Store, StoreConfig, WriteMode};

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

    pub(super) fn new(path: PathBuf) -> ShopBuilder {
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
        let (offset, rebuilt) = store.write_shop(&self.clock, move |tx, _| {
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
                #[cfg(feature = "postgres")]
                short: Arc::new(crate::sold_out::ShortHints::new()),
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

/// A target as it may be shown: a file's path, or a connection string
/// with any password replaced by `***`.
pub(super) fn redacted(target: &Path) -> String {
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
