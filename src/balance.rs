//! Balances and their ledger: every change of a balance is a ledger row
//! written in the same transaction, so a balance always equals the sum of its
//! user's ledger amounts.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::{Db, Reads, Row, at};
use crate::error::{Error, Result};
use crate::ids::{LedgerEntryId, PaymentId, RefundId, UserId};
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::store::UserTx;
use crate::store::failure::corrupt;
use crate::text_enum::text_enum;

/// Why a balance changed.
///
/// Stored as text (`top_up`, `payment`, …) under a `CHECK` constraint that
/// also ties each kind to its sign. Money enters a balance only as a
/// [`TopUp`](LedgerKind::TopUp) the PG was paid for, a
/// [`Grant`](LedgerKind::Grant) by an operator, or a
/// [`HostCredit`](LedgerKind::HostCredit) the host vouches for; every other
/// credit gives back money that came from the balance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LedgerKind {
    /// A credit the host vouches for, having taken the money by its own
    /// means ([`Shop::host_credit`](crate::Shop::host_credit)). Stored as
    /// `charge`, the name every credit had before top-ups went through the
    /// PG.
    HostCredit,
    /// A top-up the customer paid through the PG, credited when the PG
    /// approved it ([`Shop::start_top_up`](crate::Shop::start_top_up)).
    TopUp,
    /// An operator's grant (points, compensation, a correction), with its
    /// note ([`Shop::grant`](crate::Shop::grant)).
    Grant,
    /// An operator took back balance, with its note
    /// ([`Shop::take_back`](crate::Shop::take_back)). A debit.
    TakeBack,
    /// The balance part of a payment, held from the moment the payment
    /// started. A debit.
    Payment,
    /// The balance part of a payment that ended unpaid (declined, failed
    /// in the widget, expired), given back.
    PaymentReversal,
    /// The balance part of a refund.
    Refund,
    /// A top-up refunded to the card: its money leaves the balance when
    /// the refund starts. A debit.
    TopUpRefund,
    /// A top-up refund the PG refused, given back to the balance.
    TopUpRefundReversal,
}

impl LedgerKind {
    /// Whether entries of this kind add to the balance (`false`: they take
    /// from it).
    pub const fn is_credit(self) -> bool {
        !matches!(
            self,
            LedgerKind::Payment | LedgerKind::TakeBack | LedgerKind::TopUpRefund
        )
    }

    /// Whether entries of this kind move money between the balance and the
    /// world outside it (top-ups and their refunds, grants, take-backs,
    /// host credits), rather than between the balance and the shop's
    /// payments: the audit's "money in" (`Law::MoneyConserved`).
    pub const fn is_external(self) -> bool {
        !matches!(
            self,
            LedgerKind::Payment | LedgerKind::PaymentReversal | LedgerKind::Refund
        )
    }
}

text_enum!(LedgerKind {
    HostCredit => "charge",
    TopUp => "top_up",
    Grant => "grant",
    TakeBack => "take_back",
    Payment => "payment",
    PaymentReversal => "payment_reversal",
    Refund => "refund",
    TopUpRefund => "top_up_refund",
    TopUpRefundReversal => "top_up_refund_reversal",
});

/// One change of a user's balance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!({"id": 1, "user": 1, "kind": "top_up", "amount": 50000, "balance_after": 50000,
    "created_at": 1795529268165_i64, "payment": 1, "refund": null, "note": null})))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The entry's id; later entries have larger ids.
    pub id: LedgerEntryId,
    /// Whose balance changed.
    pub user: UserId,
    /// Why it changed.
    pub kind: LedgerKind,
    /// By how much: added for a credit kind, taken away for a debit kind (see
    /// [`LedgerKind::is_credit`]).
    pub amount: Money,
    /// The balance right after this entry.
    pub balance_after: Money,
    /// When it happened.
    pub created_at: Timestamp,
    /// The payment a payment, reversal or refund entry belongs to.
    pub payment: Option<PaymentId>,
    /// The refund attempt a refund entry belongs to.
    pub refund: Option<RefundId>,
    /// Why an operator granted or took back balance; `None` for every
    /// other kind.
    pub note: Option<String>,
}

impl LedgerEntry {
    /// The change in won, positive for a credit and negative for a debit.
    pub fn signed_won(&self) -> i64 {
        signed_won(self.kind, self.amount)
    }
}

pub(crate) const SELECT_BALANCE: &str = "SELECT amount FROM balances WHERE user_id = ?1";

pub(crate) const UPDATE_BALANCE: &str =
    "UPDATE balances SET amount = ?2, updated_at = ?3 WHERE user_id = ?1";

pub(crate) const SELECT_LEDGER_PAGE: &str =
    "SELECT id, user_id, kind, amount, balance_after, created_at, payment_id, refund_id, note
     FROM ledger
     WHERE user_id = ?1 AND id < ?2
     ORDER BY id DESC
     LIMIT ?3";

/// The balance of a user known to exist, or [`Error::BalanceMissing`].
pub(crate) fn get(db: &dyn Db, user: UserId) -> Result<Money> {
    db.query_opt(SELECT_BALANCE, &[&user])?
        .ok_or(Error::BalanceMissing(user))?
        .get(0)
}

/// The balance of `user`, read as the check that the user exists: every
/// user has a balance row from the transaction that created it, so a write
/// that needs both reads once. [`Error::UserNotFound`] if there is no such
/// user; [`Error::BalanceMissing`] if only the row is missing.
pub(crate) fn of_user(db: &dyn Db, user: UserId) -> Result<Money> {
    match db.query_opt(SELECT_BALANCE, &[&user])? {
        Some(row) => row.get(0),
        None => {
            crate::user::ensure_exists(db, user)?;
            Err(Error::BalanceMissing(user))
        }
    }
}

/// The ceiling on a credit: the balance after it, plus the money `held` in
/// flight (held by payments, which comes back if they are declined, and
/// owed by refunds, which is credited when they complete), may not pass
/// `max`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cap {
    pub(crate) max: Money,
    pub(crate) held: Money,
}

/// The charge rules, in the seed's order, for money about to enter a
/// balance by a host credit or a top-up: the per-charge limit, then the
/// balance limit (the balance after it, with the money in flight, within
/// `cap`; a sum too large to represent is over it).
pub(crate) fn check_charge(
    balance: Money,
    amount: Money,
    max_charge: Money,
    cap: Cap,
) -> Result<()> {
    if amount > max_charge {
        return Err(Error::ChargeLimitExceeded {
            amount,
            limit: max_charge,
        });
    }
    check_cap(balance, amount, cap)
}

/// The balance limit alone: `balance + amount + cap.held <= cap.max`.
pub(crate) fn check_cap(balance: Money, amount: Money, cap: Cap) -> Result<()> {
    let fits = balance
        .checked_add(amount)
        .and_then(|sum| sum.checked_add(cap.held))
        .is_some_and(|total| total <= cap.max);
    if fits {
        Ok(())
    } else {
        Err(Error::BalanceLimitExceeded {
            balance,
            held: cap.held,
            amount,
            limit: cap.max,
        })
    }
}

/// Adds `amount` to the balance of the transaction's user (known to
/// exist) as a credit the
/// host vouches for, under the charge rules ([`check_charge`]). Returns the
/// new balance.
pub(crate) fn host_credit(
    tx: &UserTx<'_>,
    balance: Money,
    amount: Money,
    max_charge: Money,
    cap: Cap,
    now: Timestamp,
) -> Result<Money> {
    check_charge(balance, amount, max_charge, cap)?;
    post_from(
        tx,
        balance,
        Entry::new(LedgerKind::HostCredit, amount),
        Some(cap),
        now,
    )
}

/// One ledger entry to write: why, how much, for which payment or refund,
/// and an operator's note.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) kind: LedgerKind,
    pub(crate) amount: Money,
    pub(crate) payment: Option<PaymentId>,
    pub(crate) refund: Option<RefundId>,
    pub(crate) note: Option<String>,
}

impl Entry {
    pub(crate) fn new(kind: LedgerKind, amount: Money) -> Entry {
        Entry {
            kind,
            amount,
            payment: None,
            refund: None,
            note: None,
        }
    }

    /// An operator's grant or take-back, with its note.
    pub(crate) fn by_operator(kind: LedgerKind, amount: Money, note: &str) -> Entry {
        Entry {
            note: Some(note.to_owned()),
            ..Entry::new(kind, amount)
        }
    }

    pub(crate) fn for_payment(kind: LedgerKind, amount: Money, payment: PaymentId) -> Entry {
        Entry {
            payment: Some(payment),
            ..Entry::new(kind, amount)
        }
    }

    pub(crate) fn for_refund(
        kind: LedgerKind,
        amount: Money,
        payment: PaymentId,
        refund: RefundId,
    ) -> Entry {
        Entry {
            refund: Some(refund),
            ..Entry::for_payment(kind, amount, payment)
        }
    }
}

/// Moves the balance of the transaction's user as `entry` says and writes
/// the ledger row for
/// it. Returns the new balance.
///
/// This is the only function that writes `balances`: a balance never changes
/// without its ledger row.
///
/// # Failure
///
/// - [`Error::BalanceLimitExceeded`] for a credit past `cap` (a sum too
///   large to represent is past any cap);
/// - [`Error::AmountOverflow`] for a credit that does not fit when there is
///   no cap, and for a debit larger than the balance (callers refuse that
///   first with their own error; this is the last guard).
pub(crate) fn post(
    tx: &UserTx<'_>,
    entry: Entry,
    cap: Option<Cap>,
    now: Timestamp,
) -> Result<Money> {
    let balance = get(tx, tx.user())?;
    post_from(tx, balance, entry, cap, now)
}

/// [`post`] from `balance`, the user's balance as this transaction already
/// read it: under the write's lock it cannot have changed since.
pub(crate) fn post_from(
    tx: &UserTx<'_>,
    balance: Money,
    entry: Entry,
    cap: Option<Cap>,
    now: Timestamp,
) -> Result<Money> {
    let user = tx.user();
    let Entry {
        kind,
        amount,
        payment,
        refund,
        note,
    } = entry;
    let new_balance = if kind.is_credit() {
        if let Some(cap) = cap {
            check_cap(balance, amount, cap)?;
        }
        balance.checked_add(amount).ok_or(Error::AmountOverflow)?
    } else {
        balance.checked_sub(amount).ok_or(Error::AmountOverflow)?
    };
    tx.execute(UPDATE_BALANCE, &[&user, &new_balance, &now])?;
    tx.execute(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, payment_id, refund_id, created_at,
                             note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            &user,
            &kind,
            &signed_won(kind, amount),
            &new_balance,
            &payment,
            &refund,
            &now,
            &note,
        ],
    )?;
    Ok(new_balance)
}

/// An operator's grant of `amount` to the transaction's user (known to
/// exist, whose
/// balance this transaction read as `balance`), with its note, under the
/// balance limit. Returns the new balance.
pub(crate) fn grant(
    tx: &UserTx<'_>,
    balance: Money,
    amount: Money,
    note: &str,
    cap: Cap,
    now: Timestamp,
) -> Result<Money> {
    let entry = Entry::by_operator(LedgerKind::Grant, amount, note);
    post_from(tx, balance, entry, Some(cap), now)
}

/// An operator takes `amount` back from the transaction's user, with its
/// note; never more
/// than the balance ([`Error::InsufficientBalance`]). Returns the new
/// balance.
pub(crate) fn take_back(
    tx: &UserTx<'_>,
    balance: Money,
    amount: Money,
    note: &str,
    now: Timestamp,
) -> Result<Money> {
    if amount > balance {
        return Err(Error::InsufficientBalance {
            user: tx.user(),
            needed: amount,
            available: balance,
        });
    }
    let entry = Entry::by_operator(LedgerKind::TakeBack, amount, note);
    post_from(tx, balance, entry, None, now)
}

/// One page of the ledger of `user` (known to exist), newest first.
pub(crate) fn ledger(db: &dyn Db, user: UserId, page: PageRequest) -> Result<Page<LedgerEntry>> {
    let before = page.cursor().map_or(i64::MAX, |c| c.key());
    let limit = i64::from(page.limit()) + 1;
    let rows = db
        .query(SELECT_LEDGER_PAGE, &[&user, &before, &limit])?
        .iter()
        .map(ledger_entry)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(rows, page.limit(), |entry| entry.id.get()))
}

/// `amount` in won with the sign of `kind`: positive for a credit.
fn signed_won(kind: LedgerKind, amount: Money) -> i64 {
    if kind.is_credit() {
        amount.won()
    } else {
        -amount.won()
    }
}

fn ledger_entry(row: &Row) -> Result<LedgerEntry> {
    let signed: i64 = row.get(at!(LEDGER_ENTRY, "amount"))?;
    Ok(LedgerEntry {
        id: row.get(at!(LEDGER_ENTRY, "id"))?,
        user: row.get(at!(LEDGER_ENTRY, "user_id"))?,
        kind: row.get(at!(LEDGER_ENTRY, "kind"))?,
        amount: signed
            .checked_abs()
            .and_then(|won| Money::new(won).ok())
            .ok_or_else(|| corrupt(format!("a ledger amount out of range: {signed}")))?,
        balance_after: row.get(at!(LEDGER_ENTRY, "balance_after"))?,
        created_at: row.get(at!(LEDGER_ENTRY, "created_at"))?,
        payment: row.get(at!(LEDGER_ENTRY, "payment_id"))?,
        refund: row.get(at!(LEDGER_ENTRY, "refund_id"))?,
        note: row.get(at!(LEDGER_ENTRY, "note"))?,
    })
}

/// The columns [`ledger_entry`] reads, as [`SELECT_LEDGER_PAGE`] selects them.
pub(crate) const LEDGER_ENTRY: Reads = &[
    "ledger.id",
    "ledger.user_id",
    "ledger.kind",
    "ledger.amount",
    "ledger.balance_after",
    "ledger.created_at",
    "ledger.payment_id",
    "ledger.refund_id",
    "ledger.note",
];
