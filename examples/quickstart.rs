//! A tour of liteshop: open a shop in a temp dir, create a user and products,
//! charge a balance, fill a cart, check it out as an order, cancel it, pay an
//! order through a fake payment gateway (declined, then approved), refund it,
//! and see a few refusals.
//!
//! Run with `cargo run --example quickstart`.

use liteshop::{FakeGateway, FakeOutcome, Money, NewProduct, OrderLine, PageRequest, Shop};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shop.db");
    // A fake payment gateway stands in for a real one (HttpGateway).
    let pg = FakeGateway::new();
    let shop = Shop::builder(&path).gateway(pg.clone()).build()?;
    println!("opened a shop at {}", path.display());

    let kim = shop.create_user("Kim Minji")?;
    println!("created user #{} {:?}", kim.id, kim.name);

    let balance = shop.host_credit(kim.id, Money::new(50_000)?)?;
    println!("charged 50,000 KRW: balance is now {balance}");

    let tea = shop.create_product(NewProduct {
        name: "Jeju green tea".into(),
        price: Money::new(12_000)?,
        stock: 10,
    })?;
    let cup = shop.create_product(NewProduct {
        name: "Celadon cup".into(),
        price: Money::new(3_500)?,
        stock: 4,
    })?;
    for product in shop.products(PageRequest::first(10))?.items {
        println!(
            "product #{}: {} at {}, {} in stock",
            product.id, product.name, product.price, product.stock
        );
    }

    shop.add_to_cart(kim.id, tea.id, 2)?;
    let cup_line = shop.add_to_cart(kim.id, cup.id, 1)?;
    shop.set_cart_quantity(kim.id, cup_line.id, 3)?;

    let cart = shop.cart(kim.id)?;
    println!("cart of {}:", kim.name);
    for line in &cart.lines {
        println!(
            "  {:>2} × {:<16} {:>12} = {:>12}",
            line.quantity,
            line.name,
            line.unit_price.to_string(),
            line.line_total
                .map_or("too large".into(), |m| m.to_string())
        );
    }
    if let Some(total) = cart.total {
        println!("  total {total}");
    }

    // Refusals are typed errors with the figures involved, and change nothing.
    let refusals = [
        shop.add_to_cart(kim.id, tea.id, 1).map(drop),
        shop.host_credit(kim.id, Money::new(5_000_000)?).map(drop),
        shop.host_credit(kim.id, Money::ZERO).map(drop),
    ];
    for refusal in refusals {
        if let Err(err) = refusal {
            println!(
                "refused ({:?}, HTTP {}): {err}",
                err.kind(),
                err.kind().http_status()
            );
        }
    }

    let order = shop.checkout_cart(kim.id, None)?;
    println!(
        "checked out the cart as order #{} ({:?}): total {}, stock reserved for {} minutes",
        order.id,
        order.status,
        order.total,
        (order.expires_at.as_millis() - order.created_at.as_millis()) / 60_000
    );
    println!(
        "stock now: tea {}, cups {}; cart lines left: {}",
        shop.product(tea.id)?.stock,
        shop.product(cup.id)?.stock,
        shop.cart(kim.id)?.lines.len()
    );
    let cancelled = shop.cancel_order(kim.id, order.id)?;
    println!(
        "cancelled order #{} ({:?}): tea back to {}",
        cancelled.id,
        cancelled.status,
        shop.product(tea.id)?.stock
    );
    if let Err(err) = shop.cancel_order(kim.id, order.id) {
        println!("refused ({:?}): {err}", err.kind());
    }

    let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    pg.push(FakeOutcome::decline());
    if let Err(err) = shop.pay_from_balance(kim.id, order.id) {
        println!("first payment of order #{}: {err}", order.id);
    }
    let payment = shop.pay_from_balance(kim.id, order.id)?;
    println!(
        "second payment of order #{}: {:?} as {}, order is {:?}",
        order.id,
        payment.status,
        payment.pg_transaction_id.as_deref().unwrap_or("-"),
        shop.order(kim.id, order.id)?.status
    );
    let one = shop.refund_lines(
        kim.id,
        order.id,
        &[OrderLine::new(tea.id, 1)],
        "one too many",
    )?;
    println!(
        "refund #{}: {} back for 1 tea ({:?}), order is {:?}",
        one.id,
        one.amount,
        one.status,
        shop.order(kim.id, order.id)?.status
    );
    let rest = shop.refund(kim.id, order.id, "changed my mind")?;
    println!(
        "refund #{}: {} back for the rest, order is {:?}",
        rest.id,
        rest.amount,
        shop.order(kim.id, order.id)?.status
    );

    println!("ledger of {}, newest first:", kim.name);
    for entry in shop.ledger(kim.id, PageRequest::first(10))?.items {
        println!(
            "  {:?} of {} -> balance {}",
            entry.kind, entry.amount, entry.balance_after
        );
    }
    Ok(())
}
