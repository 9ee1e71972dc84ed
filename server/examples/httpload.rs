//! The same mix of calls over HTTP (keep-alive connections to an in-process
//! `liteshop` server) and directly on the library, one after the other in
//! one run, with throughput, p50 and p99 per operation, and the audit of
//! both shops afterwards.
//!
//! ```sh
//! cargo run --release -p liteshop-server --example httpload -- --threads 8 --seconds 10
//! scripts/with-postgres sh -c 'cargo run --release -p liteshop-server --example httpload -- --db "$LITESHOP_TEST_POSTGRES"'
//! ```
//!
//! With `--db postgres://…` both shops are schemas of that database
//! (`<prefix>_http` and `<prefix>_direct`), left in place afterwards: run it
//! on a throwaway cluster, as above.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use liteshop::{FakeGateway, Money, NewProduct, OrderLine, ProductId, Shop, UserId};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// Client threads (one keep-alive connection each over HTTP).
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Seconds per run (HTTP, then direct).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A PostgreSQL URL to run both shops on, in new schemas (default: two
    /// SQLite files in a temp directory).
    #[arg(long)]
    db: Option<String>,
    /// With `--db`: the prefix of the two schemas (default
    /// `httpload_<pid>`); they must not hold a shop yet.
    #[arg(long)]
    pg_schema: Option<String>,
}

const USERS: i64 = 100;
const PRODUCTS: i64 = 50;
const OPS: [&str; 4] = ["charge", "order", "pay", "read"];

/// Latencies in microseconds, per operation.
type Samples = BTreeMap<&'static str, Vec<u64>>;

/// xorshift: picks operations, users and products.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One thread's mix until `deadline`: charge 30, order 30, pay 20 (the
/// thread's oldest unpaid order), read 20.
fn mix(
    seed: u64,
    deadline: Instant,
    mut call: impl FnMut(&str, &mut Rng, &mut Vec<(i64, i64)>) -> bool,
) -> (Samples, u64) {
    let mut rng = Rng(seed | 1);
    let mut samples = Samples::new();
    let mut orders = Vec::new();
    let mut failed = 0;
    while Instant::now() < deadline {
        let op = match rng.below(100) {
            0..30 => "charge",
            30..60 => "order",
            60..80 => "pay",
            _ => "read",
        };
        if op == "pay" && orders.is_empty() {
            continue;
        }
        let began = Instant::now();
        if !call(op, &mut rng, &mut orders) {
            failed += 1;
        }
        samples
            .entry(op)
            .or_default()
            .push(began.elapsed().as_micros() as u64);
    }
    (samples, failed)
}

fn run(
    threads: usize,
    seconds: u64,
    f: impl Fn(usize, Instant) -> (Samples, u64) + Sync,
) -> (Samples, u64, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let results: Vec<(Samples, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || f(t, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    let mut all = Samples::new();
    let mut failed = 0;
    for (samples, f) in results {
        failed += f;
        for (op, mut v) in samples {
            all.entry(op).or_default().append(&mut v);
        }
    }
    (all, failed, elapsed)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn seed_shop(shop: &Shop) {
    for i in 0..USERS {
        let user = shop.create_user(&format!("user {i}")).expect("user");
        shop.charge(user.id, Money::new(1_000_000).expect("won"))
            .expect("charge");
    }
    for i in 0..PRODUCTS {
        shop.create_product(NewProduct {
            name: format!("product {i}"),
            price: Money::new(1_000).expect("won"),
            stock: 10_000_000,
        })
        .expect("product");
    }
}

/// Opens the shop `name` (`http` or `direct`): a file in `dir`, or a new
/// schema of the PostgreSQL database `--db` names.
fn open(args: &Args, dir: &std::path::Path, name: &str) -> Shop {
    let builder = match &args.db {
        Some(url) => {
            let prefix = args
                .pg_schema
                .clone()
                .unwrap_or_else(|| format!("httpload_{}", std::process::id()));
            Shop::builder(url).pg_schema(&format!("{prefix}_{name}"))
        }
        None => Shop::builder(dir.join(format!("{name}.db"))),
    };
    let shop = builder
        .gateway(FakeGateway::new())
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .pool_size(u32::try_from(args.threads + 2).unwrap_or(u32::MAX).max(16))
        .build()
        .expect("open the shop");
    assert_eq!(
        shop.user(UserId::new(1)).err().map(|e| e.kind()),
        Some(liteshop::ErrorKind::NotFound),
        "{name}: the shop must be new"
    );
    shop
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");

    // HTTP: an in-process server on a free port, tokens minted for the
    // seeded users.
    let http_shop = open(&args, dir.path(), "http");
    seed_shop(&http_shop);
    let config = liteshop_server::Config::new(b"load secret".to_vec(), "load-admin".into());
    let tokens: Vec<String> = (1..=USERS)
        .map(|u| config.secrets().user_token(UserId::new(u)))
        .collect();
    let app = liteshop_server::router(http_shop, config);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let base = format!("http://{}", rx.recv().expect("the server's address"));

    let (http, http_failed, http_elapsed) = run(args.threads, args.seconds, |t, deadline| {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        mix(t as u64 * 7919 + 1, deadline, |op, rng, orders| {
            let user = rng.below(USERS as u64) as usize;
            let token = format!("Bearer {}", tokens[user]);
            let product = 1 + rng.below(PRODUCTS as u64);
            let response = match op {
                "charge" => agent
                    .post(format!("{base}/me/balance/charge"))
                    .header("Authorization", &token)
                    .send_json(json!({ "amount": 1_000 })),
                "order" => agent
                    .post(format!("{base}/me/orders"))
                    .header("Authorization", &token)
                    .send_json(json!({ "lines": { product.to_string(): 1 } })),
                "pay" => {
                    let (owner, order) = orders.remove(0);
                    agent
                        .post(format!("{base}/me/orders/{order}/pay"))
                        .header(
                            "Authorization",
                            format!("Bearer {}", tokens[owner as usize]),
                        )
                        .send_empty()
                }
                _ => agent.get(format!("{base}/products/{product}")).call(),
            };
            match response {
                Ok(mut r) => {
                    let ok = r.status().is_success();
                    if op == "order" && ok {
                        let body: Value = r.body_mut().read_json().unwrap_or(Value::Null);
                        if let Some(id) = body["id"].as_i64() {
                            orders.push((user as i64, id));
                        }
                    } else {
                        let _ = r.body_mut().read_to_string();
                    }
                    ok
                }
                Err(_) => false,
            }
        })
    });

    let direct_shop = open(&args, dir.path(), "direct");
    seed_shop(&direct_shop);
    let (direct, direct_failed, direct_elapsed) = run(args.threads, args.seconds, |t, deadline| {
        let shop = &direct_shop;
        mix(t as u64 * 7919 + 1, deadline, |op, rng, orders| {
            let user = UserId::new(1 + rng.below(USERS as u64) as i64);
            let product = ProductId::new(1 + rng.below(PRODUCTS as u64) as i64);
            match op {
                "charge" => shop.charge(user, Money::new(1_000).expect("won")).is_ok(),
                "order" => match shop.place_order(user, &[OrderLine::new(product, 1)]) {
                    Ok(order) => {
                        orders.push((user.get(), order.id.get()));
                        true
                    }
                    Err(_) => false,
                },
                "pay" => {
                    let (owner, order) = orders.remove(0);
                    shop.pay(UserId::new(owner), liteshop::OrderId::new(order))
                        .is_ok()
                }
                _ => shop.product(product).is_ok(),
            }
        })
    });

    println!(
        "{} threads, {} s each, on {}; HTTP: keep-alive, one connection per thread; failed calls: HTTP {http_failed}, direct {direct_failed}",
        args.threads,
        args.seconds,
        if args.db.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!(
        "{:<7} {:>12} {:>9} {:>9} {:>12} {:>9} {:>9} {:>7}",
        "op", "HTTP req/s", "p50 ms", "p99 ms", "direct /s", "p50 ms", "p99 ms", "ratio"
    );
    for op in OPS {
        let (mut h, mut d) = (
            http.get(op).cloned().unwrap_or_default(),
            direct.get(op).cloned().unwrap_or_default(),
        );
        h.sort_unstable();
        d.sort_unstable();
        let hr = h.len() as f64 / http_elapsed.as_secs_f64();
        let dr = d.len() as f64 / direct_elapsed.as_secs_f64();
        println!(
            "{op:<7} {hr:>12.0} {:>9.2} {:>9.2} {dr:>12.0} {:>9.2} {:>9.2} {:>6.2}x",
            percentile(&h, 0.5),
            percentile(&h, 0.99),
            percentile(&d, 0.5),
            percentile(&d, 0.99),
            hr / dr
        );
    }
    // The HTTP shop is audited through the API, the direct one directly.
    let audit_http: Value = ureq::get(format!("{base}/admin/audit"))
        .header("Authorization", "Bearer load-admin")
        .call()
        .and_then(|mut r| r.body_mut().read_json())
        .expect("GET /admin/audit");
    let http_clean = audit_http["violations"]
        .as_array()
        .is_some_and(Vec::is_empty);
    let direct_clean = direct_shop.audit().expect("audit").is_clean();
    println!(
        "audit: HTTP shop {}, direct shop {}",
        if http_clean { "clean" } else { "BROKEN" },
        if direct_clean { "clean" } else { "BROKEN" },
    );
    if !(http_clean && direct_clean) {
        std::process::exit(1);
    }
}
