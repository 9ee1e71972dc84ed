//! The raw baseline on PostgreSQL: the statements of [`raw`], with `$n`
//! parameters, on one plain `postgres` connection per thread, each prepared
//! once per connection, one transaction per write — and, unlike [`raw`],
//! the rows liteshop's flows write besides: the feed's events (each with a
//! provisional number and a JSON payload of the same shape) and the
//! per-day sales of a paid order, so both sides write the same rows. Where
//! liteshop takes the user's lock, these take the balance row (`FOR
//! UPDATE`) before reading it; product rows are taken in id order; a
//! deadlock or serialization failure runs the transaction again, as
//! liteshop does.

use super::*;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

type R<T> = Result<T, String>;

/// What a failed statement means here: a refusal, or "run the
/// transaction again".
const RETRY: &str = "retry";

pub(super) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    pub(super) fn new(client: Client) -> Conn {
        Conn {
            client,
            statements: HashMap::new(),
        }
    }

    fn statement(&mut self, sql: &'static str) -> R<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(err)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<u64> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params).map_err(err)
    }

    fn opt(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<Option<Row>> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params).map_err(err)
    }

    fn one(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<Row> {
        self.opt(sql, params)?.ok_or_else(|| "NotFound".to_owned())
    }

    fn all(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> R<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params).map_err(err)
    }

    /// Runs `body` in one transaction, again on a deadlock or
    /// serialization failure.
    fn transaction<T>(&mut self, body: impl Fn(&mut Conn) -> R<T>) -> R<T> {
        for _ in 0..8 {
            self.client.batch_execute("BEGIN").map_err(err)?;
            let result = body(self);
            let result = match result {
                Ok(value) => self
                    .client
                    .batch_execute("COMMIT")
                    .map_err(err)
                    .map(|()| value),
                Err(refused) => {
                    self.client.batch_execute("ROLLBACK").map_err(err)?;
                    Err(refused)
                }
            };
            match result {
                Err(e) if e == RETRY => continue,
                other => return other,
            }
        }
        Err("retries exhausted".into())
    }
}

fn err(error: postgres::Error) -> String {
    use postgres::error::SqlState;
    match error.code() {
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED => RETRY.into(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE => RETRY.into(),
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => "Conflict".into(),
        _ => format!("sql: {error}"),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Appends an event to the feed as liteshop does on PostgreSQL.
fn feed(
    c: &mut Conn,
    user: i64,
    order: i64,
    payment: Option<i64>,
    payload: &Value,
    now: i64,
) -> R<()> {
    let kind = payload["kind"].as_str().unwrap_or_default().to_owned();
    c.execute(
        "INSERT INTO events (seq, kind, user_id, order_id, payment_id, refund_id, payload,
                             created_at)
         VALUES (-nextval('events_pending'), $1, $2, $3, $4, NULL, $5, $6)",
        &[&kind, &user, &order, &payment, &payload.to_string(), &now],
    )
    .map(drop)
}

/// An order's lines as the feed's payloads carry them.
fn lines_json(items: &[(i64, String, i64, i64)]) -> (Value, i64) {
    let lines: Vec<Value> = items
        .iter()
        .map(|(product, name, price, quantity)| {
            json!({"product": product, "name": name, "unit_price": price,
                   "quantity": quantity, "line_total": price * quantity,
                   "amount": price * quantity, "refunded": 0})
        })
        .collect();
    let subtotal = items.iter().map(|(_, _, price, q)| price * q).sum();
    (Value::Array(lines), subtotal)
}

pub(super) fn run(
    conn: &mut Conn,
    gateway: &RandomGateway,
    step: Step,
    w: &mut Worker,
) -> Option<R<()>> {
    match step {
        Step::Charge { user, amount } => Some(charge(conn, gateway, user.get(), amount.won())),
        Step::Cart {
            user,
            product,
            quantity,
        } => Some(cart(conn, user.get(), product.get(), i64::from(quantity))),
        Step::Order { user, lines, .. } => Some(
            conn.transaction(|c| order(c, user.get(), &lines))
                .map(|id| w.orders.push_back((user, OrderId::new(id)))),
        ),
        Step::Pay {
            user,
            order,
            tender,
            ..
        } => Some(pay(conn, gateway, user.get(), order.get(), tender.code())),
        Step::Cancel { user, order } => {
            Some(conn.transaction(|c| cancel(c, user.get(), order.get())))
        }
        // As on SQLite: no refunds or coupons in the baseline.
        Step::Refund { .. } | Step::Coupon { .. } => None,
        Step::Read { product } => Some(
            conn.one(
                "SELECT id, name, price, stock, created_at, updated_at
                 FROM products WHERE id = $1",
                &[&product.get()],
            )
            .map(drop),
        ),
    }
}

fn user_exists(c: &mut Conn, user: i64) -> R<()> {
    c.one("SELECT 1 FROM users WHERE id = $1", &[&user])
        .map(drop)
}

/// The balance, locked until commit.
fn balance(c: &mut Conn, user: i64) -> R<i64> {
    Ok(c.one(
        "SELECT amount FROM balances WHERE user_id = $1 FOR UPDATE",
        &[&user],
    )?
    .get(0))
}

fn post(c: &mut Conn, user: i64, kind: &str, signed: i64, payment: Option<i64>, now: i64) -> R<()> {
    let after = balance(c, user)? + signed;
    c.execute(
        "UPDATE balances SET amount = $2, updated_at = $3 WHERE user_id = $1",
        &[&user, &after, &now],
    )?;
    c.execute(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, payment_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&user, &kind, &signed, &after, &payment, &now],
    )?;
    Ok(())
}

/// A top-up as liteshop runs it: started (one transaction), paid in
/// the widget, confirmed and recorded (two more).
fn charge(conn: &mut Conn, gateway: &RandomGateway, user: i64, amount: i64) -> R<()> {
    let now = now();
    let started = conn.transaction(|c| {
        user_exists(c, user)?;
        let _in_flight: i64 = c
            .one(
                "SELECT coalesce(sum(CASE WHEN kind = 'top_up' THEN pg_amount
                                     ELSE balance_amount END), 0)::BIGINT FROM payments
                 WHERE user_id = $1 AND status IN ('started', 'requested', 'unknown')",
                &[&user],
            )?
            .get(0);
        insert_started(c, None, user, 0, amount, now)
    })?;
    confirm(conn, gateway, user, None, &started, &[], now)
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
    c: &mut Conn,
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
    let amount = balance_part + pg_part;
    let id: i64 = c
        .one(
            "INSERT INTO payments (order_id, user_id, amount, status, pg_order_id,
                                   idempotency_key, created_at, updated_at, kind,
                                   balance_amount, pg_amount, order_name, customer_key,
                                   expires_at)
             VALUES ($1, $2, $3, 'started', $4, $5, $6, $6, $7, $8, $9, 'Raw', 'raw-c', $6)
             RETURNING id",
            &[
                &order,
                &user,
                &amount,
                &pg_order_id,
                &key,
                &now,
                &kind,
                &balance_part,
                &pg_part,
            ],
        )?
        .get(0);
    event(c, id, "started", now)?;
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
/// recorded (one more), with the feed and the sales of an order.
fn confirm(
    conn: &mut Conn,
    gateway: &RandomGateway,
    user: i64,
    order: Option<i64>,
    started: &Started,
    items: &[(i64, String, i64, i64)],
    now: i64,
) -> R<()> {
    let amount = Money::new(started.pg_part).expect("a PG part");
    let redirect = gateway.fake.pay_in_widget(&started.pg_order_id, amount);
    let payment = started.id;
    conn.transaction(|c| {
        c.execute(
            "UPDATE payments SET status = 'requested', payment_key = $2, updated_at = $3
             WHERE id = $1 AND status = 'started'",
            &[&payment, &redirect.payment_key, &now],
        )?;
        event(c, payment, "requested", now)
    })?;

    let answer = gateway.approve(&ApproveRequest {
        payment_key: redirect.payment_key.clone(),
        pg_order_id: started.pg_order_id.clone(),
        amount,
        currency: liteshop::Currency::KRW,
        tax_free_amount: liteshop::Money::ZERO,
        idempotency_key: started.key.clone(),
        order: order.map(OrderId::new),
    });
    let total = started.balance_part + started.pg_part;

    conn.transaction(|c| {
        let _current: String = c
            .one("SELECT status FROM payments WHERE id = $1", &[&payment])?
            .get(0);
        match &answer {
            Ok(approval) => {
                c.execute(
                    "UPDATE payments SET status = 'approved', pg_transaction_id = $2,
                            updated_at = $3 WHERE id = $1",
                    &[&payment, &approval.transaction_id, &now],
                )?;
                event(c, payment, "approved", now)?;
                match order {
                    Some(order) => paid(c, user, order, payment, total, items, now)?,
                    None => post(c, user, "top_up", started.pg_part, Some(payment), now)?,
                }
                Ok(Ok(()))
            }
            Err(GatewayError::Unknown { .. }) => {
                c.execute(
                    "UPDATE payments SET status = 'unknown', updated_at = $2 WHERE id = $1",
                    &[&payment, &now],
                )?;
                event(c, payment, "unknown", now)?;
                Ok(Err("PaymentOutcomeUnknown".to_owned()))
            }
            Err(_) => {
                c.execute(
                    "UPDATE payments SET status = 'declined', failure_code = 'X',
                            failure_message = '', updated_at = $2 WHERE id = $1",
                    &[&payment, &now],
                )?;
                if started.balance_part > 0 {
                    let back = started.balance_part;
                    post(c, user, "payment_reversal", back, Some(payment), now)?;
                }
                event(c, payment, "declined", now)?;
                if let Some(order) = order {
                    set_order(c, order, "paying", "pending", now)?;
                    feed(
                        c,
                        user,
                        order,
                        Some(payment),
                        &json!({"kind": "payment_declined", "amount": total, "code": "X",
                                "message": ""}),
                        now,
                    )?;
                }
                Ok(Err("PaymentDeclined".to_owned()))
            }
        }
    })?
}

/// An approved payment's order: `paid`, its sales counted, the feed told.
fn paid(
    c: &mut Conn,
    user: i64,
    order: i64,
    payment: i64,
    total: i64,
    items: &[(i64, String, i64, i64)],
    now: i64,
) -> R<()> {
    set_order(c, order, "paying", "paid", now)?;
    c.execute(
        "INSERT INTO sales_daily (day, product_id, units, revenue)
         SELECT $1, product_id, quantity, amount FROM order_items
         WHERE order_id = $2 ORDER BY product_id
         ON CONFLICT (day, product_id) DO UPDATE
         SET units = sales_daily.units + excluded.units,
             revenue = sales_daily.revenue + excluded.revenue",
        &[&now.div_euclid(86_400_000), &order],
    )?;
    let (lines, subtotal) = lines_json(items);
    feed(
        c,
        user,
        order,
        Some(payment),
        &json!({"kind": "payment_approved", "amount": total, "lines": lines,
                "subtotal": subtotal, "discount": 0, "coupon": null}),
        now,
    )
}

fn cart(c: &mut Conn, user: i64, product: i64, quantity: i64) -> R<()> {
    let existing = c.transaction(|c| {
        user_exists(c, user)?;
        c.one(
            "SELECT id, name, price, stock FROM products WHERE id = $1",
            &[&product],
        )?;
        let existing = c.opt(
            "SELECT id FROM cart_items WHERE user_id = $1 AND product_id = $2",
            &[&user, &product],
        )?;
        match existing {
            Some(row) => Ok(Some(row.get::<_, i64>(0))),
            None => c
                .execute(
                    "INSERT INTO cart_items (user_id, product_id, quantity, created_at)
                     VALUES ($1, $2, $3, $4)",
                    &[&user, &product, &quantity, &now()],
                )
                .map(|_| None),
        }
    })?;
    // liteshop refuses, then removes in a second transaction.
    if let Some(item) = existing {
        c.transaction(|c| {
            c.execute(
                "DELETE FROM cart_items WHERE id = $1 AND user_id = $2",
                &[&item, &user],
            )
            .map(drop)
        })?;
    }
    Ok(())
}

fn order(c: &mut Conn, user: i64, lines: &[OrderLine]) -> R<i64> {
    let now = now();
    user_exists(c, user)?;
    let mut items = Vec::new();
    for line in lines {
        let row = c.one(
            "SELECT name, price FROM products WHERE id = $1",
            &[&line.product.get()],
        )?;
        items.push((
            line.product.get(),
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            i64::from(line.quantity),
        ));
    }
    items.sort_by_key(|item| item.0);
    for (product, _, _, quantity) in &items {
        let changed = c.execute(
            "UPDATE products SET stock = stock - $2, updated_at = $3
             WHERE id = $1 AND stock >= $2",
            &[product, quantity, &now],
        )?;
        if changed == 0 {
            return Err("Conflict".into());
        }
    }
    let total: i64 = items.iter().map(|(_, _, price, q)| price * q).sum();
    if balance(c, user)? < total {
        return Err("Conflict".into());
    }
    let id: i64 = c
        .one(
            "INSERT INTO orders (user_id, status, total, created_at, expires_at, updated_at)
             VALUES ($1, 'pending', $2, $3, $4, $3) RETURNING id",
            &[&user, &total, &now, &(now + 900_000)],
        )?
        .get(0);
    let (lines, subtotal) = lines_json(&items);
    feed(
        c,
        user,
        id,
        None,
        &json!({"kind": "order_placed", "lines": lines, "subtotal": subtotal,
                "discount": 0, "total": total, "coupon": null}),
        now,
    )?;
    for (product, name, price, quantity) in &items {
        c.execute(
            "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity,
                                      amount)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&id, product, name, price, quantity, &(price * quantity)],
        )?;
    }
    Ok(id)
}

/// A payment by tender as liteshop runs it (`tender`: 0 wholly by
/// balance, 1 wholly by card, 2 half and half): started in one
/// transaction with the balance part held — wholly by balance, approved
/// there — then the widget step and the confirm.
fn pay(c: &mut Conn, gateway: &RandomGateway, user: i64, order: i64, tender: u64) -> R<()> {
    let now = now();
    let (started, items) = c.transaction(|c| {
        let row = c.one(
            "SELECT status, total FROM orders WHERE id = $1 AND user_id = $2",
            &[&order, &user],
        )?;
        let (status, total): (String, i64) = (row.get(0), row.get(1));
        let items: Vec<(i64, String, i64, i64)> = c
            .all(
                "SELECT product_id, name, unit_price, quantity FROM order_items
                 WHERE order_id = $1 ORDER BY id",
                &[&order],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect();
        if status != "pending" {
            return Err("Conflict".into());
        }
        let balance_part = match tender {
            0 => total,
            1 => 0,
            _ => total / 2,
        };
        if balance_part > 0 && balance(c, user)? < balance_part {
            return Err("Conflict".into());
        }
        let started = insert_started(
            c,
            Some(order),
            user,
            balance_part,
            total - balance_part,
            now,
        )?;
        if balance_part > 0 {
            post(c, user, "payment", -balance_part, Some(started.id), now)?;
        }
        set_order(c, order, "pending", "paying", now)?;
        feed(
            c,
            user,
            order,
            Some(started.id),
            &json!({"kind": "payment_requested", "amount": total}),
            now,
        )?;
        if started.pg_part == 0 {
            c.execute(
                "UPDATE payments SET status = 'approved', updated_at = $2 WHERE id = $1",
                &[&started.id, &now],
            )?;
            event(c, started.id, "approved", now)?;
            paid(c, user, order, started.id, total, &items, now)?;
        }
        Ok((started, items))
    })?;
    if started.pg_part == 0 {
        return Ok(());
    }
    confirm(c, gateway, user, Some(order), &started, &items, now)
}

fn event(c: &mut Conn, payment: i64, status: &str, now: i64) -> R<()> {
    c.execute(
        "INSERT INTO payment_events (payment_id, status, detail, created_at)
         VALUES ($1, $2, '', $3)",
        &[&payment, &status, &now],
    )
    .map(drop)
}

fn set_order(c: &mut Conn, order: i64, from: &str, to: &str, now: i64) -> R<()> {
    c.execute(
        "UPDATE orders SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
        &[&order, &from, &to, &now],
    )
    .map(drop)
}

fn cancel(c: &mut Conn, user: i64, order: i64) -> R<()> {
    let now = now();
    let status: String = c
        .one(
            "SELECT status FROM orders WHERE id = $1 AND user_id = $2",
            &[&order, &user],
        )?
        .get(0);
    if status != "pending" {
        return Err("Conflict".into());
    }
    c.execute(
        "UPDATE orders SET status = 'cancelled', cancel_reason = 'user', updated_at = $2
         WHERE id = $1 AND status = 'pending'",
        &[&order, &now],
    )?;
    let lines = c.all(
        "SELECT product_id, quantity FROM order_items WHERE order_id = $1
         ORDER BY product_id",
        &[&order],
    )?;
    for line in lines {
        let (product, quantity): (i64, i64) = (line.get(0), line.get(1));
        c.execute(
            "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1",
            &[&product, &quantity, &now],
        )?;
    }
    feed(
        c,
        user,
        order,
        None,
        &json!({"kind": "order_cancelled"}),
        now,
    )
}
