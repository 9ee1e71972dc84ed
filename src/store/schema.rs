//! The schema: an append-only list of migrations, applied in order and
//! recorded in `PRAGMA user_version` by `rusqlite_migration`.
//!
//! Never edit a migration that has shipped; add a new one at the end.

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first. The schema version of a database is the
/// number of these applied to it.
const MIGRATIONS: &[M<'static>] = &[
    M::up(
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
    ),
    M::up(
        // 2: orders and their lines.
        r#"
CREATE TABLE orders (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    status         TEXT    NOT NULL
                   CHECK (status IN ('pending', 'paying', 'paid', 'cancelled', 'refunded')),
    cancel_reason  TEXT    CHECK (cancel_reason IN ('user', 'expired')),
    total          INTEGER NOT NULL CHECK (total >= 0),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK ((status = 'cancelled') = (cancel_reason IS NOT NULL))
) STRICT;
CREATE INDEX orders_by_user ON orders (user_id, id);
-- Expiry looks only at pending orders, oldest deadline first.
CREATE INDEX orders_pending_by_expiry ON orders (expires_at) WHERE status = 'pending';

-- One row per product of an order, with the name and unit price copied at
-- order time so later catalogue changes do not rewrite history.
CREATE TABLE order_items (
    id          INTEGER PRIMARY KEY,
    order_id    INTEGER NOT NULL REFERENCES orders (id),
    product_id  INTEGER NOT NULL REFERENCES products (id),
    name        TEXT    NOT NULL,
    unit_price  INTEGER NOT NULL CHECK (unit_price >= 0),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    UNIQUE (order_id, product_id)
) STRICT;
CREATE INDEX order_items_by_product ON order_items (product_id);
"#,
    ),
    M::up(
        // 3: payments, their history, and the link from ledger entries.
        r#"
CREATE TABLE payments (
    id                 INTEGER PRIMARY KEY,
    order_id           INTEGER NOT NULL REFERENCES orders (id),
    user_id            INTEGER NOT NULL REFERENCES users (id),
    amount             INTEGER NOT NULL CHECK (amount > 0),
    status             TEXT    NOT NULL
                       CHECK (status IN ('requested', 'approved', 'declined', 'unknown', 'refunded')),
    payment_key        TEXT    NOT NULL CHECK (length(payment_key) BETWEEN 1 AND 200),
    pg_order_id        TEXT    NOT NULL UNIQUE CHECK (length(pg_order_id) BETWEEN 6 AND 64),
    idempotency_key    TEXT    NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300),
    pg_transaction_id  TEXT,
    failure_code       TEXT,
    failure_message    TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CHECK ((status IN ('approved', 'refunded')) = (pg_transaction_id IS NOT NULL)),
    CHECK ((status = 'declined') = (failure_code IS NOT NULL))
) STRICT;
CREATE INDEX payments_by_order ON payments (order_id, id);
-- At most one payment per order is in flight or approved: a second
-- concurrent attempt cannot even be inserted.
CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
    WHERE status IN ('requested', 'unknown', 'approved');
-- Reconciliation walks the unsettled payments, oldest first.
CREATE INDEX payments_unsettled ON payments (created_at)
    WHERE status IN ('requested', 'unknown');
-- Money held by payments in flight, per user (counted against the
-- balance limit).
CREATE INDEX payments_held_by_user ON payments (user_id, amount)
    WHERE status IN ('requested', 'unknown');

-- The payment history: one row per status change.
CREATE TABLE payment_events (
    id          INTEGER PRIMARY KEY,
    payment_id  INTEGER NOT NULL REFERENCES payments (id),
    status      TEXT    NOT NULL
                CHECK (status IN ('requested', 'approved', 'declined', 'unknown', 'refunded')),
    detail      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX payment_events_by_payment ON payment_events (payment_id, id);

-- Which payment a payment, reversal or refund entry belongs to.
ALTER TABLE ledger ADD COLUMN payment_id INTEGER REFERENCES payments (id);
CREATE INDEX ledger_by_payment ON ledger (payment_id) WHERE payment_id IS NOT NULL;
"#,
    ),
];

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

    #[test]
    fn a_version_1_database_migrates_forward_with_its_data() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrations().to_version(&mut conn, 1).unwrap();
        conn.execute_batch(
            "INSERT INTO users (name, created_at) VALUES ('Kim', 0);
             INSERT INTO balances (user_id, amount, updated_at) VALUES (1, 500, 0);",
        )
        .unwrap();
        migrations().to_latest(&mut conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, LATEST_VERSION);
        let amount: i64 = conn
            .query_row("SELECT amount FROM balances WHERE user_id = 1", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(amount, 500);
        conn.execute_batch("SELECT count(*) FROM orders").unwrap();
    }
}
