//! The same mix of calls over HTTP (keep-alive connections to in-process
//! `liteshop` servers) and directly on the library, one after the other in
//! one run, with throughput, p50 and p99 per operation, and the audit of
//! every shop afterwards.
//!
//! The mix is the shop's money flows as a customer runs them, on the
//! in-process fake PG: `top_up` (start a top-up, pay it in the fake
//! widget, confirm: three requests over HTTP), `order` (place one unit),
//! `pay` (the oldest unpaid order, half from the balance and half by card:
//! start, widget, confirm) and `read` (a product).
//!
//! ```sh
//! cargo run --release -p liteshop-server --example httpload -- --threads 8 --seconds 10
//! scripts/with-postgres sh -c 'cargo run --release -p liteshop-server --example httpload -- --db "$LITESHOP_TEST_POSTGRES"'
//! # one server, then two servers on one database, in one run:
//! scripts/with-postgres sh -c 'cargo run --release -p liteshop-server --example httpload -- --db "$LITESHOP_TEST_POSTGRES" --servers 1,2'
//! ```
//!
//! `--servers 1,2` runs the HTTP mix once per count, each on a fresh shop:
//! with N servers each has its own `Shop` on the one database (its own
//! pool, as N processes would have), and client thread `t` talks to server
//! `t mod N`. With `--db postgres://…` the shops are schemas of that
//! database (`<prefix>_http<N>` and `<prefix>_direct`), left in place
//! afterwards: run it on a throwaway cluster, as above.

#[path = "support/serve.rs"]
mod support;
use support::serve;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use liteshop::{FakeGateway, Money, NewProduct, OrderId, OrderLine, ProductId, Shop, UserId};
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
    /// With `--db`: the prefix of the schemas (default `httpload_<pid>`);
    /// they must not hold a shop yet.
    #[arg(long)]
    pg_schema: Option<String>,
    /// How many servers share the database in the HTTP runs: one run per
    /// count, e.g. `1,2`.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    servers: Vec<usize>,
}

const USERS: i64 = 100;
const PRODUCTS: i64 = 50;
const OPS: [&str; 4] = ["top_up", "order", "pay", "read"];
/// Each product's price; a payment takes half from the balance.
const PRICE: i64 = 1_000;

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

/// One thread's mix until `deadline`: top-up 30, order 30, pay 20 (the
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
            0..30 => "top_up",
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
        shop.grant(user.id, Money::new(1_000_000).expect("won"), "load test")
            .expect("grant");
    }
    for i in 0..PRODUCTS {
        shop.create_product(NewProduct {
            name: format!("product {i}"),
            price: Money::new(PRICE).expect("won"),
            stock: 10_000_000,
        })
        .expect("product");
    }
}

/// Opens the shop `name` (`http<N>` or `direct`): a file in `dir`, or a
/// schema of the PostgreSQL database `--db` names — new unless `again` —
/// on a fake PG of its own, returned too.
fn open(args: &Args, dir: &std::path::Path, name: &str, again: bool) -> (Shop, FakeGateway) {
    let pg = FakeGateway::new();
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
        .gateway(pg.clone())
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .pool_size(u32::try_from(args.threads + 2).unwrap_or(u32::MAX).max(16))
        .build()
        .expect("open the shop");
    if !again {
        assert_eq!(
            shop.user(UserId::new(1)).err().map(|e| e.kind()),
            Some(liteshop::ErrorKind::NotFound),
            "{name}: the shop must be new"
        );
    }
    (shop, pg)
}

/// The HTTP mix through `bases`: client thread `t` talks to `bases[t mod N]`.
fn http_run(args: &Args, bases: &[String], tokens: &[String]) -> (Samples, u64, Duration) {
    run(args.threads, args.seconds, |t, deadline| {
        let base = &bases[t % bases.len()];
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        // One request; its JSON body when it succeeded.
        let post = |path: &str, token: &str, body: Value| -> Option<Value> {
            let mut r = agent
                .post(format!("{base}{path}"))
                .header("Authorization", token)
                .send_json(body)
                .ok()?;
            let ok = r.status().is_success();
            let body: Value = r.body_mut().read_json().unwrap_or(Value::Null);
            ok.then_some(body)
        };
        // The fake widget step and the confirm of a started payment.
        let confirm = |token: &str, started: Value| -> Option<()> {
            let redirect = post(
                "/fake-pg/widget",
                token,
                json!({ "pg_order_id": started["pg_order_id"], "amount": started["pg_amount"] }),
            )?;
            let path = format!("/me/payments/{}/confirm", started["id"]);
            let paid = post(&path, token, redirect)?;
            (paid["status"] == "approved").then_some(())
        };
        mix(t as u64 * 7919 + 1, deadline, |op, rng, orders| {
            let user = rng.below(USERS as u64) as usize;
            let token = format!("Bearer {}", tokens[user]);
            let product = 1 + rng.below(PRODUCTS as u64);
            match op {
                "top_up" => post("/me/balance/charge", &token, json!({ "amount": 1_000 }))
                    .and_then(|started| confirm(&token, started))
                    .is_some(),
                "order" => {
                    let body = json!({ "lines": { product.to_string(): 1 } });
                    match post("/me/orders", &token, body).and_then(|o| o["id"].as_i64()) {
                        Some(id) => {
                            orders.push((user as i64, id));
                            true
                        }
                        None => false,
                    }
                }
                "pay" => {
                    let (owner, order) = orders.remove(0);
                    let token = format!("Bearer {}", tokens[owner as usize]);
                    let body = json!({ "balance_part": PRICE / 2 });
                    post(&format!("/me/orders/{order}/pay"), &token, body)
                        .and_then(|started| confirm(&token, started))
                        .is_some()
                }
                _ => agent
                    .get(format!("{base}/products/{product}"))
                    .call()
                    .is_ok_and(|mut r| {
                        let _ = r.body_mut().read_to_string();
                        r.status().is_success()
                    }),
            }
        })
    })
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");

    // HTTP: N in-process servers on free ports, each with its own shop on
    // the one database; tokens minted for the seeded users.
    let config = || liteshop_server::Config::new(b"load secret".to_vec(), "load-admin".into());
    let tokens: Vec<String> = (1..=USERS)
        .map(|u| config().secrets().user_token(UserId::new(u)))
        .collect();
    let mut http_runs = Vec::new();
    for &servers in &args.servers {
        let name = format!("http{servers}");
        let first = open(&args, dir.path(), &name, false);
        seed_shop(&first.0);
        let mut shops = vec![first];
        for _ in 1..servers {
            shops.push(open(&args, dir.path(), &name, true));
        }
        // Each server fronts its own fake PG; client thread t always
        // talks to one server, so its widget step and confirm meet.
        let bases: Vec<String> = shops
            .into_iter()
            .map(|(shop, pg)| serve(shop, config().with_fake_widget(pg)))
            .collect();
        let (samples, failed, elapsed) = http_run(&args, &bases, &tokens);
        http_runs.push((servers, bases, samples, failed, elapsed));
    }

    let (direct_shop, direct_pg) = open(&args, dir.path(), "direct", false);
    seed_shop(&direct_shop);
    let by_widget = |user: UserId, started: liteshop::Payment| {
        let redirect = direct_pg.pay_widget(&started.widget()?);
        let paid = direct_shop
            .confirm_payment(user, started.id, &redirect)
            .ok()?;
        (paid.status == liteshop::PaymentStatus::Approved).then_some(())
    };
    let (direct, direct_failed, direct_elapsed) = run(args.threads, args.seconds, |t, deadline| {
        let shop = &direct_shop;
        mix(t as u64 * 7919 + 1, deadline, |op, rng, orders| {
            let user = UserId::new(1 + rng.below(USERS as u64) as i64);
            let product = ProductId::new(1 + rng.below(PRODUCTS as u64) as i64);
            match op {
                "top_up" => shop
                    .start_top_up(user, Money::new(1_000).expect("won"))
                    .ok()
                    .and_then(|started| by_widget(user, started))
                    .is_some(),
                "order" => match shop.place_order(user, &[OrderLine::new(product, 1)]) {
                    Ok(order) => {
                        orders.push((user.get(), order.id.get()));
                        true
                    }
                    Err(_) => false,
                },
                "pay" => {
                    let (owner, order) = orders.remove(0);
                    let owner = UserId::new(owner);
                    shop.start_payment(
                        owner,
                        OrderId::new(order),
                        Money::new(PRICE / 2).expect("won"),
                    )
                    .ok()
                    .and_then(|started| by_widget(owner, started))
                    .is_some()
                }
                _ => shop.product(product).is_ok(),
            }
        })
    });

    let failed: Vec<String> = http_runs
        .iter()
        .map(|(n, _, _, failed, _)| format!("HTTP×{n} {failed}"))
        .collect();
    println!(
        "{} threads, {} s each, on {}; HTTP: keep-alive, one connection per thread; failed calls: {}, direct {direct_failed}",
        args.threads,
        args.seconds,
        if args.db.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        failed.join(", ")
    );
    let mut header = format!("{:<7}", "op");
    for (n, ..) in &http_runs {
        let label = format!("HTTP×{n} /s");
        header += &format!(" {label:>13} {:>8} {:>8}", "p50 ms", "p99 ms");
    }
    header += &format!(
        " {:>10} {:>8} {:>8} {:>7}",
        "direct /s", "p50 ms", "p99 ms", "ratio"
    );
    println!("{header}");
    let rate = |samples: &Samples, op: &str, elapsed: Duration| {
        let mut v = samples.get(op).cloned().unwrap_or_default();
        v.sort_unstable();
        (
            v.len() as f64 / elapsed.as_secs_f64(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
        )
    };
    for op in OPS {
        let mut line = format!("{op:<7}");
        for (_, _, samples, _, elapsed) in &http_runs {
            let (r, p50, p99) = rate(samples, op, *elapsed);
            line += &format!(" {r:>13.0} {p50:>8.2} {p99:>8.2}");
        }
        let (dr, p50, p99) = rate(&direct, op, direct_elapsed);
        let first = http_runs
            .first()
            .map_or(0.0, |(_, _, samples, _, elapsed)| {
                rate(samples, op, *elapsed).0
            });
        line += &format!(" {dr:>10.0} {p50:>8.2} {p99:>8.2} {:>6.2}x", first / dr);
        println!("{line}");
    }
    // The HTTP shops are audited through the API, the direct one directly.
    let mut clean = true;
    for (n, bases, ..) in &http_runs {
        let audit: Value = ureq::get(format!("{}/admin/audit", bases[0]))
            .header("Authorization", "Bearer load-admin")
            .call()
            .and_then(|mut r| r.body_mut().read_json())
            .expect("GET /admin/audit");
        let ok = audit["violations"].as_array().is_some_and(Vec::is_empty);
        println!(
            "audit: HTTP×{n} shop {}",
            if ok { "clean" } else { "BROKEN" }
        );
        clean &= ok;
    }
    let direct_clean = direct_shop.audit().expect("audit").is_clean();
    println!(
        "audit: direct shop {}",
        if direct_clean { "clean" } else { "BROKEN" }
    );
    if !(clean && direct_clean) {
        std::process::exit(1);
    }
}
