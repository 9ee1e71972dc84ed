//! [`copy`]: a whole shop into an empty one — the move from one SQLite
//! file to PostgreSQL in one call, checked by the audit on both sides.

use serde::{Deserialize, Serialize};

use crate::audit::AuditFigures;
use crate::db::{Backend, ToValue, Value};
use crate::error::{Error, Result};
use crate::shop::Shop;

/// Every table, parents before children, with its columns — but `leases`:
/// who runs the background work belongs to the processes on a database,
/// and the copy's processes take their own.
const TABLES: &[(&str, &[&str])] = &[
    ("users", &["id", "name", "created_at"]),
    ("balances", &["user_id", "amount", "updated_at"]),
    (
        "products",
        &[
            "id",
            "name",
            "price",
            "stock",
            "created_at",
            "updated_at",
            "held",
            "stocked",
            "tax_free",
        ],
    ),
    (
        "coupons",
        &[
            "id",
            "name",
            "kind",
            "value",
            "cap",
            "quantity",
            "issued",
            "issuable_from",
            "issuable_until",
            "valid_for",
            "min_order_total",
            "created_at",
        ],
    ),
    (
        "orders",
        &[
            "id",
            "user_id",
            "status",
            "cancel_reason",
            "total",
            "refunded",
            "created_at",
            "expires_at",
            "updated_at",
            "discount",
            "coupon_id",
            "paid_at",
        ],
    ),
    (
        "order_items",
        &[
            "id",
            "order_id",
            "product_id",
            "name",
            "unit_price",
            "quantity",
            "amount",
            "refunded",
            "tax_free",
        ],
    ),
    (
        "cart_items",
        &["id", "user_id", "product_id", "quantity", "created_at"],
    ),
    (
        "payments",
        &[
            "id",
            "order_id",
            "user_id",
            "amount",
            "status",
            "payment_key",
            "pg_order_id",
            "idempotency_key",
            "pg_transaction_id",
            "failure_code",
            "failure_message",
            "created_at",
            "updated_at",
            "refunded",
            "kind",
            "balance_amount",
            "pg_amount",
            "pg_refunded",
            "order_name",
            "customer_key",
            "expires_at",
            "deposit_bank",
            "deposit_account",
            "deposit_due_at",
            "deposit_secret",
            "refund_bank",
            "refund_account_number",
            "refund_holder",
            "pg_tax_free",
        ],
    ),
    (
        "payment_events",
        &["id", "payment_id", "status", "detail", "created_at"],
    ),
    (
        "refunds",
        &[
            "id",
            "payment_id",
            "order_id",
            "user_id",
            "amount",
            "status",
            "reason",
            "idempotency_key",
            "failure_code",
            "failure_message",
            "created_at",
            "updated_at",
            "balance_amount",
            "pg_amount",
            "pg_transaction_key",
            "origin",
            "pg_tax_free",
        ],
    ),
    (
        "refund_items",
        &["refund_id", "order_item_id", "quantity", "amount"],
    ),
    (
        "ledger",
        &[
            "id",
            "user_id",
            "kind",
            "amount",
            "balance_after",
            "created_at",
            "payment_id",
            "refund_id",
            "note",
        ],
    ),
    (
        "user_coupons",
        &[
            "id",
            "coupon_id",
            "user_id",
            "issued_at",
            "expires_at",
            "order_id",
            "used_at",
        ],
    ),
    ("sales_daily", &["day", "product_id", "units", "revenue"]),
    ("settings", &["name", "value"]),
    (
        "events",
        &[
            "seq",
            "kind",
            "user_id",
            "order_id",
            "payment_id",
            "refund_id",
            "payload",
            "created_at",
        ],
    ),
    ("event_consumers", &["name", "acked", "updated_at"]),
    (
        "idempotency_keys",
        &["user_id", "key", "fingerprint", "response", "created_at"],
    ),
];

/// The tables whose `id` a PostgreSQL identity gives: after a copy their
/// identity continues past the largest copied id.
const IDENTITIES: &[&str] = &[
    "users",
    "products",
    "coupons",
    "orders",
    "order_items",
    "cart_items",
    "payments",
    "payment_events",
    "refunds",
    "ledger",
    "user_coupons",
];

/// What [`copy`] moved, and the audit figures both sides agreed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyReport {
    /// Rows copied, per table.
    pub rows: Vec<(String, usize)>,
    /// The audit's figures, equal on both sides.
    pub figures: AuditFigures,
}

/// Copies every row of `from` into `to`, which must be empty, in one read
/// snapshot and one write transaction; then audits both and compares every
/// figure. Ids, sequence numbers, cursors and idempotency keys are kept, so
/// clients and feed consumers carry on against the copy. Stop writes to
/// `from` while it runs (its snapshot is what is copied).
///
/// # Failure
///
/// [`Error::CopyTargetNotEmpty`] (nothing written), [`Error::CopyMismatch`]
/// (either side's audit not clean, or their figures differ), storage
/// errors.
pub fn copy(from: &Shop, to: &Shop) -> Result<CopyReport> {
    // A PostgreSQL source may hold committed events not numbered yet.
    let tables: Vec<(usize, Vec<Vec<Value>>, u64)> = from.store().read_settled(|db| {
        let mut all = Vec::with_capacity(TABLES.len());
        for (i, (table, columns)) in TABLES.iter().enumerate() {
            // Table and column names are the constants above, not values.
            let sql = format!("SELECT {} FROM {table}", columns.join(", "));
            let rows = db.query(&sql, &[])?.into_iter().map(|row| row.0).collect();
            all.push((i, rows, 0));
        }
        let head = crate::feed::last_seq(db)?;
        if let Some(last) = all.last_mut() {
            last.2 = head;
        }
        Ok(all)
    })?;
    let head = tables.last().map_or(0, |t| t.2);
    let rows: Vec<(String, usize)> = tables
        .iter()
        .map(|(i, rows, _)| (TABLES[*i].0.to_owned(), rows.len()))
        .collect();
    to.write_shop(move |db, _| {
        // `settings` holds what opening the target wrote (its UTC offset):
        // it is overwritten by the source's, not counted as content.
        for (table, _) in TABLES.iter().filter(|(t, _)| *t != "settings") {
            let any = db.query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?;
            if any.is_some() {
                return Err(Error::CopyTargetNotEmpty {
                    table: (*table).to_owned(),
                });
            }
        }
        for (i, rows, _) in &tables {
            let (table, columns) = TABLES[*i];
            let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
            let upsert = if table == "settings" {
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            } else {
                ""
            };
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES ({}){upsert}",
                columns.join(", "),
                placeholders.join(", ")
            );
            for row in rows {
                let params: Vec<&dyn ToValue> = row.iter().map(|v| v as &dyn ToValue).collect();
                db.execute(&sql, &params)?;
            }
        }
        let head = i64::try_from(head).unwrap_or(i64::MAX);
        if db.backend() == Backend::Sqlite && head > 0 {
            // The last number ever given, pruned events included.
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'events'", &[])?;
            db.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?1)",
                &[&head],
            )?;
        }
        if db.backend() == Backend::Postgres {
            for table in IDENTITIES {
                db.query_row(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence(?1, 'id'),
                                       (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                    ),
                    &[table],
                )?;
            }
            db.execute("UPDATE feed_head SET last = ?1", &[&head])?;
        }
        Ok(())
    })?;
    let (source, target) = (from.audit()?, to.audit()?);
    if !source.is_clean() || !target.is_clean() || source.figures != target.figures {
        return Err(Error::CopyMismatch {
            from: Box::new(source),
            to: Box::new(target),
        });
    }
    Ok(CopyReport {
        rows,
        figures: source.figures,
    })
}

#[cfg(test)]
mod tests {
    use super::TABLES;
    use crate::db::{Backend, Db, Reads};
    use crate::error::Result;
    use crate::payment::refund;
    use crate::shop::Shop;
    use crate::{balance, cart, coupon, feed, order, payment, product};

    /// Tables the copy leaves out, and why: a lease belongs to the
    /// processes on a database; PostgreSQL's `feed_head` is set from the
    /// source's last number, not copied row by row.
    const NOT_COPIED: &[&str] = &["leases", "feed_head"];

    /// Every table of the live schema, and its columns in the order the
    /// catalog gives them.
    fn catalog(db: &dyn Db, schema: &str) -> Result<Vec<(String, Vec<String>)>> {
        let (tables, columns) = match db.backend() {
            Backend::Sqlite => (
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND ?1 = ?1 ORDER BY name",
                "SELECT name FROM pragma_table_info(?2) WHERE ?1 = ?1 ORDER BY cid",
            ),
            Backend::Postgres => (
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = ?1 AND table_type = 'BASE TABLE' \
                 AND table_name <> 'liteshop_schema_version' ORDER BY table_name",
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = ?1 AND table_name = ?2 ORDER BY ordinal_position",
            ),
        };
        let mut all = Vec::new();
        for row in db.query(tables, &[&schema])? {
            let table: String = row.get(0)?;
            let names = db
                .query(columns, &[&schema, &table])?
                .iter()
                .map(|row| row.get(0))
                .collect::<Result<Vec<String>>>()?;
            all.push((table, names));
        }
        Ok(all)
    }

    /// `TABLES` names every table of the live schema but those the copy
    /// leaves out on purpose, and each with exactly its live columns: a
    /// column added by a migration and forgotten here would be lost in a
    /// move, one named here and absent would fail it.
    fn check(shop: &Shop, schema: &str) {
        let live = shop.store().read(|db| catalog(db, schema)).unwrap();
        for (table, columns) in &live {
            if NOT_COPIED.contains(&table.as_str()) {
                continue;
            }
            let Some((_, listed)) = TABLES.iter().find(|(t, _)| t == table) else {
                panic!("table {table} is not in copy.rs's TABLES");
            };
            let mut listed: Vec<&str> = listed.to_vec();
            let mut columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            listed.sort_unstable();
            columns.sort_unstable();
            assert_eq!(listed, columns, "the columns of {table}");
        }
        for (table, _) in TABLES {
            assert!(
                live.iter().any(|(t, _)| t == table),
                "TABLES names {table}, which the schema does not have"
            );
        }
    }

    /// Every row mapper's [`Reads`], in segments (a joined row reads one
    /// list after another), with the statements that feed it.
    const MAPPERS: &[(&[Reads], &[&str])] = &[
        (
            &[product::PRODUCT],
            &[
                product::SELECT_PRODUCT,
                product::SELECT_PRODUCT_PAGE,
                product::INSERT_PRODUCT,
                product::RESTOCK,
                product::SET_PRICE,
                product::SET_TAX_FREE,
            ],
        ),
        (&[cart::CART_LINE], &[cart::SELECT_CART, cart::SELECT_LINE]),
        (
            &[order::ORDER],
            &[order::SELECT_ORDER, order::SELECT_ORDER_PAGE],
        ),
        (
            &[order::ORDER_ITEM],
            &[order::SELECT_ITEMS, order::SELECT_ITEMS_OF_RANGE],
        ),
        (
            &[payment::PAYMENT],
            &[
                payment::SELECT_PAYMENT,
                payment::SELECT_FOR_ORDER,
                payment::SELECT_UNSETTLED,
                payment::SELECT_TOP_UPS,
            ],
        ),
        (
            &[refund::REFUND],
            &[
                refund::SELECT_FOR_ORDER,
                refund::SELECT_FOR_TOP_UP,
                refund::SELECT_UNSETTLED,
            ],
        ),
        (&[balance::LEDGER_ENTRY], &[balance::SELECT_LEDGER_PAGE]),
        (
            &[feed::EVENT],
            &[feed::SELECT_EVENTS, feed::SELECT_ORDER_EVENTS],
        ),
        (&[coupon::COUPON], &[coupon::SELECT_COUPON]),
        (
            &[coupon::COUPON, coupon::USER_COUPON],
            &[coupon::SELECT_USER_COUPONS],
        ),
        (
            &[&["user_coupons.id"], coupon::COUPON, coupon::USER_COUPON],
            &[coupon::SELECT_USABLE],
        ),
    ];

    /// Every mapper's columns exist in their tables of the live schema,
    /// and every statement that feeds a mapper selects exactly its columns
    /// in its order. `names` gives a statement's result column names on
    /// the engine under test.
    fn check_mappers(live: &[(String, Vec<String>)], mut names: impl FnMut(&str) -> Vec<String>) {
        for (segments, statements) in MAPPERS {
            let reads: Vec<&str> = segments.iter().flat_map(|s| s.iter().copied()).collect();
            for entry in &reads {
                let (table, column) = entry.split_once('.').unwrap();
                let columns = live
                    .iter()
                    .find(|(t, _)| t == table)
                    .map(|(_, columns)| columns)
                    .unwrap_or_else(|| panic!("{entry}: no table {table}"));
                assert!(
                    columns.iter().any(|c| c == column),
                    "{entry}: no such column"
                );
            }
            let expected: Vec<&str> = reads
                .iter()
                .map(|entry| entry.split_once('.').unwrap().1)
                .collect();
            for sql in *statements {
                assert_eq!(names(sql), expected, "the columns of {sql}");
            }
        }
    }

    #[test]
    fn tables_and_row_mappers_match_the_sqlite_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let shop = Shop::open(&path).unwrap();
        check(&shop, "main");
        let live = shop.store().read(|db| catalog(db, "main")).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        check_mappers(&live, |sql| {
            let statement = conn.prepare(sql).unwrap();
            statement
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
    }

    /// The same on PostgreSQL, when a server is given
    /// (`scripts/with-postgres` sets `LITESHOP_TEST_POSTGRES`).
    #[cfg(feature = "postgres")]
    #[test]
    fn tables_and_row_mappers_match_the_postgres_catalog() {
        let Ok(url) = std::env::var("LITESHOP_TEST_POSTGRES") else {
            eprintln!("LITESHOP_TEST_POSTGRES is not set: skipped");
            return;
        };
        let schema = format!("catalog_{}", std::process::id());
        let shop = Shop::builder(&url).pg_schema(&schema).build().unwrap();
        check(&shop, &schema);
        let live = shop.store().read(|db| catalog(db, &schema)).unwrap();
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .unwrap();
        check_mappers(&live, |sql| {
            let statement = client
                .prepare(&crate::store::postgres::dollar_placeholders(sql))
                .unwrap();
            statement
                .columns()
                .iter()
                .map(|column| column.name().to_owned())
                .collect()
        });
    }
}
