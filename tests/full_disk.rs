//! A full disk mid-load: writers in a child process whose file-size limit
//! (`ulimit -f`, with `SIGXFSZ` ignored) is reached while they write. Every
//! call that cannot be written returns a typed error, none panics, no call
//! reports `Ok` for a write that was not committed (nor an error for one
//! that was), and once the limit is gone the file reopens, passes the
//! integrity check and the audit, and holds exactly the acknowledged writes.

#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use liteshop::{Error, Money, NewProduct, OrderLine, ProductId, Shop, UserId};

const CHILD_DB: &str = "LITESHOP_FULL_DISK_DB";
const THREADS: i64 = 4;

/// The child: charges and orders from `THREADS` threads, printing each
/// acknowledged write (`ok charge <amount>`, `ok order <id>`) and each
/// error's variant, until every thread has seen 50 errors in a row.
#[test]
#[ignore = "run by a_full_disk_refuses_writes_and_loses_none as a child process"]
fn full_disk_child_writes() {
    if common::sqlite_only("a file-size limit is SQLite's") {
        return;
    }
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let shop = Shop::builder(&db)
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .build()
        .expect("child opens the shop");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The test harness's "test … " has no line end yet: end it, so the
    // first report starts a line of its own.
    println!();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let shop = &shop;
            s.spawn(move || {
                let mut failures_in_a_row = 0;
                for n in 1_i64.. {
                    if failures_in_a_row >= 50 || Instant::now() > deadline {
                        break;
                    }
                    // Distinct amounts name each charge in the ledger.
                    let amount = 1_000_000 * (t + 1) + n;
                    let user = UserId::new(1 + t);
                    match shop.host_credit(user, Money::new(amount).unwrap()) {
                        Ok(_) => {
                            failures_in_a_row = 0;
                            println!("ok charge {amount}");
                        }
                        Err(err) => {
                            failures_in_a_row += 1;
                            println!("err {}", variant(&err));
                        }
                    }
                    match shop.place_order(user, &[OrderLine::new(ProductId::new(1), 1)]) {
                        Ok(order) => println!("ok order {}", order.id),
                        Err(err) => println!("err {}", variant(&err)),
                    }
                }
            });
        }
    });
}

fn variant(err: &Error) -> String {
    let debug = format!("{err:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn a_full_disk_refuses_writes_and_loses_none() {
    if common::sqlite_only("a file-size limit is SQLite's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("full.db");
    {
        let shop = Shop::builder(&db).build().unwrap();
        for i in 0..THREADS {
            shop.create_user(&format!("u{i}")).unwrap();
        }
        shop.create_product(NewProduct {
            name: "Tea".into(),
            price: Money::new(1).unwrap(),
            stock: 1_000_000,
        })
        .unwrap();
    }
    // 2,048 blocks (1 or 2 MiB, by the shell's block size): above the
    // file's size now, well below where the WAL would be checkpointed, so
    // the WAL hits the limit mid-load.
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 2048 && exec "$0" "$@""#)
        .arg(&exe)
        .args([
            "full_disk_child_writes",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DB, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child under a file-size limit");
    let mut charges = BTreeSet::new();
    let mut orders = BTreeSet::new();
    let mut errors = BTreeSet::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ok", "charge", amount] => {
                charges.insert(amount.parse::<i64>().unwrap());
            }
            ["ok", "order", id] => {
                orders.insert(id.parse::<i64>().unwrap());
            }
            ["err", variant] => {
                errors.insert((*variant).to_owned());
            }
            _ => {}
        }
    }
    assert!(
        child.wait().unwrap().success(),
        "the child panicked or failed"
    );
    assert!(
        !charges.is_empty(),
        "nothing was written before the disk filled"
    );
    assert_eq!(
        errors,
        BTreeSet::from(["DiskFull".to_owned()]),
        "every refused write is DiskFull"
    );

    // The limit is gone: reopen, check, and compare with what was acked.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let shop = Shop::builder(&db).max_balance(Money::MAX).build().unwrap();
    let audit = shop.audit().unwrap();
    assert!(audit.is_clean(), "{audit}");
    let in_ledger: BTreeSet<i64> = conn
        .prepare("SELECT amount FROM ledger WHERE kind = 'charge'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(in_ledger, charges, "exactly the acknowledged charges");
    let in_orders: BTreeSet<i64> = conn
        .prepare("SELECT id FROM orders")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(in_orders, orders, "exactly the acknowledged orders");
    // And it takes writes again.
    shop.host_credit(UserId::new(1), Money::new(1).unwrap())
        .unwrap();
}
