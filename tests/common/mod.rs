//! Helpers shared by the integration tests: a temp-file shop with a manual
//! clock, and a dump of every row to prove a refused call changed nothing.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;

use liteshop::{Durability, ManualClock, Money, NewProduct, Product, Shop, ShopBuilder, User};
use tempfile::TempDir;

/// A shop on a fresh temp-file database, with the clock that drives it.
pub struct TestShop {
    pub shop: Shop,
    pub clock: ManualClock,
    pub path: PathBuf,
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
    let path = dir.path().join("shop.db");
    let clock = ManualClock::default();
    let builder = Shop::builder(&path)
        .durability(Durability::Normal)
        .clock(clock.clone());
    let shop = configure(builder).build().expect("open shop");
    TestShop {
        shop,
        clock,
        path,
        _dir: dir,
    }
}

impl TestShop {
    /// Every row of every table, as text, in a stable order.
    pub fn dump(&self) -> Vec<String> {
        dump(&self.path)
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
