//! Replication with Litestream: a shop under write load is streamed to a
//! local file replica; the writer is SIGKILLed; `litestream restore` brings
//! back a file that passes the integrity check and the audit, whose history
//! is a prefix of what was acknowledged and holds every write acknowledged
//! longer ago than the replication interval (plus a margin).
//!
//! Runs when a `litestream` binary is on `PATH` (`.ci/run` installs one from
//! the Python package index); otherwise it says so and passes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use liteshop::{Money, Shop, UserId};

const CHILD_DB: &str = "LITESHOP_LITESTREAM_DB";
/// Litestream's sync interval in the config below.
const SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// What a write acknowledged this long before the kill must have reached
/// the replica by: the interval and generous room for a loaded machine.
const MARGIN: Duration = Duration::from_secs(3);

fn litestream() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("litestream"))
        .find(|candidate| candidate.is_file())
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// The writer: charges 1, 2, 3, … won to user 1, one at a time, printing
/// each acknowledged amount with the time of its acknowledgement.
#[test]
#[ignore = "run by a_killed_writer_is_restored_from_the_litestream_replica as a child process"]
fn litestream_child_writes() {
    if common::sqlite_only("Litestream replicates a SQLite file") {
        return;
    }
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let shop = Shop::builder(&db)
        .max_balance(Money::MAX)
        .wal_autocheckpoint(None)
        .build()
        .expect("child opens the shop");
    println!();
    for n in 1_i64.. {
        shop.charge(UserId::new(1), Money::new(n).unwrap()).unwrap();
        println!("ok {n} {}", now_ms());
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, db: &Path, replica: &Path) -> PathBuf {
    let path = dir.join("litestream.yml");
    std::fs::write(
        &path,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      type: file\n      path: {}\n      sync-interval: {}ms\n",
            db.display(),
            replica.display(),
            SYNC_INTERVAL.as_millis()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_killed_writer_is_restored_from_the_litestream_replica() {
    if common::sqlite_only("Litestream replicates a SQLite file") {
        return;
    }
    let Some(litestream) = litestream() else {
        eprintln!("no litestream on PATH: skipped (.ci/run installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let replica = dir.path().join("replica");
    let restored = dir.path().join("restored.db");
    {
        let shop = Shop::builder(&db).wal_autocheckpoint(None).build().unwrap();
        shop.create_user("Kim").unwrap();
    }
    let config = config(dir.path(), &db, &replica);
    let _replicator = Killed(
        Command::new(&litestream)
            .args(["replicate", "-config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start litestream replicate"),
    );
    std::thread::sleep(Duration::from_millis(500));

    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args([
            "litestream_child_writes",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let reader = BufReader::new(writer.stdout.take().unwrap());
    let started = Instant::now();
    let mut acked: Vec<(i64, u128)> = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["ok", n, at] = words.as_slice() {
            acked.push((n.parse().unwrap(), at.parse().unwrap()));
        }
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    writer.kill().unwrap();
    let killed_at = now_ms();
    writer.wait().unwrap();
    // Give replication the interval and margin to ship what it has.
    std::thread::sleep(MARGIN);
    drop(_replicator);

    let status = Command::new(&litestream)
        .args(["restore", "-config"])
        .arg(&config)
        .arg("-o")
        .arg(&restored)
        .arg(&db)
        .status()
        .expect("run litestream restore");
    assert!(status.success(), "litestream restore failed");

    let conn = rusqlite::Connection::open(&restored).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let shop = Shop::builder(&restored)
        .max_balance(Money::MAX)
        .build()
        .unwrap();
    let audit = shop.audit().unwrap();
    assert!(audit.is_clean(), "{audit}");

    let restored_charges: Vec<i64> = conn
        .prepare("SELECT amount FROM ledger WHERE kind = 'charge' ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // A prefix of what was acknowledged (a write may have committed and
    // been replicated just before its acknowledgement was read, so one past
    // the last read line is allowed).
    let expected: Vec<i64> = (1..=restored_charges.len() as i64).collect();
    assert_eq!(
        restored_charges, expected,
        "the restored history is a prefix"
    );
    let last_acked = acked.last().map_or(0, |(n, _)| *n);
    assert!(restored_charges.len() as i64 <= last_acked + 1);
    // Everything acknowledged a margin before the kill is there.
    let old_enough = acked
        .iter()
        .filter(|(_, at)| *at + MARGIN.as_millis() <= killed_at)
        .map(|(n, _)| *n)
        .max()
        .unwrap_or(0);
    assert!(
        restored_charges.len() as i64 >= old_enough,
        "restored {} charges; {old_enough} were acknowledged {MARGIN:?} before the kill",
        restored_charges.len()
    );
    println!(
        "acknowledged {last_acked}, restored {}, required {old_enough}",
        restored_charges.len()
    );
}
