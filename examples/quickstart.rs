//! A tour of liteshop: open a shop in a temp dir, create a user and products,
//! top the balance up through a fake payment gateway's widget, fill a cart,
//! check it out as an order, cancel it, pay an order partly from the balance
//! and partly by card (declined, then approved), refund it the way the money
//! came, and see a few refusals.
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

    // A top-up: started here, paid in the PG's widget (the fake plays the
    // customer's browser), credited once when the confirm is approved.
    let top_up = shop.start_top_up(kim.id, Money::new(50_000)?)?;
    let widget = top_up.widget().expect("a widget step");
    println!(
        "top-up #{} started: the widget gets orderId {} for {}; balance still {}",
        top_up.id,
        widget.pg_order_id,
        widget.amount,
        shop.balance(kim.id)?
    );
    let redirect = pg.pay_widget(&widget);
    shop.confirm_payment(kim.id, top_up.id, &redirect)?;
    println!("confirmed: balance is now {}", shop.balance(kim.id)?);

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
        shop.start_top_up(kim.id, Money::new(5_000_000)?).map(drop),
        shop.start_top_up(kim.id, Money::ZERO).map(drop),
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

    // 10,000 from the balance, the rest by card: the card is declined the
    // first time (the balance part comes back), approved the second.
    let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    let balance_part = Money::new(10_000)?;
    let first = shop.start_payment(kim.id, order.id, balance_part)?;
    pg.push(FakeOutcome::decline());
    let redirect = pg.pay_widget(&first.widget().expect("a card part"));
    if let Err(err) = shop.confirm_payment(kim.id, first.id, &redirect) {
        println!(
            "first payment of order #{}: {err}; balance back to {}",
            order.id,
            shop.balance(kim.id)?
        );
    }
    let second = shop.start_payment(kim.id, order.id, balance_part)?;
    let redirect = pg.pay_widget(&second.widget().expect("a card part"));
    let payment = shop.confirm_payment(kim.id, second.id, &redirect)?;
    println!(
        "second payment of order #{}: {:?} as {} ({} from the balance, {} by card), order is {:?}",
        order.id,
        payment.status,
        payment.pg_transaction_id.as_deref().unwrap_or("-"),
        payment.balance_amount,
        payment.pg_amount,
        shop.order(kim.id, order.id)?.status
    );
    let one = shop.refund_lines(
        kim.id,
        order.id,
        &[OrderLine::new(tea.id, 1)],
        "one too many",
    )?;
    println!(
        "refund #{}: {} back for 1 tea, {} of it to the card ({:?}), order is {:?}",
        one.id,
        one.amount,
        one.pg_amount,
        one.status,
        shop.order(kim.id, order.id)?.status
    );
    let rest = shop.refund(kim.id, order.id, "changed my mind")?;
    println!(
        "refund #{}: {} back for the rest ({} to the card, {} to the balance), order is {:?}",
        rest.id,
        rest.amount,
        rest.pg_amount,
        rest.balance_amount,
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
