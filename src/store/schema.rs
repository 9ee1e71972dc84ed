//! The schema: an append-only list of migrations, applied in order and
//! recorded in `PRAGMA user_version` by `rusqlite_migration`.
//!
//! Never edit a migration that has shipped; add a new one at the end.

use rusqlite_migration::{M, Migrations};

use super::failure::Classified;
use crate::error::Result;

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
    M::up(
        // 4: refunds as durable attempts, whole or partial; the bound that
        // lets every release succeed; the liteshop file marker.
        //
        // `orders` is rebuilt (SQLite cannot change a CHECK in place) by the
        // documented recipe: `open` runs migrations with foreign keys off,
        // and `foreign_key_check` below proves the copy kept every link.
        r#"
CREATE TABLE orders_v4 (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    status         TEXT    NOT NULL
                   CHECK (status IN ('pending', 'paying', 'paid', 'partially_refunded',
                                     'cancelled', 'refunded')),
    cancel_reason  TEXT    CHECK (cancel_reason IN ('user', 'expired')),
    total          INTEGER NOT NULL CHECK (total >= 0),
    refunded       INTEGER NOT NULL DEFAULT 0 CHECK (refunded BETWEEN 0 AND total),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK ((status = 'cancelled') = (cancel_reason IS NOT NULL)),
    CHECK (status <> 'refunded' OR refunded = total),
    CHECK (status IN ('partially_refunded', 'refunded') OR refunded = 0)
) STRICT;
INSERT INTO orders_v4 (id, user_id, status, cancel_reason, total, refunded, created_at,
                       expires_at, updated_at)
    SELECT id, user_id, status, cancel_reason, total,
           CASE WHEN status = 'refunded' THEN total ELSE 0 END,
           created_at, expires_at, updated_at
    FROM orders;
DROP TABLE orders;
ALTER TABLE orders_v4 RENAME TO orders;
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE INDEX orders_pending_by_expiry ON orders (expires_at) WHERE status = 'pending';

-- What each line costs the buyer (its share of the order total, after any
-- order-level discount) and how many of its units were refunded.
ALTER TABLE order_items ADD COLUMN amount INTEGER NOT NULL DEFAULT 0 CHECK (amount >= 0);
ALTER TABLE order_items ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0
    CHECK (refunded BETWEEN 0 AND quantity);
UPDATE order_items SET amount = unit_price * quantity;
UPDATE order_items SET refunded = quantity
    WHERE order_id IN (SELECT id FROM orders WHERE status = 'refunded');

-- Units out of stock and held by orders (reserved or sold, not released).
-- stock + held never passes the largest stock, so a release always fits.
ALTER TABLE products ADD COLUMN held INTEGER NOT NULL DEFAULT 0
    CHECK (held >= 0 AND stock + held <= 4294967295);
UPDATE products SET held = (
    SELECT coalesce(sum(i.quantity - i.refunded), 0)
    FROM order_items i JOIN orders o ON o.id = i.order_id
    WHERE i.product_id = products.id
      AND o.status IN ('pending', 'paying', 'paid', 'partially_refunded'));

-- The money given back so far; never more than was paid.
ALTER TABLE payments ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0
    CHECK (refunded BETWEEN 0 AND amount);
UPDATE payments SET refunded = amount WHERE status = 'refunded';

-- One row per refund attempt: recorded before the gateway is asked, settled
-- exactly once after.
CREATE TABLE refunds (
    id               INTEGER PRIMARY KEY,
    payment_id       INTEGER NOT NULL REFERENCES payments (id),
    order_id         INTEGER NOT NULL REFERENCES orders (id),
    user_id          INTEGER NOT NULL REFERENCES users (id),
    amount           INTEGER NOT NULL CHECK (amount >= 0),
    status           TEXT    NOT NULL
                     CHECK (status IN ('requested', 'unknown', 'completed', 'declined')),
    reason           TEXT    NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    idempotency_key  TEXT    NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300),
    failure_code     TEXT,
    failure_message  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK ((status = 'declined') = (failure_code IS NOT NULL))
) STRICT;
CREATE INDEX refunds_by_order ON refunds (order_id, id);
CREATE INDEX refunds_by_payment ON refunds (payment_id, id);
-- One refund attempt in flight per payment.
CREATE UNIQUE INDEX refunds_one_live_per_payment ON refunds (payment_id)
    WHERE status IN ('requested', 'unknown');
-- Reconciliation walks the unsettled refunds, oldest first.
CREATE INDEX refunds_unsettled ON refunds (created_at)
    WHERE status IN ('requested', 'unknown');
-- Money owed to a user by refunds in flight (counted against the balance
-- limit, like money held by payments).
CREATE INDEX refunds_owed_to_user ON refunds (user_id, amount)
    WHERE status IN ('requested', 'unknown');

-- The units and money each refund attempt returns, per order line.
CREATE TABLE refund_items (
    refund_id      INTEGER NOT NULL REFERENCES refunds (id),
    order_item_id  INTEGER NOT NULL REFERENCES order_items (id),
    quantity       INTEGER NOT NULL CHECK (quantity > 0),
    amount         INTEGER NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (refund_id, order_item_id)
) STRICT;
CREATE INDEX refund_items_by_item ON refund_items (order_item_id);

-- Which refund a refund entry belongs to.
ALTER TABLE ledger ADD COLUMN refund_id INTEGER REFERENCES refunds (id);

PRAGMA application_id = 1280526416;
"#,
    )
    .foreign_key_check(),
    M::up(
        // 5: coupons, the day-by-day sales behind best sellers, and the
        // order event feed.
        r#"
-- A coupon offer: at most `quantity` are ever issued, one per user.
CREATE TABLE coupons (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind             TEXT    NOT NULL CHECK (kind IN ('fixed', 'percent')),
    value            INTEGER NOT NULL,
    cap              INTEGER,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 4294967295),
    issued           INTEGER NOT NULL DEFAULT 0 CHECK (issued BETWEEN 0 AND quantity),
    issuable_from    INTEGER NOT NULL,
    issuable_until   INTEGER NOT NULL CHECK (issuable_until > issuable_from),
    valid_for        INTEGER NOT NULL CHECK (valid_for > 0),
    min_order_total  INTEGER NOT NULL CHECK (min_order_total >= 0),
    created_at       INTEGER NOT NULL,
    CHECK ((kind = 'fixed' AND value >= 1 AND cap IS NULL)
        OR (kind = 'percent' AND value BETWEEN 1 AND 100 AND (cap IS NULL OR cap >= 1)))
) STRICT;

-- A coupon issued to a user; `order_id` is set while an order uses it.
CREATE TABLE user_coupons (
    id          INTEGER PRIMARY KEY,
    coupon_id   INTEGER NOT NULL REFERENCES coupons (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL CHECK (expires_at > issued_at),
    order_id    INTEGER UNIQUE REFERENCES orders (id),
    used_at     INTEGER,
    UNIQUE (user_id, coupon_id),
    CHECK ((order_id IS NULL) = (used_at IS NULL))
) STRICT;

-- What an order took off its subtotal, with which coupon, and when it was
-- paid (the day its units count as sold).
ALTER TABLE orders ADD COLUMN discount INTEGER NOT NULL DEFAULT 0 CHECK (discount >= 0);
ALTER TABLE orders ADD COLUMN coupon_id INTEGER REFERENCES coupons (id);
ALTER TABLE orders ADD COLUMN paid_at INTEGER;
UPDATE orders SET paid_at = (
    SELECT max(e.created_at) FROM payments p JOIN payment_events e ON e.payment_id = p.id
    WHERE p.order_id = orders.id AND e.status = 'approved')
    WHERE status IN ('paid', 'partially_refunded', 'refunded');
UPDATE orders SET paid_at = updated_at
    WHERE paid_at IS NULL AND status IN ('paid', 'partially_refunded', 'refunded');

-- Every unit ever put in stock (created or restocked): the audit's
-- reference, since stock + held must always equal it.
ALTER TABLE products ADD COLUMN stocked INTEGER NOT NULL DEFAULT 0 CHECK (stocked >= 0);
UPDATE products SET stocked = stock + held;

-- Units and money sold per product per calendar day (in the offset named in
-- `settings`), net of refunds: kept in the transactions that pay and refund.
CREATE TABLE sales_daily (
    day         INTEGER NOT NULL,
    product_id  INTEGER NOT NULL REFERENCES products (id),
    units       INTEGER NOT NULL CHECK (units >= 0),
    revenue     INTEGER NOT NULL CHECK (revenue >= 0),
    PRIMARY KEY (day, product_id)
) STRICT, WITHOUT ROWID;

-- Settings the data depends on (the sales day offset); empty until the first
-- open after this migration fills it.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The order event feed: one row per change of an order or payment, in
-- commit order. AUTOINCREMENT: a sequence number is never reused, even
-- after pruning; a rolled-back write leaves no gap.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('order_placed', 'order_cancelled',
                    'order_expired', 'payment_requested', 'payment_approved',
                    'payment_declined', 'refund_completed')),
    user_id     INTEGER NOT NULL,
    order_id    INTEGER NOT NULL,
    payment_id  INTEGER,
    refund_id   INTEGER,
    payload     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX events_by_time ON events (created_at);

-- Idempotency keys of keyed writes: the response of the first request,
-- stored in the transaction of its effect; a repeat gets it back.
CREATE TABLE idempotency_keys (
    user_id      INTEGER NOT NULL REFERENCES users (id),
    key          TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  TEXT    NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 255),
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Named consumers of the feed and the last sequence number each acked.
CREATE TABLE event_consumers (
    name        TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    acked       INTEGER NOT NULL CHECK (acked >= 0),
    updated_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    )
    .foreign_key_check(),
    // 6: the operator's console shows one order's events.
    M::up("CREATE INDEX events_by_order ON events (order_id, seq);"),
    // 7: leases, so several processes run the background work once.
    M::up(
        r#"
-- One holder at a time per background job; a holder that dies stops
-- renewing, and another takes the lease once it expires.
CREATE TABLE leases (
    job         TEXT    PRIMARY KEY CHECK (length(job) BETWEEN 1 AND 200),
    holder      TEXT    NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    expires_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    ),
    // 8: tender and the PG's handshake. A payment has a balance part and a
    // PG part; it is started (the balance part held) before the customer
    // pays in the PG's widget and confirmed after; a top-up is a payment
    // with no order whose PG part is credited to the balance; operators
    // grant and take back balance with a note. Payments, their history,
    // refunds and the ledger are rebuilt (SQLite cannot change a CHECK in
    // place) by the recipe of migration 4. Every payment made before this
    // version debited its whole amount from the balance, so it becomes a
    // payment wholly by balance, its PG references kept as they were.
    M::up(
        r#"
CREATE TABLE payments_v8 (
    id                 INTEGER PRIMARY KEY,
    order_id           INTEGER REFERENCES orders (id),
    user_id            INTEGER NOT NULL REFERENCES users (id),
    amount             INTEGER NOT NULL CHECK (amount > 0),
    status             TEXT    NOT NULL
                       CHECK (status IN ('started', 'requested', 'approved', 'declined',
                                         'unknown', 'refunded')),
    payment_key        TEXT    CHECK (length(payment_key) BETWEEN 1 AND 200),
    pg_order_id        TEXT    NOT NULL UNIQUE CHECK (length(pg_order_id) BETWEEN 6 AND 64),
    idempotency_key    TEXT    NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300),
    pg_transaction_id  TEXT,
    failure_code       TEXT,
    failure_message    TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    refunded           INTEGER NOT NULL DEFAULT 0 CHECK (refunded BETWEEN 0 AND amount),
    kind               TEXT    NOT NULL CHECK (kind IN ('order', 'top_up')),
    balance_amount     INTEGER NOT NULL CHECK (balance_amount >= 0),
    pg_amount          INTEGER NOT NULL CHECK (pg_amount >= 0),
    pg_refunded        INTEGER NOT NULL DEFAULT 0 CHECK (pg_refunded BETWEEN 0 AND pg_amount),
    order_name         TEXT    NOT NULL CHECK (length(order_name) BETWEEN 1 AND 100),
    customer_key       TEXT    NOT NULL CHECK (length(customer_key) BETWEEN 2 AND 50),
    expires_at         INTEGER NOT NULL,
    CHECK (amount = balance_amount + pg_amount),
    CHECK ((kind = 'order') = (order_id IS NOT NULL)),
    CHECK (kind = 'order' OR balance_amount = 0),
    CHECK (refunded - pg_refunded BETWEEN 0 AND balance_amount),
    CHECK (status IN ('started', 'declined') OR pg_amount = 0 OR payment_key IS NOT NULL),
    CHECK (status <> 'started' OR payment_key IS NULL),
    CHECK (pg_transaction_id IS NULL OR status IN ('approved', 'refunded')),
    CHECK (status NOT IN ('approved', 'refunded') OR pg_amount = 0
           OR pg_transaction_id IS NOT NULL),
    CHECK ((status = 'declined') = (failure_code IS NOT NULL))
) STRICT;
INSERT INTO payments_v8 (id, order_id, user_id, amount, status, payment_key, pg_order_id,
                         idempotency_key, pg_transaction_id, failure_code, failure_message,
                         created_at, updated_at, refunded, kind, balance_amount, pg_amount,
                         pg_refunded, order_name, customer_key, expires_at)
    SELECT id, order_id, user_id, amount, status, payment_key, pg_order_id, idempotency_key,
           pg_transaction_id, failure_code, failure_message, created_at, updated_at, refunded,
           'order', amount, 0, 0, 'Order ' || order_id, 'ls-legacy-' || user_id, created_at
    FROM payments;

CREATE TABLE payment_events_v8 (
    id          INTEGER PRIMARY KEY,
    payment_id  INTEGER NOT NULL REFERENCES payments (id),
    status      TEXT    NOT NULL
                CHECK (status IN ('started', 'requested', 'approved', 'declined', 'unknown',
                                  'refunded')),
    detail      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
INSERT INTO payment_events_v8 SELECT id, payment_id, status, detail, created_at
    FROM payment_events;

CREATE TABLE refunds_v8 (
    id               INTEGER PRIMARY KEY,
    payment_id       INTEGER NOT NULL REFERENCES payments (id),
    order_id         INTEGER REFERENCES orders (id),
    user_id          INTEGER NOT NULL REFERENCES users (id),
    amount           INTEGER NOT NULL CHECK (amount >= 0),
    status           TEXT    NOT NULL
                     CHECK (status IN ('requested', 'unknown', 'completed', 'declined')),
    reason           TEXT    NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    idempotency_key  TEXT    NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300),
    failure_code     TEXT,
    failure_message  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    balance_amount   INTEGER NOT NULL CHECK (balance_amount >= 0),
    pg_amount        INTEGER NOT NULL CHECK (pg_amount >= 0),
    CHECK (amount = balance_amount + pg_amount),
    CHECK ((status = 'declined') = (failure_code IS NOT NULL))
) STRICT;
INSERT INTO refunds_v8 SELECT id, payment_id, order_id, user_id, amount, status, reason,
                              idempotency_key, failure_code, failure_message, created_at,
                              updated_at, amount, 0
    FROM refunds;

CREATE TABLE ledger_v8 (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    kind           TEXT    NOT NULL
                   CHECK (kind IN ('charge', 'top_up', 'grant', 'take_back', 'payment',
                                   'payment_reversal', 'refund', 'top_up_refund',
                                   'top_up_refund_reversal')),
    amount         INTEGER NOT NULL CHECK (amount <> 0),
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    created_at     INTEGER NOT NULL,
    payment_id     INTEGER REFERENCES payments (id),
    refund_id      INTEGER REFERENCES refunds (id),
    note           TEXT    CHECK (length(note) BETWEEN 1 AND 200),
    CHECK ((kind IN ('payment', 'take_back', 'top_up_refund')) = (amount < 0)),
    CHECK ((kind IN ('grant', 'take_back')) = (note IS NOT NULL))
) STRICT;
INSERT INTO ledger_v8 SELECT id, user_id, kind, amount, balance_after, created_at, payment_id,
                             refund_id, NULL
    FROM ledger;

DROP TABLE ledger;
DROP TABLE refunds;
DROP TABLE payment_events;
DROP TABLE payments;
ALTER TABLE payments_v8 RENAME TO payments;
ALTER TABLE payment_events_v8 RENAME TO payment_events;
ALTER TABLE refunds_v8 RENAME TO refunds;
ALTER TABLE ledger_v8 RENAME TO ledger;

CREATE INDEX payments_by_order ON payments (order_id, id);
-- At most one payment per order is started, in flight or approved.
CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
    WHERE status IN ('started', 'requested', 'unknown', 'approved');
CREATE INDEX payments_by_user ON payments (user_id, id);
-- Reconciliation walks the unsettled payments, oldest first.
CREATE INDEX payments_unsettled ON payments (created_at)
    WHERE status IN ('requested', 'unknown');
-- Expiry walks the started payments nobody confirmed, oldest deadline first.
CREATE INDEX payments_started_by_expiry ON payments (expires_at) WHERE status = 'started';
-- Money in flight per user (counted against the balance limit).
CREATE INDEX payments_held_by_user ON payments (user_id)
    WHERE status IN ('started', 'requested', 'unknown');
CREATE INDEX payment_events_by_payment ON payment_events (payment_id, id);
CREATE INDEX refunds_by_order ON refunds (order_id, id);
CREATE INDEX refunds_by_payment ON refunds (payment_id, id);
CREATE UNIQUE INDEX refunds_one_live_per_payment ON refunds (payment_id)
    WHERE status IN ('requested', 'unknown');
CREATE INDEX refunds_unsettled ON refunds (created_at)
    WHERE status IN ('requested', 'unknown');
CREATE INDEX refunds_owed_to_user ON refunds (user_id)
    WHERE status IN ('requested', 'unknown');
CREATE INDEX ledger_by_user ON ledger (user_id, id);
CREATE INDEX ledger_by_payment ON ledger (payment_id) WHERE payment_id IS NOT NULL;
"#,
    )
    .foreign_key_check(),
    // The PG's key for each refund's cancel (Toss: the `transactionKey` of
    // its entry in `cancels[]`), so a later look at the PG's record can tell
    // the shop's cancels from ones made outside it.
    M::up(
        "ALTER TABLE refunds ADD COLUMN pg_transaction_key TEXT
             CHECK (pg_transaction_key IS NULL OR length(pg_transaction_key) BETWEEN 1 AND 200);",
    ),
    // Who gave the money back: the shop (a refund it asked for) or the PG
    // on its own (a cancel made in the PG's dashboard, found in the PG's
    // record and recorded so the books follow it).
    M::up(
        "ALTER TABLE refunds ADD COLUMN origin TEXT NOT NULL DEFAULT 'shop'
             CHECK (origin IN ('shop', 'pg'));
         CREATE INDEX refunds_from_the_pg ON refunds (id) WHERE origin = 'pg';
         CREATE INDEX payments_settled_with_pg ON payments (created_at)
             WHERE status IN ('approved', 'refunded') AND pg_amount > 0;
         ALTER TABLE payments ADD COLUMN deposit_bank TEXT
             CHECK (deposit_bank IS NULL OR length(deposit_bank) BETWEEN 1 AND 200);
         ALTER TABLE payments ADD COLUMN deposit_account TEXT
             CHECK (deposit_account IS NULL OR length(deposit_account) BETWEEN 1 AND 200);
         ALTER TABLE payments ADD COLUMN deposit_due_at INTEGER;
         ALTER TABLE payments ADD COLUMN deposit_secret TEXT
             CHECK (deposit_secret IS NULL OR length(deposit_secret) BETWEEN 1 AND 200);
         ALTER TABLE payments ADD COLUMN refund_bank TEXT
             CHECK (refund_bank IS NULL OR length(refund_bank) BETWEEN 1 AND 20);
         ALTER TABLE payments ADD COLUMN refund_account_number TEXT
             CHECK (refund_account_number IS NULL OR length(refund_account_number) BETWEEN 1 AND 20);
         ALTER TABLE payments ADD COLUMN refund_holder TEXT
             CHECK (refund_holder IS NULL OR length(refund_holder) BETWEEN 1 AND 60);
         ALTER TABLE products ADD COLUMN tax_free INTEGER NOT NULL DEFAULT 0
             CHECK (tax_free IN (0, 1));
         ALTER TABLE order_items ADD COLUMN tax_free INTEGER NOT NULL DEFAULT 0
             CHECK (tax_free IN (0, 1));
         ALTER TABLE payments ADD COLUMN pg_tax_free INTEGER NOT NULL DEFAULT 0
             CHECK (pg_tax_free >= 0);
         ALTER TABLE refunds ADD COLUMN pg_tax_free INTEGER NOT NULL DEFAULT 0
             CHECK (pg_tax_free >= 0);
         CREATE INDEX payments_awaiting_deposit ON payments (deposit_due_at)
             WHERE status IN ('requested', 'unknown') AND deposit_due_at IS NOT NULL;",
    ),
];

/// `PRAGMA application_id` of a liteshop file: "LSHP" in ASCII. Set by
/// migration 4; files written before it carry 0 and are recognised by
/// their schema.
pub(crate) const APPLICATION_ID: i32 = 0x4C53_4850;

/// The migrations as `rusqlite_migration` wants them.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// The schema version this library writes: the number of migrations.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// The first schema version whose files carry [`APPLICATION_ID`].
pub(crate) const FIRST_MARKED_VERSION: usize = 4;

/// The schema liteshop wrote at `version` (before the marker), built in
/// memory from the migrations: what an unmarked liteshop file must hold.
pub(crate) fn unmarked_schema(version: usize) -> Result<Vec<[Option<String>; 4]>> {
    let mut conn = rusqlite::Connection::open_in_memory().classified()?;
    migrations()
        .to_version(&mut conn, version)
        .map_err(super::failure::migration)?;
    super::schema_of(&conn).classified()
}

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
