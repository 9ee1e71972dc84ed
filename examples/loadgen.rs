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

/// Something the mix runs against: liteshop or the raw baseline. `None`
/// means the operation had nothing to do (no order to pay) and is not
/// counted.
trait Target: Sync {
    fn run(&self, op: Op, worker: &mut Worker, world: &World) -> Option<Result<(), String>>;
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
    fn run(&self, op: Op, w: &mut Worker, world: &World) -> Option<Result<(), String>> {
        let shop = &self.0;
        let refused = |err: Error| kind_name(err.kind());
        Some(match op {
            Op::Charge => {
                // A top-up through the PG: started, paid in the widget,
                // confirmed (credited once on approval).
                let user = world.user(&mut w.rng);
                shop.start_top_up(user, world.charge_amount(&mut w.rng))
                    .and_then(|started| {
                        let widget = started.widget().ok_or(Error::ZeroAmount)?;
                        let redirect = self.1.pay(&widget).map_err(|_| Error::ZeroAmount)?;
                        shop.confirm_payment(user, started.id, &redirect)
                    })
                    .map(drop)
                    .map_err(refused)
            }
            Op::Cart => {
                let (user, product) = (world.user(&mut w.rng), world.product(&mut w.rng));
                match shop.add_to_cart(user, product, 1 + w.rng.below(3) as u32) {
                    Err(Error::AlreadyInCart { item, .. }) => {
                        shop.remove_from_cart(user, item).map_err(refused)
                    }
                    other => other.map(drop).map_err(refused),
                }
            }
            Op::Order => {
                // A third of the orders use a coupon this worker saw issued.
                let (user, coupon) = match w.coupons.len() {
                    n if n > 0 && w.rng.chance(0.33) => {
                        let (user, coupon) = w.coupons.swap_remove(w.rng.below(n as u64) as usize);
                        (user, Some(coupon))
                    }
                    _ => (world.user(&mut w.rng), None),
                };
                let request = OrderRequest {
                    lines: world.order_lines(&mut w.rng),
                    coupon,
                };
                match shop.place_order(user, request) {
                    Ok(order) => {
                        w.orders.push_back((user, order.id));
                        Ok(())
                    }
                    Err(err) => Err(refused(err)),
                }
            }
            Op::Pay => {
                // By tender: a third wholly by balance, a third wholly by
                // card, a third half and half; one card payment in twenty
                // is abandoned in the widget (expiry ends it) and one in
                // twenty comes back with a tampered amount (refused).
                let (user, order) = w.orders.pop_front()?;
                let total = match shop.order(user, order) {
                    Ok(o) => o.total,
                    Err(err) => return Some(Err(refused(err))),
                };
                let balance_part = match w.rng.below(3) {
                    0 => total,
                    1 => Money::ZERO,
                    _ => Money::new(total.won() / 2).expect("half a total"),
                };
                let paid = shop
                    .start_payment(user, order, balance_part)
                    .and_then(|started| {
                        let Some(widget) = started.widget() else {
                            return Ok(true);
                        };
                        match w.rng.below(20) {
                            0 => return Ok(false),
                            1 => {
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
                            _ => {}
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
            Op::Cancel => {
                let (user, order) = w.orders.pop_back()?;
                shop.cancel_order(user, order).map(drop).map_err(refused)
            }
            Op::Coupon => {
                let user = world.user(&mut w.rng);
                let coupon = CouponId::new(1 + w.rng.below(COUPONS as u64) as i64);
                match shop.issue_coupon(user, coupon) {
                    Ok(_) => {
                        w.coupons.push((user, coupon));
                        Ok(())
                    }
                    Err(err) => Err(refused(err)),
                }
            }
            Op::Refund => {
                // Half the refunds return the whole order; the others one
                // unit of its first line not yet refunded, and keep the order
                // for a later refund while units remain.
                let (user, order) = w.paid.pop_front()?;
                if w.rng.chance(0.5) {
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
            Op::Read => shop
                .product(world.product(&mut w.rng))
                .map(drop)
                .map_err(refused),
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
                        let Some(result) = target.run(op, &mut worker, world) else {
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

fn unsettled(place: &Place) -> i64 {
    Peek::open(place).count(
        "SELECT (SELECT count(*) FROM payments WHERE status IN ('requested', 'unknown'))
              + (SELECT count(*) FROM refunds WHERE status IN ('requested', 'unknown'))",
    )
}

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn law_name(law: Law) -> &'static str {
    match law {
        Law::BalanceIsLedgerSum => "audit: balance = ledger sum for every user",
        Law::BalanceNotNegative => "audit: no balance below zero",
        Law::MoneyConserved => "audit: charges = balances + held by payments + kept",
        Law::PaidOrdersMatchPayments => "audit: kept by payments = paid orders less refunds",
        Law::StockConserved => "audit: units stocked = on hand + held, per product",
        Law::HeldUnitsMatchOrders => "audit: units held = live orders' units not refunded",
        Law::OrderTotalsMatchLines => "audit: order totals = their lines",
        Law::OneApprovedPaymentPerPaidOrder => "audit: one approved payment per paid order",
        Law::RefundsAgree => "audit: payment, order, refunds and ledger agree on refunds",
        Law::CouponsWithinQuantity => "audit: coupons issued <= quantity, = holders",
        Law::CouponsUsedByLiveOrders => "audit: a coupon is used exactly by its live order",
        Law::EventFeedWithoutGaps => "audit: event feed without gaps",
        Law::SalesMatchPaidLines => "audit: per-day sales = recount of paid lines",
        _ => "audit: a law this loadgen does not know",
    }
}

fn invariants(place: &Place, fake: Option<&FakeGateway>) -> Vec<Check> {
    // The audit first: on PostgreSQL it also numbers any event still
    // waiting for its number, so the feed counted below is settled.
    let audit = place
        .builder()
        .existing_only()
        .build()
        .and_then(|shop| shop.audit())
        .expect("audit the shop");
    let mut peek = Peek::open(place);
    let mut count = |sql: &str| -> i64 { peek.count(sql) };
    let mut checks = Vec::new();
    let mut check = |name, bad: i64, detail: String| {
        checks.push(Check {
            name,
            ok: bad == 0,
            detail,
        })
    };

    // The conservation laws, checked once, by the shop's own audit.
    for law in Law::ALL {
        let broken: Vec<&Violation> = audit.violations.iter().filter(|v| v.law == law).collect();
        let detail = match broken.first() {
            None => "holds".to_owned(),
            Some(v) => format!(
                "{} breaches, e.g. {}: expected {}, found {}",
                broken.len(),
                v.subject,
                v.expected,
                v.found
            ),
        };
        check(law_name(law), broken.len() as i64, detail);
    }
    let unlisted = audit
        .violations
        .iter()
        .filter(|v| !Law::ALL.contains(&v.law))
        .count() as i64;
    check(
        "audit: no other breach",
        unlisted,
        format!("{unlisted} breaches"),
    );

    let bad = count("SELECT count(*) FROM payments WHERE status IN ('requested', 'unknown')");
    check(
        "no payment left requested/unknown after reconciliation",
        bad,
        format!("{bad} payments"),
    );

    let bad = count("SELECT count(*) FROM refunds WHERE status IN ('requested', 'unknown')");
    check(
        "no refund left requested/unknown after reconciliation",
        bad,
        format!("{bad} refunds"),
    );

    let expected = count(
        "SELECT (SELECT count(*) FROM orders)
              + (SELECT count(*) FROM orders WHERE status = 'cancelled')
              + (SELECT count(*) FROM payments WHERE kind = 'order')
              + (SELECT count(*) FROM payments WHERE kind = 'order'
                   AND status IN ('approved', 'refunded', 'declined'))
              + (SELECT count(*) FROM refunds WHERE status = 'completed'
                   AND order_id IS NOT NULL)",
    );
    // (The feed is of orders: a top-up and its refunds have no events.)
    let events = count("SELECT count(*) FROM events");
    let gaps = count(match place {
        Place::File(_) => {
            "SELECT coalesce(max(seq) - min(seq) + 1 - count(*), 0)
                  + coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)
                  - coalesce(max(seq), 0)
             FROM events"
        }
        // Numbers are given after commit, from `feed_head`; an event still
        // without one (negative) counts as missing.
        Place::Postgres { .. } => {
            "SELECT coalesce(max(seq) - min(seq) + 1 - count(*), 0)
                  + (SELECT last FROM feed_head) - coalesce(max(seq), 0)
                  + (SELECT count(*) FROM events WHERE seq < 0)
             FROM events WHERE seq > 0"
        }
    });
    check(
        "one event per state change, sequence without gaps",
        (events - expected).abs() + gaps.abs(),
        format!("{events} events for {expected} changes; {gaps} missing numbers"),
    );

    if let Some(fake) = fake {
        // Only payments with a PG part reached the PG.
        let approved = peek.pairs(
            "SELECT pg_order_id, pg_refunded FROM payments
             WHERE status IN ('approved', 'refunded') AND pg_amount > 0",
        );
        let parts = peek.pairs(
            "SELECT pg_order_id, pg_amount FROM payments
             WHERE status IN ('approved', 'refunded') AND pg_amount > 0",
        );
        let missing = approved
            .iter()
            .filter(|(id, _)| fake.approval(id).is_none())
            .count() as i64;
        let took_other = parts
            .iter()
            .filter(|(id, part)| {
                fake.approval(id)
                    .is_some_and(|a| a.approved_amount.won() != *part)
            })
            .count() as i64;
        check(
            "what the PG took of each payment = the PG part the shop recorded",
            took_other,
            format!("{took_other} payments where the PG took another amount"),
        );
        let extra = fake.approved_count() as i64 - approved.len() as i64;
        check(
            "each approved payment was approved by the PG exactly once, and no other",
            missing + extra.abs(),
            format!("{missing} not approved by the PG, {extra} approved by the PG only"),
        );
        let cancels = fake.cancelled_by_order();
        let differ = approved
            .iter()
            .filter(|(id, refunded)| fake.cancelled(id).won() != *refunded)
            .count() as i64;
        let known: HashSet<&str> = approved.iter().map(|(id, _)| id.as_str()).collect();
        let stray = cancels
            .keys()
            .filter(|id| !known.contains(id.as_str()))
            .count() as i64;
        check(
            "what the PG cancelled of each payment = what the shop refunded of its PG part",
            differ + stray,
            format!("{differ} payments differ, {stray} cancelled by the PG only"),
        );
    }
    checks
}

fn throughput(stats: &Stats, elapsed: Duration) -> f64 {
    stats.count as f64 / elapsed.as_secs_f64()
}

/// liteshop's throughput for `op` as a multiple of the raw baseline's.
fn ratio(
    op: Op,
    stats: &Stats,
    elapsed: Duration,
    baseline: Option<&(BTreeMap<Op, Stats>, Duration)>,
) -> Option<f64> {
    let (raw, raw_elapsed) = baseline?;
    raw.get(&op)
        .map(|r| throughput(stats, elapsed) / throughput(r, *raw_elapsed))
}

fn report(
    args: &Args,
    stats: &BTreeMap<Op, Stats>,
    elapsed: Duration,
    baseline: Option<&(BTreeMap<Op, Stats>, Duration)>,
    place: &Place,
    checks: &[Check],
    rounds: u32,
) -> Value {
    let mut peek = Peek::open(place);
    let mut by_status =
        |sql: &str| -> HashMap<String, i64> { peek.pairs(sql).into_iter().collect() };
    let mut ops = serde_json::Map::new();
    for (op, s) in stats {
        let mut entry = json!({
            "count": s.count,
            "ok": s.ok,
            "refused": s.refused,
            "throughput": throughput(s, elapsed),
            "p50_us": s.latency_us.value_at_quantile(0.5),
            "p99_us": s.latency_us.value_at_quantile(0.99),
            "p999_us": s.latency_us.value_at_quantile(0.999),
            "max_us": s.latency_us.max(),
        });
        if let Some((raw, raw_elapsed)) = baseline
            && let Some(r) = raw.get(op)
        {
            entry["raw_throughput"] = json!(throughput(r, *raw_elapsed));
        }
        if let Some(ratio) = ratio(*op, s, elapsed, baseline) {
            entry["ratio"] = json!(ratio);
        }
        ops.insert(op.name().into(), entry);
    }
    json!({
        "config": {
            "threads": args.threads,
            "seconds": elapsed.as_secs_f64(),
            "users": args.users,
            "products": args.products,
            "stock": args.stock,
            "mix": args.mix,
            "hot": args.hot,
            "durability": format!("{:?}", args.durability).to_lowercase(),
            "writer": format!("{:?}", args.writer).to_lowercase(),
            "gateway": if args.pg_url.is_some() { "http" } else { "fake" },
            "backend": place.backend(),
        },
        "ops": ops,
        "payments": by_status("SELECT status, count(*) FROM payments GROUP BY status"),
        "orders": by_status("SELECT status, count(*) FROM orders GROUP BY status"),
        "reconcile_rounds": rounds,
        "invariants": checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
        "invariants_held": checks.iter().all(|c| c.ok),
    })
}

fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1_000.0)
}

fn print_table(
    args: &Args,
    stats: &BTreeMap<Op, Stats>,
    elapsed: Duration,
    baseline: Option<&(BTreeMap<Op, Stats>, Duration)>,
    report: &Value,
    checks: &[Check],
) {
    println!(
        "liteshop: {} threads, {:.1} s, durability {:?}, writer {:?}",
        args.threads,
        elapsed.as_secs_f64(),
        args.durability,
        args.writer
    );
    println!(
        "{:<7} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}  {:<7} refused",
        "op", "count", "ok", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "vs raw"
    );
    for (op, s) in stats {
        let ratio = ratio(*op, s, elapsed, baseline).map_or("-".to_owned(), |r| format!("{r:.2}x"));
        let refused: Vec<String> = s.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "{:<7} {:>8} {:>8} {:>10.0} {:>9} {:>9} {:>9} {:>9}  {:<7} {}",
            op.name(),
            s.count,
            s.ok,
            throughput(s, elapsed),
            ms(s.latency_us.value_at_quantile(0.5)),
            ms(s.latency_us.value_at_quantile(0.99)),
            ms(s.latency_us.value_at_quantile(0.999)),
            ms(s.latency_us.max()),
            ratio,
            refused.join(", ")
        );
    }
    if let Some((raw, raw_elapsed)) = baseline {
        println!(
            "raw {} baseline, same mix, {:.1} s:",
            if args
                .db
                .as_ref()
                .is_some_and(|db| db.to_string_lossy().starts_with("postgres"))
            {
                "postgres"
            } else {
                "rusqlite"
            },
            raw_elapsed.as_secs_f64()
        );
        for (op, r) in raw {
            println!(
                "  {:<7} {:>10.0} ops/s  p99.9 {} ms",
                op.name(),
                throughput(r, *raw_elapsed),
                ms(r.latency_us.value_at_quantile(0.999))
            );
        }
    }
    println!("payments: {}", report["payments"]);
    println!("orders:   {}", report["orders"]);
    println!("invariants:");
    for c in checks {
        println!(
            "  [{}] {} ({})",
            if c.ok { "ok" } else { "FAILED" },
            c.name,
            c.detail
        );
    }
    if checks.iter().all(|c| c.ok) {
        println!("all invariants held");
    } else {
        println!("SOME INVARIANTS FAILED");
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

/// The same statements as liteshop, written directly on one rusqlite
/// connection per thread: no pool, no validation layer, no result structs.
mod raw {
    use super::*;

    pub(super) struct Raw {
        pub(super) gateway: RandomGateway,
        pub(super) durability: DurabilityArg,
    }

    type R<T> = Result<T, String>;

    fn sql(err: rusqlite::Error) -> String {
        format!("sql: {err}")
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    impl Target for Raw {
        fn run(&self, op: Op, w: &mut Worker, world: &World) -> Option<R<()>> {
            let mut conn = match w.conn.take().expect("a raw connection") {
                RawConn::File(conn) => conn,
                #[cfg(feature = "postgres")]
                RawConn::Postgres(mut conn) => {
                    let result = raw_pg::run(&mut conn, &self.gateway, op, w, world);
                    w.conn = Some(RawConn::Postgres(conn));
                    return result;
                }
            };
            if conn.is_autocommit() {
                let sync = match self.durability {
                    DurabilityArg::Full => "FULL",
                    DurabilityArg::Normal => "NORMAL",
                };
                let _ = conn.pragma_update(None, "synchronous", sync);
            }
            let result = match op {
                Op::Charge => {
                    let user = world.user(&mut w.rng);
                    Some(charge(
                        &mut conn,
                        &self.gateway,
                        user.get(),
                        1_000 * (1 + w.rng.below(50) as i64),
                    ))
                }
                Op::Cart => Some(cart(
                    &mut conn,
                    world.user(&mut w.rng).get(),
                    world.product(&mut w.rng).get(),
                    1 + w.rng.below(3) as i64,
                )),
                Op::Order => {
                    let user = world.user(&mut w.rng);
                    let lines = world.order_lines(&mut w.rng);
                    Some(
                        order(&mut conn, user.get(), &lines)
                            .map(|id| w.orders.push_back((user, OrderId::new(id)))),
                    )
                }
                Op::Pay => {
                    let tender = w.rng.below(3);
                    w.orders.pop_front().map(|(user, order)| {
                        pay(&mut conn, &self.gateway, user.get(), order.get(), tender)
                    })
                }
                Op::Cancel => w
                    .orders
                    .pop_back()
                    .map(|(user, order)| cancel(&mut conn, user.get(), order.get())),
                // The baseline has no refunds or coupons: skipped there.
                Op::Refund | Op::Coupon => None,
                Op::Read => Some(read(&conn, world.product(&mut w.rng).get())),
            };
            w.conn = Some(RawConn::File(conn));
            result
        }
    }

    fn exists(tx: &Connection, sql_text: &str, id: i64) -> R<bool> {
        tx.prepare_cached(sql_text)
            .map_err(sql)?
            .query_row([id], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(sql)
    }

    fn post(
        tx: &Connection,
        user: i64,
        kind: &str,
        signed: i64,
        payment: Option<i64>,
        now: i64,
    ) -> R<()> {
        let balance: i64 = tx
            .prepare_cached("SELECT amount FROM balances WHERE user_id = ?1")
            .map_err(sql)?
            .query_row([user], |r| r.get(0))
            .map_err(sql)?;
        let after = balance + signed;
        tx.prepare_cached("UPDATE balances SET amount = ?2, updated_at = ?3 WHERE user_id = ?1")
            .map_err(sql)?
            .execute((user, after, now))
            .map_err(sql)?;
        tx.prepare_cached(
            "INSERT INTO ledger (user_id, kind, amount, balance_after, payment_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(sql)?
        .execute((user, kind, signed, after, payment, now))
        .map_err(sql)?;
        Ok(())
    }

    /// A top-up as liteshop runs it: started (one transaction), paid in
    /// the widget, confirmed and recorded (two more).
    fn charge(conn: &mut Connection, gateway: &RandomGateway, user: i64, amount: i64) -> R<()> {
        let now = now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        if !exists(&tx, "SELECT 1 FROM users WHERE id = ?1", user)? {
            return Err("NotFound".into());
        }
        let _in_flight: i64 = tx
            .prepare_cached(
                "SELECT coalesce(sum(CASE WHEN kind = 'top_up' THEN pg_amount
                                     ELSE balance_amount END), 0) FROM payments
                 WHERE user_id = ?1 AND status IN ('started', 'requested', 'unknown')",
            )
            .map_err(sql)?
            .query_row([user], |r| r.get(0))
            .map_err(sql)?;
        let started = insert_started(&tx, None, user, 0, amount, now)?;
        tx.commit().map_err(sql)?;
        confirm(conn, gateway, user, None, &started, now)
    }

    /// A payment attempt as `insert_started` saved it.
    struct Started {
        id: i64,
        pg_order_id: String,
        key: String,
        balance_part: i64,
        pg_part: i64,
    }

    /// Saves a `started` payment (of `order`, or a top-up), with its
    /// history's first row.
    fn insert_started(
        tx: &Connection,
        order: Option<i64>,
        user: i64,
        balance_part: i64,
        pg_part: i64,
        now: i64,
    ) -> R<Started> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pg_order_id = format!("raw-{}-{n}", order.unwrap_or(0));
        let key = format!("raw-pay-{n}");
        let kind = if order.is_some() { "order" } else { "top_up" };
        let id: i64 = tx
            .prepare_cached(
                "INSERT INTO payments (order_id, user_id, amount, status, pg_order_id,
                                       idempotency_key, created_at, updated_at, kind,
                                       balance_amount, pg_amount, order_name, customer_key,
                                       expires_at)
                 VALUES (?1, ?2, ?3, 'started', ?4, ?5, ?6, ?6, ?7, ?8, ?9, 'Raw', 'raw-c', ?6)
                 RETURNING id",
            )
            .map_err(sql)?
            .query_row(
                (
                    order,
                    user,
                    balance_part + pg_part,
                    &pg_order_id,
                    &key,
                    now,
                    kind,
                    balance_part,
                    pg_part,
                ),
                |r| r.get(0),
            )
            .map_err(sql)?;
        event(tx, id, "started", now)?;
        Ok(Started {
            id,
            pg_order_id,
            key,
            balance_part,
            pg_part,
        })
    }

    /// The widget step, then the confirm: the key stored (`requested`, one
    /// transaction), the PG asked with no transaction open, the answer
    /// recorded (one more): an order `paid` or `pending` again (its balance
    /// part given back), a top-up credited.
    fn confirm(
        conn: &mut Connection,
        gateway: &RandomGateway,
        user: i64,
        order: Option<i64>,
        started: &Started,
        now: i64,
    ) -> R<()> {
        let amount = Money::new(started.pg_part).expect("a PG part");
        let redirect = gateway.fake.pay_in_widget(&started.pg_order_id, amount);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        tx.prepare_cached(
            "UPDATE payments SET status = 'requested', payment_key = ?2, updated_at = ?3
             WHERE id = ?1 AND status = 'started'",
        )
        .map_err(sql)?
        .execute((started.id, &redirect.payment_key, now))
        .map_err(sql)?;
        event(&tx, started.id, "requested", now)?;
        tx.commit().map_err(sql)?;

        let answer = gateway.approve(&ApproveRequest {
            payment_key: redirect.payment_key,
            pg_order_id: started.pg_order_id.clone(),
            amount,
            currency: liteshop::Currency::KRW,
            tax_free_amount: liteshop::Money::ZERO,
            idempotency_key: started.key.clone(),
            order: order.map(OrderId::new),
        });

        let payment = started.id;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let _current: String = tx
            .prepare_cached("SELECT status FROM payments WHERE id = ?1")
            .map_err(sql)?
            .query_row([payment], |r| r.get(0))
            .map_err(sql)?;
        let result = match answer {
            Ok(approval) => {
                tx.prepare_cached(
                    "UPDATE payments SET status = 'approved', pg_transaction_id = ?2, updated_at = ?3 WHERE id = ?1",
                )
                .map_err(sql)?
                .execute((payment, &approval.transaction_id, now))
                .map_err(sql)?;
                event(&tx, payment, "approved", now)?;
                match order {
                    Some(order) => set_order(&tx, order, "paying", "paid", now)?,
                    None => post(&tx, user, "top_up", started.pg_part, Some(payment), now)?,
                }
                Ok(())
            }
            Err(GatewayError::Unknown { .. }) => {
                tx.prepare_cached(
                    "UPDATE payments SET status = 'unknown', updated_at = ?2 WHERE id = ?1",
                )
                .map_err(sql)?
                .execute((payment, now))
                .map_err(sql)?;
                event(&tx, payment, "unknown", now)?;
                Err("PaymentOutcomeUnknown".to_owned())
            }
            Err(_) => {
                tx.prepare_cached(
                    "UPDATE payments SET status = 'declined', failure_code = 'X', failure_message = '', updated_at = ?2 WHERE id = ?1",
                )
                .map_err(sql)?
                .execute((payment, now))
                .map_err(sql)?;
                if started.balance_part > 0 {
                    post(
                        &tx,
                        user,
                        "payment_reversal",
                        started.balance_part,
                        Some(payment),
                        now,
                    )?;
                }
                event(&tx, payment, "declined", now)?;
                if let Some(order) = order {
                    set_order(&tx, order, "paying", "pending", now)?;
                }
                Err("PaymentDeclined".to_owned())
            }
        };
        tx.commit().map_err(sql)?;
        result
    }

    fn cart(conn: &mut Connection, user: i64, product: i64, quantity: i64) -> R<()> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        if !exists(&tx, "SELECT 1 FROM users WHERE id = ?1", user)? {
            return Err("NotFound".into());
        }
        let _product: (i64, String, i64, i64) = tx
            .prepare_cached("SELECT id, name, price, stock FROM products WHERE id = ?1")
            .map_err(sql)?
            .query_row([product], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(sql)?;
        let existing: Option<i64> = tx
            .prepare_cached("SELECT id FROM cart_items WHERE user_id = ?1 AND product_id = ?2")
            .map_err(sql)?
            .query_row((user, product), |r| r.get(0))
            .optional()
            .map_err(sql)?;
        match existing {
            Some(item) => {
                // liteshop refuses, then removes in a second transaction.
                drop(tx);
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                tx.prepare_cached("DELETE FROM cart_items WHERE id = ?1 AND user_id = ?2")
                    .map_err(sql)?
                    .execute((item, user))
                    .map_err(sql)?;
                tx.commit().map_err(sql)
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO cart_items (user_id, product_id, quantity, created_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql)?
                .execute((user, product, quantity, now()))
                .map_err(sql)?;
                tx.commit().map_err(sql)
            }
        }
    }

    fn order(conn: &mut Connection, user: i64, lines: &[OrderLine]) -> R<i64> {
        let now = now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        if !exists(&tx, "SELECT 1 FROM users WHERE id = ?1", user)? {
            return Err("NotFound".into());
        }
        let mut items = Vec::new();
        for line in lines {
            let (name, price): (String, i64) = tx
                .prepare_cached("SELECT name, price FROM products WHERE id = ?1")
                .map_err(sql)?
                .query_row([line.product.get()], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql)?;
            items.push((line.product.get(), name, price, i64::from(line.quantity)));
        }
        for (product, _, _, quantity) in &items {
            let changed = tx
                .prepare_cached(
                    "UPDATE products SET stock = stock - ?2, updated_at = ?3 WHERE id = ?1 AND stock >= ?2",
                )
                .map_err(sql)?
                .execute((product, quantity, now))
                .map_err(sql)?;
            if changed == 0 {
                return Err("Conflict".into());
            }
        }
        let total: i64 = items.iter().map(|(_, _, price, q)| price * q).sum();
        let balance: i64 = tx
            .prepare_cached("SELECT amount FROM balances WHERE user_id = ?1")
            .map_err(sql)?
            .query_row([user], |r| r.get(0))
            .map_err(sql)?;
        if balance < total {
            return Err("Conflict".into());
        }
        let id: i64 = tx
            .prepare_cached(
                "INSERT INTO orders (user_id, status, total, created_at, expires_at, updated_at)
                 VALUES (?1, 'pending', ?2, ?3, ?4, ?3) RETURNING id",
            )
            .map_err(sql)?
            .query_row((user, total, now, now + 900_000), |r| r.get(0))
            .map_err(sql)?;
        for (product, name, price, quantity) in &items {
            tx.prepare_cached(
                "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql)?
            .execute((id, product, name, price, quantity))
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    /// A payment by tender as liteshop runs it (`tender`: 0 wholly by
    /// balance, 1 wholly by card, 2 half and half): started in one
    /// transaction with the balance part held — wholly by balance, approved
    /// there — then the widget step and the confirm.
    fn pay(
        conn: &mut Connection,
        gateway: &RandomGateway,
        user: i64,
        order: i64,
        tender: u64,
    ) -> R<()> {
        let now = now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let (status, total): (String, i64) = tx
            .prepare_cached("SELECT status, total FROM orders WHERE id = ?1 AND user_id = ?2")
            .map_err(sql)?
            .query_row((order, user), |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql)?;
        let _items: Vec<i64> = tx
            .prepare_cached("SELECT product_id FROM order_items WHERE order_id = ?1 ORDER BY id")
            .map_err(sql)?
            .query_map([order], |r| r.get(0))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        if status != "pending" {
            return Err("Conflict".into());
        }
        let balance_part = match tender {
            0 => total,
            1 => 0,
            _ => total / 2,
        };
        if balance_part > 0 {
            let balance: i64 = tx
                .prepare_cached("SELECT amount FROM balances WHERE user_id = ?1")
                .map_err(sql)?
                .query_row([user], |r| r.get(0))
                .map_err(sql)?;
            if balance < balance_part {
                return Err("Conflict".into());
            }
        }
        let started = insert_started(
            &tx,
            Some(order),
            user,
            balance_part,
            total - balance_part,
            now,
        )?;
        if balance_part > 0 {
            post(&tx, user, "payment", -balance_part, Some(started.id), now)?;
        }
        set_order(&tx, order, "pending", "paying", now)?;
        if started.pg_part == 0 {
            tx.prepare_cached(
                "UPDATE payments SET status = 'approved', updated_at = ?2 WHERE id = ?1",
            )
            .map_err(sql)?
            .execute((started.id, now))
            .map_err(sql)?;
            event(&tx, started.id, "approved", now)?;
            set_order(&tx, order, "paying", "paid", now)?;
            return tx.commit().map_err(sql);
        }
        tx.commit().map_err(sql)?;
        confirm(conn, gateway, user, Some(order), &started, now)
    }

    fn event(tx: &Connection, payment: i64, status: &str, now: i64) -> R<()> {
        tx.prepare_cached(
            "INSERT INTO payment_events (payment_id, status, detail, created_at) VALUES (?1, ?2, '', ?3)",
        )
        .map_err(sql)?
        .execute((payment, status, now))
        .map_err(sql)?;
        Ok(())
    }

    fn set_order(tx: &Connection, order: i64, from: &str, to: &str, now: i64) -> R<()> {
        tx.prepare_cached(
            "UPDATE orders SET status = ?3, updated_at = ?4 WHERE id = ?1 AND status = ?2",
        )
        .map_err(sql)?
        .execute((order, from, to, now))
        .map_err(sql)?;
        Ok(())
    }

    fn cancel(conn: &mut Connection, user: i64, order: i64) -> R<()> {
        let now = now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let status: String = tx
            .prepare_cached("SELECT status FROM orders WHERE id = ?1 AND user_id = ?2")
            .map_err(sql)?
            .query_row((order, user), |r| r.get(0))
            .map_err(sql)?;
        if status != "pending" {
            return Err("Conflict".into());
        }
        tx.prepare_cached(
            "UPDATE orders SET status = 'cancelled', cancel_reason = 'user', updated_at = ?2
             WHERE id = ?1 AND status = 'pending'",
        )
        .map_err(sql)?
        .execute((order, now))
        .map_err(sql)?;
        let lines: Vec<(i64, i64)> = tx
            .prepare_cached("SELECT product_id, quantity FROM order_items WHERE order_id = ?1")
            .map_err(sql)?
            .query_map([order], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        for (product, quantity) in lines {
            tx.prepare_cached(
                "UPDATE products SET stock = stock + ?2, updated_at = ?3 WHERE id = ?1",
            )
            .map_err(sql)?
            .execute((product, quantity, now))
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    fn read(conn: &Connection, product: i64) -> R<()> {
        let _row: (i64, String, i64, i64, i64, i64) = conn
            .prepare_cached(
                "SELECT id, name, price, stock, created_at, updated_at FROM products WHERE id = ?1",
            )
            .map_err(sql)?
            .query_row([product], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(sql)?;
        Ok(())
    }
}

/// The raw baseline on PostgreSQL: the statements of [`raw`], with `$n`
/// parameters, on one plain `postgres` connection per thread, each prepared
/// once per connection, one transaction per write — and, unlike [`raw`],
/// the rows liteshop's flows write besides: the feed's events (each with a
/// provisional number and a JSON payload of the same shape) and the
/// per-day sales of a paid order, so both sides write the same rows. Where
/// liteshop takes the user's lock, these take the balance row (`FOR
/// UPDATE`) before reading it; product rows are taken in id order; a
/// deadlock or serialization failure runs the transaction again, as
/// liteshop does.
#[cfg(feature = "postgres")]
mod raw_pg {
    use super::*;
    use postgres::types::ToSql;
    use postgres::{Client, Row, Statement};

    type R<T> = Result<T, String>;

    /// What a failed statement means here: a refusal, or "run the
    /// transaction again".
    const RETRY: &str = "retry";

    pub(super) struct Conn {
        client: Client,
        statements: HashMap<&'static str, Statement>,
    }

    impl Conn {
        pub(super) fn new(client: Client) -> Conn {
            Conn {
                client,
                statements: HashMap::new(),
            }
        }

        fn statement(&mut self, sql: &'static str) -> R<Statement> {
            if let Some(statement) = self.statements.get(sql) {
                return Ok(statement.clone());
            }
            let statement = self.client.prepare(sql).map_err(err)?;
            self.statements.insert(sql, statement.clone());
            Ok(statement)
        }

        fn execute(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<u64> {
            let statement = self.statement(sql)?;
            self.client.execute(&statement, params).map_err(err)
        }

        fn opt(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<Option<Row>> {
            let statement = self.statement(sql)?;
            self.client.query_opt(&statement, params).map_err(err)
        }

        fn one(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<Row> {
            self.opt(sql, params)?.ok_or_else(|| "NotFound".to_owned())
        }

        fn all(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<Vec<Row>> {
            let statement = self.statement(sql)?;
            self.client.query(&statement, params).map_err(err)
        }

        /// Runs `body` in one transaction, again on a deadlock or
        /// serialization failure.
        fn transaction<T>(&mut self, body: impl Fn(&mut Conn) -> R<T>) -> R<T> {
            for _ in 0..8 {
                self.client.batch_execute("BEGIN").map_err(err)?;
                let result = body(self);
                let result = match result {
                    Ok(value) => self
                        .client
                        .batch_execute("COMMIT")
                        .map_err(err)
                        .map(|()| value),
                    Err(refused) => {
                        self.client.batch_execute("ROLLBACK").map_err(err)?;
                        Err(refused)
                    }
                };
                match result {
                    Err(e) if e == RETRY => continue,
                    other => return other,
                }
            }
            Err("retries exhausted".into())
        }
    }

    fn err(error: postgres::Error) -> String {
        use postgres::error::SqlState;
        match error.code() {
            Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED => RETRY.into(),
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE => RETRY.into(),
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => "Conflict".into(),
            _ => format!("sql: {error}"),
        }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Appends an event to the feed as liteshop does on PostgreSQL.
    fn feed(
        c: &mut Conn,
        user: i64,
        order: i64,
        payment: Option<i64>,
        payload: &Value,
        now: i64,
    ) -> R<()> {
        let kind = payload["kind"].as_str().unwrap_or_default().to_owned();
        c.execute(
            "INSERT INTO events (seq, kind, user_id, order_id, payment_id, refund_id, payload,
                                 created_at)
             VALUES (-nextval('events_pending'), $1, $2, $3, $4, NULL, $5, $6)",
            &[&kind, &user, &order, &payment, &payload.to_string(), &now],
        )
        .map(drop)
    }

    /// An order's lines as the feed's payloads carry them.
    fn lines_json(items: &[(i64, String, i64, i64)]) -> (Value, i64) {
        let lines: Vec<Value> = items
            .iter()
            .map(|(product, name, price, quantity)| {
                json!({"product": product, "name": name, "unit_price": price,
                       "quantity": quantity, "line_total": price * quantity,
                       "amount": price * quantity, "refunded": 0})
            })
            .collect();
        let subtotal = items.iter().map(|(_, _, price, q)| price * q).sum();
        (Value::Array(lines), subtotal)
    }

    pub(super) fn run(
        conn: &mut Conn,
        gateway: &RandomGateway,
        op: Op,
        w: &mut Worker,
        world: &World,
    ) -> Option<R<()>> {
        match op {
            Op::Charge => {
                let user = world.user(&mut w.rng).get();
                let amount = 1_000 * (1 + w.rng.below(50) as i64);
                Some(charge(conn, gateway, user, amount))
            }
            Op::Cart => {
                let (user, product) = (world.user(&mut w.rng), world.product(&mut w.rng));
                let quantity = 1 + w.rng.below(3) as i64;
                Some(cart(conn, user.get(), product.get(), quantity))
            }
            Op::Order => {
                let user = world.user(&mut w.rng);
                let lines = world.order_lines(&mut w.rng);
                Some(
                    conn.transaction(|c| order(c, user.get(), &lines))
                        .map(|id| w.orders.push_back((user, OrderId::new(id)))),
                )
            }
            Op::Pay => {
                let tender = w.rng.below(3);
                w.orders
                    .pop_front()
                    .map(|(user, order)| pay(conn, gateway, user.get(), order.get(), tender))
            }
            Op::Cancel => w
                .orders
                .pop_back()
                .map(|(user, order)| conn.transaction(|c| cancel(c, user.get(), order.get()))),
            // As on SQLite: no refunds or coupons in the baseline.
            Op::Refund | Op::Coupon => None,
            Op::Read => {
                let product = world.product(&mut w.rng).get();
                Some(
                    conn.one(
                        "SELECT id, name, price, stock, created_at, updated_at
                         FROM products WHERE id = $1",
                        &[&product],
                    )
                    .map(drop),
                )
            }
        }
    }

    fn user_exists(c: &mut Conn, user: i64) -> R<()> {
        c.one("SELECT 1 FROM users WHERE id = $1", &[&user])
            .map(drop)
    }

    /// The balance, locked until commit.
    fn balance(c: &mut Conn, user: i64) -> R<i64> {
        Ok(c.one(
            "SELECT amount FROM balances WHERE user_id = $1 FOR UPDATE",
            &[&user],
        )?
        .get(0))
    }

    fn post(
        c: &mut Conn,
        user: i64,
        kind: &str,
        signed: i64,
        payment: Option<i64>,
        now: i64,
    ) -> R<()> {
        let after = balance(c, user)? + signed;
        c.execute(
            "UPDATE balances SET amount = $2, updated_at = $3 WHERE user_id = $1",
            &[&user, &after, &now],
        )?;
        c.execute(
            "INSERT INTO ledger (user_id, kind, amount, balance_after, payment_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&user, &kind, &signed, &after, &payment, &now],
        )?;
        Ok(())
    }

    /// A top-up as liteshop runs it: started (one transaction), paid in
    /// the widget, confirmed and recorded (two more).
    fn charge(conn: &mut Conn, gateway: &RandomGateway, user: i64, amount: i64) -> R<()> {
        let now = now();
        let started = conn.transaction(|c| {
            user_exists(c, user)?;
            let _in_flight: i64 = c
                .one(
                    "SELECT coalesce(sum(CASE WHEN kind = 'top_up' THEN pg_amount
                                         ELSE balance_amount END), 0)::BIGINT FROM payments
                     WHERE user_id = $1 AND status IN ('started', 'requested', 'unknown')",
                    &[&user],
                )?
                .get(0);
            insert_started(c, None, user, 0, amount, now)
        })?;
        confirm(conn, gateway, user, None, &started, &[], now)
    }

    /// A payment attempt as `insert_started` saved it.
    struct Started {
        id: i64,
        pg_order_id: String,
        key: String,
        balance_part: i64,
        pg_part: i64,
    }

    /// Saves a `started` payment (of `order`, or a top-up), with its
    /// history's first row.
    fn insert_started(
        c: &mut Conn,
        order: Option<i64>,
        user: i64,
        balance_part: i64,
        pg_part: i64,
        now: i64,
    ) -> R<Started> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pg_order_id = format!("raw-{}-{n}", order.unwrap_or(0));
        let key = format!("raw-pay-{n}");
        let kind = if order.is_some() { "order" } else { "top_up" };
        let amount = balance_part + pg_part;
        let id: i64 = c
            .one(
                "INSERT INTO payments (order_id, user_id, amount, status, pg_order_id,
                                       idempotency_key, created_at, updated_at, kind,
                                       balance_amount, pg_amount, order_name, customer_key,
                                       expires_at)
                 VALUES ($1, $2, $3, 'started', $4, $5, $6, $6, $7, $8, $9, 'Raw', 'raw-c', $6)
                 RETURNING id",
                &[
                    &order,
                    &user,
                    &amount,
                    &pg_order_id,
                    &key,
                    &now,
                    &kind,
                    &balance_part,
                    &pg_part,
                ],
            )?
            .get(0);
        event(c, id, "started", now)?;
        Ok(Started {
            id,
            pg_order_id,
            key,
            balance_part,
            pg_part,
        })
    }

    /// The widget step, then the confirm: the key stored (`requested`, one
    /// transaction), the PG asked with no transaction open, the answer
    /// recorded (one more), with the feed and the sales of an order.
    fn confirm(
        conn: &mut Conn,
        gateway: &RandomGateway,
        user: i64,
        order: Option<i64>,
        started: &Started,
        items: &[(i64, String, i64, i64)],
        now: i64,
    ) -> R<()> {
        let amount = Money::new(started.pg_part).expect("a PG part");
        let redirect = gateway.fake.pay_in_widget(&started.pg_order_id, amount);
        let payment = started.id;
        conn.transaction(|c| {
            c.execute(
                "UPDATE payments SET status = 'requested', payment_key = $2, updated_at = $3
                 WHERE id = $1 AND status = 'started'",
                &[&payment, &redirect.payment_key, &now],
            )?;
            event(c, payment, "requested", now)
        })?;

        let answer = gateway.approve(&ApproveRequest {
            payment_key: redirect.payment_key.clone(),
            pg_order_id: started.pg_order_id.clone(),
            amount,
            currency: liteshop::Currency::KRW,
            tax_free_amount: liteshop::Money::ZERO,
            idempotency_key: started.key.clone(),
            order: order.map(OrderId::new),
        });
        let total = started.balance_part + started.pg_part;

        conn.transaction(|c| {
            let _current: String = c
                .one("SELECT status FROM payments WHERE id = $1", &[&payment])?
                .get(0);
            match &answer {
                Ok(approval) => {
                    c.execute(
                        "UPDATE payments SET status = 'approved', pg_transaction_id = $2,
                                updated_at = $3 WHERE id = $1",
                        &[&payment, &approval.transaction_id, &now],
                    )?;
                    event(c, payment, "approved", now)?;
                    match order {
                        Some(order) => paid(c, user, order, payment, total, items, now)?,
                        None => post(c, user, "top_up", started.pg_part, Some(payment), now)?,
                    }
                    Ok(Ok(()))
                }
                Err(GatewayError::Unknown { .. }) => {
                    c.execute(
                        "UPDATE payments SET status = 'unknown', updated_at = $2 WHERE id = $1",
                        &[&payment, &now],
                    )?;
                    event(c, payment, "unknown", now)?;
                    Ok(Err("PaymentOutcomeUnknown".to_owned()))
                }
                Err(_) => {
                    c.execute(
                        "UPDATE payments SET status = 'declined', failure_code = 'X',
                                failure_message = '', updated_at = $2 WHERE id = $1",
                        &[&payment, &now],
                    )?;
                    if started.balance_part > 0 {
                        let back = started.balance_part;
                        post(c, user, "payment_reversal", back, Some(payment), now)?;
                    }
                    event(c, payment, "declined", now)?;
                    if let Some(order) = order {
                        set_order(c, order, "paying", "pending", now)?;
                        feed(
                            c,
                            user,
                            order,
                            Some(payment),
                            &json!({"kind": "payment_declined", "amount": total, "code": "X",
                                    "message": ""}),
                            now,
                        )?;
                    }
                    Ok(Err("PaymentDeclined".to_owned()))
                }
            }
        })?
    }

    /// An approved payment's order: `paid`, its sales counted, the feed told.
    fn paid(
        c: &mut Conn,
        user: i64,
        order: i64,
        payment: i64,
        total: i64,
        items: &[(i64, String, i64, i64)],
        now: i64,
    ) -> R<()> {
        set_order(c, order, "paying", "paid", now)?;
        c.execute(
            "INSERT INTO sales_daily (day, product_id, units, revenue)
             SELECT $1, product_id, quantity, amount FROM order_items
             WHERE order_id = $2 ORDER BY product_id
             ON CONFLICT (day, product_id) DO UPDATE
             SET units = sales_daily.units + excluded.units,
                 revenue = sales_daily.revenue + excluded.revenue",
            &[&now.div_euclid(86_400_000), &order],
        )?;
        let (lines, subtotal) = lines_json(items);
        feed(
            c,
            user,
            order,
            Some(payment),
            &json!({"kind": "payment_approved", "amount": total, "lines": lines,
                    "subtotal": subtotal, "discount": 0, "coupon": null}),
            now,
        )
    }

    fn cart(c: &mut Conn, user: i64, product: i64, quantity: i64) -> R<()> {
        let existing = c.transaction(|c| {
            user_exists(c, user)?;
            c.one(
                "SELECT id, name, price, stock FROM products WHERE id = $1",
                &[&product],
            )?;
            let existing = c.opt(
                "SELECT id FROM cart_items WHERE user_id = $1 AND product_id = $2",
                &[&user, &product],
            )?;
            match existing {
                Some(row) => Ok(Some(row.get::<_, i64>(0))),
                None => c
                    .execute(
                        "INSERT INTO cart_items (user_id, product_id, quantity, created_at)
                         VALUES ($1, $2, $3, $4)",
                        &[&user, &product, &quantity, &now()],
                    )
                    .map(|_| None),
            }
        })?;
        // liteshop refuses, then removes in a second transaction.
        if let Some(item) = existing {
            c.transaction(|c| {
                c.execute(
                    "DELETE FROM cart_items WHERE id = $1 AND user_id = $2",
                    &[&item, &user],
                )
                .map(drop)
            })?;
        }
        Ok(())
    }

    fn order(c: &mut Conn, user: i64, lines: &[OrderLine]) -> R<i64> {
        let now = now();
        user_exists(c, user)?;
        let mut items = Vec::new();
        for line in lines {
            let row = c.one(
                "SELECT name, price FROM products WHERE id = $1",
                &[&line.product.get()],
            )?;
            items.push((
                line.product.get(),
                row.get::<_, String>(0),
                row.get::<_, i64>(1),
                i64::from(line.quantity),
            ));
        }
        items.sort_by_key(|item| item.0);
        for (product, _, _, quantity) in &items {
            let changed = c.execute(
                "UPDATE products SET stock = stock - $2, updated_at = $3
                 WHERE id = $1 AND stock >= $2",
                &[product, quantity, &now],
            )?;
            if changed == 0 {
                return Err("Conflict".into());
            }
        }
        let total: i64 = items.iter().map(|(_, _, price, q)| price * q).sum();
        if balance(c, user)? < total {
            return Err("Conflict".into());
        }
        let id: i64 = c
            .one(
                "INSERT INTO orders (user_id, status, total, created_at, expires_at, updated_at)
                 VALUES ($1, 'pending', $2, $3, $4, $3) RETURNING id",
                &[&user, &total, &now, &(now + 900_000)],
            )?
            .get(0);
        let (lines, subtotal) = lines_json(&items);
        feed(
            c,
            user,
            id,
            None,
            &json!({"kind": "order_placed", "lines": lines, "subtotal": subtotal,
                    "discount": 0, "total": total, "coupon": null}),
            now,
        )?;
        for (product, name, price, quantity) in &items {
            c.execute(
                "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity,
                                          amount)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, product, name, price, quantity, &(price * quantity)],
            )?;
        }
        Ok(id)
    }

    /// A payment by tender as liteshop runs it (`tender`: 0 wholly by
    /// balance, 1 wholly by card, 2 half and half): started in one
    /// transaction with the balance part held — wholly by balance, approved
    /// there — then the widget step and the confirm.
    fn pay(c: &mut Conn, gateway: &RandomGateway, user: i64, order: i64, tender: u64) -> R<()> {
        let now = now();
        let (started, items) = c.transaction(|c| {
            let row = c.one(
                "SELECT status, total FROM orders WHERE id = $1 AND user_id = $2",
                &[&order, &user],
            )?;
            let (status, total): (String, i64) = (row.get(0), row.get(1));
            let items: Vec<(i64, String, i64, i64)> = c
                .all(
                    "SELECT product_id, name, unit_price, quantity FROM order_items
                     WHERE order_id = $1 ORDER BY id",
                    &[&order],
                )?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
                .collect();
            if status != "pending" {
                return Err("Conflict".into());
            }
            let balance_part = match tender {
                0 => total,
                1 => 0,
                _ => total / 2,
            };
            if balance_part > 0 && balance(c, user)? < balance_part {
                return Err("Conflict".into());
            }
            let started = insert_started(
                c,
                Some(order),
                user,
                balance_part,
                total - balance_part,
                now,
            )?;
            if balance_part > 0 {
                post(c, user, "payment", -balance_part, Some(started.id), now)?;
            }
            set_order(c, order, "pending", "paying", now)?;
            feed(
                c,
                user,
                order,
                Some(started.id),
                &json!({"kind": "payment_requested", "amount": total}),
                now,
            )?;
            if started.pg_part == 0 {
                c.execute(
                    "UPDATE payments SET status = 'approved', updated_at = $2 WHERE id = $1",
                    &[&started.id, &now],
                )?;
                event(c, started.id, "approved", now)?;
                paid(c, user, order, started.id, total, &items, now)?;
            }
            Ok((started, items))
        })?;
        if started.pg_part == 0 {
            return Ok(());
        }
        confirm(c, gateway, user, Some(order), &started, &items, now)
    }

    fn event(c: &mut Conn, payment: i64, status: &str, now: i64) -> R<()> {
        c.execute(
            "INSERT INTO payment_events (payment_id, status, detail, created_at)
             VALUES ($1, $2, '', $3)",
            &[&payment, &status, &now],
        )
        .map(drop)
    }

    fn set_order(c: &mut Conn, order: i64, from: &str, to: &str, now: i64) -> R<()> {
        c.execute(
            "UPDATE orders SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
            &[&order, &from, &to, &now],
        )
        .map(drop)
    }

    fn cancel(c: &mut Conn, user: i64, order: i64) -> R<()> {
        let now = now();
        let status: String = c
            .one(
                "SELECT status FROM orders WHERE id = $1 AND user_id = $2",
                &[&order, &user],
            )?
            .get(0);
        if status != "pending" {
            return Err("Conflict".into());
        }
        c.execute(
            "UPDATE orders SET status = 'cancelled', cancel_reason = 'user', updated_at = $2
             WHERE id = $1 AND status = 'pending'",
            &[&order, &now],
        )?;
        let lines = c.all(
            "SELECT product_id, quantity FROM order_items WHERE order_id = $1
             ORDER BY product_id",
            &[&order],
        )?;
        for line in lines {
            let (product, quantity): (i64, i64) = (line.get(0), line.get(1));
            c.execute(
                "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1",
                &[&product, &quantity, &now],
            )?;
        }
        feed(
            c,
            user,
            order,
            None,
            &json!({"kind": "order_cancelled"}),
            now,
        )
    }
}
