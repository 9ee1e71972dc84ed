//! Old files and schemas migrate forward: a shop written by the liteshop
//! before payments by tender (`tests/fixtures/README.md` says how) opens,
//! migrates, and its books still balance; what it held reads as the new
//! model says, and it goes on working.

mod common;

use std::path::Path;
use std::time::Duration;

use common::won;
use liteshop::{
    FakeGateway, LedgerKind, Money, OrderId, OrderLine, OrderStatus, PageRequest, PaymentKind,
    PaymentStatus, ProductId, Shop, UserId,
};

const KIM: UserId = UserId::new(1);
const LEE: UserId = UserId::new(2);

/// What the migration must have made of the fixture, and that the shop
/// works on afterwards. The same on both engines.
fn check_migrated(shop: &Shop, pg: &FakeGateway) {
    let report = shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");

    // Every old payment is wholly by balance: that is what its ledger shows.
    for order in [1, 2, 3, 6, 7] {
        for payment in shop
            .payments_for_order(order_user(order), OrderId::new(order))
            .unwrap()
        {
            assert_eq!(payment.kind, PaymentKind::Order);
            assert_eq!(payment.balance_amount, payment.amount, "{payment:?}");
            assert_eq!(payment.pg_amount, Money::ZERO);
            assert_eq!(payment.pg_refunded, Money::ZERO);
        }
    }
    let ledger = shop.ledger(KIM, PageRequest::first(100)).unwrap().items;
    assert_eq!(
        ledger.last().unwrap().kind,
        LedgerKind::HostCredit,
        "the old charge"
    );
    assert!(ledger.iter().all(|e| e.note.is_none()));

    // The payment an old process left in flight is for a person: nothing
    // is asked of the PG about it and nothing moves.
    let before = shop.balance(KIM).unwrap();
    let round = shop.reconcile_payments().unwrap();
    assert_eq!(round.payments.len(), 1, "{round:?}");
    assert!(round.payments[0].needs_review);
    assert_eq!(round.payments[0].status, PaymentStatus::Unknown);
    assert_eq!(pg.total_calls(), 0);
    assert_eq!(shop.balance(KIM).unwrap(), before);

    // An old paid order refunds to the balance: its payment had no PG part.
    let order = OrderId::new(2);
    let paid_before = shop.order(KIM, order).unwrap();
    assert_eq!(paid_before.status, OrderStatus::PartiallyRefunded);
    let refund = shop.refund(KIM, order, "the rest").unwrap();
    assert_eq!(
        (refund.pg_amount, refund.balance_amount),
        (Money::ZERO, won(20_000))
    );
    assert_eq!(
        shop.balance(KIM).unwrap(),
        before.checked_add(won(20_000)).unwrap()
    );
    assert_eq!(pg.total_calls(), 0);

    // New payments by tender run on the migrated shop.
    let tea = ProductId::new(1);
    let order = shop.place_order(LEE, &[OrderLine::new(tea, 1)]).unwrap();
    let started = shop.start_payment(LEE, order.id, won(4_000)).unwrap();
    let redirect = pg.pay_widget(&started.widget().unwrap());
    let paid = shop.confirm_payment(LEE, started.id, &redirect).unwrap();
    assert_eq!(
        (paid.balance_amount, paid.pg_amount),
        (won(4_000), won(6_000))
    );
    let top_up = shop.start_top_up(KIM, won(5_000)).unwrap();
    let redirect = pg.pay_widget(&top_up.widget().unwrap());
    shop.confirm_payment(KIM, top_up.id, &redirect).unwrap();
    let report = shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");
}

/// Whose the fixture's order `order` is.
fn order_user(order: i64) -> UserId {
    match order {
        3 | 5 | 6 => LEE,
        _ => KIM,
    }
}

#[test]
fn a_version_7_sqlite_file_migrates_and_its_books_balance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-v7.db"),
        &path,
    )
    .unwrap();
    let pg = FakeGateway::new();
    let shop = Shop::builder(&path)
        .gateway(pg.clone())
        .reconcile_grace(Duration::ZERO)
        .build()
        .unwrap();
    check_migrated(&shop, &pg);
    drop(shop);
    // And it opens again as it is.
    let again = Shop::builder(&path).gateway(pg.clone()).build().unwrap();
    assert!(again.audit().unwrap().is_clean());
}

#[cfg(feature = "postgres")]
#[test]
fn a_version_3_postgres_schema_migrates_and_its_books_balance() {
    let Ok(url) = std::env::var("LITESHOP_TEST_POSTGRES") else {
        eprintln!("skipped: LITESHOP_TEST_POSTGRES is not set (run under scripts/with-postgres)");
        return;
    };
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    let schema = format!("t_legacy_{}", u32::from_le_bytes(bytes));
    let dump = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-pg-v3.sql"),
    )
    .unwrap()
    .replace("legacy_fixture", &schema);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute(&dump).unwrap();
    drop(client);
    let pg = FakeGateway::new();
    let shop = Shop::builder(&url)
        .pg_schema(&schema)
        .gateway(pg.clone())
        .reconcile_grace(Duration::ZERO)
        .build()
        .unwrap();
    check_migrated(&shop, &pg);
}
