//! Helpers shared by the integration tests: a temp-file shop with a manual
//! clock, and a dump of every row to prove a refused call changed nothing.
//!
//! One switch runs the suite on PostgreSQL: with the `postgres` feature and
//! `LITESHOP_TEST_POSTGRES` set to a server's URL (`scripts/with-postgres`
//! sets it), every shop opens in a fresh schema of that server instead of
//! a temp file, so tests still run in parallel. Tests that are SQLite by
//! nature call [`sqlite_only`] and are skipped there, saying so.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;

use liteshop::{Durability, ManualClock, Money, NewProduct, Product, Shop, ShopBuilder, User};
use tempfile::TempDir;

/// A shop on a fresh temp-file database (or PostgreSQL schema), with the
/// clock that drives it.
pub struct TestShop {
    pub shop: Shop,
    pub clock: ManualClock,
    /// The file, or the PostgreSQL URL.
    pub path: PathBuf,
    /// The PostgreSQL schema, on PostgreSQL.
    pub pg_schema: Option<String>,
    // Dropped last: removes the database directory.
    _dir: TempDir,
}

/// A shop with default settings on a fresh temp file.
pub fn open() -> TestShop {
    open_with(|builder| builder)
}

/// A shop on a fresh temp file, configured by `configure`. Durability is
/// `Normal` to keep the suite fast; durability itself is SQLite's concern.
pub fn open_with(configure: impl FnOnce(ShopBuilder) -> ShopBuilder) -> TestShop {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, pg_schema) = match postgres_url() {
        Some(url) => (PathBuf::from(url), Some(fresh_schema())),
        None => (dir.path().join("shop.db"), None),
    };
    let clock = ManualClock::default();
    let mut builder = Shop::builder(&path)
        .durability(Durability::Normal)
        .clock(clock.clone());
    if let Some(schema) = &pg_schema {
        builder = builder.pg_schema(schema);
    }
    let shop = configure(builder).build().expect("open shop");
    TestShop {
        shop,
        clock,
        path,
        pg_schema,
        _dir: dir,
    }
}

/// The PostgreSQL server the suite runs on, if it runs on one.
pub fn postgres_url() -> Option<String> {
    if cfg!(feature = "postgres") {
        std::env::var("LITESHOP_TEST_POSTGRES").ok()
    } else {
        None
    }
}

/// Whether the suite runs on PostgreSQL; a test that is SQLite by nature
/// returns early when this is true, saying why.
pub fn sqlite_only(why: &str) -> bool {
    let postgres = postgres_url().is_some();
    if postgres {
        eprintln!("skipped on PostgreSQL: {why}");
    }
    postgres
}

/// A schema name no other test uses.
fn fresh_schema() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    format!("t_{}", u64::from_le_bytes(bytes))
}

impl TestShop {
    /// Every row of every table, as text, in a stable order.
    pub fn dump(&self) -> Vec<String> {
        match &self.pg_schema {
            #[cfg(feature = "postgres")]
            Some(schema) => dump_postgres(self.path.to_str().unwrap(), schema),
            _ => dump(&self.path),
        }
    }

    /// A builder for this same shop (its file, or its schema), to reopen it.
    pub fn builder(&self) -> ShopBuilder {
        let builder = Shop::builder(&self.path);
        match &self.pg_schema {
            Some(schema) => builder.pg_schema(schema),
            None => builder,
        }
    }

    pub fn user(&self, name: &str) -> User {
        self.shop.create_user(name).expect("create user")
    }

    pub fn product(&self, name: &str, price: i64, stock: u32) -> Product {
        self.shop
            .create_product(NewProduct {
                name: name.to_owned(),
                price: won(price),
                stock,
            })
            .expect("create product")
    }
}

pub fn won(amount: i64) -> Money {
    Money::new(amount).expect("non-negative amount")
}

/// Asserts that the balance of `user` equals the sum of their ledger
/// (its first 100 entries, the largest page: every test's user has fewer).
pub fn assert_ledger_balances(shop: &Shop, user: liteshop::UserId) {
    let ledger = shop
        .ledger(user, liteshop::PageRequest::first(100))
        .expect("the ledger")
        .items;
    let sum: i64 = ledger.iter().map(liteshop::LedgerEntry::signed_won).sum();
    assert_eq!(
        won(sum),
        shop.balance(user).expect("the balance"),
        "balance equals ledger"
    );
}

/// Every row of every table of the database at `path`, as text. Reads through
/// its own connection, so it sees only what was committed.
pub fn dump(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("open for dump");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        // A table name read from the schema, quoted as an identifier: this
        // builds no SQL from user values.
        // Rows are sorted as text: WITHOUT ROWID tables have no rowid.
        let sql = format!("SELECT * FROM \"{}\"", table.replace('"', "\"\""));
        let mut stmt = conn.prepare(&sql).unwrap();
        let columns = stmt.column_count();
        let mut query = stmt.query([]).unwrap();
        let mut table_rows = Vec::new();
        while let Some(row) = query.next().unwrap() {
            let values: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            table_rows.push(format!("{table}: {}", values.join(", ")));
        }
        table_rows.sort();
        rows.extend(table_rows);
    }
    rows
}

/// Every row of every table of a PostgreSQL schema, as text, sorted per
/// table, like [`dump`].
#[cfg(feature = "postgres")]
pub fn dump_postgres(url: &str, schema: &str) -> Vec<String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect for dump");
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = $1 ORDER BY 1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut rows = Vec::new();
    for table in tables {
        // Identifiers read from the catalog, quoted: no SQL from values.
        let sql = format!(
            "SELECT * FROM \"{}\".\"{}\"",
            schema.replace('"', "\"\""),
            table.replace('"', "\"\"")
        );
        let mut table_rows = Vec::new();
        for message in client.simple_query(&sql).unwrap() {
            if let postgres::SimpleQueryMessage::Row(row) = message {
                let values: Vec<String> = (0..row.len())
                    .map(|i| format!("{:?}", row.get(i)))
                    .collect();
                table_rows.push(format!("{table}: {}", values.join(", ")));
            }
        }
        table_rows.sort();
        rows.extend(table_rows);
    }
    rows
}

/// Runs `sql` on the shop's database directly, as a stray tool would: on
/// the file, or on the PostgreSQL schema.
pub fn execute_outside(t: &TestShop, sql: &str) {
    try_execute_outside(t, sql).unwrap();
}

/// [`execute_outside`], answering the database's refusal instead of
/// panicking on it.
pub fn try_execute_outside(t: &TestShop, sql: &str) -> Result<(), String> {
    match &t.pg_schema {
        #[cfg(feature = "postgres")]
        Some(schema) => {
            let mut client =
                postgres::Client::connect(t.path.to_str().unwrap(), postgres::NoTls).unwrap();
            client
                .execute("SELECT set_config('search_path', $1, false)", &[schema])
                .unwrap();
            client.batch_execute(sql).map_err(|e| e.to_string())
        }
        _ => {
            let conn = rusqlite::Connection::open(&t.path).unwrap();
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            conn.execute_batch(sql).map_err(|e| e.to_string())
        }
    }
}

/// A shop's database as a test reaches it from outside the shop: a file,
/// or a schema of the PostgreSQL server the suite runs on.
#[derive(Clone, Debug)]
pub struct Target {
    /// The file, or the PostgreSQL URL.
    pub path: PathBuf,
    /// The schema, on PostgreSQL.
    pub schema: Option<String>,
}

impl Target {
    /// A fresh target: a file in `dir`, or a new schema under the switch.
    pub fn fresh(dir: &Path, file: &str) -> Target {
        match postgres_url() {
            Some(url) => Target {
                path: PathBuf::from(url),
                schema: Some(fresh_schema()),
            },
            None => Target {
                path: dir.join(file),
                schema: None,
            },
        }
    }

    /// A builder for the shop there.
    pub fn builder(&self) -> ShopBuilder {
        let builder = Shop::builder(&self.path);
        match &self.schema {
            Some(schema) => builder.pg_schema(schema),
            None => builder,
        }
    }

    /// The rows of `sql`, each value as text (`None` for NULL), read
    /// straight from the database.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.schema {
            #[cfg(feature = "postgres")]
            Some(schema) => {
                let mut client =
                    postgres::Client::connect(self.path.to_str().unwrap(), postgres::NoTls)
                        .unwrap();
                client
                    .execute("SELECT set_config('search_path', $1, false)", &[schema])
                    .unwrap();
                client
                    .simple_query(sql)
                    .unwrap()
                    .into_iter()
                    .filter_map(|message| match message {
                        postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_owned))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            }
            _ => {
                let conn = rusqlite::Connection::open(&self.path).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let columns = stmt.column_count();
                let mut rows = stmt.query([]).unwrap();
                let mut all = Vec::new();
                while let Some(row) = rows.next().unwrap() {
                    all.push(
                        (0..columns)
                            .map(|i| match row.get_ref(i).unwrap() {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                                rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                                rusqlite::types::ValueRef::Blob(_) => Some("<blob>".into()),
                            })
                            .collect(),
                    );
                }
                all
            }
        }
    }

    /// The one integer `sql` selects.
    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0][0].as_deref().unwrap().parse().unwrap()
    }
}

/// Runs `f(i)` on `n` threads released together; returns the results in
/// thread order.
pub fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect()
    })
}

/// Pays the order `order` of `user` by card: the whole total as the PG
/// part, the customer's browser played by the fake's widget, then the
/// confirm with the redirect it brought back.
pub fn pay_by_card(
    shop: &Shop,
    pg: &liteshop::FakeGateway,
    user: liteshop::UserId,
    order: liteshop::OrderId,
) -> liteshop::Result<liteshop::Payment> {
    pay_split(shop, pg, user, order, Money::ZERO)
}

/// Pays the order `order` of `user` with `balance_part` from the balance
/// and the rest by card (the fake's widget playing the customer's
/// browser); a payment wholly by balance completes at the start.
pub fn pay_split(
    shop: &Shop,
    pg: &liteshop::FakeGateway,
    user: liteshop::UserId,
    order: liteshop::OrderId,
    balance_part: Money,
) -> liteshop::Result<liteshop::Payment> {
    let started = shop.start_payment(user, order, balance_part)?;
    match started.widget() {
        Some(widget) => shop.confirm_payment(user, started.id, &pg.pay_widget(&widget)),
        None => Ok(started),
    }
}

/// Tops up the balance of `user` by `amount` through the PG, paid in the
/// fake's widget; returns the new balance.
pub fn top_up(
    shop: &Shop,
    pg: &liteshop::FakeGateway,
    user: liteshop::UserId,
    amount: Money,
) -> liteshop::Result<Money> {
    let started = shop.start_top_up(user, amount)?;
    let widget = started
        .widget()
        .expect("a started top-up has a widget step");
    shop.confirm_payment(user, started.id, &pg.pay_widget(&widget))?;
    shop.balance(user)
}

/// Whether `done` becomes true within 10 seconds of real time, asked every
/// 20 ms: for what another thread or process does on its own (a webhook).
pub fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}
