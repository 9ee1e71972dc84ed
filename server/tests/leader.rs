//! Two `liteshop serve` processes on one database: each background job
//! (reconciliation, the sweep of expiry and key pruning) runs in one of
//! them at a time; SIGKILL the leader and the other takes its jobs over
//! once the leases expire; a clean stop gives the leases back. The real
//! binary and real signals, on a SQLite file — or, under the PostgreSQL
//! switch, a fresh schema.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, free_port, wait_for};
use liteshop::{Reconciler, Shop};

/// The lease `liteshop serve` leads its sweep by.
const SWEEP: &str = "liteshop serve: sweep";

/// The database both servers share: a file in `dir`, or a new schema.
fn target(dir: &tempfile::TempDir) -> (PathBuf, String) {
    match std::env::var("LITESHOP_TEST_POSTGRES") {
        Ok(url) => (PathBuf::from(url), format!("leader_{}", std::process::id())),
        Err(_) => (dir.path().join("shop.db"), "liteshop".to_owned()),
    }
}

fn serve(db: &PathBuf, schema: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_liteshop"))
        .arg("serve")
        .arg("--db")
        .arg(db)
        .args(["--pg-schema", schema])
        .arg("--addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--reconcile-every", "1", "--expire-every", "1"])
        .env("LITESHOP_ADMIN_TOKEN", "admin")
        .env("LITESHOP_TOKEN_SECRET", "secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

/// The pid in a lease's holder name, if it is one of `pids`.
fn held_by(shop: &Shop, job: &str, pids: &[u32]) -> Option<u32> {
    let lease = shop.lease(job).unwrap()?;
    pids.iter()
        .copied()
        .find(|pid| lease.holder.contains(&format!("pid {pid} ")))
}

#[test]
fn of_two_servers_one_leads_each_job_and_the_other_takes_over_when_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (db, schema) = target(&dir);
    let mut first = serve(&db, &schema);
    // The first server creates the shop; the second opens it.
    let shop = wait_for(Duration::from_secs(20), || {
        Shop::builder(&db)
            .pg_schema(&schema)
            .existing_only()
            .build()
            .ok()
    });
    let mut second = serve(&db, &schema);
    let pids = [first.0.id(), second.0.id()];
    let jobs = [Reconciler::JOB, SWEEP];

    // Each job gets one leader, and keeps it while both live.
    let leaders: Vec<u32> = jobs
        .iter()
        .map(|job| wait_for(Duration::from_secs(20), || held_by(&shop, job, &pids)))
        .collect();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for (job, leader) in jobs.iter().zip(&leaders) {
            assert_eq!(held_by(&shop, job, &pids), Some(*leader), "{job}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGKILL the sweep's leader: the survivor holds every job once the
    // dead one's leases expire (three rounds of 1 s).
    let (killed, survivor) = if leaders[1] == pids[0] {
        (&mut first, pids[1])
    } else {
        (&mut second, pids[0])
    };
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let at = Instant::now();
    for job in jobs {
        wait_for(Duration::from_secs(20), || {
            (held_by(&shop, job, &pids) == Some(survivor)).then_some(())
        });
    }
    assert!(
        at.elapsed() >= Duration::from_secs(1),
        "taken over after {:?}: before the lease could expire",
        at.elapsed()
    );

    // A clean stop gives the leases back.
    let survivor = if survivor == pids[0] {
        &mut first
    } else {
        &mut second
    };
    let status = Command::new("kill")
        .args(["-TERM", &survivor.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    survivor.0.wait().unwrap();
    for job in jobs {
        assert_eq!(shop.lease(job).unwrap(), None, "{job}");
    }
}
