//! Several processes on one database run the background work once: a
//! lease has one holder until it expires or is given back; of two
//! reconcilers or two pumps for one consumer, one leads; a leader that is
//! SIGKILLed is replaced once its lease expires, and a clean stop hands
//! over at once. On SQLite and, under the PostgreSQL switch, PostgreSQL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::won;
use liteshop::{
    Clock, Entity, Error, EventPump, FakeGateway, FakeOutcome, OrderLine, PaymentStatus,
    Reconciler, Shop, SystemClock,
};

const CHILD_DB: &str = "LITESHOP_LEASES_DB";
const CHILD_SCHEMA: &str = "LITESHOP_LEASES_SCHEMA";
/// The reconcilers' interval in the takeover test: their lease lasts
/// `max(3 × interval, 1 s)`.
const INTERVAL: Duration = Duration::from_millis(100);

#[test]
fn a_lease_has_one_holder_until_it_expires_or_is_given_back() {
    let t = common::open();
    let shop = &t.shop;
    let minute = Duration::from_secs(60);
    assert_eq!(shop.lease("nightly").unwrap(), None);

    assert!(shop.take_lease("nightly", "a", minute).unwrap());
    assert!(!shop.take_lease("nightly", "b", minute).unwrap());
    let held = shop.lease("nightly").unwrap().unwrap();
    assert_eq!((held.job.as_str(), held.holder.as_str()), ("nightly", "a"));
    assert_eq!(held.expires_at, t.clock.now().saturating_add(minute));

    // Renewing moves the expiry; another job is another lease.
    t.clock.advance(Duration::from_secs(30));
    assert!(shop.take_lease("nightly", "a", minute).unwrap());
    assert_eq!(
        shop.lease("nightly").unwrap().unwrap().expires_at,
        t.clock.now().saturating_add(minute)
    );
    assert!(shop.take_lease("hourly", "b", minute).unwrap());
    let all: Vec<(String, String)> = shop
        .leases()
        .unwrap()
        .into_iter()
        .map(|l| (l.job, l.holder))
        .collect();
    assert_eq!(
        all,
        [
            ("hourly".into(), "b".into()),
            ("nightly".into(), "a".into())
        ]
    );

    // Until it expires nobody else takes it; then anyone may.
    t.clock.advance(Duration::from_secs(59));
    assert!(!shop.take_lease("nightly", "b", minute).unwrap());
    t.clock.advance(Duration::from_secs(1));
    assert!(shop.take_lease("nightly", "b", minute).unwrap());
    assert!(!shop.take_lease("nightly", "a", minute).unwrap());

    // Only the holder gives it back; then it is free at once.
    assert!(!shop.release_lease("nightly", "a").unwrap());
    assert_eq!(shop.lease("nightly").unwrap().unwrap().holder, "b");
    assert!(shop.release_lease("nightly", "b").unwrap());
    assert_eq!(shop.lease("nightly").unwrap(), None);
    assert!(shop.take_lease("nightly", "a", minute).unwrap());
}

#[test]
fn a_bad_job_or_holder_name_is_refused_and_changes_nothing() {
    let t = common::open();
    let minute = Duration::from_secs(60);
    assert!(t.shop.take_lease("nightly", "a", minute).unwrap());
    let before = t.dump();
    for (job, holder) in [
        ("", "b"),
        (" nightly", "b"),
        ("nightly", ""),
        ("nightly", "b\n"),
        (&"j".repeat(201) as &str, "b"),
    ] {
        let err = t.shop.take_lease(job, holder, minute).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidName {
                    entity: Entity::Lease,
                    ..
                } | Error::InvalidCharacter { .. }
                    | Error::EdgeWhitespace { .. }
            ),
            "{job:?}/{holder:?}: {err:?}"
        );
        assert!(t.shop.release_lease(job, holder).is_err());
    }
    assert!(matches!(
        t.shop.lease(&"j".repeat(201)),
        Err(Error::InvalidName { max: 200, .. })
    ));
    assert_eq!(t.dump(), before);
    assert_eq!(t.shop.lease("nightly").unwrap().unwrap().holder, "a");
}

/// Two pumps for one consumer, on two shops opened on one database (as two
/// servers would): one delivers while it holds the lease; stopping it hands
/// over at once, and every event is delivered once, in order.
#[test]
fn two_pumps_for_one_consumer_deliver_each_event_once_and_hand_over_on_stop() {
    let t = common::open_with(|b| b.clock(SystemClock));
    let other = t.builder().build().unwrap();
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(1_000_000)).unwrap();
    let tea = t.product("Tea", 100, 1_000).id;

    let delivered: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let pump = |shop: &Shop, which: usize| {
        let delivered = Arc::clone(&delivered);
        shop.spawn_event_pump(
            "mailer",
            move |events| {
                let mut delivered = delivered.lock().unwrap();
                delivered.extend(events.iter().map(|e| (which, e.seq)));
                Ok::<_, String>(())
            },
            Duration::from_millis(20),
        )
        .unwrap()
    };
    let pumps = [pump(&t.shop, 0), pump(&other, 1)];
    let job = EventPump::job("mailer");
    let leader = wait_for(|| t.shop.lease(&job).unwrap().map(|l| l.holder));
    let first = pumps.iter().position(|p| p.holder() == leader).unwrap();

    let place = |n: usize| {
        for _ in 0..n {
            t.shop.place_order(kim, &[OrderLine::new(tea, 1)]).unwrap();
        }
    };
    place(10);
    wait_for(|| (delivered.lock().unwrap().len() == 10).then_some(()));
    let [a, b] = pumps;
    let (stopped, rest) = if first == 0 { (a, b) } else { (b, a) };
    let second_holder = rest.holder().to_owned();
    stopped.stop();
    place(10);
    wait_for(|| (delivered.lock().unwrap().len() == 20).then_some(()));
    std::thread::sleep(Duration::from_millis(200));
    drop(rest);

    let delivered = delivered.lock().unwrap().clone();
    let seqs: Vec<u64> = delivered.iter().map(|(_, seq)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=20).collect::<Vec<u64>>(),
        "each event once, in order"
    );
    assert!(delivered[..10].iter().all(|(which, _)| *which == first));
    assert!(delivered[10..].iter().all(|(which, _)| *which != first));
    assert_eq!(t.shop.event_cursor("mailer").unwrap(), 20);
    // Both stopped cleanly: the lease was handed over, then given back.
    assert_ne!(second_holder, leader);
    assert_eq!(t.shop.lease(&job).unwrap(), None);
}

/// The child: a reconciler on the shared database that prints its holder
/// name and runs until it is killed.
#[test]
#[ignore = "run by a_killed_leader_is_replaced_once_its_lease_expires as a child process"]
fn leases_child_reconciles() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let mut builder = Shop::builder(&db).gateway(FakeGateway::new());
    if let Ok(schema) = std::env::var(CHILD_SCHEMA) {
        builder = builder.pg_schema(&schema);
    }
    let shop = builder.build().expect("child opens the shop");
    let reconciler = shop.spawn_reconciler(INTERVAL);
    println!("holder {}", reconciler.holder());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A leading reconciler in another process is SIGKILLed: the one in this
/// process, which did not run while the other led, takes the lease once
/// it expires and settles the payments left open from then on.
#[test]
fn a_killed_leader_is_replaced_once_its_lease_expires() {
    let pg = FakeGateway::new();
    let t = common::open_with(|b| {
        b.clock(SystemClock)
            .gateway(pg.clone())
            .reconcile_grace(Duration::ZERO)
    });
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "leases_child_reconciles",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &t.path)
        .envs(t.pg_schema.iter().map(|schema| (CHILD_SCHEMA, schema)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let child_holder = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("holder ").map(str::to_owned))
        .expect("the child names its holder");
    let lease = || t.shop.lease(Reconciler::JOB).unwrap().map(|l| l.holder);
    wait_for(|| (lease().as_deref() == Some(child_holder.as_str())).then_some(()));

    // While the child leads, this process's reconciler only asks.
    let ours = t.shop.spawn_reconciler(INTERVAL);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(lease().as_deref(), Some(child_holder.as_str()));
        std::thread::sleep(INTERVAL / 2);
    }

    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    wait_for(|| (lease().as_deref() == Some(ours.holder())).then_some(()));
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "took over after {took:?}: before the killed leader's lease expired"
    );

    // The new leader does the work: a payment whose reply was lost is
    // settled by its rounds.
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(10_000)).unwrap();
    let tea = t.product("Tea", 1_000, 5).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 2)]).unwrap();
    pg.push(FakeOutcome::UnknownAfterCharge);
    let Error::PaymentOutcomeUnknown { payment, .. } =
        common::pay_by_card(&t.shop, &pg, kim, order.id).unwrap_err()
    else {
        panic!("expected an unknown outcome");
    };
    wait_for(|| {
        let status = t.shop.payment(kim, payment).unwrap().status;
        (status == PaymentStatus::Approved).then_some(())
    });
    assert_eq!(t.shop.balance(kim).unwrap(), won(10_000));
    ours.stop();
    assert_eq!(lease(), None, "a clean stop gives the lease back");
}

/// Polls `f` every 10 ms until it gives a value; fails after 20 s.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(10));
    }
}
