//! Coupons: first-come-first-served offers, issued at most `quantity`
//! times and once per user, and applied to one order at a time.
//!
//! Issuing is one guarded `UPDATE … SET issued = issued + 1 WHERE issued <
//! quantity` beside the insert of the user's coupon, in one transaction: no
//! count-then-insert, so no interleaving can issue one too many. A user's
//! coupon is used by at most one order (`user_coupons.order_id`, unique) and
//! comes back when that order is cancelled, expires or is fully refunded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::{Db, Reads, Row, at};
use crate::error::{Error, Result};
use crate::ids::{CouponId, OrderId, UserId};
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::store::UserTx;
use crate::store::failure::corrupt;

/// How much a coupon takes off an order's subtotal. Integer arithmetic
/// only, rounding down to the won; a discount never exceeds the subtotal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Discount {
    /// A fixed amount off (at most the subtotal).
    Fixed {
        /// The amount, at least 1 won.
        amount: Money,
    },
    /// A percentage of the subtotal, rounded down, at most `cap`.
    Percent {
        /// 1 to 100.
        percent: u8,
        /// The most it takes off, if any.
        cap: Option<Money>,
    },
}

impl Discount {
    /// What this discount takes off `subtotal`.
    ///
    /// ```
    /// use liteshop::{Discount, Money};
    ///
    /// let ten = Discount::Percent { percent: 10, cap: Some(Money::from_won(1_500)) };
    /// assert_eq!(ten.off(Money::from_won(9_999)), Money::from_won(999)); // rounded down
    /// assert_eq!(ten.off(Money::from_won(20_000)), Money::from_won(1_500)); // capped
    /// let fixed = Discount::Fixed { amount: Money::from_won(5_000) };
    /// assert_eq!(fixed.off(Money::from_won(3_000)), Money::from_won(3_000)); // never more
    /// ```
    pub fn off(&self, subtotal: Money) -> Money {
        match *self {
            Discount::Fixed { amount } => amount.min(subtotal),
            Discount::Percent { percent, cap } => {
                let share =
                    Money::from_i128(i128::from(subtotal.won()) * i128::from(percent) / 100);
                cap.map_or(share, |cap| share.min(cap)).min(subtotal)
            }
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Discount::Fixed { amount } if amount == Money::ZERO => Err(Error::InvalidCoupon {
                reason: "a fixed discount is at least 1 won",
            }),
            Discount::Percent { percent, .. } if !(1..=100).contains(&percent) => {
                Err(Error::InvalidCoupon {
                    reason: "a percentage is 1 to 100",
                })
            }
            Discount::Percent {
                cap: Some(Money::ZERO),
                ..
            } => Err(Error::InvalidCoupon {
                reason: "a cap is at least 1 won",
            }),
            _ => Ok(()),
        }
    }

    /// The stored columns: kind, value, cap.
    fn columns(&self) -> (&'static str, i64, Option<Money>) {
        match *self {
            Discount::Fixed { amount } => ("fixed", amount.won(), None),
            Discount::Percent { percent, cap } => ("percent", i64::from(percent), cap),
        }
    }
}

/// A coupon offer to create with [`Shop::create_coupon`](crate::Shop::create_coupon).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCoupon {
    /// Its name, 1 to 100 characters of one line.
    pub name: String,
    /// What it takes off.
    pub discount: Discount,
    /// How many are ever issued, at least 1.
    pub quantity: u32,
    /// Issuing starts at this time.
    pub issuable_from: Timestamp,
    /// Issuing ends before this time (later than `issuable_from`).
    pub issuable_until: Timestamp,
    /// How long an issued coupon stays usable, from its issue.
    pub valid_for: Duration,
    /// The smallest order subtotal it applies to.
    pub min_order_total: Money,
}

/// A coupon offer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    /// Its id.
    pub id: CouponId,
    /// Its name.
    pub name: String,
    /// What it takes off.
    pub discount: Discount,
    /// How many are ever issued.
    pub quantity: u32,
    /// How many were issued so far (never more than `quantity`).
    pub issued: u32,
    /// Issuing starts at this time.
    pub issuable_from: Timestamp,
    /// Issuing ends before this time.
    pub issuable_until: Timestamp,
    /// How long an issued coupon stays usable.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub valid_for: Duration,
    /// The smallest order subtotal it applies to.
    pub min_order_total: Money,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Where a user's coupon is (see [the table](crate#coupons)).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CouponState {
    /// Usable by the next order.
    Available,
    /// Used by `order` (pending, paying, paid or partly refunded).
    Used {
        /// The order using it.
        order: OrderId,
    },
    /// Not used, and past its validity.
    Expired,
}

/// A coupon issued to a user.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCoupon {
    /// The offer.
    pub coupon: Coupon,
    /// Whose it is.
    pub user: UserId,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being usable: `issued_at + valid_for`.
    pub expires_at: Timestamp,
    /// Its state now, by the shop's clock.
    pub state: CouponState,
}

/// A user's coupon found usable for an order: its row and the discount.
pub(crate) struct Usable {
    row: i64,
    pub(crate) coupon: CouponId,
    pub(crate) discount: Money,
}

/// The columns [`coupon_row_at`] reads, from its `at`: what
/// `coupon_columns!` selects.
pub(crate) const COUPON: Reads = &[
    "coupons.id",
    "coupons.name",
    "coupons.kind",
    "coupons.value",
    "coupons.cap",
    "coupons.quantity",
    "coupons.issued",
    "coupons.issuable_from",
    "coupons.issuable_until",
    "coupons.valid_for",
    "coupons.min_order_total",
    "coupons.created_at",
];

/// The columns [`user_coupon_row_at`] reads after the coupon's.
pub(crate) const USER_COUPON: Reads = &[
    "user_coupons.user_id",
    "user_coupons.issued_at",
    "user_coupons.expires_at",
    "user_coupons.order_id",
];

/// The columns of [`COUPON`], as a literal for `concat!`.
macro_rules! coupon_columns {
    () => {
        "c.id, c.name, c.kind, c.value, c.cap, c.quantity, c.issued, c.issuable_from, \
         c.issuable_until, c.valid_for, c.min_order_total, c.created_at"
    };
}

/// A coupon by id.
pub(crate) const SELECT_COUPON: &str = concat!(
    "SELECT ",
    coupon_columns!(),
    " FROM coupons c WHERE c.id = ?1"
);

/// A page of a user's coupons, newest offer first.
pub(crate) const SELECT_USER_COUPONS: &str = concat!(
    "SELECT ",
    coupon_columns!(),
    ", u.user_id, u.issued_at, u.expires_at, u.order_id
     FROM user_coupons u JOIN coupons c ON c.id = u.coupon_id
     WHERE u.user_id = ?1 AND u.coupon_id < ?2
     ORDER BY u.coupon_id DESC LIMIT ?3"
);

/// One coupon of a user's, with the row's own id first.
pub(crate) const SELECT_USABLE: &str = concat!(
    "SELECT u.id, ",
    coupon_columns!(),
    ", u.user_id, u.issued_at, u.expires_at, u.order_id
     FROM user_coupons u JOIN coupons c ON c.id = u.coupon_id
     WHERE u.user_id = ?1 AND u.coupon_id = ?2"
);

/// Checks a new coupon's definition (its name is checked by the caller).
pub(crate) fn validate(new: &NewCoupon) -> Result<()> {
    new.discount.validate()?;
    if new.quantity == 0 {
        return Err(Error::InvalidCoupon {
            reason: "the quantity is at least 1",
        });
    }
    if new.issuable_until <= new.issuable_from {
        return Err(Error::InvalidCoupon {
            reason: "the issue window ends after it starts",
        });
    }
    if valid_for_millis(new.valid_for).is_none() {
        return Err(Error::InvalidCoupon {
            reason: "the validity is 1 ms to i64::MAX ms",
        });
    }
    Ok(())
}

fn valid_for_millis(duration: Duration) -> Option<i64> {
    i64::try_from(duration.as_millis())
        .ok()
        .filter(|&ms| ms > 0)
}

/// Saves a checked coupon offer.
pub(crate) fn create(tx: &dyn Db, new: &NewCoupon, now: Timestamp) -> Result<Coupon> {
    let (kind, value, cap) = new.discount.columns();
    let valid_for = valid_for_millis(new.valid_for).ok_or(Error::InvalidCoupon {
        reason: "the validity is 1 ms to i64::MAX ms",
    })?;
    let id: CouponId = tx
        .query_row(
            "INSERT INTO coupons (name, kind, value, cap, quantity, issuable_from, issuable_until,
                                  valid_for, min_order_total, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             RETURNING id",
            &[
                &new.name,
                &kind,
                &value,
                &cap,
                &new.quantity,
                &new.issuable_from,
                &new.issuable_until,
                &valid_for,
                &new.min_order_total,
                &now,
            ],
        )?
        .get(0)?;
    get(tx, id)
}

/// The coupon `id`.
pub(crate) fn get(conn: &dyn Db, id: CouponId) -> Result<Coupon> {
    let row = conn
        .query_opt(SELECT_COUPON, &[&id])?
        .ok_or(Error::CouponNotFound(id))?;
    coupon_row(&row)
}

/// Issues `coupon` to `user` (known to exist): the coupon exists → `now`
/// is inside its issue window → the user does not hold it yet → one is
/// left. The insert and the guarded increment are in the caller's
/// transaction, so a refusal of either undoes both.
pub(crate) fn issue(tx: &UserTx<'_>, id: CouponId, now: Timestamp) -> Result<UserCoupon> {
    let user = tx.user();
    let coupon = get(tx, id)?;
    if now < coupon.issuable_from || now >= coupon.issuable_until {
        return Err(Error::CouponNotIssuable {
            coupon: id,
            from: coupon.issuable_from,
            until: coupon.issuable_until,
        });
    }
    let expires_at = now.saturating_add(coupon.valid_for);
    let inserted = tx.execute(
        "INSERT INTO user_coupons (coupon_id, user_id, issued_at, expires_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id, coupon_id) DO NOTHING",
        &[&id, &user, &now, &expires_at],
    )?;
    if inserted == 0 {
        return Err(Error::CouponAlreadyIssued { user, coupon: id });
    }
    // Sold out as read (committed, unlocked) is sold out: refused without
    // waiting for the coupon's row behind the winners' commits.
    let taken = coupon.issued < coupon.quantity
        && tx.execute(
            "UPDATE coupons SET issued = issued + 1 WHERE id = ?1 AND issued < quantity",
            &[&id],
        )? == 1;
    if !taken {
        return Err(Error::CouponSoldOut {
            coupon: id,
            quantity: coupon.quantity,
        });
    }
    Ok(UserCoupon {
        coupon: Coupon {
            issued: coupon.issued + 1,
            ..coupon
        },
        user,
        issued_at: now,
        expires_at,
        state: CouponState::Available,
    })
}

/// One page of the coupons issued to `user`, newest offer first.
pub(crate) fn list(
    conn: &dyn Db,
    user: UserId,
    page: PageRequest,
    now: Timestamp,
) -> Result<Page<UserCoupon>> {
    let before = page.cursor().map_or(i64::MAX, |c| c.key());
    let limit = i64::from(page.limit()) + 1;
    let rows = conn
        .query(SELECT_USER_COUPONS, &[&user, &before, &limit])?
        .iter()
        .map(|row| user_coupon_row(row, now))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(rows, page.limit(), |c| c.coupon.id.get()))
}

/// Checks that `user` holds `coupon`, available and not expired, and that
/// `subtotal` reaches its minimum; returns what it takes off.
pub(crate) fn usable(
    tx: &dyn Db,
    user: UserId,
    id: CouponId,
    subtotal: Money,
    now: Timestamp,
) -> Result<Usable> {
    let found = tx
        .query_opt(SELECT_USABLE, &[&user, &id])?
        .ok_or(Error::CouponNotFound(id))?;
    let (row, held) = (found.get::<i64>(0)?, user_coupon_row_at(&found, 1, now)?);
    match held.state {
        CouponState::Used { order } => return Err(Error::CouponUsed { coupon: id, order }),
        CouponState::Expired => {
            return Err(Error::CouponExpired {
                coupon: id,
                expired_at: held.expires_at,
            });
        }
        CouponState::Available => {}
    }
    if subtotal < held.coupon.min_order_total {
        return Err(Error::CouponMinimumNotMet {
            coupon: id,
            subtotal,
            minimum: held.coupon.min_order_total,
        });
    }
    Ok(Usable {
        row,
        coupon: id,
        discount: held.coupon.discount.off(subtotal),
    })
}

/// Marks a [`usable`] coupon as used by `order`, guarded by its being free.
pub(crate) fn use_for(tx: &dyn Db, usable: &Usable, order: OrderId, now: Timestamp) -> Result<()> {
    let changed = tx.execute(
        "UPDATE user_coupons SET order_id = ?2, used_at = ?3 WHERE id = ?1 AND order_id IS NULL",
        &[&usable.row, &order, &now],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::CouponUsed {
            coupon: usable.coupon,
            order,
        })
    }
}

/// Gives back the coupon used by `order`, if any: it is `Available` again
/// until its original expiry. Called with the move that cancels, expires
/// or fully refunds the order.
pub(crate) fn release(tx: &dyn Db, order: OrderId) -> Result<()> {
    tx.execute(
        "UPDATE user_coupons SET order_id = NULL, used_at = NULL WHERE order_id = ?1",
        &[&order],
    )?;
    Ok(())
}

fn coupon_row(row: &Row) -> Result<Coupon> {
    coupon_row_at(row, 0)
}

/// A coupon from the columns of `coupon_columns!` starting at column `at`.
fn coupon_row_at(row: &Row, at: usize) -> Result<Coupon> {
    let kind: String = row.get(at + at!(COUPON, "kind"))?;
    let value: i64 = row.get(at + at!(COUPON, "value"))?;
    let discount = match kind.as_str() {
        "fixed" => Discount::Fixed {
            amount: row.get(at + at!(COUPON, "value"))?,
        },
        _ => Discount::Percent {
            percent: u8::try_from(value)
                .map_err(|_| corrupt(format!("a coupon's percent out of range: {value}")))?,
            cap: row.get(at + at!(COUPON, "cap"))?,
        },
    };
    let valid_for: i64 = row.get(at + at!(COUPON, "valid_for"))?;
    Ok(Coupon {
        id: row.get(at + at!(COUPON, "id"))?,
        name: row.get(at + at!(COUPON, "name"))?,
        discount,
        quantity: row.get(at + at!(COUPON, "quantity"))?,
        issued: row.get(at + at!(COUPON, "issued"))?,
        issuable_from: row.get(at + at!(COUPON, "issuable_from"))?,
        issuable_until: row.get(at + at!(COUPON, "issuable_until"))?,
        valid_for: Duration::from_millis(valid_for.unsigned_abs()),
        min_order_total: row.get(at + at!(COUPON, "min_order_total"))?,
        created_at: row.get(at + at!(COUPON, "created_at"))?,
    })
}

fn user_coupon_row(row: &Row, now: Timestamp) -> Result<UserCoupon> {
    user_coupon_row_at(row, 0, now)
}

/// A user's coupon: the coupon columns from `at`, then user, issued_at,
/// expires_at and order.
fn user_coupon_row_at(row: &Row, at: usize, now: Timestamp) -> Result<UserCoupon> {
    let coupon = coupon_row_at(row, at)?;
    let expires_at: Timestamp = row.get(at + COUPON.len() + at!(USER_COUPON, "expires_at"))?;
    let order: Option<OrderId> = row.get(at + COUPON.len() + at!(USER_COUPON, "order_id"))?;
    let state = match order {
        Some(order) => CouponState::Used { order },
        None if now >= expires_at => CouponState::Expired,
        None => CouponState::Available,
    };
    Ok(UserCoupon {
        coupon,
        user: row.get(at + COUPON.len() + at!(USER_COUPON, "user_id"))?,
        issued_at: row.get(at + COUPON.len() + at!(USER_COUPON, "issued_at"))?,
        expires_at,
        state,
    })
}
