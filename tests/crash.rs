//! Kill -9 in the middle of payments and refunds: a child process pays
//! orders and refunds some of them (whole or in part) in a loop against a
//! file database and a gateway whose approvals and cancels are written to
//! its own append-only file (the PG's record, which survives the kill). The
//! parent kills it at a random moment — before, during or after a gateway
//! call — reopens, reconciles with a gateway that answers from that record,
//! and checks that nothing was lost or invented: for every payment, what the
//! PG cancelled equals what the shop's completed refunds gave back.
//!
//! `LITESHOP_CRASH_ROUNDS` sets the number of kills (default 50) for soak
//! runs.

mod common;
#[path = "../examples/support/fake_pg_server.rs"]
#[allow(dead_code)]
mod fake_pg_server;

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::Target;
use liteshop::{
    Approval, ApproveRequest, CancelRequest, Cancellation, GatewayError, Money, NewProduct,
    OrderLine, PaymentGateway, PgStatus, ProductId, StatusRequest, UserId,
};

const USERS: i64 = 5;
const PRODUCTS: i64 = 3;
const INITIAL_STOCK: u32 = 1_000_000;
const CHILD_DB: &str = "LITESHOP_CRASH_DB";
const CHILD_PG: &str = "LITESHOP_CRASH_PG";
const CHILD_FEED: &str = "LITESHOP_CRASH_FEED";
const CHILD_SCHEMA: &str = "LITESHOP_CRASH_SCHEMA";
const CHILD_PG_URL: &str = "LITESHOP_CRASH_PG_URL";
/// A file the child creates once its shop is open and its pump started.
const CHILD_READY: &str = "LITESHOP_CRASH_READY";
/// The secret key of the Toss double the second crash test runs against.
const DOUBLE_SECRET: &str = "test_sk_crash";
const CONSUMER: &str = "crash-sink";

/// A PG whose record is an append-only file, synced before it answers.
/// Lines: `A <pg_order_id> <amount>` (approved), `D <pg_order_id>`
/// (declined), `C <key> <pg_order_id> <amount>` (cancelled) or `X <key>`
/// (cancel declined). About one attempt in five is declined, by its id or
/// key; a cancel of more than is left is declined too.
struct FileGateway {
    path: PathBuf,
    in_flight: Duration,
    lock: Mutex<()>,
}

impl FileGateway {
    fn new(path: &Path, in_flight: Duration) -> FileGateway {
        FileGateway {
            path: path.to_path_buf(),
            in_flight,
            lock: Mutex::new(()),
        }
    }

    fn approval(pg_order_id: &str, amount: i64) -> Approval {
        Approval {
            transaction_id: format!("file-{pg_order_id}"),
            approved_amount: Money::new(amount).unwrap(),
            approved_at: String::new(),
            cancels: Vec::new(),
        }
    }
}

/// The PG's record: pg_order_id → Some(amount) if approved, None if declined.
fn read_record(path: &Path) -> HashMap<String, Option<i64>> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["A", id, amount] => Some((id.to_string(), Some(amount.parse().ok()?))),
                ["D", id] => Some((id.to_string(), None)),
                _ => None, // a line torn by the kill never counted
            }
        })
        .collect()
}

/// The PG's cancels: key → Some((pg_order_id, amount)) if cancelled, None
/// if declined.
fn read_cancels(path: &Path) -> HashMap<String, Option<(String, i64)>> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["C", key, id, amount] => Some((
                    key.to_string(),
                    Some((id.to_string(), amount.parse().ok()?)),
                )),
                ["X", key] => Some((key.to_string(), None)),
                _ => None,
            }
        })
        .collect()
}

/// What the PG cancelled per payment attempt.
fn cancelled_by_pg(path: &Path) -> HashMap<String, i64> {
    let mut cancelled = HashMap::new();
    for (id, amount) in read_cancels(path).into_values().flatten() {
        *cancelled.entry(id).or_default() += amount;
    }
    cancelled
}

fn append(path: &Path, line: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(line.as_bytes()).unwrap();
    file.sync_data().unwrap();
}

fn declined(reply: Option<i64>, pg_order_id: &str) -> Result<Approval, GatewayError> {
    match reply {
        Some(amount) => Ok(FileGateway::approval(pg_order_id, amount)),
        None => Err(GatewayError::Declined {
            code: "REJECT_CARD_PAYMENT".into(),
            message: "declined by the file PG".into(),
        }),
    }
}

impl PaymentGateway for FileGateway {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        let _one_at_a_time = self.lock.lock().unwrap();
        let id = &request.pg_order_id;
        // Like the real PG, it confirms only what its widget issued: the
        // key `widget_key` names for this orderId (see `widget_redirect`).
        if request.payment_key != widget_key(id) {
            return Err(GatewayError::Declined {
                code: "NOT_FOUND_PAYMENT".into(),
                message: "no payment was authorised with this paymentKey".into(),
            });
        }
        if let Some(&reply) = read_record(&self.path).get(id) {
            return declined(reply, id);
        }
        thread::sleep(self.in_flight); // the request is on the wire
        let decline = id.ends_with(['0', '1', '2']);
        let line = if decline {
            format!("D {id}\n")
        } else {
            format!("A {id} {}\n", request.amount.won())
        };
        append(&self.path, &line);
        thread::sleep(self.in_flight); // the reply is on the wire
        declined((!decline).then_some(request.amount.won()), id)
    }

    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        Ok(match read_record(&self.path).get(&request.pg_order_id) {
            Some(Some(amount)) => {
                PgStatus::Approved(FileGateway::approval(&request.pg_order_id, *amount))
            }
            Some(None) => PgStatus::Declined {
                code: "REJECT_CARD_PAYMENT".into(),
                message: "declined by the file PG".into(),
            },
            None => PgStatus::NotFound,
        })
    }

    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        let _one_at_a_time = self.lock.lock().unwrap();
        let key = &request.idempotency_key;
        let refused = || GatewayError::Declined {
            code: "NOT_CANCELABLE_AMOUNT".into(),
            message: "declined by the file PG".into(),
        };
        let done = || Cancellation {
            cancelled_amount: request.amount,
            transaction_key: format!("file-{key}"),
        };
        if let Some(reply) = read_cancels(&self.path).get(key) {
            return reply.as_ref().map(|_| done()).ok_or_else(refused);
        }
        let approved = read_record(&self.path)
            .get(&request.pg_order_id)
            .copied()
            .flatten()
            .unwrap_or(0);
        let left = approved
            - cancelled_by_pg(&self.path)
                .get(&request.pg_order_id)
                .copied()
                .unwrap_or(0);
        thread::sleep(self.in_flight); // the request is on the wire
        let decline = key.ends_with(['0', '1']) || request.amount.won() > left;
        let line = if decline {
            format!("X {key}\n")
        } else {
            format!("C {key} {} {}\n", request.pg_order_id, request.amount.won())
        };
        append(&self.path, &line);
        thread::sleep(self.in_flight); // the reply is on the wire
        if decline { Err(refused()) } else { Ok(done()) }
    }
}

/// The child: places, pays and refunds orders until it is killed. Run only by the
/// parent test below, which sets the environment.
#[test]
#[ignore = "run by crash_at_random_moments_loses_nothing as a child process"]
fn crash_child_pays_until_killed() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let target = Target {
        path: db.into(),
        schema: std::env::var(CHILD_SCHEMA).ok(),
    };
    let double = std::env::var(CHILD_PG_URL).ok();
    let builder = match (&double, std::env::var(CHILD_PG)) {
        (Some(url), _) => target.builder().gateway(
            liteshop::HttpGateway::builder(url, DOUBLE_SECRET)
                .response_timeout(Duration::from_millis(200))
                .build(),
        ),
        (None, Ok(pg)) => target
            .builder()
            .gateway(FileGateway::new(Path::new(&pg), Duration::from_millis(2))),
        (None, Err(_)) => return,
    };
    let widget = Widget(double);
    let shop = builder
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .build()
        .expect("child opens the shop");
    // The pump writes each batch it is handed to the feed log, synced,
    // before the batch is acked; a kill can land anywhere in that.
    let feed = std::env::var(CHILD_FEED).expect("the feed log");
    let _pump = shop
        .spawn_event_pump(
            CONSUMER,
            move |batch: &[liteshop::Event]| {
                let lines: String = batch.iter().map(|e| format!("seq={}\n", e.seq)).collect();
                append(Path::new(&feed), &lines);
                Ok::<(), String>(())
            },
            Duration::from_millis(1),
        )
        .expect("child starts the pump");
    if let Ok(ready) = std::env::var(CHILD_READY) {
        std::fs::write(ready, b"open").expect("child says it is open");
    }
    for i in 0_i64.. {
        let user = UserId::new(1 + i % USERS);
        let product = ProductId::new(1 + i % PRODUCTS);
        let quantity = 1 + (i % 3) as u32;
        let Ok(order) = shop.place_order(user, &[OrderLine::new(product, quantity)]) else {
            continue;
        };
        if i % 7 == 0 {
            let _ = shop.cancel_order(user, order.id);
        } else if pay(&shop, &widget, user, &order, i) && i % 2 == 0 {
            // Refund one unit, then (every other time) the rest.
            let _ = shop.refund_lines(user, order.id, &[OrderLine::new(product, 1)], "one");
            if i % 4 == 0 {
                let _ = shop.refund(user, order.id, "the rest");
            }
        }
    }
}

/// Two hours ahead of the system clock: past every child's payment window.
#[derive(Debug)]
struct LaterClock;

impl liteshop::Clock for LaterClock {
    fn now(&self) -> liteshop::Timestamp {
        let now = liteshop::SystemClock.now().as_millis();
        liteshop::Timestamp::from_millis(now + 2 * 3_600 * 1_000)
    }
}

/// The `paymentKey` the file PG's "widget" issues for an `orderId`.
fn widget_key(pg_order_id: &str) -> String {
    format!("filepg_{pg_order_id}")
}

/// The success redirect of the file PG's widget for a started payment.
fn widget_redirect(widget: &liteshop::WidgetRequest) -> liteshop::PgRedirect {
    liteshop::PgRedirect {
        payment_key: widget_key(&widget.pg_order_id),
        pg_order_id: widget.pg_order_id.clone(),
        amount: widget.amount,
    }
}

/// Where the child's customer pays in the widget: the file PG's (a key
/// made from the `orderId`), or the Toss double's at this URL (`POST
/// /v1/fake/widget`, the browser's step).
struct Widget(Option<String>);

impl Widget {
    fn pay(&self, widget: &liteshop::WidgetRequest) -> Option<liteshop::PgRedirect> {
        let Some(url) = &self.0 else {
            return Some(widget_redirect(widget));
        };
        let request = serde_json::json!({
            "orderId": widget.pg_order_id,
            "amount": widget.amount.won(),
        });
        let mut reply = ureq::post(format!("{url}/v1/fake/widget"))
            .header("Content-Type", "application/json")
            .send(request.to_string())
            .ok()?;
        let body: serde_json::Value =
            serde_json::from_str(&reply.body_mut().read_to_string().ok()?).ok()?;
        Some(liteshop::PgRedirect {
            payment_key: body["paymentKey"].as_str()?.to_owned(),
            pg_order_id: widget.pg_order_id.clone(),
            amount: widget.amount,
        })
    }
}

/// Pays `order` by the tender `i` picks: wholly by balance, wholly by card,
/// or half and half; one in eleven is left started in the widget
/// (abandoned), to be ended by expiry.
fn pay(
    shop: &liteshop::Shop,
    widget: &Widget,
    user: UserId,
    order: &liteshop::Order,
    i: i64,
) -> bool {
    let balance_part = match i % 3 {
        0 => order.total,
        1 => Money::ZERO,
        _ => Money::new(order.total.won() / 2).unwrap(),
    };
    let Ok(started) = shop.start_payment(user, order.id, balance_part) else {
        return false;
    };
    match started.widget() {
        None => true,
        Some(_) if i % 11 == 0 => false,
        Some(request) => widget
            .pay(&request)
            .is_some_and(|redirect| shop.confirm_payment(user, started.id, &redirect).is_ok()),
    }
}

/// A tiny deterministic generator for the kill moments.
fn next_random(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

/// How many kills a crash run makes: `LITESHOP_CRASH_ROUNDS`, or `default`.
fn rounds(default: u32) -> u32 {
    std::env::var("LITESHOP_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn crash_at_random_moments_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pg = TestPg::File(dir.path().join("pg-record.log"));
    crash_rounds(dir.path(), &pg, rounds(50));
}

/// The same kills with the child paying through `HttpGateway` and the Toss
/// double over real HTTP (its widget step, its confirm and cancel, its
/// `cancels[]`), the double also losing every eleventh reply half-way
/// after processing the call and answering every thirteenth 500
/// unprocessed. The double's records — the PG's truth, which outlives
/// each child — must equal the shop's books after each reconciliation.
#[test]
fn crash_against_the_toss_double_loses_nothing() {
    let records = Arc::new(Mutex::new(fake_pg_server::Pg::default()));
    let serve = |faults: fake_pg_server::Faults| {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let rules = fake_pg_server::Rules {
            secret: DOUBLE_SECRET.to_owned(),
            decline_above: Some(5_000),
            confirm_window: Some(Duration::from_secs(1)),
            faults,
            ..Default::default()
        };
        let records = records.clone();
        thread::spawn(move || fake_pg_server::serve(&server, &rules, &records));
        url
    };
    let pg = TestPg::Double {
        child: serve(fake_pg_server::Faults {
            lose_reply_every: Some(11),
            fail_every: Some(13),
            delay: None,
        }),
        settle: serve(fake_pg_server::Faults::default()),
        records: records.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    crash_rounds(dir.path(), &pg, rounds(30));
}

/// The PG a crash run pays through: the file PG, or the Toss double over
/// HTTP — one server with faults for the child, one without for the
/// reconciliation after each kill, both over the same records.
enum TestPg {
    File(PathBuf),
    Double {
        child: String,
        settle: String,
        records: Arc<Mutex<fake_pg_server::Pg>>,
    },
}

impl TestPg {
    /// The child's environment naming its PG.
    fn child_env(&self) -> (&'static str, String) {
        match self {
            TestPg::File(path) => (CHILD_PG, path.display().to_string()),
            TestPg::Double { child, .. } => (CHILD_PG_URL, child.clone()),
        }
    }

    /// `builder` with the gateway that settles after a kill.
    fn settling(&self, builder: liteshop::ShopBuilder) -> liteshop::ShopBuilder {
        match self {
            TestPg::File(path) => builder.gateway(FileGateway::new(path, Duration::ZERO)),
            TestPg::Double { settle, .. } => {
                builder.gateway(liteshop::HttpGateway::builder(settle, DOUBLE_SECRET).build())
            }
        }
    }

    /// What the PG holds: what it took of each attempt (None: declined)
    /// and what it cancelled of it.
    fn record(&self) -> PgRecord {
        match self {
            TestPg::File(path) => PgRecord {
                taken: read_record(path),
                cancelled: cancelled_by_pg(path),
            },
            TestPg::Double { records, .. } => {
                let pg = records.lock().unwrap();
                let mut record = PgRecord {
                    taken: pg.aborted.keys().map(|id| (id.clone(), None)).collect(),
                    cancelled: HashMap::new(),
                };
                for (id, payment) in &pg.payments {
                    record
                        .taken
                        .insert(id.clone(), payment["totalAmount"].as_i64());
                    let cancelled = payment["cancels"].as_array().map_or(0, |cancels| {
                        cancels
                            .iter()
                            .map(|c| c["cancelAmount"].as_i64().unwrap())
                            .sum()
                    });
                    record.cancelled.insert(id.clone(), cancelled);
                }
                record
            }
        }
    }
}

/// The PG's own record of a run.
struct PgRecord {
    /// `pg_order_id` → what the PG took (None: it declined the attempt).
    taken: HashMap<String, Option<i64>>,
    /// `pg_order_id` → what the PG cancelled of it.
    cancelled: HashMap<String, i64>,
}

/// Seeds a shop in `dir`, then kills a child paying through `pg` `rounds`
/// times, reconciling and checking every law after each kill.
fn crash_rounds(dir: &Path, pg: &TestPg, rounds: u32) {
    let db = Target::fresh(dir, "crash.db");
    let feed = dir.join("feed.log");
    {
        let shop = db
            .builder()
            .max_balance(Money::MAX)
            .max_charge(Money::MAX)
            .build()
            .unwrap();
        for i in 0..USERS {
            let user = shop.create_user(&format!("user {i}")).unwrap();
            shop.host_credit(user.id, Money::new(1_000_000_000).unwrap())
                .unwrap();
        }
        for i in 0..PRODUCTS {
            shop.create_product(NewProduct {
                name: format!("product {i}"),
                price: Money::new(1_000 * (i + 1)).unwrap(),
                stock: INITIAL_STOCK,
            })
            .unwrap();
        }
    }

    let mut random = 0x5eed_u64;
    let mut interrupted_payments = 0;
    let mut interrupted_refunds = 0;
    let ready = dir.join("child.ready");
    for round in 0..rounds {
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_pays_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_DB, &db.path)
            .envs(db.schema.iter().map(|schema| (CHILD_SCHEMA, schema)))
            .env(pg.child_env().0, pg.child_env().1)
            .env(CHILD_FEED, &feed)
            .env(CHILD_READY, &ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        // One kill in four lands wherever the child is, opening the shop
        // included; the others count from when its shop is open, so a slow
        // start (PostgreSQL, a loaded machine) does not leave a run that
        // never reached a payment or a refund.
        let draw = next_random(&mut random);
        if !draw.is_multiple_of(4) {
            let opened = std::time::Instant::now();
            while !ready.exists() && opened.elapsed() < Duration::from_secs(30) {
                thread::sleep(Duration::from_millis(2));
            }
        }
        thread::sleep(Duration::from_millis(40 + (draw >> 2) % 200));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();

        let (payments, refunds) = unsettled(&db);
        interrupted_payments += payments;
        interrupted_refunds += refunds;
        let shop = pg
            .settling(db.builder())
            .max_balance(Money::MAX)
            .reconcile_grace(Duration::ZERO)
            .payment_window(Duration::from_millis(1))
            .clock(LaterClock)
            .build()
            .unwrap_or_else(|err| panic!("round {round}: reopen failed: {err}"));
        // The file PG settles everything in one round. The double holds a
        // payment the child authorised and never confirmed `IN_PROGRESS`
        // until its confirm window (1 s here) runs out — this shop's clock
        // is past the shop's own window, so it never re-sends — then
        // `EXPIRED`: a few rounds.
        for attempt in 0.. {
            let report = shop.reconcile_payments().unwrap();
            if report.all_settled() {
                break;
            }
            assert!(attempt < 40, "round {round}: {report:?}");
            thread::sleep(Duration::from_millis(100));
        }
        // Attempts the child started and nobody confirmed end by expiry
        // (this shop's clock runs past every child's window).
        shop.expire_payments().unwrap();
        drop(shop);
        check_invariants(&db, &pg.record(), round);
    }
    let redelivered = check_feed(&db, &feed);
    let summary: (i64, i64, i64, i64, i64) = (
        db.count("SELECT count(*) FROM orders"),
        db.count("SELECT count(*) FROM payments WHERE status IN ('approved', 'refunded')"),
        db.count("SELECT count(*) FROM payments WHERE status = 'declined'"),
        db.count("SELECT count(*) FROM refunds WHERE status = 'completed'"),
        db.count("SELECT count(*) FROM refunds WHERE status = 'declined'"),
    );
    println!(
        "{rounds} kills; {interrupted_payments} payments and {interrupted_refunds} refunds were \
         in flight at a kill; {} orders, {} payments approved, {} declined, \
         {} refunds completed, {} declined; {redelivered} events delivered again after a kill",
        summary.0, summary.1, summary.2, summary.3, summary.4
    );
    // The double declines no cancel, so only the file PG's runs see
    // declined refunds.
    let declines_refunds = matches!(pg, TestPg::File(_));
    assert!(
        summary.1 > 0 && summary.2 > 0 && summary.3 > 0 && (summary.4 > 0 || !declines_refunds),
        "the child never paid or refunded: {summary:?}"
    );
    if rounds >= 10 {
        assert!(
            interrupted_payments > 0 && interrupted_refunds > 0,
            "no kill landed inside a payment and a refund: the test did not exercise recovery"
        );
    }
}

/// Delivers what the pump had not acked when the last child died, then
/// checks the feed log: every event from 1 to the last was delivered, in
/// order, at least once — after a kill delivery resumes at or before the
/// event after the last one delivered, never past it. Returns how many
/// deliveries were repeats.
fn check_feed(db: &Target, feed: &Path) -> usize {
    let shop = db.builder().build().unwrap();
    loop {
        let batch = shop
            .events(shop.event_cursor(CONSUMER).unwrap(), 1_000)
            .unwrap();
        let Some(last) = batch.last() else { break };
        let lines: String = batch.iter().map(|e| format!("seq={}\n", e.seq)).collect();
        append(feed, &lines);
        shop.ack_events(CONSUMER, last.seq).unwrap();
    }
    let last = shop.event_cursor(CONSUMER).unwrap();
    // A line a kill cut short may have run into the next child's first
    // line; such a line does not parse and is left out (it was not acked,
    // so it was delivered again).
    let delivered: Vec<u64> = std::fs::read_to_string(feed)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("seq=")?.parse().ok())
        .collect();
    assert_eq!(
        delivered.first(),
        Some(&1),
        "delivery starts at the first event"
    );
    for pair in delivered.windows(2) {
        assert!(
            pair[1] <= pair[0] + 1,
            "event skipped: {} after {}",
            pair[1],
            pair[0]
        );
    }
    let distinct: std::collections::BTreeSet<u64> = delivered.iter().copied().collect();
    assert_eq!(distinct.len() as u64, last, "every event delivered");
    assert_eq!(distinct.last(), Some(&last));
    delivered.len() - distinct.len()
}

/// Payments and refunds a kill left without an outcome.
fn unsettled(db: &Target) -> (i64, i64) {
    (
        db.count("SELECT count(*) FROM payments WHERE status IN ('requested', 'unknown')"),
        db.count("SELECT count(*) FROM refunds WHERE status IN ('requested', 'unknown')"),
    )
}

fn check_invariants(db: &Target, record: &PgRecord, round: u32) {
    let count = |sql: &str| -> i64 { db.count(sql) };
    let ids = |sql: &str| -> HashSet<String> {
        db.rows(sql)
            .into_iter()
            .map(|row| row[0].clone().unwrap())
            .collect()
    };

    // Every payment and refund is settled, and no order waits on one.
    assert_eq!(unsettled(db), (0, 0), "round {round}: unsettled attempts");
    assert_eq!(
        count("SELECT count(*) FROM payments WHERE status = 'started'"),
        0,
        "round {round}: started payments left"
    );
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE status = 'paying'"),
        0,
        "round {round}"
    );

    // The shop's approvals are exactly the PG's approvals.
    let pg_approved: HashSet<String> = record
        .taken
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    let pg_declined: HashSet<String> = record
        .taken
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    let approved = ids(
        "SELECT pg_order_id FROM payments WHERE status IN ('approved', 'refunded') AND pg_amount > 0",
    );
    assert_eq!(
        approved, pg_approved,
        "round {round}: approvals differ from the PG's record"
    );
    let declined = ids("SELECT pg_order_id FROM payments WHERE status = 'declined'");
    assert!(
        pg_declined.is_subset(&declined),
        "round {round}: a PG decline is not recorded"
    );

    // Every conservation law (balances, money, stock, one approved payment
    // per paid order, refunds, the feed, the per-day sales), from the
    // shop's own audit; stocked is what the test put in.
    let audit = db.builder().build().unwrap().audit().unwrap();
    assert!(audit.is_clean(), "round {round}: {audit}");
    assert_eq!(
        audit.figures.units_stocked,
        i128::from(PRODUCTS * i64::from(INITIAL_STOCK)),
        "round {round}: units stocked"
    );

    // An approved payment belongs to a paid order.
    assert_eq!(
        count(
            "SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id
             WHERE p.status IN ('approved', 'refunded')
               AND o.status NOT IN ('paid', 'partially_refunded', 'refunded')"
        ),
        0,
        "round {round}: an approved payment of an unpaid order"
    );

    // For every payment, the PG cancelled exactly what the shop's completed
    // refunds gave back, and the shop recorded it on the payment and order.
    let pg_cancelled = &record.cancelled;
    let rows = db.rows(
        "SELECT p.pg_order_id, p.refunded, o.refunded,
                (SELECT coalesce(sum(amount), 0) FROM refunds r
                 WHERE r.payment_id = p.id AND r.status = 'completed'),
                p.pg_refunded,
                (SELECT coalesce(sum(pg_amount), 0) FROM refunds r
                 WHERE r.payment_id = p.id AND r.status = 'completed'),
                p.pg_amount
         FROM payments p JOIN orders o ON o.id = p.order_id",
    );
    for row in rows {
        let int = |i: usize| -> i64 { row[i].as_deref().unwrap().parse().unwrap() };
        let (pg_order_id, on_payment, on_order, completed) =
            (row[0].clone().unwrap(), int(1), int(2), int(3));
        let (pg_refunded, completed_at_pg, pg_amount) = (int(4), int(5), int(6));
        let at_pg = pg_cancelled.get(&pg_order_id).copied().unwrap_or(0);
        assert_eq!(
            (on_payment, on_order),
            (completed, completed),
            "round {round}: refunds of {pg_order_id}"
        );
        assert_eq!(
            (at_pg, pg_refunded),
            (completed_at_pg, completed_at_pg),
            "round {round}: what the PG cancelled of {pg_order_id}"
        );
        // What the PG took is what the shop recorded as its part.
        let taken = record
            .taken
            .get(&pg_order_id)
            .copied()
            .flatten()
            .unwrap_or(0);
        let approved = approved.contains(&pg_order_id);
        assert_eq!(
            taken,
            if approved && pg_amount > 0 {
                pg_amount
            } else {
                0
            },
            "round {round}: what the PG took of {pg_order_id}"
        );
    }
    // Each completed refund is one ledger credit of its amount; no other
    // refund has one.
    assert_eq!(
        count(
            "SELECT count(*) FROM refunds r WHERE
               (SELECT count(*) FROM ledger l WHERE l.refund_id = r.id AND l.kind = 'refund'
                  AND l.amount = r.balance_amount)
               <> CASE WHEN r.status = 'completed' AND r.balance_amount > 0 THEN 1 ELSE 0 END"
        ),
        0,
        "round {round}: a refund with a missing or extra credit"
    );

    // Every balance part is debited once, and given back once if the
    // payment ended unpaid; a payment with no balance part has neither.
    assert_eq!(
        count(
            "SELECT count(*) FROM payments p WHERE
               (SELECT count(*) FROM ledger l WHERE l.payment_id = p.id AND l.kind = 'payment'
                  AND l.amount = -p.balance_amount)
               <> CASE WHEN p.balance_amount > 0 THEN 1 ELSE 0 END
            OR (SELECT count(*) FROM ledger l WHERE l.payment_id = p.id AND l.kind = 'payment_reversal')
               <> CASE WHEN p.status = 'declined' AND p.balance_amount > 0 THEN 1 ELSE 0 END"
        ),
        0,
        "round {round}: a payment with a missing or extra debit or reversal"
    );
}
