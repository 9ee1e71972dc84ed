//! The same write-heavy mix on SQLite and on PostgreSQL, in one run: each
//! thread charges, places an order and pays it, over and over, for a fixed
//! time; ops/s and latencies per backend, and the audit of each shop after.
//!
//! ```sh
//! scripts/with-postgres cargo run --release --features postgres --example backends -- --threads 8 --seconds 10
//! ```
//!
//! Without `LITESHOP_TEST_POSTGRES` (set by the script) it runs SQLite only.

use std::time::{Duration, Instant};

use clap::Parser;
use liteshop::{Durability, FakeGateway, Money, NewProduct, OrderLine, Shop};

#[derive(Parser, Debug)]
#[command(about = "The same mix on SQLite and PostgreSQL")]
struct Args {
    /// Worker threads.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Seconds per backend.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Products; thread `i` orders product `i % products` (1: every order
    /// takes the same, hot, row).
    #[arg(long, default_value_t = 1)]
    products: usize,
    /// PostgreSQL connections (default: one per thread).
    #[arg(long)]
    pool: Option<u32>,
}

fn run(name: &str, shop: &Shop, args: &Args) {
    let users: Vec<_> = (0..args.threads)
        .map(|i| shop.create_user(&format!("u{i}")).unwrap().id)
        .collect();
    let products: Vec<_> = (0..args.products.max(1))
        .map(|i| {
            shop.create_product(NewProduct {
                name: format!("Tea {i}"),
                price: Money::new(10).unwrap(),
                stock: 4_000_000_000,
            })
            .unwrap()
            .id
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut latencies: Vec<u128> = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, &user)| {
                let tea = products[i % products.len()];
                s.spawn(move || {
                    let mut took = Vec::new();
                    while Instant::now() < deadline {
                        let start = Instant::now();
                        shop.host_credit(user, Money::new(10).unwrap()).unwrap();
                        took.push(start.elapsed().as_micros());
                        let start = Instant::now();
                        let order = shop.place_order(user, &[OrderLine::new(tea, 1)]).unwrap();
                        took.push(start.elapsed().as_micros());
                        let start = Instant::now();
                        shop.pay_from_balance(user, order.id).unwrap();
                        took.push(start.elapsed().as_micros());
                    }
                    took
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    let audit = shop.audit().unwrap();
    println!(
        "{name:10} {:>8.0} ops/s  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs  audit {}",
        latencies.len() as f64 / args.seconds as f64,
        at(0.5),
        at(0.99),
        at(0.999),
        if audit.is_clean() { "clean" } else { "BROKEN" },
    );
}

fn main() {
    let args = Args::parse();
    println!(
        "{} threads × {} s, charge + order + pay",
        args.threads, args.seconds
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Shop::builder(dir.path().join("shop.db"))
        .durability(Durability::Full)
        .gateway(FakeGateway::new())
        .max_balance(Money::MAX)
        .build()
        .unwrap();
    run("sqlite", &sqlite, &args);
    if let Ok(url) = std::env::var("LITESHOP_TEST_POSTGRES") {
        let schema = format!("bench_{}", std::process::id());
        let pg = Shop::builder(&url)
            .pg_schema(&schema)
            .pool_size(
                args.pool
                    .unwrap_or(u32::try_from(args.threads).unwrap_or(8))
                    .max(2),
            )
            .gateway(FakeGateway::new())
            .max_balance(Money::MAX)
            .build()
            .unwrap();
        run("postgres", &pg, &args);
    }
}
