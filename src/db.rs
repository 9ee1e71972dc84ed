//! [`Db`]: the handful of operations the domain modules need — execute a
//! statement, read rows — so that one domain layer runs on either backend.
//! The shape is rust-postgres's `GenericClient`, one level up: a SQLite
//! connection or transaction implements it here, a PostgreSQL transaction
//! in `store::postgres`.
//!
//! SQL is written once, with `?1`, `?2`… placeholders (the backend that
//! numbers its parameters `$1`, `$2`… rewrites them); values cross as
//! liteshop's own [`Value`], through [`ToValue`] and [`FromValue`], which
//! every domain type implements and which are the one conversion for both
//! backends (no driver's type reaches a domain module). Where
//! the engines differ, the two statements sit side by side in the function
//! that runs them, chosen by [`Db::backend`].

use crate::error::Result;
use crate::store::failure::{Classified, corrupt};

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
    pub(crate) fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let value = self
            .0
            .get(i)
            .ok_or_else(|| corrupt(format!("no column {i}")))?;
        T::from_value(value).map_err(|err| corrupt(format!("column {i}: {err}")))
    }
}

/// A value as it crosses to and from either engine: liteshop's own, so no
/// driver's type reaches a domain module. Integers, text, blobs and NULL
/// are all the schema stores (booleans are 0 or 1, money and times
/// integers); a real is only ever read, from an expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A floating-point number (never stored by liteshop).
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A [`Value`] borrowed from the parameter it binds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

impl Value {
    /// The value, borrowed, as a parameter binds it.
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }

    /// What kind of value it is, for an error message.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }
}

/// A type bound as a statement's parameter.
pub(crate) trait ToValue {
    /// The value it binds as.
    fn to_value(&self) -> ValueRef<'_>;
}

/// A type read from a column.
pub(crate) trait FromValue: Sized {
    /// The column's value as `Self`, or why it is not one.
    fn from_value(value: &Value) -> std::result::Result<Self, String>;
}

/// What a column of the wrong kind reads as.
fn wrong(value: &Value, wanted: &str) -> String {
    format!("{} where {wanted} was expected", value.kind())
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> ValueRef<'_> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> ValueRef<'_> {
        self.as_ref().map_or(ValueRef::Null, ToValue::to_value)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> ValueRef<'_> {
        self.as_ref()
    }
}

impl ToValue for str {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToValue for String {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToValue for bool {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Integer(i64::from(*self))
    }
}

/// Integers that fit an `i64` bind as one.
macro_rules! integer_values {
    ($($ty:ty),+) => {$(
        impl ToValue for $ty {
            fn to_value(&self) -> ValueRef<'_> {
                ValueRef::Integer(i64::from(*self))
            }
        }

        impl FromValue for $ty {
            fn from_value(value: &Value) -> std::result::Result<Self, String> {
                match value {
                    Value::Integer(i) => <$ty>::try_from(*i)
                        .map_err(|_| format!("{i} is out of range for {}", stringify!($ty))),
                    other => Err(wrong(other, "an integer")),
                }
            }
        }
    )+};
}

integer_values!(i32, u32, u16, u8);

impl ToValue for i64 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Integer(*self)
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => Err(wrong(other, "an integer")),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Integer(i) => Ok(*i != 0),
            other => Err(wrong(other, "a boolean")),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Text(t) => Ok(t.clone()),
            other => Err(wrong(other, "text")),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        Ok(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// The columns a row mapper reads, in the order its statements select
/// them, each as `table.column`. The mapper reads each by name through
/// [`at!`] (its position, found at compile time), and a test
/// (`copy.rs`'s) checks the list against every statement that feeds the
/// mapper and against both engines' catalogs: a mapper cannot read
/// `price` where its statement put `stock`.
pub(crate) type Reads = &'static [&'static str];

/// The position in `reads` of `column` (the name after the table's dot):
/// what [`at!`] evaluates at compile time. A name the list does not have,
/// or has twice, stops the build.
pub(crate) const fn position(reads: Reads, column: &str) -> usize {
    let mut found = None;
    let mut i = 0;
    while i < reads.len() {
        if names(reads[i].as_bytes(), column.as_bytes()) {
            assert!(
                found.is_none(),
                "a column a row mapper reads is listed twice"
            );
            found = Some(i);
        }
        i += 1;
    }
    match found {
        Some(i) => i,
        None => panic!("a row mapper reads a column its list does not name"),
    }
}

/// Whether `entry` (`table.column`) names `column`.
const fn names(entry: &[u8], column: &[u8]) -> bool {
    if entry.len() <= column.len() {
        return false;
    }
    let start = entry.len() - column.len();
    if entry[start - 1] != b'.' {
        return false;
    }
    let mut j = 0;
    while j < column.len() {
        if entry[start + j] != column[j] {
            return false;
        }
        j += 1;
    }
    true
}

/// The position of a column in a mapper's [`Reads`], as a constant:
/// `row.get(at!(PRODUCT, "stock"))`.
macro_rules! at {
    ($reads:expr, $column:literal) => {
        const { $crate::db::position($reads, $column) }
    };
}

pub(crate) use at;

/// The operations a domain function runs, on a transaction its caller
/// owns (or, for reads, a read snapshot).
pub(crate) trait Db {
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// Runs one statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize>;

    /// Every row a query returns.
    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>>;

    /// The first row a query returns, if any.
    fn query_opt(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Option<Row>>;

    /// The one row a query must return.
    fn query_row(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| corrupt("a query that must return a row returned none"))
    }
}

impl Db for rusqlite::Connection {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
        self.prepare_cached(sql)
            .classified()?
            .execute(sqlite_params(params))
            .classified()
    }

    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>> {
        let mut stmt = self.prepare_cached(sql).classified()?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(sqlite_params(params)).classified()?;
        let mut all = Vec::new();
        while let Some(row) = rows.next().classified()? {
            all.push(sqlite_row(row, columns)?);
        }
        Ok(all)
    }

    fn query_opt(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Option<Row>> {
        let mut stmt = self.prepare_cached(sql).classified()?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(sqlite_params(params)).classified()?;
        match rows.next().classified()? {
            Some(row) => Ok(Some(sqlite_row(row, columns)?)),
            None => Ok(None),
        }
    }
}

/// A parameter as rusqlite binds it: borrowed, never copied.
struct SqliteParam<'a>(ValueRef<'a>);

impl rusqlite::ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ValueRef as Sqlite;
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match self.0 {
            ValueRef::Null => Sqlite::Null,
            ValueRef::Integer(i) => Sqlite::Integer(i),
            ValueRef::Real(f) => Sqlite::Real(f),
            ValueRef::Text(t) => Sqlite::Text(t.as_bytes()),
            ValueRef::Blob(b) => Sqlite::Blob(b),
        }))
    }
}

fn sqlite_params<'a>(
    params: &'a [&'a dyn ToValue],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = SqliteParam<'a>>> {
    rusqlite::params_from_iter(params.iter().map(|param| SqliteParam(param.to_value())))
}

fn sqlite_row(row: &rusqlite::Row<'_>, columns: usize) -> Result<Row> {
    (0..columns)
        .map(|i| owned(row.get_ref(i).classified()?, i))
        .collect::<Result<Vec<_>>>()
        .map(Row)
}

/// A value SQLite returned, as liteshop's own; `column` names it in the
/// error for text that is not UTF-8.
fn owned(value: rusqlite::types::ValueRef<'_>, column: usize) -> Result<Value> {
    use rusqlite::types::ValueRef as Sqlite;
    Ok(match value {
        Sqlite::Null => Value::Null,
        Sqlite::Integer(i) => Value::Integer(i),
        Sqlite::Real(f) => Value::Real(f),
        Sqlite::Text(text) => Value::Text(
            std::str::from_utf8(text)
                .map_err(|err| corrupt(format!("column {column}: {err}")))?
                .to_owned(),
        ),
        Sqlite::Blob(blob) => Value::Blob(blob.to_vec()),
    })
}

/// A SQLite transaction or savepoint runs on its connection.
macro_rules! delegate_to_connection {
    ($($ty:ty),+) => {$(
        impl Db for $ty {
            fn backend(&self) -> Backend {
                Backend::Sqlite
            }
            fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
                Db::execute(&**self, sql, params)
            }
            fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>> {
                Db::query(&**self, sql, params)
            }
            fn query_opt(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Option<Row>> {
                Db::query_opt(&**self, sql, params)
            }
        }
    )+};
}

delegate_to_connection!(rusqlite::Transaction<'_>, rusqlite::Savepoint<'_>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::{Money, OrderStatus, UserId};

    /// Every kind of value binds and reads back through SQLite as itself,
    /// and a column of the wrong kind or out of range is a storage error,
    /// never a wrong value.
    #[test]
    fn values_round_trip_and_refuse_the_wrong_kind() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let row = Db::query_row(
            &conn,
            "SELECT ?1, ?2, ?3, ?4, ?5, ?6, 1.5, x'00ff', -1, 300",
            &[
                &UserId::new(7),
                &Money::from_won(500),
                &OrderStatus::Paid,
                &None::<i64>,
                &"kim",
                &true,
            ],
        )
        .unwrap();
        assert_eq!(row.get::<UserId>(0).unwrap(), UserId::new(7));
        assert_eq!(row.get::<Money>(1).unwrap(), Money::from_won(500));
        assert_eq!(row.get::<OrderStatus>(2).unwrap(), OrderStatus::Paid);
        assert_eq!(row.get::<Option<i64>>(3).unwrap(), None);
        assert_eq!(
            row.get::<Option<String>>(4).unwrap().as_deref(),
            Some("kim")
        );
        assert!(row.get::<bool>(5).unwrap());
        assert_eq!(row.get::<Value>(6).unwrap(), Value::Real(1.5));
        assert_eq!(row.get::<Value>(7).unwrap(), Value::Blob(vec![0, 255]));

        let refused = |result: Result<()>| {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Storage(_)), "{err:?}");
            err.to_string()
        };
        assert!(refused(row.get::<i64>(4).map(drop)).contains("column 4"));
        assert!(refused(row.get::<OrderStatus>(4).map(drop)).contains("unknown OrderStatus"));
        refused(row.get::<String>(0).map(drop));
        refused(row.get::<i64>(3).map(drop));
        refused(row.get::<Money>(8).map(drop));
        refused(row.get::<u8>(9).map(drop));
        refused(row.get::<i64>(10).map(drop));
    }
}
