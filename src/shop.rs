//! [`Shop`], the facade, and [`ShopBuilder`], its configuration.
//!
//! Every method reads like one flow of the seed's sequence diagrams: check
//! the input, open one transaction, call the domain modules in the seed's
//! order of checks, commit. The SQL lives in the domain modules.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::balance::{self, LedgerEntry};
use crate::cart::{self, Cart, CartLine};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::{Entity, Error, Result};
use crate::ids::{CartItemId, ProductId, UserId};
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::product::{self, NewProduct, Product};
use crate::store::{self, Durability, Pool, StoreConfig};
use crate::user::{self, User};
use crate::validate;

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
}

impl Limits {
    /// Default per-charge limit: 2,000,000 KRW.
    pub const DEFAULT_MAX_CHARGE: Money = Money::from_won(2_000_000);
    /// Default balance limit: 10,000,000 KRW.
    pub const DEFAULT_MAX_BALANCE: Money = Money::from_won(10_000_000);
    /// Default most units of one product in one cart line: 99.
    pub const DEFAULT_MAX_CART_QUANTITY: u32 = 99;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_charge: Limits::DEFAULT_MAX_CHARGE,
            max_balance: Limits::DEFAULT_MAX_BALANCE,
            max_cart_quantity: Limits::DEFAULT_MAX_CART_QUANTITY,
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
    clock: Arc<dyn Clock>,
}

impl ShopBuilder {
    /// Default number of pooled connections: 8.
    pub const DEFAULT_POOL_SIZE: u32 = 8;
    /// Default time to wait for a lock or a pooled connection: 5 seconds.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    fn new(path: PathBuf) -> ShopBuilder {
        ShopBuilder {
            path,
            store: StoreConfig {
                pool_size: Self::DEFAULT_POOL_SIZE,
                busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
                durability: Durability::default(),
            },
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The most connections the pool opens (at least 1). Readers run in
    /// parallel; writers take turns on SQLite's one write lock.
    pub fn pool_size(mut self, size: u32) -> ShopBuilder {
        self.store.pool_size = size;
        self
    }

    /// How long a call waits for the write lock or a free connection before
    /// it gives up with [`Error::Busy`].
    pub fn busy_timeout(mut self, timeout: Duration) -> ShopBuilder {
        self.store.busy_timeout = timeout;
        self
    }

    /// How hard a commit works to survive a power loss; see [`Durability`].
    /// The default is [`Durability::Full`].
    pub fn durability(mut self, durability: Durability) -> ShopBuilder {
        self.store.durability = durability;
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
    /// - [`Error::InvalidConfig`] for a pool size, limit or quantity of zero;
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
        let pool = store::open(&self.path, &self.store)?;
        debug!(path = %self.path.display(), "shop opened");
        Ok(Shop {
            inner: Arc::new(Inner {
                pool,
                path: self.path,
                limits: self.limits,
                clock: self.clock,
            }),
        })
    }
}

impl fmt::Debug for ShopBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopBuilder")
            .field("path", &self.path)
            .field("store", &self.store)
            .field("limits", &self.limits)
            .field("clock", &self.clock)
            .finish()
    }
}

/// The shop: every flow, behind one synchronous facade over one SQLite file.
///
/// `Shop` is `Clone + Send + Sync`; a clone is a pointer copy sharing the one
/// connection pool, so a host opens it once and hands clones to its threads.
///
/// Every write runs in one `BEGIN IMMEDIATE` transaction and every multi-step
/// read in one read transaction. A call that returns an error has changed
/// nothing.
///
/// See the [crate documentation](crate) for an example.
#[derive(Clone)]
pub struct Shop {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    path: PathBuf,
    limits: Limits,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Shop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shop")
            .field("path", &self.inner.path)
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

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    // ----- users -----

    /// Creates a user with a balance of 0 won.
    ///
    /// The name is trimmed and must then be 1 to 100 characters.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`].
    pub fn create_user(&self, name: &str) -> Result<User> {
        let name = validate::name(Entity::User, name)?;
        let now = self.now();
        let user = store::write(&self.inner.pool, |tx| user::create(tx, &name, now))?;
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
        store::read(&self.inner.pool, |tx| user::get(tx, id))
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
        store::read(&self.inner.pool, |tx| {
            user::ensure_exists(tx, user)?;
            balance::get(tx, user)
        })
    }

    /// Adds `amount` to the balance of `user` and returns the new balance
    /// (seed flow 2). A ledger entry of kind
    /// [`Charge`](crate::LedgerKind::Charge) is written with it.
    ///
    /// Checks, in order: the id is valid and the amount is at least 1 won →
    /// the user exists → (the write lock serialises all writers, so two
    /// charges of one user never interleave) the amount is within the
    /// per-charge limit → the new balance is within the balance limit (a sum
    /// too large to represent counts as over it).
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{ErrorKind, Money};
    ///
    /// let kim = shop.create_user("Kim")?;
    /// assert_eq!(shop.charge(kim.id, Money::new(10_000)?)?, Money::new(10_000)?);
    /// let err = shop.charge(kim.id, Money::ZERO).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ZeroAmount`], [`Error::UserNotFound`],
    /// [`Error::ChargeLimitExceeded`], [`Error::BalanceLimitExceeded`].
    pub fn charge(&self, user: UserId, amount: Money) -> Result<Money> {
        let user = user.validate()?;
        if amount.is_zero() {
            return Err(Error::ZeroAmount);
        }
        let limits = &self.inner.limits;
        let now = self.now();
        let balance = store::write(&self.inner.pool, |tx| {
            user::ensure_exists(tx, user)?;
            balance::charge(tx, user, amount, limits.max_charge, limits.max_balance, now)
        })?;
        debug!(user = %user, amount = %amount, balance = %balance, "balance charged");
        Ok(balance)
    }

    /// One page of the ledger of `user`, newest entry first.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidPageSize`], [`Error::UserNotFound`].
    pub fn ledger(&self, user: UserId, page: PageRequest) -> Result<Page<LedgerEntry>> {
        let user = user.validate()?;
        let page = page.validate()?;
        store::read(&self.inner.pool, |tx| {
            user::ensure_exists(tx, user)?;
            balance::ledger(tx, user, page)
        })
    }

    // ----- products: seed flow 3 -----

    /// Adds a product to the catalogue.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`].
    pub fn create_product(&self, new: NewProduct) -> Result<Product> {
        let name = validate::name(Entity::Product, &new.name)?;
        let now = self.now();
        let product = store::write(&self.inner.pool, |tx| {
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
        store::read(&self.inner.pool, |tx| product::get(tx, id))
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
        store::read(&self.inner.pool, |tx| product::list(tx, page))
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
        let now = self.now();
        let product = store::write(&self.inner.pool, |tx| {
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
        let now = self.now();
        let product = store::write(&self.inner.pool, |tx| {
            product::set_price(tx, id, price, now)
        })?;
        debug!(product = %id, price = %price, "product price set");
        Ok(product)
    }

    // ----- cart: seed flows 4 to 6 -----

    /// The cart of `user`, with each line's product name, current unit price
    /// and total, and the cart total (seed flow 4). One query, one snapshot.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::UserNotFound`], [`Error::AmountOverflow`]
    /// when the total does not fit in [`Money`].
    pub fn cart(&self, user: UserId) -> Result<Cart> {
        let user = user.validate()?;
        store::read(&self.inner.pool, |tx| cart::get(tx, user))
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
    /// [`Error::AlreadyInCart`], [`Error::AmountOverflow`].
    pub fn add_to_cart(&self, user: UserId, product: ProductId, quantity: u32) -> Result<CartLine> {
        let user = user.validate()?;
        let product = product.validate()?;
        let quantity = validate::quantity(quantity, self.inner.limits.max_cart_quantity)?;
        let now = self.now();
        let line = store::write(&self.inner.pool, |tx| {
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
    /// [`Error::CartItemNotFound`] (also for another user's line),
    /// [`Error::AmountOverflow`].
    pub fn set_cart_quantity(
        &self,
        user: UserId,
        item: CartItemId,
        quantity: u32,
    ) -> Result<CartLine> {
        let user = user.validate()?;
        let item = item.validate()?;
        let quantity = validate::quantity(quantity, self.inner.limits.max_cart_quantity)?;
        let line = store::write(&self.inner.pool, |tx| {
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
        store::write(&self.inner.pool, |tx| cart::remove(tx, user, item))?;
        debug!(user = %user, item = %item, "removed from cart");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    const _: () = assert_shareable::<Shop>();
}
