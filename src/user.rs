//! Users: creation (with the user's balance row) and lookup.

use rusqlite::{Connection, OptionalExtension, Transaction, named_params};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::UserId;

/// A shop user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The name, exactly as given: 1 to 100 characters.
    pub name: String,
    /// When the user was created.
    pub created_at: Timestamp,
}

pub(crate) const SELECT_USER: &str = "SELECT id, name, created_at FROM users WHERE id = ?1";

pub(crate) const SELECT_USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = ?1";

/// Inserts a user and its balance row of 0 won. `name` is already checked.
pub(crate) fn create(tx: &Transaction<'_>, name: &str, now: Timestamp) -> Result<User> {
    tx.prepare_cached("INSERT INTO users (name, created_at) VALUES (:name, :now)")?
        .execute(named_params! { ":name": name, ":now": now })?;
    let id = UserId::new(tx.last_insert_rowid());
    tx.prepare_cached("INSERT INTO balances (user_id, amount, updated_at) VALUES (?1, 0, ?2)")?
        .execute((id, now))?;
    Ok(User {
        id,
        name: name.to_owned(),
        created_at: now,
    })
}

/// The user `id`, or [`Error::UserNotFound`].
pub(crate) fn get(conn: &Connection, id: UserId) -> Result<User> {
    conn.prepare_cached(SELECT_USER)?
        .query_row([id], |row| {
            Ok(User {
                id: row.get(0)?,
                name: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .optional()?
        .ok_or(Error::UserNotFound(id))
}

/// `Ok` if the user exists, else [`Error::UserNotFound`].
pub(crate) fn ensure_exists(conn: &Connection, id: UserId) -> Result<()> {
    conn.prepare_cached(SELECT_USER_EXISTS)?
        .query_row([id], |_| Ok(()))
        .optional()?
        .ok_or(Error::UserNotFound(id))
}
