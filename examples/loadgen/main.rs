//! A load generator: a realistic mix of shop calls from many threads for a
//! while, then a latency and refusal table, and every money and stock
//! invariant checked. Exits non-zero if any invariant fails.
//!
//! ```sh
//! cargo run --release --example loadgen -- --threads 8 --seconds 20
//! cargo run --release --example loadgen -- --threads 8 --seconds 10 --baseline raw
//! cargo run --release --example loadgen -- --writer pooled --json
//! ```
//!
//! `--baseline raw` runs the same mix again, for the same time, against a
//! second database with the same statements written directly with rusqlite
//! (no liteshop, no pool), and prints liteshop's throughput as a ratio of it.
//!
//! `--db postgres://…` (with `--features postgres`) runs it all on
//! PostgreSQL, in a new schema (and `<schema>_raw` for the baseline, on the
//! plain `postgres` crate), dropped afterwards unless `--pg-schema` named it:
//!
//! ```sh
//! scripts/with-postgres sh -c 'cargo run --release --features postgres --example loadgen -- --db "$LITESHOP_TEST_POSTGRES" --baseline raw'
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use liteshop::{
    Approval, ApproveRequest, CancelRequest, Cancellation, Clock, CouponId, Discount, Durability,
    Error, ErrorKind, FakeGateway, FakeOutcome, GatewayError, HttpGateway, Law, Money, NewCoupon,
    NewProduct, OrderId, OrderLine, OrderRequest, PaymentGateway, PgRedirect, PgStatus, ProductId,
    RetryPolicy, Shop, ShopBuilder, StatusRequest, SystemClock, UserId, Violation, WriteMode,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Value, json};

mod checks;
mod raw;
#[cfg(feature = "postgres")]
mod raw_pg;
mod report;
mod workload;

use checks::*;
use report::*;
use workload::Step;

#[derive(Parser, Debug, Clone)]
#[command(about = "Load liteshop with a mix of calls and check its invariants")]
struct Args {
    /// Worker threads.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// How long to run (ignored with --ops).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Run this many operations in all instead of for a time.
    #[arg(long)]
    ops: Option<u64>,
    /// Users.
    #[arg(long, default_value_t = 100)]
    users: i64,
    /// Products.
    #[arg(long, default_value_t = 50)]
    products: i64,
    /// Initial stock of each product.
    #[arg(long, default_value_t = 100_000)]
    stock: u32,
    /// Weights of the operations: `charge` is a top-up through the PG
    /// (start, widget, confirm), `pay` a payment by tender (balance, card
    /// or both; some abandoned or tampered in the widget).
    #[arg(
        long,
        default_value = "charge=20,cart=20,order=20,pay=15,cancel=5,refund=3,coupon=2,read=15"
    )]
    mix: String,
    /// Share of orders whose first line is the one hot product (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    hot: f64,
    /// Database file to create (default: a temp file); must not exist. A
    /// `postgres://` URL runs on PostgreSQL instead (built with
    /// `--features postgres`), in a new schema.
    #[arg(long)]
    db: Option<PathBuf>,
    /// With a PostgreSQL `--db`: the schema to create and keep (must not
    /// exist; the raw baseline uses `<name>_raw`). Without it, a throwaway
    /// `loadgen_<pid>` is dropped at the end.
    #[arg(long)]
    pg_schema: Option<String>,
    /// Commit durability.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// How writers reach the database.
    #[arg(long, value_enum, default_value_t = WriterArg::Batched)]
    writer: WriterArg,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Share of approvals the fake PG declines.
    #[arg(long, default_value_t = 0.05)]
    pg_decline: f64,
    /// Share of approvals whose reply the fake PG loses (half before, half
    /// after it approved).
    #[arg(long, default_value_t = 0.02)]
    pg_unknown: f64,
    /// Use HttpGateway against a PG at this URL instead of the fake.
    #[arg(long, requires = "pg_secret")]
    pg_url: Option<String>,
    /// The PG's secret key (with --pg-url).
    #[arg(long)]
    pg_secret: Option<String>,
    /// The HTTP PG's response timeout in milliseconds.
    #[arg(long)]
    pg_timeout_ms: Option<u64>,
    /// Also run the same mix directly on rusqlite and print the ratios.
    #[arg(long, value_enum)]
    baseline: Option<BaselineArg>,
    /// Preload a large history first — this many more users, each with 10
    /// ledger entries and 3 cancelled orders with their events — run the
    /// mix over all users, and compare with the same mix on a fresh small
    /// file run first (1,000,000 gives a file over 2 GB).
    #[arg(long)]
    preload: Option<i64>,
    /// Run on an existing shop file (--db) instead of seeding a new one,
    /// over all its users (a file left by an earlier --preload run).
    #[arg(long, requires = "db", conflicts_with = "preload")]
    reuse: bool,
    /// Page cache per connection, in KiB (the builder's default if unset).
    #[arg(long)]
    cache_kib: Option<u32>,
    /// Memory map per connection, in MiB (the builder's default if unset).
    #[arg(long)]
    mmap_mib: Option<u64>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum DurabilityArg {
    Full,
    Normal,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum WriterArg {
    Dedicated,
    Pooled,
    Batched,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum BaselineArg {
    Raw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Charge,
    Cart,
    Order,
    Pay,
    Cancel,
    Refund,
    Coupon,
    Read,
}

const OPS: [Op; 8] = [
    Op::Charge,
    Op::Cart,
    Op::Order,
    Op::Pay,
    Op::Cancel,
    Op::Refund,
    Op::Coupon,
    Op::Read,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Charge => "charge",
            Op::Cart => "cart",
            Op::Order => "order",
            Op::Pay => "pay",
            Op::Cancel => "cancel",
            Op::Refund => "refund",
            Op::Coupon => "coupon",
            Op::Read => "read",
        }
    }
}

fn parse_mix(text: &str) -> Result<Vec<(Op, u32)>, String> {
    let mut mix = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected op=weight"))?;
        let op = OPS
            .into_iter()
            .find(|op| op.name() == name)
            .ok_or_else(|| format!("unknown op {name:?}"))?;
        let weight: u32 = weight
            .parse()
            .map_err(|_| format!("bad weight in {part:?}"))?;
        mix.push((op, weight));
    }
    if mix.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        return Err("the mix has no weight".into());
    }
    Ok(mix)
}

/// xorshift64*: fast, seeded per thread, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `p`, in steps of 1/1,000,000.
    fn chance(&mut self, p: f64) -> bool {
        (self.below(1_000_000) as f64) < p * 1_000_000.0
    }
}

/// A fake PG that declines or loses replies at the given rates.
struct RandomGateway {
    fake: FakeGateway,
    decline: f64,
    unknown: f64,
    seed: AtomicU64,
}

impl RandomGateway {
    fn outcome(&self) -> Option<FakeOutcome> {
        let mut rng = Rng(self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            | 1);
        if rng.chance(self.decline) {
            Some(FakeOutcome::decline())
        } else if rng.chance(self.unknown) {
            Some(if rng.chance(0.5) {
                FakeOutcome::UnknownBeforeCharge
            } else {
                FakeOutcome::UnknownAfterCharge
            })
        } else {
            None
        }
    }
}

impl PaymentGateway for RandomGateway {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        // Scripted per order, so concurrent payments of other orders do not
        // take this outcome; a retried or reconciled attempt replays by key.
        if self.fake.calls(&request.idempotency_key) == 0
            && let Some(order) = request.order
            && let Some(outcome) = self.outcome()
        {
            self.fake.push_for_order(order, outcome);
        }
        self.fake.approve(request)
    }
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        self.fake.status(request)
    }
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        // Cancel scripts are one queue: a concurrent refund may take this
        // one, which keeps the rates and changes nothing the checks rely on.
        if self.fake.calls(&request.idempotency_key) == 0
            && let Some(outcome) = self.outcome()
        {
            self.fake.push_cancel(outcome);
        }
        self.fake.cancel(request)
    }
}

/// What one thread measured of one operation.
#[derive(Clone)]
struct Stats {
    count: u64,
    ok: u64,
    refused: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            count: 0,
            ok: 0,
            refused: BTreeMap::new(),
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.ok += other.ok;
        for (kind, n) in &other.refused {
            *self.refused.entry(kind.clone()).or_default() += n;
        }
        self.latency_us.add(&other.latency_us).expect("same bounds");
    }
}

/// One worker's state: its generator, the orders it placed and may pay or
/// cancel, the orders it paid and may refund, and (for the raw baseline) its
/// own connection.
struct Worker {
    rng: Rng,
    orders: VecDeque<(UserId, OrderId)>,
    paid: VecDeque<(UserId, OrderId)>,
    coupons: Vec<(UserId, CouponId)>,
    conn: Option<RawConn>,
}

/// A raw baseline's own connection.
enum RawConn {
    File(Connection),
    #[cfg(feature = "postgres")]
    Postgres(Box<raw_pg::Conn>),
}

impl RawConn {
    fn open(place: &Place) -> RawConn {
        match place {
            Place::File(path) => RawConn::File(raw_connection(path)),
            #[cfg(feature = "postgres")]
            Place::Postgres { url, schema } => {
                RawConn::Postgres(Box::new(raw_pg::Conn::new(pg_client(url, schema))))
            }
            #[cfg(not(feature = "postgres"))]
            Place::Postgres { .. } => unreachable!("refused in main without the feature"),
        }
    }
}

/// Something the mix runs against: liteshop or a raw baseline, one step
/// of the workload ([`Step`], drawn once for every target) at a time.
/// `None` means the target does not run that kind of step (the baselines
/// have no refunds or coupons); it is not counted.
trait Target: Sync {
    fn run(&self, step: Step, worker: &mut Worker) -> Option<Result<(), String>>;
}

/// The fixed shape of the shop under load.
struct World {
    users: i64,
    products: i64,
    hot: f64,
}

impl World {
    fn user(&self, rng: &mut Rng) -> UserId {
        UserId::new(1 + rng.below(self.users as u64) as i64)
    }
    fn product(&self, rng: &mut Rng) -> ProductId {
        ProductId::new(1 + rng.below(self.products as u64) as i64)
    }
    fn order_lines(&self, rng: &mut Rng) -> Vec<OrderLine> {
        let count = 1 + rng.below(3) as usize;
        let mut seen = HashSet::new();
        let mut lines = Vec::new();
        for i in 0..count {
            let product = if i == 0 && rng.chance(self.hot) {
                ProductId::new(1)
            } else {
                self.product(rng)
            };
            if seen.insert(product) {
                lines.push(OrderLine::new(product, 1 + rng.below(2) as u32));
            }
        }
        lines
    }
    fn charge_amount(&self, rng: &mut Rng) -> Money {
        Money::new(1_000 * (1 + rng.below(50) as i64)).expect("positive")
    }
}

fn kind_name(kind: ErrorKind) -> String {
    format!("{kind:?}")
}

/// The shop under load, and the customer's browser that pays the PG part
/// of each payment in the PG's widget.
struct Liteshop(Shop, Widget);

/// Where the customer pays in the widget: the in-process fake, or a PG
/// over HTTP that offers the fake widget step (`examples/fake_pg.rs`:
/// `POST /v1/fake/widget`).
#[derive(Clone)]
enum Widget {
    Fake(FakeGateway),
    Http(String),
}

impl Widget {
    fn for_args(args: &Args, fake: &FakeGateway) -> Widget {
        match &args.pg_url {
            Some(url) if args.pg_secret.is_some() => Widget::Http(url.clone()),
            _ => Widget::Fake(fake.clone()),
        }
    }

    /// The success redirect of the customer's payment of `widget`.
    fn pay(&self, widget: &liteshop::WidgetRequest) -> Result<PgRedirect, String> {
        match self {
            Widget::Fake(fake) => Ok(fake.pay_widget(widget)),
            Widget::Http(url) => {
                let body = serde_json::json!({
                    "orderId": widget.pg_order_id,
                    "amount": widget.amount.won(),
                });
                let text = ureq::post(format!("{url}/v1/fake/widget"))
                    .header("Content-Type", "application/json")
                    .send(body.to_string())
                    .and_then(|mut r| r.body_mut().read_to_string())
                    .map_err(|err| format!("the widget step failed: {err}"))?;
                let reply: Value = serde_json::from_str(&text).map_err(|err| err.to_string())?;
                Ok(PgRedirect {
                    payment_key: reply["paymentKey"].as_str().unwrap_or_default().to_owned(),
                    pg_order_id: widget.pg_order_id.clone(),
                    amount: widget.amount,
                })
            }
        }
    }
}

impl Target for Liteshop {
    fn run(&self, step: Step, w: &mut Worker) -> Option<Result<(), String>> {
        let shop = &self.0;
        let refused = |err: Error| kind_name(err.kind());
        Some(match step {
            Step::Charge { user, amount } => {
                // A top-up through the PG: started, paid in the widget,
                // confirmed (credited once on approval).
                shop.start_top_up(user, amount)
                    .and_then(|started| {
                        let widget = started.widget().ok_or(Error::ZeroAmount)?;
                        let redirect = self.1.pay(&widget).map_err(|_| Error::ZeroAmount)?;
                        shop.confirm_payment(user, started.id, &redirect)
                    })
                    .map(drop)
                    .map_err(refused)
            }
            Step::Cart {
                user,
                product,
                quantity,
            } => match shop.add_to_cart(user, product, quantity) {
                Err(Error::AlreadyInCart { item, .. }) => {
                    shop.remove_from_cart(user, item).map_err(refused)
                }
                other => other.map(drop).map_err(refused),
            },
            Step::Order {
                user,
                lines,
                coupon,
            } => match shop.place_order(user, OrderRequest { lines, coupon }) {
                Ok(order) => {
                    w.orders.push_back((user, order.id));
                    Ok(())
                }
                Err(err) => Err(refused(err)),
            },
            Step::Pay {
                user,
                order,
                tender,
                widget: fate,
            } => {
                let total = match shop.order(user, order) {
                    Ok(o) => o.total,
                    Err(err) => return Some(Err(refused(err))),
                };
                let paid = shop
                    .start_payment(user, order, tender.balance_part(total))
                    .and_then(|started| {
                        let Some(widget) = started.widget() else {
                            return Ok(true);
                        };
                        match fate {
                            workload::Widget::Abandoned => return Ok(false),
                            workload::Widget::Tampered => {
                                let mut tampered =
                                    self.1.pay(&widget).map_err(|_| Error::ZeroAmount)?;
                                tampered.amount = Money::new(1).expect("1 won");
                                let refused = shop.confirm_payment(user, started.id, &tampered);
                                assert!(
                                    matches!(refused, Err(Error::RedirectMismatch { .. })),
                                    "a tampered redirect must be refused: {refused:?}"
                                );
                                return Ok(false);
                            }
                            workload::Widget::Paid => {}
                        }
                        let redirect = self.1.pay(&widget).map_err(|_| Error::ZeroAmount)?;
                        shop.confirm_payment(user, started.id, &redirect)
                            .map(|_| true)
                    });
                match paid {
                    Ok(true) => {
                        w.paid.push_back((user, order));
                        Ok(())
                    }
                    Ok(false) => Ok(()),
                    Err(err) => Err(refused(err)),
                }
            }
            Step::Cancel { user, order } => {
                shop.cancel_order(user, order).map(drop).map_err(refused)
            }
            Step::Coupon { user, coupon } => match shop.issue_coupon(user, coupon) {
                Ok(_) => {
                    w.coupons.push((user, coupon));
                    Ok(())
                }
                Err(err) => Err(refused(err)),
            },
            Step::Refund { user, order, whole } => {
                // Half the refunds return the whole order; the others one
                // unit of its first line not yet refunded, and keep the order
                // for a later refund while units remain.
                if whole {
                    return Some(
                        shop.refund(user, order, "loadgen")
                            .map(drop)
                            .map_err(refused),
                    );
                }
                let items = match shop.order(user, order) {
                    Ok(found) => found.lines,
                    Err(err) => return Some(Err(refused(err))),
                };
                let Some(item) = items.iter().find(|i| i.refunded < i.quantity) else {
                    return Some(Err("NothingToRefund".into()));
                };
                let left: u32 = items.iter().map(|i| i.quantity - i.refunded).sum();
                let line = OrderLine::new(item.product, 1);
                let result = shop.refund_lines(user, order, &[line], "loadgen");
                if result.is_ok() && left > 1 {
                    w.paid.push_back((user, order));
                }
                result.map(drop).map_err(refused)
            }
            Step::Read { product } => shop.product(product).map(drop).map_err(refused),
        })
    }
}

/// Runs the mix on `threads` threads until the time or op budget is spent.
fn run_mix(
    args: &Args,
    mix: &[(Op, u32)],
    target: &dyn Target,
    world: &World,
    raw_db: Option<&Place>,
    label: &str,
) -> (BTreeMap<Op, Stats>, Duration) {
    let total_weight: u32 = mix.iter().map(|(_, w)| w).sum();
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let budget = args.ops;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(budget.unwrap_or(args.seconds * 1_000));
        bar.set_style(
            ProgressStyle::with_template(&format!("{label:>9} [{{bar:40}}] {{msg}}"))
                .expect("template")
                .progress_chars("=> "),
        );
        bar
    };
    let per_thread: Vec<BTreeMap<Op, Stats>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let done = &done;
                scope.spawn(move || {
                    let mut worker = Worker {
                        rng: Rng(0x1234_5678_9abc_def1 ^ ((t as u64 + 1) * 0x9e37_79b9)),
                        orders: VecDeque::new(),
                        paid: VecDeque::new(),
                        coupons: Vec::new(),
                        conn: raw_db.map(RawConn::open),
                    };
                    let mut stats: BTreeMap<Op, Stats> = BTreeMap::new();
                    loop {
                        let finished = match budget {
                            Some(max) => done.load(Ordering::Relaxed) >= max,
                            None => Instant::now() >= deadline,
                        };
                        if finished {
                            break;
                        }
                        let mut pick = worker.rng.below(u64::from(total_weight)) as u32;
                        let op = mix
                            .iter()
                            .find(|(_, w)| {
                                let hit = pick < *w;
                                pick = pick.saturating_sub(*w);
                                hit
                            })
                            .map(|(op, _)| *op)
                            .expect("weights cover the range");
                        let began = Instant::now();
                        let Some(result) = Step::draw(op, &mut worker, world)
                            .and_then(|step| target.run(step, &mut worker))
                        else {
                            continue;
                        };
                        let micros = began.elapsed().as_micros() as u64;
                        let entry = stats.entry(op).or_insert_with(Stats::new);
                        entry.count += 1;
                        entry.latency_us.saturating_record(micros.max(1));
                        match result {
                            Ok(()) => entry.ok += 1,
                            Err(kind) => *entry.refused.entry(kind).or_default() += 1,
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    stats
                })
            })
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            let ops = done.load(Ordering::Relaxed);
            bar.set_position(budget.map_or(started.elapsed().as_millis() as u64, |_| ops));
            bar.set_message(format!("{ops} ops"));
            thread::sleep(Duration::from_millis(100));
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let mut merged: BTreeMap<Op, Stats> = BTreeMap::new();
    for stats in per_thread {
        for (op, s) in stats {
            merged.entry(op).or_insert_with(Stats::new).merge(&s);
        }
    }
    (merged, elapsed)
}

/// Creates the users (each with a large balance) and the products.
/// Bulk-loads `extra` users after the first `first` (ids continue), each
/// with ten charges in the ledger and three cancelled orders with their
/// placed and cancelled events, in transactions of 20,000 users: the
/// history a shop has after years, consistent with every audit law.
fn preload(path: &Path, first: i64, extra: i64) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let placed = serde_json::to_string(&json!({
        "kind": "order_placed",
        "lines": [{"product": 1, "name": "product 0", "unit_price": 1000, "quantity": 1,
                   "line_total": 1000, "amount": 1000, "refunded": 0}],
        "subtotal": 1000, "discount": 0, "total": 1000, "coupon": null,
    }))
    .expect("json");
    let cancelled = r#"{"kind":"order_cancelled"}"#;
    let now = SystemClock.now().as_millis();
    let mut id = first;
    while id < first + extra {
        let tx = conn.transaction()?;
        {
            let mut user =
                tx.prepare_cached("INSERT INTO users (id, name, created_at) VALUES (?1, ?2, ?3)")?;
            let mut balance = tx.prepare_cached(
                "INSERT INTO balances (user_id, amount, updated_at) VALUES (?1, ?2, ?3)",
            )?;
            let mut ledger = tx.prepare_cached(
                "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at)
                 VALUES (?1, 'charge', 1000000, ?2, ?3)",
            )?;
            let mut order = tx.prepare_cached(
                "INSERT INTO orders (user_id, status, cancel_reason, total, created_at, expires_at,
                                     updated_at)
                 VALUES (?1, 'cancelled', 'user', 1000, ?2, ?2, ?2) RETURNING id",
            )?;
            let mut item = tx.prepare_cached(
                "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity, amount)
                 VALUES (?1, 1, 'product 0', 1000, 1, 1000)",
            )?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (kind, user_id, order_id, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for _ in 0..20_000 {
                if id >= first + extra {
                    break;
                }
                id += 1;
                user.execute(rusqlite::params![id, format!("user {id}"), now])?;
                for n in 1..=10_i64 {
                    ledger.execute(rusqlite::params![id, n * 1_000_000, now])?;
                }
                balance.execute(rusqlite::params![id, 10_000_000_i64, now])?;
                for _ in 0..3 {
                    let order_id: i64 =
                        order.query_row(rusqlite::params![id, now], |r| r.get(0))?;
                    item.execute([order_id])?;
                    event.execute(rusqlite::params!["order_placed", id, order_id, placed, now])?;
                    event.execute(rusqlite::params![
                        "order_cancelled",
                        id,
                        order_id,
                        cancelled,
                        now
                    ])?;
                }
            }
        }
        tx.commit()?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn file_size(path: &Path) -> String {
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// This process's resident memory now and at its peak (Linux).
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or("?".to_owned(), |kb| format!("{} MB", kb / 1024))
    };
    format!("{} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

/// Where a shop under load lives: a SQLite file, or a schema of a
/// PostgreSQL database. No `Debug`: the URL may carry a password.
#[derive(Clone)]
enum Place {
    File(PathBuf),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Place {
    /// The builder for this place, nothing else set.
    fn builder(&self) -> ShopBuilder {
        match self {
            Place::File(path) => Shop::builder(path),
            Place::Postgres { url, schema } => Shop::builder(url).pg_schema(schema),
        }
    }

    /// The same place's twin for the raw baseline: `raw.db` beside the
    /// temp file, or the schema `<schema>_raw`.
    fn raw_twin(&self, dir: &Path) -> Place {
        match self {
            Place::File(_) => Place::File(dir.join("raw.db")),
            Place::Postgres { url, schema } => Place::Postgres {
                url: url.clone(),
                schema: format!("{schema}_raw"),
            },
        }
    }

    /// Where it is, without a password.
    fn describe(&self) -> String {
        match self {
            Place::File(path) => path.display().to_string(),
            Place::Postgres { schema, .. } => format!("PostgreSQL schema {schema}"),
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Place::File(_) => "sqlite",
            Place::Postgres { .. } => "postgres",
        }
    }
}

/// A direct connection for the checks and the report: counts and
/// `(text, count)` rows from SQL with no parameters.
enum Peek {
    File(Connection),
    #[cfg(feature = "postgres")]
    Postgres(postgres::Client),
}

impl Peek {
    fn open(place: &Place) -> Peek {
        match place {
            Place::File(path) => Peek::File(Connection::open(path).expect("open for checks")),
            #[cfg(feature = "postgres")]
            Place::Postgres { url, schema } => Peek::Postgres(pg_client(url, schema)),
            #[cfg(not(feature = "postgres"))]
            Place::Postgres { .. } => unreachable!("refused in main without the feature"),
        }
    }

    fn count(&mut self, sql: &str) -> i64 {
        match self {
            Peek::File(conn) => conn.query_row(sql, [], |row| row.get(0)).expect(sql),
            #[cfg(feature = "postgres")]
            Peek::Postgres(client) => client.query_one(sql, &[]).expect(sql).get(0),
        }
    }

    fn pairs(&mut self, sql: &str) -> Vec<(String, i64)> {
        match self {
            Peek::File(conn) => conn
                .prepare(sql)
                .expect("prepare")
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows"),
            #[cfg(feature = "postgres")]
            Peek::Postgres(client) => client
                .query(sql, &[])
                .expect(sql)
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect(),
        }
    }
}

/// A plain connection with `schema` first on its search path.
#[cfg(feature = "postgres")]
fn pg_client(url: &str, schema: &str) -> postgres::Client {
    let mut config: postgres::Config = url.parse().expect("a PostgreSQL URL");
    config.options(&format!("-c search_path={schema}"));
    config
        .connect(postgres::NoTls)
        .expect("connect to PostgreSQL")
}

/// Whether `schema` exists in the database at `url`.
#[cfg(feature = "postgres")]
fn pg_schema_exists(url: &str, schema: &str) -> bool {
    pg_client(url, "public")
        .query_opt(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .expect("look the schema up")
        .is_some()
}

/// Drops the throwaway schemas of this run.
#[cfg(feature = "postgres")]
fn pg_drop_schemas(url: &str, schemas: &[&str]) {
    let mut client = pg_client(url, "public");
    for schema in schemas {
        // `schema` is `loadgen_<pid>[_raw]`, an identifier made here.
        if let Err(err) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")) {
            eprintln!("dropping schema {schema}: {err}");
        }
    }
}

/// Coupon offers seeded, ids 1 to this.
const COUPONS: i64 = 4;

fn seed(place: &Place, args: &Args) -> Result<(), Error> {
    let shop = place
        .builder()
        .durability(Durability::Normal)
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .build()?;
    for i in 0..args.users {
        let user = shop.create_user(&format!("user {i}"))?;
        shop.grant(user.id, Money::new(1_000_000_000)?, "load test seed")?;
    }
    // Coupons for a quarter of the users each, issuable all run long.
    let now = SystemClock.now();
    for i in 0..COUPONS {
        shop.create_coupon(NewCoupon {
            name: format!("coupon {i}"),
            discount: if i % 2 == 0 {
                Discount::Fixed {
                    amount: Money::new(500)?,
                }
            } else {
                Discount::Percent {
                    percent: 10,
                    cap: Some(Money::new(2_000)?),
                }
            },
            quantity: (args.users as u32 / 4).max(1),
            issuable_from: now,
            issuable_until: now.saturating_add(Duration::from_secs(86_400)),
            valid_for: Duration::from_secs(86_400),
            min_order_total: Money::new(1_000)?,
        })?;
    }
    for i in 0..args.products {
        shop.create_product(NewProduct {
            name: format!("product {i}"),
            price: Money::new(1_000 + 500 * (i % 10))?,
            stock: args.stock,
        })?;
    }
    Ok(())
}

/// How long a started payment waits for its confirm under load: long
/// enough for every confirm the run makes at once, short enough that the
/// abandoned ones end right after the run.
const PAYMENT_WINDOW: Duration = Duration::from_secs(2);

fn open_shop(args: &Args, place: &Place, fake: &FakeGateway) -> Result<Shop, Error> {
    let mut builder = place.builder();
    if let Some(kib) = args.cache_kib {
        builder = builder.cache_size_kib(kib);
    }
    if let Some(mib) = args.mmap_mib {
        builder = builder.mmap_size(mib << 20);
    }
    let builder = builder
        .pool_size(args.threads as u32 + 2)
        .busy_timeout(Duration::from_secs(30))
        .durability(match args.durability {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        })
        .write_mode(match args.writer {
            WriterArg::Dedicated => WriteMode::Dedicated,
            WriterArg::Pooled => WriteMode::Pooled,
            WriterArg::Batched => WriteMode::Batched,
        })
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .reconcile_grace(Duration::ZERO)
        // Abandoned widget payments end soon after the run (see `run`).
        .payment_window(PAYMENT_WINDOW)
        .gateway_retry(RetryPolicy {
            retries: 2,
            base: Duration::from_millis(5),
        });
    match (&args.pg_url, &args.pg_secret) {
        (Some(url), Some(secret)) => {
            let mut gateway = HttpGateway::builder(url, secret);
            if let Some(ms) = args.pg_timeout_ms {
                gateway = gateway.response_timeout(Duration::from_millis(ms));
            }
            builder.gateway(gateway.build()).build()
        }
        _ => builder
            .gateway(RandomGateway {
                fake: fake.clone(),
                decline: args.pg_decline,
                unknown: args.pg_unknown,
                seed: AtomicU64::new(0xfeed),
            })
            .build(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mix = match parse_mix(&args.mix) {
        Ok(mix) => mix,
        Err(err) => {
            eprintln!("--mix: {err}");
            return ExitCode::from(2);
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let place = match place(&args, dir.path()) {
        Ok(place) => place,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let code = run(&args, &mix, &place, dir.path());
    #[cfg(feature = "postgres")]
    if let (Place::Postgres { url, schema }, None) = (&place, &args.pg_schema) {
        pg_drop_schemas(url, &[schema, &format!("{schema}_raw")]);
    }
    code
}

/// Where this run's shop goes: a new file (or, with `--reuse`, the one
/// given), or a new PostgreSQL schema.
fn place(args: &Args, dir: &Path) -> Result<Place, String> {
    let given = args.db.as_ref().map(|db| db.to_string_lossy().into_owned());
    if let Some(url) =
        given.filter(|db| db.starts_with("postgres://") || db.starts_with("postgresql://"))
    {
        if args.reuse || args.preload.is_some() {
            return Err("--reuse and --preload are for a SQLite file".into());
        }
        #[cfg(not(feature = "postgres"))]
        {
            drop(url);
            return Err("a PostgreSQL --db needs `--features postgres`".into());
        }
        #[cfg(feature = "postgres")]
        {
            let schema = args
                .pg_schema
                .clone()
                .unwrap_or_else(|| format!("loadgen_{}", std::process::id()));
            for name in [schema.clone(), format!("{schema}_raw")] {
                if pg_schema_exists(&url, &name) {
                    return Err(format!("--pg-schema: schema {name} exists; name a new one"));
                }
            }
            return Ok(Place::Postgres { url, schema });
        }
    }
    if args.pg_schema.is_some() {
        return Err("--pg-schema goes with a postgres:// --db".into());
    }
    let path = args.db.clone().unwrap_or_else(|| dir.join("loadgen.db"));
    if path.exists() && !args.reuse {
        // Reuse is asked for, never assumed.
        return Err(format!(
            "--db {}: the file exists; give a new path or --reuse",
            path.display()
        ));
    }
    Ok(Place::File(path))
}

/// Seeds (unless reused), runs the mix, settles payments, runs the
/// baseline if asked, checks and reports.
fn run(args: &Args, mix: &[(Op, u32)], place: &Place, dir: &Path) -> ExitCode {
    let args = args.clone();
    if !args.reuse
        && let Err(err) = seed(place, &args)
    {
        eprintln!("seeding {}: {err}", place.describe());
        return ExitCode::from(2);
    }
    let fake = FakeGateway::new();
    let shop = match open_shop(&args, place, &fake) {
        Ok(shop) => shop,
        Err(err) => {
            eprintln!("opening {}: {err}", place.describe());
            return ExitCode::from(2);
        }
    };
    // With --preload: the same mix on a fresh small file first, then the
    // big history under the file this run checks.
    // `--preload` and `--reuse` are refused with PostgreSQL.
    let file = match place {
        Place::File(path) => Some(path.as_path()),
        Place::Postgres { .. } => None,
    };
    let small = args.preload.map(|extra| {
        let path = file.expect("a SQLite file");
        let small_path = Place::File(dir.join("small.db"));
        seed(&small_path, &args).expect("seeding the small file");
        let small_fake = FakeGateway::new();
        let small_shop = open_shop(&args, &small_path, &small_fake).expect("small file");
        let world = World {
            users: args.users,
            products: args.products,
            hot: args.hot,
        };
        let widget = Widget::Fake(small_fake.clone());
        let run = run_mix(
            &args,
            mix,
            &Liteshop(small_shop, widget),
            &world,
            None,
            "small",
        );
        let started = Instant::now();
        preload(path, args.users, extra).expect("preloading the history");
        eprintln!(
            "preloaded {extra} users in {:.0} s: {}",
            started.elapsed().as_secs_f64(),
            file_size(path)
        );
        (run, file_size(&dir.join("small.db")), rss())
    });
    let world = World {
        users: if let Some(path) = file.filter(|_| args.reuse) {
            Connection::open(path)
                .and_then(|c| c.query_row("SELECT count(*) FROM users", [], |r| r.get(0)))
                .expect("count the users")
        } else {
            args.users + args.preload.unwrap_or(0)
        },
        products: args.products,
        hot: args.hot,
    };
    let (stats, elapsed) = run_mix(
        &args,
        mix,
        &Liteshop(shop.clone(), Widget::for_args(&args, &fake)),
        &world,
        None,
        "liteshop",
    );

    // End the payments abandoned in the widget, then settle every payment,
    // in bounded rounds.
    thread::sleep(PAYMENT_WINDOW);
    if let Err(err) = shop.expire_payments() {
        eprintln!("expiring abandoned payments: {err}");
    }
    let mut rounds = 0;
    while rounds < 10 && unsettled(place) > 0 {
        if let Err(err) = shop.reconcile_payments() {
            eprintln!("reconcile: {err}");
        }
        rounds += 1;
    }
    drop(shop);

    let baseline = args.baseline.map(|_| {
        let raw_place = place.raw_twin(dir);
        seed(&raw_place, &args).expect("seeding the raw database");
        let raw = raw::Raw {
            gateway: RandomGateway {
                fake: FakeGateway::new(),
                decline: args.pg_decline,
                unknown: args.pg_unknown,
                seed: AtomicU64::new(0xfeed),
            },
            durability: args.durability,
        };
        run_mix(&args, mix, &raw, &world, Some(&raw_place), "raw")
    });

    let checks = invariants(place, args.pg_url.is_none().then_some(&fake));
    let report = report(
        &args,
        &stats,
        elapsed,
        baseline.as_ref(),
        place,
        &checks,
        rounds,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print_table(&args, &stats, elapsed, baseline.as_ref(), &report, &checks);
    }
    if let (Some(((small, small_elapsed), small_size, small_rss)), Some(path)) = (&small, file) {
        println!(
            "large file ({}, RSS {}) against the small file run first ({}, RSS then {}):",
            file_size(path),
            rss(),
            small_size,
            small_rss
        );
        println!(
            "{:<8} {:>12} {:>12} {:>7} {:>14} {:>14}",
            "op", "small ops/s", "large ops/s", "ratio", "small p99.9", "large p99.9"
        );
        for (op, large) in &stats {
            let Some(s) = small.get(op) else { continue };
            let (a, b) = (throughput(s, *small_elapsed), throughput(large, elapsed));
            println!(
                "{:<8} {:>12.0} {:>12.0} {:>6.2}x {:>11} ms {:>11} ms",
                op.name(),
                a,
                b,
                b / a,
                ms(s.latency_us.value_at_quantile(0.999)),
                ms(large.latency_us.value_at_quantile(0.999))
            );
        }
    }
    if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open raw connection");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("foreign keys");
    conn.set_prepared_statement_cache_capacity(64);
    conn
}
