//! PostgreSQL only: the shop on a PostgreSQL schema (run under
//! `scripts/with-postgres`, which sets `LITESHOP_TEST_POSTGRES`). Without
//! the `postgres` feature or the variable, each test says so and passes.

#![cfg(feature = "postgres")]

mod common;

use common::won;
use liteshop::{FakeGateway, NewProduct, OrderLine, OrderStatus, Shop};

/// The test server's URL, or `None` (the test is skipped, saying so).
fn url() -> Option<String> {
    match std::env::var("LITESHOP_TEST_POSTGRES") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!(
                "skipped: LITESHOP_TEST_POSTGRES is not set (run under scripts/with-postgres)"
            );
            None
        }
    }
}

/// A fresh schema name for one test.
fn schema(name: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    format!("t_{name}_{}", u32::from_le_bytes(bytes))
}

#[test]
fn the_flows_run_on_postgres_and_the_books_balance() {
    let Some(url) = url() else { return };
    let shop = Shop::builder(&url)
        .pg_schema(&schema("flows"))
        .gateway(FakeGateway::new())
        .build()
        .unwrap();
    let kim = shop.create_user("Kim").unwrap();
    assert_eq!(shop.charge(kim.id, won(50_000)).unwrap(), won(50_000));
    let tea = shop
        .create_product(NewProduct {
            name: "Tea".into(),
            price: won(12_000),
            stock: 5,
        })
        .unwrap();
    let order = shop
        .place_order(kim.id, &[OrderLine::new(tea.id, 2)])
        .unwrap();
    assert_eq!(shop.product(tea.id).unwrap().stock, 3);
    shop.pay(kim.id, order.id).unwrap();
    assert_eq!(
        shop.order(kim.id, order.id).unwrap().status,
        OrderStatus::Paid
    );
    assert_eq!(shop.balance(kim.id).unwrap(), won(26_000));
    shop.refund_lines(kim.id, order.id, &[OrderLine::new(tea.id, 1)], "broken")
        .unwrap();
    assert_eq!(shop.balance(kim.id).unwrap(), won(38_000));
    assert_eq!(shop.best_sellers(1, 5).unwrap()[0].units, 1);
    assert_eq!(shop.events(0, 100).unwrap().len(), 4);
    let report = shop.audit().unwrap();
    assert!(report.is_clean(), "{report}");
}
