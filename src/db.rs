//! [`Db`]: the handful of operations the domain modules need — execute a
//! statement, read rows — so that one domain layer runs on either backend.
//! The shape is rust-postgres's `GenericClient`, one level up: a SQLite
//! connection or transaction implements it here, a PostgreSQL transaction
//! in `store::postgres`.
//!
//! SQL is written once, with `?1`, `?2`… placeholders (the backend that
//! numbers its parameters `$1`, `$2`… rewrites them); values cross as
//! rusqlite's `ToSql`/`FromSql`, which every domain type already
//! implements and which stay the one conversion for both backends. Where
//! the engines differ, the two statements sit side by side in the function
//! that runs them, chosen by [`Db::backend`].

use rusqlite::types::{FromSql, ToSql, Value, ValueRef};

use crate::error::Result;
use crate::store::failure::corrupt;

/// Whether `target` names a PostgreSQL database rather than a file: a
/// `postgres://` or `postgresql://` URL, or libpq's `host=…` pairs. The one
/// rule the builder and the server's tools both go by.
pub fn is_postgres_target(target: &str) -> bool {
    target.starts_with("postgres://")
        || target.starts_with("postgresql://")
        || target.starts_with("host=")
        || (target.contains("host=") && target.contains(' '))
}

/// Which engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// One SQLite file.
    Sqlite,
    /// A PostgreSQL schema.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

/// A row read by [`Db::query`]: its values, owned.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    /// Column `i` as a `T`.
    pub(crate) fn get<T: FromSql>(&self, i: usize) -> Result<T> {
        let value = self
            .0
            .get(i)
            .ok_or_else(|| corrupt(format!("no column {i}")))?;
        T::column_result(ValueRef::from(value)).map_err(|err| corrupt(format!("column {i}: {err}")))
    }
}

/// The operations a domain function runs, on a transaction its caller
/// owns (or, for reads, a read snapshot).
pub(crate) trait Db {
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// Runs one statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize>;

    /// Every row a query returns.
    fn query(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<Row>>;

    /// The first row a query returns, if any.
    fn query_opt(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Option<Row>>;

    /// The one row a query must return.
    fn query_row(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| corrupt("a query that must return a row returned none"))
    }
}

impl Db for rusqlite::Connection {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize> {
        Ok(self.prepare_cached(sql)?.execute(params)?)
    }

    fn query(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<Row>> {
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(params)?;
        let mut all = Vec::new();
        while let Some(row) = rows.next()? {
            all.push(sqlite_row(row, columns)?);
        }
        Ok(all)
    }

    fn query_opt(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Option<Row>> {
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(params)?;
        match rows.next()? {
            Some(row) => Ok(Some(sqlite_row(row, columns)?)),
            None => Ok(None),
        }
    }
}

fn sqlite_row(row: &rusqlite::Row<'_>, columns: usize) -> Result<Row> {
    (0..columns)
        .map(|i| owned(row.get_ref(i)?, i))
        .collect::<Result<Vec<_>>>()
        .map(Row)
}

/// A borrowed value as an owned one; `column` (or parameter) index names
/// it in the error for text that is not UTF-8.
pub(crate) fn owned(value: ValueRef<'_>, column: usize) -> Result<Value> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(text) => Value::Text(
            std::str::from_utf8(text)
                .map_err(|err| corrupt(format!("column {column}: {err}")))?
                .to_owned(),
        ),
        ValueRef::Blob(blob) => Value::Blob(blob.to_vec()),
    })
}

/// A SQLite transaction or savepoint runs on its connection.
macro_rules! delegate_to_connection {
    ($($ty:ty),+) => {$(
        impl Db for $ty {
            fn backend(&self) -> Backend {
                Backend::Sqlite
            }
            fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize> {
                Db::execute(&**self, sql, params)
            }
            fn query(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<Row>> {
                Db::query(&**self, sql, params)
            }
            fn query_opt(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Option<Row>> {
                Db::query_opt(&**self, sql, params)
            }
        }
    )+};
}

delegate_to_connection!(rusqlite::Transaction<'_>, rusqlite::Savepoint<'_>);
