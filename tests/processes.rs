//! Two processes on one file — say, the server and a cron job — each with
//! several threads: every write lands exactly once, and the books balance.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use liteshop::{Money, NewProduct, OrderLine, ProductId, Shop, UserId};

const CHILD_DB: &str = "LITESHOP_PROCESSES_DB";
const CHILD_ROLE: &str = "LITESHOP_PROCESSES_ROLE";
const THREADS: i64 = 4;
const ROUNDS: i64 = 40;
const USERS: i64 = 8;

/// One child process: `THREADS` threads, each charging 10 won and placing
/// one order `ROUNDS` times; the "cron" child also expires orders between
/// rounds, as a job sharing the file would.
#[test]
#[ignore = "run by two_processes_writing_one_file_keep_exact_totals as a child process"]
fn processes_child_writes() {
    if common::sqlite_only("two processes share one SQLite file") {
        return;
    }
    let (Ok(db), Ok(role)) = (std::env::var(CHILD_DB), std::env::var(CHILD_ROLE)) else {
        return;
    };
    let shop = Shop::builder(&db)
        .max_balance(Money::MAX)
        .busy_timeout(Duration::from_secs(30))
        .reservation_time(Duration::from_millis(50))
        .build()
        .expect("child opens the shop");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (shop, role) = (&shop, &role);
            s.spawn(move || {
                for i in 0..ROUNDS {
                    let user = UserId::new(1 + (t + i) % USERS);
                    shop.charge(user, Money::new(10).unwrap()).unwrap();
                    shop.place_order(user, &[OrderLine::new(ProductId::new(1), 1)])
                        .unwrap();
                    if role == "cron" && t == 0 {
                        shop.expire_orders().unwrap();
                    }
                }
            });
        }
    });
}

#[test]
fn two_processes_writing_one_file_keep_exact_totals() {
    if common::sqlite_only("two processes share one SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    {
        let shop = Shop::builder(&db).build().unwrap();
        for i in 0..USERS {
            let user = shop.create_user(&format!("u{i}")).unwrap();
            shop.charge(user.id, Money::new(1_000_000).unwrap())
                .unwrap();
        }
        shop.create_product(NewProduct {
            name: "Tea".into(),
            price: Money::new(100).unwrap(),
            stock: 10_000,
        })
        .unwrap();
    }
    let children: Vec<_> = ["server", "cron"]
        .into_iter()
        .map(|role| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "processes_child_writes",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_DB, &db)
                .env(CHILD_ROLE, role)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child failed");
    }

    let shop = Shop::open(&db).unwrap();
    let audit = shop.audit().unwrap();
    assert!(audit.is_clean(), "{audit}");
    let writes = 2 * THREADS * ROUNDS;
    assert_eq!(audit.figures.charged, USERS * 1_000_000 + writes * 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let orders: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |row| row.get(0))
        .unwrap();
    assert_eq!(orders, writes, "every order placed once");
    // Whatever expired, stock plus held is what was stocked.
    assert_eq!(
        audit.figures.units_on_hand + audit.figures.units_held,
        10_000
    );
}
