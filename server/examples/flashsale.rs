//! A flash sale: N buyers released at one instant on one product with K
//! units, each placing an order for one unit and paying it from the balance
//! — directly on the library (one thread per buyer), or over HTTP (one
//! keep-alive connection per buyer) through one or two in-process
//! `liteshop` servers on one database. Optionally the race is on a
//! first-come-first-served coupon of K instead.
//!
//! It reports, per run: units sold (exactly K, or the tool fails), the time
//! to sell out, orders per second until then, p50/p99/p99.9 of the winners
//! (their paid order) and of the losers (their `InsufficientStock` or
//! `CouponSoldOut`), calls that failed otherwise, on PostgreSQL the
//! database's commits and its row-lock waits (backends seen waiting on a
//! lock, sampled every millisecond), and the audit.
//!
//! ```sh
//! cargo run --release -p liteshop-server --example flashsale -- --buyers 64 --via direct,http1,http2
//! scripts/with-postgres sh -c 'cargo run --release -p liteshop-server --example flashsale -- --db "$LITESHOP_TEST_POSTGRES" --buyers 512'
//! cargo run --release -p liteshop-server --example flashsale -- --buyers 512 --coupon
//! ```
//!
//! Each run is a fresh shop: a SQLite file in a temp directory, or with
//! `--db postgres://…` a new schema of that database (`flashsale_<pid>_<run>`,
//! left in place: run it on a throwaway cluster, as above). On PostgreSQL
//! a run waits 11 s before and after the race, so that the commit count
//! PostgreSQL reports (idle backends report within 10 s) is the race's
//! alone.

#[path = "support/serve.rs"]
mod support;
use support::serve;

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use liteshop::{
    CouponId, Discount, Error, FakeGateway, Money, NewCoupon, NewProduct, OrderLine, ProductId,
    Shop, UserId,
};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "N buyers race for K units of one product")]
struct Args {
    /// Buyers, released at one instant.
    #[arg(long, default_value_t = 64)]
    buyers: usize,
    /// Units for sale (default: a tenth of the buyers, at least one).
    #[arg(long)]
    units: Option<u32>,
    /// How the buyers reach the shop: `direct` (the library, a thread
    /// each), `http1`, `http2` (that many in-process servers on the one
    /// database, buyer `b` talking to server `b mod N`); comma-separated,
    /// one run each.
    #[arg(long, value_delimiter = ',', default_value = "direct")]
    via: Vec<String>,
    /// Race for a first-come-first-served coupon of K instead of the units.
    #[arg(long)]
    coupon: bool,
    /// A PostgreSQL URL to run on, in new schemas (default: SQLite files).
    #[arg(long)]
    db: Option<String>,
    /// Connections per shop's pool (default: 16, or the buyers if fewer).
    #[arg(long)]
    pool: Option<u32>,
}

const PRICE: i64 = 1_000;

/// One buyer's answer and how long it took from the release.
enum Answer {
    Won(Duration),
    Lost(Duration),
    Failed(String),
}

/// A fresh shop for run `run`, with its fake PG.
fn open(args: &Args, dir: &std::path::Path, run: usize) -> Shop {
    let builder = match &args.db {
        Some(url) => {
            Shop::builder(url).pg_schema(&format!("flashsale_{}_{run}", std::process::id()))
        }
        None => Shop::builder(dir.join(format!("flashsale{run}.db"))),
    };
    let pool = args
        .pool
        .unwrap_or_else(|| u32::try_from(args.buyers).unwrap_or(u32::MAX).clamp(2, 16));
    builder
        .gateway(FakeGateway::new())
        .pool_size(pool)
        .build()
        .expect("open the shop")
}

/// The buyers (each holding the price of one unit), the product (K units,
/// or N with a coupon race) and the coupon of K, if any.
fn seed(shop: &Shop, args: &Args, units: u32) -> (Vec<UserId>, ProductId, Option<CouponId>) {
    let price = Money::new(PRICE).expect("won");
    let buyers: Vec<UserId> = (0..args.buyers)
        .map(|i| {
            let user = shop.create_user(&format!("buyer {i}")).expect("user").id;
            shop.grant(user, price, "flash sale").expect("grant");
            user
        })
        .collect();
    let stock = if args.coupon {
        u32::try_from(args.buyers).unwrap_or(u32::MAX)
    } else {
        units
    };
    let product = shop
        .create_product(NewProduct {
            name: "Flash".into(),
            price,
            stock,
        })
        .expect("product")
        .id;
    let coupon = args.coupon.then(|| {
        let now = liteshop::Timestamp::from(std::time::SystemTime::now());
        shop.create_coupon(NewCoupon {
            name: "First come".into(),
            discount: Discount::Fixed {
                amount: Money::new(100).expect("won"),
            },
            quantity: units,
            issuable_from: now,
            issuable_until: now.saturating_add(Duration::from_secs(3_600)),
            valid_for: Duration::from_secs(3_600),
            min_order_total: Money::ZERO,
        })
        .expect("coupon")
        .id
    });
    (buyers, product, coupon)
}

/// One buyer on the library.
fn buy_direct(
    shop: &Shop,
    user: UserId,
    product: ProductId,
    coupon: Option<CouponId>,
) -> Result<bool, Error> {
    if let Some(coupon) = coupon {
        return match shop.issue_coupon(user, coupon) {
            Ok(_) => Ok(true),
            Err(Error::CouponSoldOut { .. }) => Ok(false),
            Err(err) => Err(err),
        };
    }
    match shop.place_order(user, &[OrderLine::new(product, 1)]) {
        Ok(order) => shop.pay_from_balance(user, order.id).map(|_| true),
        Err(Error::InsufficientStock { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

/// One buyer over HTTP: `Ok(true)` won, `Ok(false)` lost.
fn buy_http(
    agent: &ureq::Agent,
    base: &str,
    token: &str,
    product: ProductId,
    coupon: Option<CouponId>,
) -> Result<bool, String> {
    let post = |path: &str, body: Value| -> Result<(u16, Value), String> {
        let mut reply = agent
            .post(format!("{base}{path}"))
            .header("Authorization", token)
            .send_json(body)
            .map_err(|err| err.to_string())?;
        let status = reply.status().as_u16();
        Ok((status, reply.body_mut().read_json().unwrap_or(Value::Null)))
    };
    if let Some(coupon) = coupon {
        return match post(&format!("/me/coupons/{coupon}"), json!({}))? {
            (200 | 201, _) => Ok(true),
            (409, body) if body["code"] == "coupon_sold_out" => Ok(false),
            (status, body) => Err(format!("coupon: {status} {body}")),
        };
    }
    let order = match post("/me/orders", json!({ "lines": { product.to_string(): 1 } }))? {
        (201, body) => body["id"].as_i64().ok_or("an order id")?,
        (409, body) if body["code"] == "insufficient_stock" => return Ok(false),
        (status, body) => return Err(format!("order: {status} {body}")),
    };
    match post(
        &format!("/me/orders/{order}/pay"),
        json!({ "balance_part": PRICE }),
    )? {
        (200, body) if body["status"] == "approved" => Ok(true),
        (status, body) => Err(format!("pay: {status} {body}")),
    }
}

/// PostgreSQL's side of a run: commits before, and a sampler of backends
/// waiting on a lock while the race runs.
struct PgWatch {
    commits_before: i64,
    stop: std::sync::Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<(u64, u64)>,
    url: String,
}

fn commits(client: &mut postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .expect("pg_stat_database")
        .get(0)
}

impl PgWatch {
    fn start(url: &str) -> PgWatch {
        let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
        // The seeding's counts arrive once its backends have been idle
        // for 10 s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL): wait them out,
        // so the run's commits are the run's.
        std::thread::sleep(Duration::from_secs(11));
        let commits_before = commits(&mut client);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut samples, mut most) = (0_u64, 0_u64);
                while !stop.load(Ordering::Relaxed) {
                    let waiting: i64 = client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity
                             WHERE datname = current_database() AND wait_event_type = 'Lock'",
                            &[],
                        )
                        .expect("pg_stat_activity")
                        .get(0);
                    let waiting = u64::try_from(waiting).unwrap_or(0);
                    samples += waiting;
                    most = most.max(waiting);
                    std::thread::sleep(Duration::from_millis(1));
                }
                (samples, most)
            })
        };
        PgWatch {
            commits_before,
            stop,
            sampler,
            url: url.to_owned(),
        }
    }

    /// Commits during the run, and (backend-samples waiting, most at once).
    fn finish(self) -> (i64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, most) = self.sampler.join().expect("sampler");
        // An idle backend reports its counts within 10 s (PostgreSQL 15's
        // PGSTAT_IDLE_INTERVAL): wait them out.
        std::thread::sleep(Duration::from_secs(11));
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        (commits(&mut client) - self.commits_before, samples, most)
    }
}

fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "—".into();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1_000.0;
    format!("{:.1} / {:.1} / {:.1}", at(0.5), at(0.99), at(0.999))
}

fn main() {
    let args = Args::parse();
    let units = args
        .units
        .unwrap_or_else(|| u32::try_from(args.buyers / 10).unwrap_or(u32::MAX).max(1));
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = if args.db.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    if args.coupon {
        println!(
            "{engine}: {} buyers, {units} first-come-first-served coupons, one each",
            args.buyers
        );
    } else {
        println!(
            "{engine}: {} buyers, {units} units, one each, ordered and paid from the balance",
            args.buyers
        );
    }
    println!(
        "{:<7} {:>5} {:>10} {:>9} {:>26} {:>26} {:>6} {:>8} {:>14} audit",
        "via",
        "sold",
        "sell-out",
        "orders/s",
        "winners p50/p99/p99.9 ms",
        "losers p50/p99/p99.9 ms",
        "failed",
        "commits",
        "lock waits"
    );
    let mut broken = false;
    for (run, via) in args.via.iter().enumerate() {
        let shop = open(&args, dir.path(), run);
        let (buyers, product, coupon) = seed(&shop, &args, units);
        let servers = match via.as_str() {
            "direct" => 0,
            "http1" => 1,
            "http2" => 2,
            other => panic!("--via takes direct, http1 or http2, not {other}"),
        };
        let config =
            || liteshop_server::Config::new(b"flash secret".to_vec(), "flash-admin".into());
        let mut bases = Vec::new();
        for i in 0..servers {
            // A second server is a second Shop (its own pool) on the one
            // database, as a second process would be.
            let shop = if i == 0 {
                shop.clone()
            } else {
                let builder = match &args.db {
                    Some(url) => Shop::builder(url)
                        .pg_schema(&format!("flashsale_{}_{run}", std::process::id())),
                    None => Shop::builder(dir.path().join(format!("flashsale{run}.db"))),
                };
                builder
                    .gateway(FakeGateway::new())
                    .existing_only()
                    .build()
                    .expect("second shop")
            };
            bases.push(serve(shop, config()));
        }
        let tokens: Vec<String> = buyers
            .iter()
            .map(|&user| format!("Bearer {}", config().secrets().user_token(user)))
            .collect();
        // Every connection is open before the release.
        let agents: Vec<ureq::Agent> = (0..if servers > 0 { buyers.len() } else { 0 })
            .map(|b| {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                // Read the answer whole, so the connection goes back to the
                // agent's pool and the race reuses it.
                let mut reply = agent
                    .get(format!("{}/healthz", bases[b % bases.len()]))
                    .call()
                    .expect("the server answers");
                let _ = reply.body_mut().read_to_string();
                agent
            })
            .collect();

        let watch = args.db.as_deref().map(PgWatch::start);
        let release = Barrier::new(buyers.len());
        let sold_at = AtomicU64::new(0);
        let started = Instant::now();
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let handles: Vec<_> = buyers
                .iter()
                .enumerate()
                .map(|(b, &user)| {
                    let (shop, release, sold_at) = (&shop, &release, &sold_at);
                    let (agents, bases, tokens) = (&agents, &bases, &tokens);
                    std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn_scoped(s, move || {
                            release.wait();
                            let began = Instant::now();
                            let answer = if servers == 0 {
                                buy_direct(shop, user, product, coupon).map_err(|e| e.to_string())
                            } else {
                                buy_http(
                                    &agents[b],
                                    &bases[b % bases.len()],
                                    &tokens[b],
                                    product,
                                    coupon,
                                )
                            };
                            let took = began.elapsed();
                            match answer {
                                Ok(true) => {
                                    let done = u64::try_from(started.elapsed().as_micros())
                                        .unwrap_or(u64::MAX);
                                    sold_at.fetch_max(done, Ordering::Relaxed);
                                    Answer::Won(took)
                                }
                                Ok(false) => Answer::Lost(took),
                                Err(err) => Answer::Failed(err),
                            }
                        })
                        .expect("a buyer thread")
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("buyer"))
                .collect()
        });
        let stats = watch.map(PgWatch::finish);

        let (mut won, mut lost, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for answer in answers {
            match answer {
                Answer::Won(t) => won.push(t),
                Answer::Lost(t) => lost.push(t),
                Answer::Failed(e) => failed.push(e),
            }
        }
        let sold = won.len();
        let sell_out = Duration::from_micros(sold_at.load(Ordering::Relaxed));
        let audit = shop.audit().expect("audit");
        let (commits, waits) = match stats {
            Some((commits, samples, most)) => {
                (commits.to_string(), format!("{samples} (max {most})"))
            }
            None => ("—".into(), "—".into()),
        };
        println!(
            "{via:<7} {sold:>5} {:>8.1}ms {:>9.0} {:>26} {:>26} {:>6} {commits:>8} {waits:>14} {}",
            sell_out.as_secs_f64() * 1_000.0,
            sold as f64 / sell_out.as_secs_f64().max(1e-9),
            percentiles(won),
            percentiles(lost),
            failed.len(),
            if audit.is_clean() { "clean" } else { "BROKEN" },
        );
        for err in failed.iter().take(3) {
            eprintln!("  failed: {err}");
        }
        if sold != units as usize || !audit.is_clean() {
            eprintln!("{via}: sold {sold} of {units}; audit: {audit}");
            broken = true;
        }
    }
    if broken {
        std::process::exit(1);
    }
}
