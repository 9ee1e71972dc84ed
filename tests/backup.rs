//! Online backup while writers run: the copy is consistent, passes the
//! integrity check and the audit, and holds every write acknowledged before
//! the backup began.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{open_with, won};
use liteshop::{Error, FakeGateway, OrderLine, Shop};

#[test]
fn a_backup_under_write_load_is_consistent_and_complete() {
    if common::sqlite_only("Shop::backup is SQLite's online backup") {
        return;
    }
    let t = open_with(|b| {
        b.gateway(FakeGateway::new())
            .max_balance(won(1_000_000_000))
    });
    let users: Vec<_> = (0..4).map(|i| t.user(&format!("u{i}")).id).collect();
    let tea = t.product("Tea", 100, 1_000_000).id;
    // Some history first, so the file has pages to copy.
    for &u in &users {
        t.shop.host_credit(u, won(1_000_000)).unwrap();
    }
    let acked: Mutex<Vec<(usize, i64)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let copy = t.path.with_file_name("copy.db");
    let mut steps = 0;
    let before_backup = std::thread::scope(|s| {
        for (i, &u) in users.iter().enumerate() {
            let (shop, acked, stop) = (&t.shop, &acked, &stop);
            s.spawn(move || {
                let mut n = 0_i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    shop.host_credit(u, won(n)).unwrap();
                    let order = shop.place_order(u, &[OrderLine::new(tea, 1)]).unwrap();
                    shop.pay_from_balance(u, order.id).unwrap();
                    acked.lock().unwrap().push((i, n));
                }
            });
        }
        while acked.lock().unwrap().len() < 200 {
            std::thread::yield_now();
        }
        let before = acked.lock().unwrap().clone();
        t.shop.backup(&copy, |_| steps += 1).unwrap();
        stop.store(true, Ordering::Relaxed);
        before
    });
    assert!(steps >= 1);

    let integrity: String = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let restored = Shop::open(&copy).unwrap();
    let audit = restored.audit().unwrap();
    assert!(audit.is_clean(), "{audit}");
    // Every charge acknowledged before the backup began is in the copy.
    for (i, &u) in users.iter().enumerate() {
        let last_acked = before_backup
            .iter()
            .filter(|(who, _)| *who == i)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        let charges: i64 = rusqlite::Connection::open(&copy)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM ledger WHERE user_id = ?1 AND kind = 'charge'",
                [u.get()],
                |row| row.get(0),
            )
            .unwrap();
        // The first charge was the seed's; then one per acknowledged round.
        assert!(
            charges > last_acked,
            "user {i}: {charges} charges in the copy, {last_acked} acknowledged before"
        );
    }
    // And the source carried on past the copy.
    assert!(t.shop.audit().unwrap().is_clean());
}

#[test]
fn a_backup_never_overwrites() {
    if common::sqlite_only("Shop::backup is SQLite's online backup") {
        return;
    }
    let t = open_with(|b| b);
    let before = std::fs::read(&t.path).unwrap();
    assert!(matches!(
        t.shop.backup(&t.path, |_| {}),
        Err(Error::BackupTargetExists(_))
    ));
    assert_eq!(std::fs::read(&t.path).unwrap(), before);
}
