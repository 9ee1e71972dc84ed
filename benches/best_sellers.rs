//! `best_sellers(3, 5)` over a year of history — 1,000,000 paid order
//! lines over 365 days and 10,000 products — against the same answer
//! computed from the order lines.
//!
//! Run with `cargo bench --bench best_sellers`. Setup bulk-loads the
//! history with plain SQL in one transaction (a minute of calls through
//! `Shop` would be a day), then reopens the shop with another UTC offset so
//! it rebuilds the per-day table from those orders, as it would for a real
//! file.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use liteshop::{Durability, ManualClock, Shop, Timestamp};
use rusqlite::{Connection, params};

const PRODUCTS: i64 = 10_000;
const ORDERS: i64 = 500_000;
const LINES_PER_ORDER: i64 = 2;
const DAY_MS: i64 = 86_400_000;
/// 2026-11-24T00:00:00Z: the end of the history.
const END: i64 = 1_795_478_400_000;

/// The same ranking from the orders and their lines.
const FROM_ORDER_LINES: &str = "SELECT i.product_id, p.name, sum(i.quantity - i.refunded) AS units,
            sum(i.amount - i.amount * i.refunded / i.quantity) AS revenue
     FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
     WHERE o.paid_at >= ?1 AND o.paid_at < ?2
     GROUP BY i.product_id HAVING units > 0
     ORDER BY units DESC, i.product_id LIMIT ?3";

fn load(path: &std::path::Path) {
    let mut conn = Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute(
        "INSERT INTO users (id, name, created_at) VALUES (1, 'buyer', 0)",
        [],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO balances (user_id, amount, updated_at) VALUES (1, 0, 0)",
        [],
    )
    .unwrap();
    {
        let mut product = tx
            .prepare(
                "INSERT INTO products (id, name, price, stock, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 1000000, 0, 0)",
            )
            .unwrap();
        for id in 1..=PRODUCTS {
            product
                .execute(params![id, format!("product {id}"), 1_000 + id % 50 * 100])
                .unwrap();
        }
        let mut order = tx
            .prepare(
                "INSERT INTO orders (id, user_id, status, total, created_at, expires_at,
                                     updated_at, paid_at)
                 VALUES (?1, 1, 'paid', ?2, ?3, ?3, ?3, ?3)",
            )
            .unwrap();
        let mut item = tx
            .prepare(
                "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity, amount)
                 VALUES (?1, ?2, 'p', 1000, ?3, ?4)",
            )
            .unwrap();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for id in 1..=ORDERS {
            // Spread over the 365 days before END; products skewed so a few
            // sell far more (a square of a uniform pick).
            let at = END - 365 * DAY_MS + (next() % (365 * DAY_MS as u64)) as i64;
            order
                .execute(params![id, 2_000 * LINES_PER_ORDER, at])
                .unwrap();
            let mut used = [0i64; LINES_PER_ORDER as usize];
            for slot in 0..used.len() {
                let r = (next() % 10_000) as i64;
                let mut product = 1 + r * r / 10_000 % PRODUCTS;
                while used.contains(&product) {
                    product = product % PRODUCTS + 1;
                }
                used[slot] = product;
                let quantity = 1 + (next() % 3) as i64;
                item.execute(params![id, product, quantity, 1_000 * quantity])
                    .unwrap();
            }
        }
    }
    tx.execute("DELETE FROM settings", []).unwrap();
    tx.commit().unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.db");
    drop(Shop::open(&path).expect("create the schema"));
    load(&path);
    let clock = ManualClock::new(Timestamp::from_millis(END + 12 * 3_600_000));
    let shop = Shop::builder(&path)
        .durability(Durability::Normal)
        .clock(clock)
        .build()
        .expect("reopen and rebuild the per-day sales");

    let conn = Connection::open(&path).unwrap();
    let today = (END + 12 * 3_600_000) / DAY_MS;
    let window = ((today - 2) * DAY_MS, (today + 1) * DAY_MS);
    let recount = |conn: &Connection| -> Vec<(i64, i64)> {
        conn.prepare_cached(FROM_ORDER_LINES)
            .unwrap()
            .query_map(params![window.0, window.1, 5], |row| {
                Ok((row.get(0)?, row.get(2)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let fast: Vec<(i64, i64)> = shop
        .best_sellers(3, 5)
        .unwrap()
        .iter()
        .map(|b| (b.product.get(), b.units as i64))
        .collect();
    assert_eq!(fast, recount(&conn), "both ways give the same answer");

    let mut group = c.benchmark_group("best sellers, 3 days, top 5, 1M lines over a year");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("per-day table (best_sellers)", |b| {
        b.iter(|| shop.best_sellers(3, 5).unwrap())
    });
    group.sample_size(10);
    group.bench_function("from order lines", |b| b.iter(|| recount(&conn)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
