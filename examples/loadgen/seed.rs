//! The shop a run starts from: users with balances, coupon offers and
//! products, and, with `--preload`, years of history bulk-loaded.

use super::*;

/// Coupon offers seeded, ids 1 to this.
pub(super) const COUPONS: i64 = 4;

pub(super) fn seed(place: &Place, args: &Args) -> Result<(), Error> {
    let shop = place
        .builder()
        .durability(Durability::Normal)
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .build()?;
    for i in 0..args.users {
        let user = shop.create_user(&format!("user {i}"))?;
        shop.grant(user.id, Money::new(1_000_000_000)?, "load test seed")?;
    }
    // Coupons for a quarter of the users each, issuable all run long.
    let now = SystemClock.now();
    for i in 0..COUPONS {
        shop.create_coupon(NewCoupon {
            name: format!("coupon {i}"),
            discount: if i % 2 == 0 {
                Discount::Fixed {
                    amount: Money::new(500)?,
                }
            } else {
                Discount::Percent {
                    percent: 10,
                    cap: Some(Money::new(2_000)?),
                }
            },
            quantity: (args.users as u32 / 4).max(1),
            issuable_from: now,
            issuable_until: now.saturating_add(Duration::from_secs(86_400)),
            valid_for: Duration::from_secs(86_400),
            min_order_total: Money::new(1_000)?,
        })?;
    }
    for i in 0..args.products {
        shop.create_product(NewProduct {
            name: format!("product {i}"),
            price: Money::new(1_000 + 500 * (i % 10))?,
            stock: args.stock,
        })?;
    }
    Ok(())
}

/// Creates the users (each with a large balance) and the products.
/// Bulk-loads `extra` users after the first `first` (ids continue), each
/// with ten charges in the ledger and three cancelled orders with their
/// placed and cancelled events, in transactions of 20,000 users: the
/// history a shop has after years, consistent with every audit law.
pub(super) fn preload(path: &Path, first: i64, extra: i64) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let placed = serde_json::to_string(&json!({
        "kind": "order_placed",
        "lines": [{"product": 1, "name": "product 0", "unit_price": 1000, "quantity": 1,
                   "line_total": 1000, "amount": 1000, "refunded": 0}],
        "subtotal": 1000, "discount": 0, "total": 1000, "coupon": null,
    }))
    .expect("json");
    let cancelled = r#"{"kind":"order_cancelled"}"#;
    let now = SystemClock.now().as_millis();
    let mut id = first;
    while id < first + extra {
        let tx = conn.transaction()?;
        {
            let mut user =
                tx.prepare_cached("INSERT INTO users (id, name, created_at) VALUES (?1, ?2, ?3)")?;
            let mut balance = tx.prepare_cached(
                "INSERT INTO balances (user_id, amount, updated_at) VALUES (?1, ?2, ?3)",
            )?;
            let mut ledger = tx.prepare_cached(
                "INSERT INTO ledger (user_id, kind, amount, balance_after, created_at)
                 VALUES (?1, 'charge', 1000000, ?2, ?3)",
            )?;
            let mut order = tx.prepare_cached(
                "INSERT INTO orders (user_id, status, cancel_reason, total, created_at, expires_at,
                                     updated_at)
                 VALUES (?1, 'cancelled', 'user', 1000, ?2, ?2, ?2) RETURNING id",
            )?;
            let mut item = tx.prepare_cached(
                "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity, amount)
                 VALUES (?1, 1, 'product 0', 1000, 1, 1000)",
            )?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (kind, user_id, order_id, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for _ in 0..20_000 {
                if id >= first + extra {
                    break;
                }
                id += 1;
                user.execute(rusqlite::params![id, format!("user {id}"), now])?;
                for n in 1..=10_i64 {
                    ledger.execute(rusqlite::params![id, n * 1_000_000, now])?;
                }
                balance.execute(rusqlite::params![id, 10_000_000_i64, now])?;
                for _ in 0..3 {
                    let order_id: i64 =
                        order.query_row(rusqlite::params![id, now], |r| r.get(0))?;
                    item.execute([order_id])?;
                    event.execute(rusqlite::params!["order_placed", id, order_id, placed, now])?;
                    event.execute(rusqlite::params![
                        "order_cancelled",
                        id,
                        order_id,
                        cancelled,
                        now
                    ])?;
                }
            }
        }
        tx.commit()?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}
