//! Two processes on one database — say, the server and a cron job — each
//! with several threads: every write lands exactly once, and the books
//! balance. On SQLite they share one file; under the PostgreSQL switch,
//! one schema.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use liteshop::{Money, NewProduct, OrderLine, ProductId, Shop, UserId};

const CHILD_DB: &str = "LITESHOP_PROCESSES_DB";
const CHILD_ROLE: &str = "LITESHOP_PROCESSES_ROLE";
const CHILD_SCHEMA: &str = "LITESHOP_PROCESSES_SCHEMA";
const THREADS: i64 = 8;
const ROUNDS: i64 = 40;
const USERS: i64 = 8;

/// One child process: `THREADS` threads, each charging 10 won and placing
/// one order `ROUNDS` times; the "cron" child also expires orders between
/// rounds, as a job sharing the file would.
#[test]
#[ignore = "run by two_processes_writing_one_file_keep_exact_totals as a child process"]
fn processes_child_writes() {
    let (Ok(db), Ok(role)) = (std::env::var(CHILD_DB), std::env::var(CHILD_ROLE)) else {
        return;
    };
    let mut builder = Shop::builder(&db);
    if let Ok(schema) = std::env::var(CHILD_SCHEMA) {
        builder = builder.pg_schema(&schema);
    }
    let shop = builder
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
                    shop.host_credit(user, Money::new(10).unwrap()).unwrap();
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
    let t = common::open();
    let db = t.path.clone();
    {
        let shop = &t.shop;
        for i in 0..USERS {
            let user = shop.create_user(&format!("u{i}")).unwrap();
            shop.host_credit(user.id, Money::new(1_000_000).unwrap())
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
                .envs(t.pg_schema.iter().map(|schema| (CHILD_SCHEMA, schema)))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child failed");
    }

    let shop = t.builder().build().unwrap();
    let audit = shop.audit().unwrap();
    assert!(audit.is_clean(), "{audit}");
    let writes = 2 * THREADS * ROUNDS;
    assert_eq!(
        audit.figures.charged,
        i128::from(USERS * 1_000_000 + writes * 10)
    );
    let orders: i64 = (1..=USERS)
        .map(|user| {
            let page = shop
                .orders(UserId::new(user), liteshop::PageRequest::first(100))
                .unwrap();
            assert!(page.next.is_none());
            i64::try_from(page.items.len()).unwrap()
        })
        .sum();
    assert_eq!(orders, writes, "every order placed once");
    // Whatever expired, stock plus held is what was stocked.
    assert_eq!(
        audit.figures.units_on_hand + audit.figures.units_held,
        10_000
    );
}
