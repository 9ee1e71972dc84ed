//! The schema: an append-only list of migrations, applied in order and
//! recorded in `PRAGMA user_version` by `rusqlite_migration`.
//!
//! Never edit a migration that has shipped; add a new one at the end.

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first. The schema version of a database is the
/// number of these applied to it.
const MIGRATIONS: &[M<'static>] = &[M::up(
    // 1: users, balances and their ledger, products, carts.
    r#"
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE balances (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id),
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    updated_at  INTEGER NOT NULL
) STRICT;

-- Every change of a balance is one row here, written in the same
-- transaction as the change. Credits are positive, debits negative.
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    kind           TEXT    NOT NULL
                   CHECK (kind IN ('charge', 'payment', 'payment_reversal', 'refund')),
    amount         INTEGER NOT NULL CHECK (amount <> 0),
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    created_at     INTEGER NOT NULL,
    CHECK ((kind = 'payment') = (amount < 0))
) STRICT;
CREATE INDEX ledger_by_user ON ledger (user_id, id);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price       INTEGER NOT NULL CHECK (price >= 0),
    stock       INTEGER NOT NULL CHECK (stock BETWEEN 0 AND 4294967295),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE cart_items (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    product_id  INTEGER NOT NULL REFERENCES products (id),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, product_id)
) STRICT;
-- Foreign-key checks and lookups by product.
CREATE INDEX cart_items_by_product ON cart_items (product_id);
"#,
)];

/// The migrations as `rusqlite_migration` wants them.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// The schema version this library writes: the number of migrations.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }
}
