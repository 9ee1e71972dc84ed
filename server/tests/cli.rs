//! The `liteshop` command's operator tools, run as a person runs them: the
//! real binary on a real file, with their output and exit codes (0 fine,
//! 1 a problem for a person, 2 could not run).

use std::path::Path;
use std::process::{Command, Output};

use liteshop::{FakeGateway, FakeOutcome, Money, NewProduct, OrderLine, Shop};

fn liteshop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liteshop"))
        .args(args)
        .env_remove("LITESHOP_DB")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A shop file with a paid order, a payment left unsettled by a gateway
/// that never answered, and a consumer of the feed; closed again.
fn seeded(dir: &Path) -> String {
    let path = dir.join("shop.db");
    let pg = FakeGateway::new();
    let shop = Shop::builder(&path).gateway(pg.clone()).build().unwrap();
    let kim = shop.create_user("Kim").unwrap();
    shop.host_credit(kim.id, Money::new(100_000).unwrap())
        .unwrap();
    let tea = shop
        .create_product(NewProduct {
            name: "Tea".into(),
            price: Money::new(10_000).unwrap(),
            stock: 10,
        })
        .unwrap();
    let paid = shop
        .place_order(kim.id, &[OrderLine::new(tea.id, 2)])
        .unwrap();
    shop.pay_from_balance(kim.id, paid.id).unwrap();
    let stuck = shop
        .place_order(kim.id, &[OrderLine::new(tea.id, 1)])
        .unwrap();
    // By card, and the PG never answers the confirm.
    let started = shop.start_payment(kim.id, stuck.id, Money::ZERO).unwrap();
    let redirect = pg.pay_widget(&started.widget().unwrap());
    pg.push(FakeOutcome::UnknownBeforeCharge);
    assert!(shop.confirm_payment(kim.id, started.id, &redirect).is_err());
    path.display().to_string()
}

#[test]
fn audit_reports_the_books_and_exits_by_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    let clean = liteshop(&["audit", "--db", &db]);
    assert_eq!(
        code(&clean),
        0,
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let json = liteshop(&["audit", "--db", &db, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["figures"]["charged"], 100_000);
    assert_eq!(report["violations"], serde_json::json!([]));

    // A balance changed behind the ledger's back is a broken law: exit 1.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE balances SET amount = amount + 1", [])
        .unwrap();
    drop(conn);
    let broken = liteshop(&["audit", "--db", &db]);
    assert_eq!(code(&broken), 1);
    assert!(stdout(&broken).contains("balance"), "{}", stdout(&broken));

    // No such file: exit 2, and no file is created.
    let missing = dir.path().join("missing.db");
    let none = liteshop(&["audit", "--db", &missing.display().to_string()]);
    assert_eq!(code(&none), 2);
    assert!(!missing.exists());
}

#[test]
fn backup_copies_a_consistent_shop_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    let to = dir.path().join("copy.db").display().to_string();
    let copied = liteshop(&["backup", "--db", &db, "--to", &to]);
    assert_eq!(
        code(&copied),
        0,
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert!(liteshop(&["audit", "--db", &to]).status.success());
    let again = liteshop(&["backup", "--db", &db, "--to", &to]);
    assert_eq!(code(&again), 2, "the copy is never overwritten");
}

#[test]
fn reconcile_settles_what_it_can_and_exits_1_for_what_needs_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    // No gateway given: it cannot run.
    assert_eq!(code(&liteshop(&["reconcile", "--db", &db])), 2);
    // A gateway that does not answer, past review_after (0 s here is not
    // settable, so the payment is made old instead): needs a person.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE payments SET created_at = 0 WHERE status = 'unknown'",
        [],
    )
    .unwrap();
    drop(conn);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = format!("http://127.0.0.1:{port}");
    let stuck = liteshop(&[
        "reconcile",
        "--db",
        &db,
        "--pg-url",
        &nobody,
        "--pg-secret",
        "s",
    ]);
    assert_eq!(code(&stuck), 1, "{}", stdout(&stuck));
    assert!(
        stdout(&stuck).contains("NEEDS A PERSON"),
        "{}",
        stdout(&stuck)
    );
    // The fake gateway (as `serve` uses without a PG) settles it: a fresh
    // fake never saw the customer pay in its widget, so, as a real PG
    // refuses a key it never issued, the payment ends declined.
    let settled = liteshop(&["reconcile", "--db", &db, "--fake-gateway"]);
    assert_eq!(code(&settled), 0, "{}", stdout(&settled));
    assert!(
        stdout(&settled).contains("declined"),
        "{}",
        stdout(&settled)
    );
    let shop = Shop::open(&db).unwrap();
    assert!(shop.unsettled().unwrap().payments.is_empty());
    assert!(shop.audit().unwrap().is_clean());
    drop(shop);
    // The sweep over recently approved payments runs after the round, and
    // a bad age is refused before anything runs.
    let swept = liteshop(&[
        "reconcile",
        "--db",
        &db,
        "--fake-gateway",
        "--compare-with-pg",
        "7d",
    ]);
    assert_eq!(code(&swept), 0, "{}", stdout(&swept));
    assert!(
        stdout(&swept).contains("payments compared with the PG's record"),
        "{}",
        stdout(&swept)
    );
    let bad = liteshop(&[
        "reconcile",
        "--db",
        &db,
        "--fake-gateway",
        "--compare-with-pg",
        "7",
    ]);
    assert_eq!(code(&bad), 2);
}

#[test]
fn expire_prune_and_events_do_one_thing_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    let expired = liteshop(&["expire-orders", "--db", &db]);
    assert_eq!(code(&expired), 0);
    assert_eq!(stdout(&expired).trim(), "0 orders expired");
    let pruned = liteshop(&["prune-keys", "--db", &db, "--older-than", "24h"]);
    assert_eq!(code(&pruned), 0);
    assert!(stdout(&pruned).contains("idempotency keys forgotten"));
    assert_eq!(
        code(&liteshop(&[
            "prune-keys",
            "--db",
            &db,
            "--older-than",
            "24"
        ])),
        2
    );

    // The feed as a consumer: every event once, as JSON lines, then acked.
    let first = liteshop(&["events", "--db", &db, "--consumer", "warehouse"]);
    assert_eq!(code(&first), 0);
    let events: Vec<serde_json::Value> = stdout(&first)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "in order, no gap"
    );
    assert!(events.iter().any(|e| e["kind"] == "payment_approved"));
    let shop = Shop::open(&db).unwrap();
    assert_eq!(shop.event_cursor("warehouse").unwrap(), seqs.len() as u64);
    drop(shop);
    let second = liteshop(&["events", "--db", &db, "--consumer", "warehouse"]);
    assert_eq!(stdout(&second), "", "nothing new");
}

/// `liteshop serve --db postgres://…` opens the shop before its async
/// runtime starts (the synchronous PostgreSQL client must not block an
/// async worker) and serves. Runs under the PostgreSQL switch.
#[test]
fn serve_runs_on_postgres() {
    let Ok(url) = std::env::var("LITESHOP_TEST_POSTGRES") else {
        eprintln!("skipped: LITESHOP_TEST_POSTGRES is not set (run under scripts/with-postgres)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let schema = format!("serve_{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_liteshop"))
        .args([
            "serve",
            "--db",
            &url,
            "--pg-schema",
            &schema,
            "--addr",
            &addr,
        ])
        .env("LITESHOP_ADMIN_TOKEN", "admin")
        .env("LITESHOP_TOKEN_SECRET", "secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(reply) = agent.get(&format!("http://{addr}/readyz")).call()
            && reply.status() == 200
        {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let created = agent
        .post(&format!("http://{addr}/users"))
        .header("Content-Type", "application/json")
        .send(r#"{"name": "Kim"}"#)
        .map(|r| r.status().as_u16());
    let _ = child.kill();
    let exit = child.wait().unwrap();
    assert!(ready, "the server did not get ready (exit {exit:?})");
    assert_eq!(created.unwrap(), 201);
}
