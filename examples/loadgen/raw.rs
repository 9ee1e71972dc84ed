//! The same statements as liteshop, written directly on one rusqlite
//! connection per thread: no pool, no validation layer, no result structs.

use super::*;

pub(super) struct Raw {
    pub(super) gateway: RandomGateway,
    pub(super) durability: DurabilityArg,
}

type R<T> = Result<T, String>;

fn sql(err: rusqlite::Error) -> String {
    format!("sql: {err}")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Target for Raw {
    fn run(&self, step: Step, w: &mut Worker) -> Option<R<()>> {
        // Without the postgres feature the match has one arm.
        #[cfg_attr(
            not(feature = "postgres"),
            allow(clippy::infallible_destructuring_match)
        )]
        let mut conn = match w.conn.take().expect("a raw connection") {
            RawConn::File(conn) => conn,
            #[cfg(feature = "postgres")]
            RawConn::Postgres(mut conn) => {
                let result = raw_pg::run(&mut conn, &self.gateway, step, w);
                w.conn = Some(RawConn::Postgres(conn));
                return result;
            }
        };
        if conn.is_autocommit() {
            let sync = match self.durability {
                DurabilityArg::Full => "FULL",
                DurabilityArg::Normal => "NORMAL",
            };
            let _ = conn.pragma_update(None, "synchronous", sync);
        }
        let result = match step {
            Step::Charge { user, amount } => {
                Some(charge(&mut conn, &self.gateway, user.get(), amount.won()))
            }
            Step::Cart {
                user,
                product,
                quantity,
            } => Some(cart(
                &mut conn,
                user.get(),
                product.get(),
                i64::from(quantity),
            )),
            Step::Order { user, lines, .. } => Some(
                order(&mut conn, user.get(), &lines)
                    .map(|id| w.orders.push_back((user, OrderId::new(id)))),
            ),
            Step::Pay {
                user,
                order,
                tender,
                ..
            } => Some(pay(
                &mut conn,
                &self.gateway,
                user.get(),
                order.get(),
                tender.code(),
            )),
            Step::Cancel { user, order } => Some(cancel(&mut conn, user.get(), order.get())),
            // The baseline has no refunds or coupons: skipped there.
            Step::Refund { .. } | Step::Coupon { .. } => None,
            Step::Read { product } => Some(read(&conn, product.get())),
        };
        w.conn = Some(RawConn::File(conn));
        result
    }
}

fn exists(tx: &Connection, sql_text: &str, id: i64) -> R<bool> {
    tx.prepare_cached(sql_text)
        .map_err(sql)?
        .query_row([id], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
        .map_err(sql)
}

fn post(
    tx: &Connection,
    user: i64,
    kind: &str,
    signed: i64,
    payment: Option<i64>,
    now: i64,
) -> R<()> {
    let balance: i64 = tx
        .prepare_cached("SELECT amount FROM balances WHERE user_id = ?1")
        .map_err(sql)?
        .query_row([user], |r| r.get(0))
        .map_err(sql)?;
    let after = balance + signed;
    tx.prepare_cached("UPDATE balances SET amount = ?2, updated_at = ?3 WHERE user_id = ?1")
        .map_err(sql)?
        .execute((user, after, now))
        .map_err(sql)?;
    tx.prepare_cached(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, payment_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(sql)?
    .execute((user, kind, signed, after, payment, now))
    .map_err(sql)?;
    Ok(())
}

/// A top-up as liteshop runs it: started (one transaction), paid in
/// the widget, confirmed and recorded (two more).
fn charge(conn: &mut Connection, gateway: &RandomGateway, user: i64, amount: i64) -> R<()> {
    let now = now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    if !exists(&tx, "SELECT 1 FROM users WHERE id = ?1", user)? {
        return Err("NotFound".into());
    }
    let _in_flight: i64 = tx
        .prepare_cached(
            "SELECT coalesce(sum(CASE WHEN kind = 'top_up' THEN pg_amount
                                 ELSE balance_amount END), 0) FROM payments
             WHERE user_id = ?1 AND status IN ('started', 'requested', 'unknown')",
        )
        .map_err(sql)?
        .query_row([user], |r| r.get(0))
        .map_err(sql)?;
    let started = insert_started(&tx, None, user, 0, amount, now)?;
    tx.commit().map_err(sql)?;
    confirm(conn, gateway, user, None, &started, now)
}

/// A payment attempt as `insert_started` saved it.
struct Started {
    id: i64,
    pg_order_id: String,
    key: String,
    balance_part: i64,
    pg_part: i64,
}

/// Saves a `started` payment (of `order`, or a top-up), with its
/// history's first row.
fn insert_started(
    tx: &Connection,
    order: Option<i64>,
    user: i64,
    balance_part: i64,
    pg_part: i64,
    now: i64,
) -> R<Started> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pg_order_id = format!("raw-{}-{n}", order.unwrap_or(0));
    let key = format!("raw-pay-{n}");
    let kind = if order.is_some() { "order" } else { "top_up" };
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO payments (order_id, user_id, amount, status, pg_order_id,
                                   idempotency_key, created_at, updated_at, kind,
                                   balance_amount, pg_amount, order_name, customer_key,
                                   expires_at)
             VALUES (?1, ?2, ?3, 'started', ?4, ?5, ?6, ?6, ?7, ?8, ?9, 'Raw', 'raw-c', ?6)
             RETURNING id",
        )
        .map_err(sql)?
        .query_row(
            (
                order,
                user,
                balance_part + pg_part,
                &pg_order_id,
                &key,
                now,
                kind,
                balance_part,
                pg_part,
            ),
            |r| r.get(0),
        )
        .map_err(sql)?;
    event(tx, id, "started", now)?;
    Ok(Started {
        id,
        pg_order_id,
        key,
        balance_part,
        pg_part,
    })
}

/// The widget step, then the confirm: the key stored (`requested`, one
/// transaction), the PG asked with no transaction open, the answer
/// recorded (one more): an order `paid` or `pending` again (its balance
/// part given back), a top-up credited.
fn confirm(
    conn: &mut Connection,
    gateway: &RandomGateway,
    user: i64,
    order: Option<i64>,
    started: &Started,
    now: i64,
) -> R<()> {
    let amount = Money::new(started.pg_part).expect("a PG part");
    let redirect = gateway.fake.pay_in_widget(&started.pg_order_id, amount);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    tx.prepare_cached(
        "UPDATE payments SET status = 'requested', payment_key = ?2, updated_at = ?3
         WHERE id = ?1 AND status = 'started'",
    )
    .map_err(sql)?
    .execute((started.id, &redirect.payment_key, now))
    .map_err(sql)?;
    event(&tx, started.id, "requested", now)?;
    tx.commit().map_err(sql)?;

    let answer = gateway.approve(&ApproveRequest {
        payment_key: redirect.payment_key,
        pg_order_id: started.pg_order_id.clone(),
        amount,
        currency: liteshop::Currency::KRW,
        tax_free_amount: liteshop::Money::ZERO,
        idempotency_key: started.key.clone(),
        order: order.map(OrderId::new),
    });

    let payment = started.id;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let _current: String = tx
        .prepare_cached("SELECT status FROM payments WHERE id = ?1")
        .map_err(sql)?
        .query_row([payment], |r| r.get(0))
        .map_err(sql)?;
    let result = match answer {
        Ok(approval) => {
            tx.prepare_cached(
                "UPDATE payments SET status = 'approved', pg_transaction_id = ?2, updated_at = ?3 WHERE id = ?1",
            )
            .map_err(sql)?
            .execute((payment, &approval.transaction_id, now))
            .map_err(sql)?;
            event(&tx, payment, "approved", now)?;
            match order {
                Some(order) => set_order(&tx, order, "paying", "paid", now)?,
                None => post(&tx, user, "top_up", started.pg_part, Some(payment), now)?,
            }
            Ok(())
        }
        Err(GatewayError::Unknown { .. }) => {
            tx.prepare_cached(
                "UPDATE payments SET status = 'unknown', updated_at = ?2 WHERE id = ?1",
            )
            .map_err(sql)?
            .execute((payment, now))
            .map_err(sql)?;
            event(&tx, payment, "unknown", now)?;
            Err("PaymentOutcomeUnknown".to_owned())
        }
        Err(_) => {
            tx.prepare_cached(
                "UPDATE payments SET status = 'declined', failure_code = 'X', failure_message = '', updated_at = ?2 WHERE id = ?1",
            )
            .map_err(sql)?
            .execute((payment, now))
            .map_err(sql)?;
            if started.balance_part > 0 {
                post(
                    &tx,
                    user,
                    "payment_reversal",
                    started.balance_part,
                    Some(payment),
                    now,
                )?;
            }
            event(&tx, payment, "declined", now)?;
            if let Some(order) = order {
                set_order(&tx, order, "paying", "pending", now)?;
            }
            Err("PaymentDeclined".to_owned())
        }
    };
    tx.commit().map_err(sql)?;
    result
}

fn cart(conn: &mut Connection, user: i64, product: i64, quantity: i64) -> R<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    if !exists(&tx, "SELECT 1 FROM users WHERE id = ?1", user)? {
        return Err("NotFound".into());
    }
    let _product: (i64, String, i64, i64) = tx
        .prepare_cached("SELECT id, name, price, stock FROM products WHERE id = ?1")
        .map_err(sql)?
        .query_row([product], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(sql)?;
    let existing: Option<i64> = tx
        .prepare_cached("SELECT id FROM cart_items WHERE user_id = ?1 AND product_id = ?2")
        .map_err(sql)?
        .query_row((user, product), |r| r.get(0))
        .optional()
        .map_err(sql)?;
    match existing {
        Some(item) => {
            // liteshop refuses, then removes in a second transaction.
            drop(tx);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            tx.prepare_cached("DELETE FROM cart_items WHERE id = ?1 AND user_id = ?2")
                .map_err(sql)?
                .execute((item, user))
                .map_err(sql)?;
            tx.commit().map_err(sql)
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO cart_items (user_id, product_id, quantity, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql)?
            .execute((user, product, quantity, now()))
            .map_err(sql)?;
            tx.commit().map_err(sql)
        }
    }
}

fn order(conn: &mut Connection, user: i64, lines: &[OrderLine]) -> R<i64> {
    let now = now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    if !exists(&tx, "SELECT 1 FROM users WHERE id = ?1", user)? {
        return Err("NotFound".into());
    }
    let mut items = Vec::new();
    for line in lines {
        let (name, price): (String, i64) = tx
            .prepare_cached("SELECT name, price FROM products WHERE id = ?1")
            .map_err(sql)?
            .query_row([line.product.get()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql)?;
        items.push((line.product.get(), name, price, i64::from(line.quantity)));
    }
    for (product, _, _, quantity) in &items {
        let changed = tx
            .prepare_cached(
                "UPDATE products SET stock = stock - ?2, updated_at = ?3 WHERE id = ?1 AND stock >= ?2",
            )
            .map_err(sql)?
            .execute((product, quantity, now))
            .map_err(sql)?;
        if changed == 0 {
            return Err("Conflict".into());
        }
    }
    let total: i64 = items.iter().map(|(_, _, price, q)| price * q).sum();
    let balance: i64 = tx
        .prepare_cached("SELECT amount FROM balances WHERE user_id = ?1")
        .map_err(sql)?
        .query_row([user], |r| r.get(0))
        .map_err(sql)?;
    if balance < total {
        return Err("Conflict".into());
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO orders (user_id, status, total, created_at, expires_at, updated_at)
             VALUES (?1, 'pending', ?2, ?3, ?4, ?3) RETURNING id",
        )
        .map_err(sql)?
        .query_row((user, total, now, now + 900_000), |r| r.get(0))
        .map_err(sql)?;
    for (product, name, price, quantity) in &items {
        tx.prepare_cached(
            "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(sql)?
        .execute((id, product, name, price, quantity))
        .map_err(sql)?;
    }
    tx.commit().map_err(sql)?;
    Ok(id)
}

/// A payment by tender as liteshop runs it (`tender`: 0 wholly by
/// balance, 1 wholly by card, 2 half and half): started in one
/// transaction with the balance part held — wholly by balance, approved
/// there — then the widget step and the confirm.
fn pay(
    conn: &mut Connection,
    gateway: &RandomGateway,
    user: i64,
    order: i64,
    tender: u64,
) -> R<()> {
    let now = now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let (status, total): (String, i64) = tx
        .prepare_cached("SELECT status, total FROM orders WHERE id = ?1 AND user_id = ?2")
        .map_err(sql)?
        .query_row((order, user), |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql)?;
    let _items: Vec<i64> = tx
        .prepare_cached("SELECT product_id FROM order_items WHERE order_id = ?1 ORDER BY id")
        .map_err(sql)?
        .query_map([order], |r| r.get(0))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    if status != "pending" {
        return Err("Conflict".into());
    }
    let balance_part = match tender {
        0 => total,
        1 => 0,
        _ => total / 2,
    };
    if balance_part > 0 {
        let balance: i64 = tx
            .prepare_cached("SELECT amount FROM balances WHERE user_id = ?1")
            .map_err(sql)?
            .query_row([user], |r| r.get(0))
            .map_err(sql)?;
        if balance < balance_part {
            return Err("Conflict".into());
        }
    }
    let started = insert_started(
        &tx,
        Some(order),
        user,
        balance_part,
        total - balance_part,
        now,
    )?;
    if balance_part > 0 {
        post(&tx, user, "payment", -balance_part, Some(started.id), now)?;
    }
    set_order(&tx, order, "pending", "paying", now)?;
    if started.pg_part == 0 {
        tx.prepare_cached("UPDATE payments SET status = 'approved', updated_at = ?2 WHERE id = ?1")
            .map_err(sql)?
            .execute((started.id, now))
            .map_err(sql)?;
        event(&tx, started.id, "approved", now)?;
        set_order(&tx, order, "paying", "paid", now)?;
        return tx.commit().map_err(sql);
    }
    tx.commit().map_err(sql)?;
    confirm(conn, gateway, user, Some(order), &started, now)
}

fn event(tx: &Connection, payment: i64, status: &str, now: i64) -> R<()> {
    tx.prepare_cached(
        "INSERT INTO payment_events (payment_id, status, detail, created_at) VALUES (?1, ?2, '', ?3)",
    )
    .map_err(sql)?
    .execute((payment, status, now))
    .map_err(sql)?;
    Ok(())
}

fn set_order(tx: &Connection, order: i64, from: &str, to: &str, now: i64) -> R<()> {
    tx.prepare_cached(
        "UPDATE orders SET status = ?3, updated_at = ?4 WHERE id = ?1 AND status = ?2",
    )
    .map_err(sql)?
    .execute((order, from, to, now))
    .map_err(sql)?;
    Ok(())
}

fn cancel(conn: &mut Connection, user: i64, order: i64) -> R<()> {
    let now = now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let status: String = tx
        .prepare_cached("SELECT status FROM orders WHERE id = ?1 AND user_id = ?2")
        .map_err(sql)?
        .query_row((order, user), |r| r.get(0))
        .map_err(sql)?;
    if status != "pending" {
        return Err("Conflict".into());
    }
    tx.prepare_cached(
        "UPDATE orders SET status = 'cancelled', cancel_reason = 'user', updated_at = ?2
         WHERE id = ?1 AND status = 'pending'",
    )
    .map_err(sql)?
    .execute((order, now))
    .map_err(sql)?;
    let lines: Vec<(i64, i64)> = tx
        .prepare_cached("SELECT product_id, quantity FROM order_items WHERE order_id = ?1")
        .map_err(sql)?
        .query_map([order], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    for (product, quantity) in lines {
        tx.prepare_cached("UPDATE products SET stock = stock + ?2, updated_at = ?3 WHERE id = ?1")
            .map_err(sql)?
            .execute((product, quantity, now))
            .map_err(sql)?;
    }
    tx.commit().map_err(sql)
}

fn read(conn: &Connection, product: i64) -> R<()> {
    let _row: (i64, String, i64, i64, i64, i64) = conn
        .prepare_cached(
            "SELECT id, name, price, stock, created_at, updated_at FROM products WHERE id = ?1",
        )
        .map_err(sql)?
        .query_row([product], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .map_err(sql)?;
    Ok(())
}
