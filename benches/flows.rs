//! Benchmarks of the hot flows on a temp-file database.
//!
//! Run with `cargo bench --bench flows`. Writes are measured under both
//! durabilities; reads do not depend on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use liteshop::{
    Durability, FakeGateway, Money, NewProduct, OrderLine, Payment, ProductId, Shop, UserId,
};

const DURABILITIES: [Durability; 2] = [Durability::Full, Durability::Normal];

fn open(durability: Durability) -> (tempfile::TempDir, Shop) {
    let (dir, shop, _) = open_with_pg(durability);
    (dir, shop)
}

/// A shop on a fake PG, with the PG to play the customer's widget.
fn open_with_pg(durability: Durability) -> (tempfile::TempDir, Shop, FakeGateway) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = FakeGateway::new();
    let shop = Shop::builder(dir.path().join("bench.db"))
        .durability(durability)
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .gateway(pg.clone())
        .build()
        .expect("open shop");
    (dir, shop, pg)
}

/// A started payment paid in the widget and confirmed.
fn by_widget(shop: &Shop, pg: &FakeGateway, user: UserId, started: &Payment) -> Payment {
    let redirect = pg.pay_widget(&started.widget().expect("a PG part"));
    shop.confirm_payment(user, started.id, &redirect)
        .expect("confirm")
}

fn product(shop: &Shop, name: &str) -> ProductId {
    shop.create_product(NewProduct {
        name: name.into(),
        price: Money::from_won(1_000),
        stock: u32::MAX / 2,
    })
    .expect("create product")
    .id
}

fn rich_user(shop: &Shop) -> UserId {
    let user = shop.create_user("bench").expect("user").id;
    shop.host_credit(user, Money::new(1_000_000_000_000).expect("amount"))
        .expect("charge");
    user
}

fn host_credit(c: &mut Criterion) {
    let mut group = c.benchmark_group("host credit");
    for durability in DURABILITIES {
        let (_dir, shop) = open(durability);
        let user = shop.create_user("bench").expect("user").id;
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| b.iter(|| shop.host_credit(user, Money::from_won(1)).expect("credit")),
        );
    }
    group.finish();
}

fn top_up(c: &mut Criterion) {
    let mut group = c.benchmark_group("top-up, fake PG (start, widget, confirm)");
    for durability in DURABILITIES {
        let (_dir, shop, pg) = open_with_pg(durability);
        let user = shop.create_user("bench").expect("user").id;
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| {
                b.iter(|| {
                    let started = shop.start_top_up(user, Money::from_won(1)).expect("top-up");
                    by_widget(&shop, &pg, user, &started)
                })
            },
        );
    }
    group.finish();
}

fn product_lookup(c: &mut Criterion) {
    let (_dir, shop) = open(Durability::Full);
    let id = product(&shop, "tea");
    c.bench_function("product lookup", |b| {
        b.iter(|| shop.product(id).expect("product"))
    });
}

fn cart_list(c: &mut Criterion) {
    let (_dir, shop) = open(Durability::Full);
    let user = shop.create_user("bench").expect("user").id;
    for i in 0..20 {
        let id = product(&shop, &format!("p{i}"));
        shop.add_to_cart(user, id, 2).expect("add");
    }
    c.bench_function("cart list, 20 lines", |b| {
        b.iter(|| shop.cart(user).expect("cart"))
    });
}

fn place_order(c: &mut Criterion) {
    let mut group = c.benchmark_group("place order, 3 lines");
    for durability in DURABILITIES {
        let (_dir, shop) = open(durability);
        let user = rich_user(&shop);
        let lines: Vec<OrderLine> = (0..3)
            .map(|i| OrderLine::new(product(&shop, &format!("p{i}")), 1))
            .collect();
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| b.iter(|| shop.place_order(user, &lines).expect("order")),
        );
    }
    group.finish();
}

fn pay(c: &mut Criterion) {
    let mut group = c.benchmark_group("pay from balance");
    for durability in DURABILITIES {
        let (_dir, shop) = open(durability);
        let user = rich_user(&shop);
        let lines = [OrderLine::new(product(&shop, "tea"), 1)];
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| {
                b.iter_batched(
                    || shop.place_order(user, &lines).expect("order").id,
                    |order| shop.pay_from_balance(user, order).expect("pay"),
                    criterion::BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("pay half by card, fake PG (start, widget, confirm)");
    for durability in DURABILITIES {
        let (_dir, shop, pg) = open_with_pg(durability);
        let user = rich_user(&shop);
        let lines = [OrderLine::new(product(&shop, "tea"), 1)];
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| {
                b.iter_batched(
                    || shop.place_order(user, &lines).expect("order").id,
                    |order| {
                        let started = shop
                            .start_payment(user, order, Money::from_won(500))
                            .expect("start");
                        by_widget(&shop, &pg, user, &started)
                    },
                    criterion::BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

fn refund(c: &mut Criterion) {
    let mut group = c.benchmark_group("refund one of two units to the card, fake PG");
    for durability in DURABILITIES {
        let (_dir, shop, pg) = open_with_pg(durability);
        let user = rich_user(&shop);
        let tea = product(&shop, "tea");
        let lines = [OrderLine::new(tea, 2)];
        let one = [OrderLine::new(tea, 1)];
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| {
                b.iter_batched(
                    || {
                        let order = shop.place_order(user, &lines).expect("order").id;
                        let started = shop.start_payment(user, order, Money::ZERO).expect("start");
                        by_widget(&shop, &pg, user, &started);
                        order
                    },
                    |order| {
                        shop.refund_lines(user, order, &one, "bench")
                            .expect("refund")
                    },
                    criterion::BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

fn readers_beside_a_writer(c: &mut Criterion) {
    let mut group = c.benchmark_group("product lookup, 8 readers + 1 writer");
    for durability in DURABILITIES {
        let (_dir, shop) = open(durability);
        let id = product(&shop, "tea");
        let writer_user = shop.create_user("writer").expect("user").id;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (shop, stop) = (shop.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    shop.host_credit(writer_user, Money::from_won(1))
                        .expect("charge");
                }
            })
        };
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| {
                // Each iteration: 8 threads look the product up 100 times each.
                b.iter(|| {
                    thread::scope(|s| {
                        for _ in 0..8 {
                            s.spawn(|| {
                                for _ in 0..100 {
                                    shop.product(id).expect("product");
                                }
                            });
                        }
                    })
                })
            },
        );
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer");
    }
    group.finish();
}

criterion_group!(
    benches,
    host_credit,
    top_up,
    product_lookup,
    cart_list,
    place_order,
    pay,
    refund,
    readers_beside_a_writer
);
criterion_main!(benches);
