//! Idempotency keys: a keyed write stores its response in the transaction
//! of its effect, under `(user, key)`; a repeat with the same key and the
//! same request gets that response back and has no second effect, and the
//! same key with another request is refused.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{Clock, Timestamp};
use crate::db::Db;
use crate::error::{Error, Result, json_failure};
use crate::ids::UserId;
use crate::store::failure::busy;
use crate::store::{Store, UserTx};
use std::sync::Arc;

/// A client's key for one write, and a fingerprint of the request it came
/// with (a host hashes the method, path and body), so that reusing the key
/// for another request is caught. Run a write under it with
/// [`Shop::idempotent`](crate::Shop::idempotent).
///
/// A key is one request per user, across every write: the same key with
/// another fingerprint — another amount, another order, another kind of
/// write — is [`Error::IdempotencyKeyReused`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    /// The client's key: 1 to 255 visible ASCII characters (`!` to `~`,
    /// 0x21 to 0x7E; no space, no control character).
    pub key: String,
    /// What identifies the request: 1 to 255 visible ASCII characters, as
    /// for `key` (a hex digest fits).
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// A key and the fingerprint of its request.
    pub fn new(key: impl Into<String>, fingerprint: impl Into<String>) -> IdempotencyKey {
        IdempotencyKey {
            key: key.into(),
            fingerprint: fingerprint.into(),
        }
    }

    /// Checks both parts are 1 to 255 visible ASCII characters, as their
    /// docs say.
    pub(crate) fn validate(&self) -> Result<()> {
        let visible = |text: &str| {
            (1..=255).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
        };
        if visible(&self.key) && visible(&self.fingerprint) {
            Ok(())
        } else {
            Err(Error::InvalidIdempotencyKey)
        }
    }
}

/// What a keyed write returned: its value, made now or replayed from the
/// response stored the first time.
///
/// ```
/// use liteshop::{Keyed, Money};
///
/// let replayed = Keyed::Replayed(Money::new(500)?);
/// assert!(replayed.is_replay());
/// assert_eq!(*replayed.value(), Money::new(500)?);
/// assert_eq!(replayed.into_inner(), Money::new(500)?);
/// # Ok::<(), liteshop::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keyed<T> {
    /// The write ran now; its response is stored under the key.
    Fresh(T),
    /// The key was used before for the same request: this is the response
    /// stored then (for a payment or refund attempt: the attempt as it is
    /// now), and nothing ran.
    Replayed(T),
}

impl<T> Keyed<T> {
    /// The value, whichever it is.
    pub fn value(&self) -> &T {
        match self {
            Keyed::Fresh(value) | Keyed::Replayed(value) => value,
        }
    }

    /// The value, whichever it is, by value.
    pub fn into_inner(self) -> T {
        match self {
            Keyed::Fresh(value) | Keyed::Replayed(value) => value,
        }
    }

    /// Whether this is a repeat.
    pub fn is_replay(&self) -> bool {
        matches!(self, Keyed::Replayed(_))
    }

    /// The same answer (fresh or replayed) with its value mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Keyed<U> {
        match self {
            Keyed::Fresh(value) => Keyed::Fresh(f(value)),
            Keyed::Replayed(value) => Keyed::Replayed(f(value)),
        }
    }
}

/// The response stored under `key` for `user`, if any, read as a `T`.
/// Another request under the key is refused — a fingerprint that differs,
/// or a response another kind of write stored (it does not read as a `T`).
pub(crate) fn stored<T: DeserializeOwned>(
    tx: &UserTx<'_>,
    key: &IdempotencyKey,
) -> Result<Option<T>> {
    let user = tx.user();
    let Some(row) = tx.query_opt(
        "SELECT fingerprint, response FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
        &[&user, &key.key],
    )?
    else {
        return Ok(None);
    };
    let (fingerprint, response): (String, String) = (row.get(0)?, row.get(1)?);
    let reused = || Error::IdempotencyKeyReused {
        key: key.key.clone(),
    };
    if fingerprint != key.fingerprint {
        return Err(reused());
    }
    // Every response was written by `store` from a serialisable value, so
    // a response that is no JSON at all is storage failing; one that is
    // JSON of another shape came from another write.
    let value: Value = serde_json::from_str(&response).map_err(json_failure)?;
    serde_json::from_value(value)
        .map(Some)
        .map_err(|_| reused())
}

/// Stores `response` under `key` for the transaction's user.
pub(crate) fn store<T: Serialize>(
    tx: &UserTx<'_>,
    key: &IdempotencyKey,
    response: &T,
    now: Timestamp,
) -> Result<()> {
    let user = tx.user();
    let response = serde_json::to_string(response).map_err(json_failure)?;
    tx.execute(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, response, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[&user, &key.key, &key.fingerprint, &response, &now],
    )?;
    Ok(())
}

/// Runs `body` under `key` for the transaction's user: a stored
/// response for the same request is returned instead; another request under
/// the key is refused; otherwise `body` runs and its value is stored.
pub(crate) fn run<T: Serialize + DeserializeOwned>(
    tx: &UserTx<'_>,
    key: &IdempotencyKey,
    now: Timestamp,
    body: impl FnOnce(&UserTx<'_>, Timestamp) -> Result<T>,
) -> Result<Keyed<T>> {
    if let Some(value) = stored(tx, key)? {
        return Ok(Keyed::Replayed(value));
    }
    let value = body(tx, now)?;
    store(tx, key, &value, now)?;
    Ok(Keyed::Fresh(value))
}

/// After a keyed write's `COMMIT` got no answer
/// ([`Error::CommitOutcomeUnknown`]): the key, stored in the same
/// transaction as the effect, says whether it took. Its stored response
/// if it did; if not, the write did not happen and trying again is safe,
/// so the answer is [`Error::Busy`].
///
/// The key is read under the user's serialisation (a write of
/// [`Store::write_user`]), never by a plain read: on PostgreSQL the lost
/// transaction holds the user's lock until the server has ended it, and a
/// read taken while its commit is still being flushed would miss a commit
/// that lands a moment later.
pub(crate) fn after_lost_commit<T: DeserializeOwned + Send + 'static>(
    store: &Store,
    clock: &Arc<dyn Clock>,
    user: UserId,
    key: &IdempotencyKey,
) -> Result<T> {
    let owned = key.clone();
    store
        .write_user(user, clock, move |tx, _| stored(tx, &owned))?
        .ok_or_else(|| busy("the write did not take effect (its commit was lost); retry"))
}

/// Deletes keys stored before `before`; returns how many. A repeat after
/// that runs as a new request.
pub(crate) fn prune(tx: &dyn Db, before: Timestamp) -> Result<usize> {
    tx.execute(
        "DELETE FROM idempotency_keys WHERE created_at < ?1",
        &[&before],
    )
}
