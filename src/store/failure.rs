//! [`StorageError`]: a failure of the database itself, in liteshop's own
//! terms. Each backend classifies its driver's errors here, once — SQLite's
//! result codes and PostgreSQL's SQLSTATEs side by side — into a
//! [`StorageClass`]: busy, retryable, the disk full, a commit whose outcome
//! is unknown, or anything else. Everything above the store (the retry
//! loop, [`Error::kind`](crate::Error::kind), the HTTP server) reads the
//! class, never a driver's type, and [`Error`] carries no driver type.

use std::fmt;

use crate::error::Error;

/// What a [`StorageError`] means to its caller, decided once by the backend
/// that saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageClass {
    /// The database stayed locked, no connection came free, or the server
    /// is unreachable or shutting down: nothing was changed, and the same
    /// call may succeed later ([`Error::Busy`]).
    Busy,
    /// PostgreSQL ended the transaction to keep the writes serialisable (a
    /// deadlock, SQLSTATE `40P01`; a serialization failure, `40001`):
    /// nothing was changed, and the store runs the write again itself. One
    /// that still fails after its retries is [`Error::Busy`].
    Retryable,
    /// The disk (or a file-size limit) refused a write; it was rolled back
    /// ([`Error::DiskFull`]).
    DiskFull,
    /// `COMMIT` was sent and no answer came: the write may or may not have
    /// taken effect ([`Error::CommitOutcomeUnknown`]).
    CommitOutcomeUnknown,
    /// Anything else: a statement the database refused, a value of the
    /// wrong type, a schema altered outside liteshop ([`Error::Storage`]).
    Other,
}

/// A failure of the database: its [`StorageClass`], the engine's own code
/// where it gave one (a SQLite result code's name, a PostgreSQL SQLSTATE)
/// and its message. The driver's error, where there was one, is its
/// [`source`](std::error::Error::source).
///
/// # Example
///
/// ```
/// use liteshop::{Error, StorageClass};
///
/// # fn check(err: &Error) {
/// if let Error::Busy(cause) | Error::Storage(cause) = err {
///     // `class()` is decided by the backend; a host never parses a message.
///     let retry_later = matches!(cause.class(), StorageClass::Busy | StorageClass::Retryable);
///     println!("{} ({:?}), retry later: {retry_later}", cause, cause.code());
/// }
/// # }
/// ```
pub struct StorageError {
    class: StorageClass,
    code: Option<String>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A failure of `class` described by `message`, with no driver error
    /// under it: what the store reports for a wait that timed out or a row
    /// found missing, and what a host builds to test its own handling.
    ///
    /// ```
    /// use liteshop::{Error, ErrorKind, StorageClass, StorageError};
    ///
    /// let err = Error::from(StorageError::new(StorageClass::Busy, "no connection came free"));
    /// assert_eq!(err.kind(), ErrorKind::Busy);
    /// ```
    pub fn new(class: StorageClass, message: impl Into<String>) -> StorageError {
        StorageError {
            class,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    /// A failure of `class` caused by `source`, whose text is the message.
    pub(crate) fn caused_by(
        class: StorageClass,
        code: Option<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StorageError {
        StorageError {
            class,
            code,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// What the failure means: see [`StorageClass`].
    pub fn class(&self) -> StorageClass {
        self.class
    }

    /// The engine's own code, where it gave one: a SQLite extended result
    /// code in decimal (`"5"`, `SQLITE_BUSY`; `"778"`, `SQLITE_IOERR_WRITE`),
    /// a PostgreSQL SQLSTATE (`"40P01"`).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageError")
            .field("class", &self.class)
            .field("code", &self.code)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<StorageError> for Error {
    /// The [`Error`] a storage failure is, by its class.
    fn from(err: StorageError) -> Error {
        match err.class {
            StorageClass::Busy | StorageClass::Retryable => Error::Busy(err),
            StorageClass::DiskFull => Error::DiskFull(err),
            StorageClass::CommitOutcomeUnknown => Error::CommitOutcomeUnknown,
            StorageClass::Other => Error::Storage(err),
        }
    }
}

/// A failure the domain itself found in what it read (a row that must
/// exist and does not, a statement that changed the wrong number of rows,
/// a stored figure out of range): [`Error::Storage`], never retried.
pub(crate) fn corrupt(message: impl Into<String>) -> Error {
    Error::Storage(StorageError::new(StorageClass::Other, message))
}

/// A wait that ended past the busy timeout without its turn (at the
/// writer, at the pool's gate) or a write that must be tried again:
/// [`Error::Busy`].
pub(crate) fn busy(message: impl Into<String>) -> Error {
    Error::Busy(StorageError::new(StorageClass::Busy, message))
}

/// A schema migration that failed: [`Error::Migration`].
pub(crate) fn migration(err: rusqlite_migration::Error) -> Error {
    Error::Migration(StorageError::caused_by(StorageClass::Other, None, err))
}

/// A pool that could not be built: [`Error::Pool`].
pub(crate) fn pool(err: r2d2::Error) -> Error {
    Error::Pool(StorageError::caused_by(StorageClass::Other, None, err))
}

/// SQLite's errors, classified: `SQLITE_BUSY` and `SQLITE_LOCKED` are
/// busy; `SQLITE_FULL` and a failed write (`SQLITE_IOERR_WRITE`, which is
/// how a file-size limit shows) the disk full; anything else other.
/// SQLite never asks for a retry: its one writer at a time cannot deadlock.
pub(crate) fn sqlite(err: rusqlite::Error) -> StorageError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull};
    let extended = match &err {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    };
    let class = match err.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => StorageClass::Busy,
        Some(DiskFull) => StorageClass::DiskFull,
        _ if extended == Some(rusqlite::ffi::SQLITE_IOERR_WRITE) => StorageClass::DiskFull,
        _ => StorageClass::Other,
    };
    let code = extended.map(|code| code.to_string());
    StorageError::caused_by(class, code, err)
}

/// PostgreSQL's errors, classified: a deadlock or a serialization failure
/// is retryable; a lock or statement timeout, a server shutting down or
/// refusing connections, a lost or reset connection busy; anything else
/// other. (A lost answer to `COMMIT` is decided where the commit is sent,
/// not here: the same error under another statement changed nothing.)
#[cfg(feature = "postgres")]
pub(crate) fn postgres(err: postgres::Error) -> StorageError {
    use postgres::error::SqlState;
    let busy = [
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
    ];
    let class = match err.code() {
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StorageClass::Retryable
        }
        Some(code) if busy.contains(code) => StorageClass::Busy,
        // A lost connection: closed, or reset under a statement.
        None if err.is_closed()
            || std::error::Error::source(&err).is_some_and(|e| e.is::<std::io::Error>()) =>
        {
            StorageClass::Busy
        }
        _ => StorageClass::Other,
    };
    let code = err.code().map(|code| code.code().to_owned());
    StorageError::caused_by(class, code, err)
}

/// A driver's result as liteshop's: the error classified by its engine
/// ([`sqlite`], [`postgres()`], the pool's wait). `Error` has no `From`
/// for a driver's error, so no driver type is part of its public face;
/// the backends convert at their edge with `.classified()?`.
pub(crate) trait Classified<T> {
    /// The value, or the error as an [`Error`].
    fn classified(self) -> Result<T, Error>;
}

impl<T> Classified<T> for std::result::Result<T, rusqlite::Error> {
    fn classified(self) -> Result<T, Error> {
        self.map_err(|err| sqlite(err).into())
    }
}

#[cfg(feature = "postgres")]
impl<T> Classified<T> for std::result::Result<T, postgres::Error> {
    fn classified(self) -> Result<T, Error> {
        self.map_err(|err| postgres(err).into())
    }
}

impl<T> Classified<T> for std::result::Result<T, r2d2::Error> {
    /// Once the shop is open, the pool fails only when no connection came
    /// free within the timeout: that is [`Error::Busy`].
    fn classified(self) -> Result<T, Error> {
        self.map_err(|err| Error::Busy(StorageError::caused_by(StorageClass::Busy, None, err)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn sqlite_errors_are_classified_by_their_code() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let busy = sqlite(failure(rusqlite::ffi::SQLITE_BUSY));
        assert_eq!(busy.class(), StorageClass::Busy);
        assert_eq!(busy.code(), Some("5"));
        assert_eq!(
            sqlite(failure(rusqlite::ffi::SQLITE_LOCKED)).class(),
            StorageClass::Busy
        );
        assert_eq!(
            sqlite(failure(rusqlite::ffi::SQLITE_FULL)).class(),
            StorageClass::DiskFull
        );
        assert_eq!(
            sqlite(failure(rusqlite::ffi::SQLITE_IOERR_WRITE)).class(),
            StorageClass::DiskFull
        );
        let other = sqlite(rusqlite::Error::QueryReturnedNoRows);
        assert_eq!(other.class(), StorageClass::Other);
        assert_eq!(other.code(), None);

        assert_eq!(
            Error::from(sqlite(failure(rusqlite::ffi::SQLITE_BUSY))).kind(),
            ErrorKind::Busy
        );
        assert!(matches!(
            Error::from(sqlite(failure(rusqlite::ffi::SQLITE_FULL))),
            Error::DiskFull(_)
        ));
        assert_eq!(
            Error::from(sqlite(rusqlite::Error::QueryReturnedNoRows)).kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn a_class_decides_the_error() {
        let of = |class| Error::from(StorageError::new(class, "x"));
        assert!(matches!(of(StorageClass::Busy), Error::Busy(_)));
        assert!(matches!(of(StorageClass::Retryable), Error::Busy(_)));
        assert!(matches!(of(StorageClass::DiskFull), Error::DiskFull(_)));
        assert!(matches!(
            of(StorageClass::CommitOutcomeUnknown),
            Error::CommitOutcomeUnknown
        ));
        assert!(matches!(of(StorageClass::Other), Error::Storage(_)));
    }

    #[test]
    fn a_storage_error_names_its_cause_and_keeps_it() {
        let err = Error::from(sqlite(rusqlite::Error::QueryReturnedNoRows));
        assert!(err.to_string().contains("no rows"), "{err}");
        let cause = std::error::Error::source(&err).expect("the storage error");
        assert!(
            std::error::Error::source(cause).is_some(),
            "the driver's error"
        );
    }
}
