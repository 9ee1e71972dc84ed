//! Users: creation (with the user's balance row) and lookup.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::{Db, Row};
use crate::error::{Error, Result};
use crate::ids::UserId;

/// A shop user.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!({"id": 1, "name": "Kim", "created_at": 1795529268063_i64})))]
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
pub(crate) fn create(db: &dyn Db, name: &str, now: Timestamp) -> Result<User> {
    let id: UserId = db
        .query_row(
            "INSERT INTO users (name, created_at) VALUES (?1, ?2) RETURNING id",
            &[&name, &now],
        )?
        .get(0)?;
    db.execute(
        "INSERT INTO balances (user_id, amount, updated_at) VALUES (?1, 0, ?2)",
        &[&id, &now],
    )?;
    Ok(User {
        id,
        name: name.to_owned(),
        created_at: now,
    })
}

/// The user `id` from the row [`SELECT_USER`] found, if any, or
/// [`Error::UserNotFound`] ([`crate::store::Store::read_one`] runs it).
pub(crate) fn found(row: Option<Row>, id: UserId) -> Result<User> {
    let row = row.ok_or(Error::UserNotFound(id))?;
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    })
}

/// `Ok` if the user exists, else [`Error::UserNotFound`].
pub(crate) fn ensure_exists(db: &dyn Db, id: UserId) -> Result<()> {
    db.query_opt(SELECT_USER_EXISTS, &[&id])?
        .map(drop)
        .ok_or(Error::UserNotFound(id))
}
