//! Opening, reopening and refusing database files.

mod common;

use std::fs;

use common::{open, won};
use liteshop::{Error, ErrorKind, Money, NewProduct, PageRequest, Result, Shop};

#[test]
fn data_survives_closing_and_reopening() -> Result<()> {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return Ok(());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let (kim, tea) = {
        let shop = Shop::open(&path)?;
        let kim = shop.create_user("Kim")?;
        shop.host_credit(kim.id, won(5_000))?;
        let tea = shop.create_product(NewProduct {
            name: "Tea".into(),
            price: won(1_000),
            stock: 4,
        })?;
        shop.add_to_cart(kim.id, tea.id, 2)?;
        (kim, tea)
    };
    let shop = Shop::open(&path)?;
    assert_eq!(shop.user(kim.id)?, kim);
    assert_eq!(shop.balance(kim.id)?, won(5_000));
    assert_eq!(shop.product(tea.id)?, tea);
    assert_eq!(shop.cart(kim.id)?.total, Some(won(2_000)));
    assert_eq!(shop.ledger(kim.id, PageRequest::first(10))?.items.len(), 1);
    Ok(())
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_untouched() -> Result<()> {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return Ok(());
    }
    let t = open();
    t.user("Kim");
    let path = t.path.clone();
    drop(t.shop);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        // Everything into the main file now: a pool connection the closed
        // shop's pool was still opening may close after this block, and
        // must find nothing left to checkpoint into the file.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let bytes = fs::read(&path).unwrap();

    let err = Shop::open(&path).unwrap_err();
    let Error::SchemaTooNew { found, supported } = err else {
        panic!("expected SchemaTooNew, got {err:?}");
    };
    assert_eq!(found, 99);
    assert!((1..99).contains(&supported));
    let err = Error::SchemaTooNew { found, supported };
    assert_eq!(err.kind(), ErrorKind::Internal);
    let message = err.to_string();
    assert!(
        message.contains("99") && message.contains(&supported.to_string()),
        "{message}"
    );
    assert_eq!(fs::read(&path).unwrap(), bytes);
    Ok(())
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "These are my notes, not a database.\n".repeat(200);
    fs::write(&path, &text).unwrap();

    let err = Shop::open(&path).unwrap_err();
    assert!(
        matches!(&err, Error::NotADatabase { path: p } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn another_programs_database_is_refused_and_left_untouched() {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
            .unwrap();
    }
    let bytes = fs::read(&path).unwrap();
    let err = Shop::open(&path).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_bad_configuration_is_refused_before_the_file_is_created() {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let attempts = [
        Shop::builder(&path).pool_size(0).build(),
        Shop::builder(&path).max_charge(Money::ZERO).build(),
        Shop::builder(&path).max_balance(Money::ZERO).build(),
        Shop::builder(&path).max_cart_quantity(0).build(),
    ];
    for attempt in attempts {
        let err = attempt.unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    }
    assert!(!path.exists());
}

#[test]
fn the_schema_holds_the_invariants_even_against_raw_sql() -> Result<()> {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return Ok(());
    }
    let t = open();
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 1);
    let conn = rusqlite::Connection::open(&t.path).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    let refused = [
        ("negative balance", "UPDATE balances SET amount = -1"),
        ("negative stock", "UPDATE products SET stock = -1"),
        ("negative price", "UPDATE products SET price = -1"),
        (
            "zero ledger amount",
            "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at) VALUES (1, 'charge', 0, 0, 0)",
        ),
        (
            "a debit labelled as a charge",
            "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at) VALUES (1, 'charge', -5, 0, 0)",
        ),
        (
            "an unknown ledger kind",
            "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at) VALUES (1, 'gift', 5, 5, 0)",
        ),
        (
            "zero cart quantity",
            "INSERT INTO cart_items (user_id, product_id, quantity, created_at) VALUES (1, 1, 0, 0)",
        ),
        (
            "a cart line of a missing product",
            "INSERT INTO cart_items (user_id, product_id, quantity, created_at) VALUES (1, 99, 1, 0)",
        ),
        ("a text balance", "UPDATE balances SET amount = 'lots'"),
    ];
    let before = t.dump();
    for (what, sql) in refused {
        assert!(conn.execute(sql, []).is_err(), "the schema accepted {what}");
    }
    t.shop.add_to_cart(kim.id, tea.id, 1)?;
    assert!(
        conn.execute("INSERT INTO cart_items (user_id, product_id, quantity, created_at) VALUES (1, 1, 1, 0)", [])
            .is_err(),
        "the schema accepted a second line for one product"
    );
    assert_eq!(t.dump().len(), before.len() + 1);
    Ok(())
}

#[test]
fn a_write_lock_held_past_the_busy_timeout_is_busy_and_changes_nothing() -> Result<()> {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return Ok(());
    }
    let t = common::open_with(|b| b.busy_timeout(std::time::Duration::from_millis(50)));
    let kim = t.user("Kim");
    let before = t.dump();

    // Another process (here, another connection) holds the write lock.
    let mut other = rusqlite::Connection::open(&t.path).unwrap();
    let lock = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let err = t.shop.host_credit(kim.id, won(1_000)).unwrap_err();
    assert!(matches!(err, Error::Busy(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Busy);
    // Readers are not blocked by a writer in WAL mode.
    assert_eq!(t.shop.balance(kim.id)?, Money::ZERO);
    drop(lock);

    assert_eq!(t.dump(), before);
    assert_eq!(t.shop.host_credit(kim.id, won(1_000))?, won(1_000));
    Ok(())
}

/// Another program's database, whatever `user_version` it set, is refused
/// before anything is written: no header change, no WAL file, no migration.
#[test]
fn another_programs_database_with_any_user_version_is_refused_byte_for_byte() {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return;
    }
    for version in [1, 2, 3, 4, 5, 99] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
                .unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
        }
        let bytes = fs::read(&path).unwrap();
        let err = Shop::open(&path).unwrap_err();
        assert!(
            matches!(err, Error::NotADatabase { .. }),
            "version {version}: {err:?}"
        );
        assert_eq!(fs::read(&path).unwrap(), bytes, "version {version}");
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "version {version}: a WAL or journal was left");
    }
}

/// A database that carries another program's `application_id` is refused,
/// even when it is empty.
#[test]
fn a_database_marked_by_another_program_is_refused_byte_for_byte() {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "application_id", 0x1234_5678)
            .unwrap();
    }
    let bytes = fs::read(&path).unwrap();
    let err = Shop::open(&path).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

/// A liteshop file is marked, so it is recognised on every later open.
#[test]
fn a_liteshop_file_carries_the_liteshop_application_id() {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return;
    }
    let t = open();
    let conn = rusqlite::Connection::open(&t.path).unwrap();
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .unwrap();
    assert_eq!(id.to_be_bytes(), *b"LSHP");
}

/// The pool's wait for a connection is never shorter than the time it takes
/// to open one, so a tiny busy timeout cannot make `build()` fail.
#[test]
fn a_tiny_busy_timeout_never_fails_build_or_a_first_read() -> Result<()> {
    if common::sqlite_only("the file marker, WAL and the file's schema are SQLite's") {
        return Ok(());
    }
    let dir = tempfile::tempdir().unwrap();
    for i in 0..100 {
        let path = dir.path().join(format!("shop-{i}.db"));
        let shop = Shop::builder(&path)
            .busy_timeout(std::time::Duration::from_millis(1 + i % 10))
            .build()?;
        let kim = shop.create_user("Kim")?;
        assert_eq!(shop.balance(kim.id)?, Money::ZERO);
    }
    Ok(())
}

/// An operator's tool opens only a shop that exists: a missing file is
/// refused, and not created.
#[test]
fn existing_only_refuses_a_missing_file_and_creates_nothing() {
    if common::sqlite_only("a file is SQLite's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let err = liteshop::Shop::builder(&missing)
        .existing_only()
        .build()
        .unwrap_err();
    assert!(
        matches!(err, liteshop::Error::ShopMissing { .. }),
        "{err:?}"
    );
    assert!(!missing.exists());
    let shop = common::open();
    assert!(
        shop.builder().existing_only().build().is_ok(),
        "an existing shop opens"
    );
}
