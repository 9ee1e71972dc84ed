//! Users and their balances: accounts, the host's credits, an operator's
//! grants and take-backs, the ledger, and pruning old idempotency keys.

use tracing::debug;

use super::Shop;
use crate::balance::{self, LedgerEntry};
use crate::clock::Timestamp;
use crate::error::{Entity, Error, Result};
use crate::idempotency;
use crate::ids::UserId;
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::payment;
use crate::store::UserTx;
use crate::user::{self, User};
use crate::validate;

impl Shop {
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
        let user = self.write_shop(move |tx, now| user::create(tx, &name, now))?;
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
        self.inner
            .store
            .read_one(user::SELECT_USER, &[&id], |row| user::found(row, id))
    }

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
        let balance = self.write_user(user, self.host_credit_body(user, amount)?)?;
        debug!(user = %user, amount = %amount, balance = %balance, "host credit");
        Ok(balance)
    }

    /// The checks of a host credit before any lookup, and its transaction.
    pub(super) fn host_credit_body(
        &self,
        user: UserId,
        amount: Money,
    ) -> Result<impl Fn(&UserTx<'_>, Timestamp) -> Result<Money> + Send + 'static> {
        user.validate()?;
        if amount.is_zero() {
            return Err(Error::ZeroAmount);
        }
        let (max_charge, max_balance) =
            (self.inner.limits.max_charge, self.inner.limits.max_balance);
        Ok(move |tx: &UserTx<'_>, now| {
            // The balance is read once, as the check that the user exists.
            let balance = balance::of_user(tx, tx.user())?;
            let cap = payment::cap(tx, tx.user(), max_balance)?;
            balance::host_credit(tx, balance, amount, max_charge, cap, now)
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
        let balance = self.write_user(user, body)?;
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
    ) -> Result<impl Fn(&UserTx<'_>, Timestamp) -> Result<Money> + Send + 'static> {
        let (_, note) = operator_entry(user, amount, note)?;
        let max_balance = self.inner.limits.max_balance;
        Ok(move |tx: &UserTx<'_>, now| {
            let balance = balance::of_user(tx, tx.user())?;
            if grant {
                let cap = payment::cap(tx, tx.user(), max_balance)?;
                balance::grant(tx, balance, amount, &note, cap, now)
            } else {
                balance::take_back(tx, balance, amount, &note, now)
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
        let balance = self.write_user(user, body)?;
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
        self.write_shop(move |tx, _| idempotency::prune(tx, before))
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
}

/// The checks of an operator's grant or take-back before any lookup: the
/// id, an amount of at least 1 won, and the note.
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
