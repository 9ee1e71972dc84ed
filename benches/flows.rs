//! Benchmarks of the hot flows on a temp-file database.
//!
//! Run with `cargo bench --bench flows`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use liteshop::{Durability, Money, NewProduct, Shop};

fn open(durability: Durability) -> (tempfile::TempDir, Shop) {
    let dir = tempfile::tempdir().expect("temp dir");
    let shop = Shop::builder(dir.path().join("bench.db"))
        .durability(durability)
        .max_balance(Money::MAX)
        .build()
        .expect("open shop");
    (dir, shop)
}

fn product(shop: &Shop, name: &str) -> liteshop::ProductId {
    shop.create_product(NewProduct {
        name: name.into(),
        price: Money::from_won(1_000),
        stock: 1_000_000,
    })
    .expect("create product")
    .id
}

fn charge(c: &mut Criterion) {
    let mut group = c.benchmark_group("charge");
    for durability in [Durability::Full, Durability::Normal] {
        let (_dir, shop) = open(durability);
        let user = shop.create_user("bench").expect("user").id;
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| b.iter(|| shop.charge(user, Money::from_won(1)).expect("charge")),
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

fn cart_add_remove(c: &mut Criterion) {
    let mut group = c.benchmark_group("cart add + remove");
    for durability in [Durability::Full, Durability::Normal] {
        let (_dir, shop) = open(durability);
        let user = shop.create_user("bench").expect("user").id;
        let id = product(&shop, "tea");
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| {
                b.iter(|| {
                    let line = shop.add_to_cart(user, id, 1).expect("add");
                    shop.remove_from_cart(user, line.id).expect("remove");
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, charge, product_lookup, cart_list, cart_add_remove);
criterion_main!(benches);
