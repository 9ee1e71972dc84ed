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
    NewProduct, OrderId, OrderLine, OrderRequest, PaymentGateway, PgRedirect, PgStatus,
    RetryPolicy, Shop, ShopBuilder, StatusRequest, SystemClock, UserId, Violation, WriteMode,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Value, json};

mod args;
mod checks;
mod mix;
mod place;
mod raw;
#[cfg(feature = "postgres")]
mod raw_pg;
mod report;
mod seed;
mod target;
mod workload;

use args::*;
use checks::*;
use mix::*;
use place::*;
use report::*;
use seed::*;
use target::*;
use workload::{Rng, Step, World};

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
