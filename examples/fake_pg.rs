//! A local payment gateway that speaks the contract `HttpGateway` expects,
//! so the HTTP client can be run end to end on one machine.
//!
//! ```sh
//! # serve on 127.0.0.1:8787, approving everything except amounts over 100,000
//! cargo run --example fake_pg -- --secret test_sk_demo --decline-above 100000
//! # or: start it on a free port, pay two orders through it, print, and exit
//! cargo run --example fake_pg -- --demo
//! ```
//!
//! Contract (amounts in won): `POST /v1/payments/confirm`,
//! `GET /v1/payments/orders/{orderId}`, `POST /v1/payments/{paymentKey}/cancel`,
//! Basic auth with the secret, `Idempotency-Key` replayed like a real PG.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use base64::Engine as _;
use clap::Parser;
use liteshop::{Error, HttpGateway, Money, NewProduct, OrderLine, Shop};
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(about = "A local payment gateway for liteshop's HttpGateway")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    addr: String,
    /// The secret key clients must authenticate with.
    #[arg(long, default_value = "test_sk_demo")]
    secret: String,
    /// Decline (REJECT_CARD_PAYMENT) any payment above this many won.
    #[arg(long)]
    decline_above: Option<i64>,
    /// Decline any payment whose orderId starts with this prefix.
    #[arg(long)]
    decline_order_prefix: Option<String>,
    /// Stop after this many requests (default: serve forever).
    #[arg(long)]
    max_requests: Option<usize>,
    /// Start on a free port, pay two orders through a shop, print, and exit.
    #[arg(long)]
    demo: bool,
}

/// The PG's own records.
#[derive(Default)]
struct Pg {
    payments: HashMap<String, Value>,
    replies: HashMap<String, (u16, Value)>,
    transactions: u64,
}

impl Pg {
    fn handle(
        &mut self,
        args: &Args,
        method: &str,
        url: &str,
        key: Option<String>,
        body: &str,
    ) -> (u16, Value) {
        if let Some(reply) = key.as_ref().and_then(|k| self.replies.get(k)) {
            return reply.clone();
        }
        let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let segments: Vec<&str> = url.trim_start_matches('/').split('/').collect();
        let reply = match (method, segments.as_slice()) {
            ("POST", ["v1", "payments", "confirm"]) => self.confirm(args, &request),
            ("GET", ["v1", "payments", "orders", order_id]) => match self.payments.get(*order_id) {
                Some(payment) => (200, payment.clone()),
                None => error(404, "NOT_FOUND_PAYMENT", "no such payment"),
            },
            ("POST", ["v1", "payments", payment_key, "cancel"]) => {
                self.cancel(payment_key, &request)
            }
            _ => error(404, "NOT_FOUND", "no such endpoint"),
        };
        if let Some(key) = key {
            self.replies.insert(key, reply.clone());
        }
        reply
    }

    fn confirm(&mut self, args: &Args, request: &Value) -> (u16, Value) {
        let (Some(payment_key), Some(order_id), Some(amount)) = (
            request["paymentKey"].as_str(),
            request["orderId"].as_str(),
            request["amount"].as_i64(),
        ) else {
            return error(
                400,
                "INVALID_REQUEST",
                "paymentKey, orderId and amount are required",
            );
        };
        if let Some(done) = self.payments.get(order_id) {
            return (200, done.clone());
        }
        let declined = args.decline_above.is_some_and(|limit| amount > limit)
            || args
                .decline_order_prefix
                .as_deref()
                .is_some_and(|prefix| order_id.starts_with(prefix));
        if declined {
            return error(
                403,
                "REJECT_CARD_PAYMENT",
                "the card company declined the payment",
            );
        }
        self.transactions += 1;
        let payment = json!({
            "paymentKey": payment_key,
            "orderId": order_id,
            "status": "DONE",
            "totalAmount": amount,
            "approvedAt": "2026-01-01T00:00:00+09:00",
            "lastTransactionKey": format!("fakepg_tx_{}", self.transactions),
        });
        self.payments.insert(order_id.to_owned(), payment.clone());
        (200, payment)
    }

    /// A whole or partial cancel: `cancelAmount` (default: what is left)
    /// comes off `balanceAmount`; the payment is `PARTIAL_CANCELED` until
    /// nothing is left, then `CANCELED`.
    fn cancel(&mut self, payment_key: &str, request: &Value) -> (u16, Value) {
        let Some(payment) = self
            .payments
            .values_mut()
            .find(|p| p["paymentKey"] == payment_key)
        else {
            return error(404, "NOT_FOUND_PAYMENT", "no such payment");
        };
        if payment["status"] == "CANCELED" {
            return error(400, "ALREADY_CANCELED_PAYMENT", "already cancelled");
        }
        let left = payment["balanceAmount"]
            .as_i64()
            .or(payment["totalAmount"].as_i64())
            .unwrap_or(0);
        let amount = request["cancelAmount"].as_i64().unwrap_or(left);
        if amount <= 0 || amount > left {
            return error(
                403,
                "NOT_CANCELABLE_AMOUNT",
                "the cancel amount is more than what is left",
            );
        }
        payment["balanceAmount"] = json!(left - amount);
        payment["status"] = json!(if left == amount {
            "CANCELED"
        } else {
            "PARTIAL_CANCELED"
        });
        let mut cancels = payment["cancels"].as_array().cloned().unwrap_or_default();
        cancels.push(json!({ "cancelAmount": amount, "cancelReason": request["cancelReason"] }));
        payment["cancels"] = json!(cancels);
        (200, payment.clone())
    }
}

fn error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({ "code": code, "message": message }))
}

/// Serves until `max_requests` requests were answered (or forever).
fn serve(server: &tiny_http::Server, args: &Args) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", args.secret))
    );
    let mut pg = Pg::default();
    let mut served = 0;
    while args.max_requests.is_none_or(|max| served < max) {
        let Ok(mut request) = server.recv() else {
            break;
        };
        served += 1;
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.to_string())
        };
        let authorized = header("Authorization").as_deref() == Some(expected.as_str());
        let key = header("Idempotency-Key");
        let method = request.method().to_string();
        let url = request.url().to_owned();
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let (status, reply) = if authorized {
            pg.handle(args, &method, &url, key, &body)
        } else {
            error(401, "UNAUTHORIZED_KEY", "unknown secret key")
        };
        eprintln!("fake_pg: {method} {url} -> {status}");
        let response = tiny_http::Response::from_string(reply.to_string())
            .with_status_code(status)
            .with_header(
                "Content-Type: application/json"
                    .parse::<tiny_http::Header>()
                    .unwrap(),
            );
        let _ = request.respond(response);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = Args::parse();
    if !args.demo {
        let server = tiny_http::Server::http(&args.addr)?;
        eprintln!("fake_pg: listening on http://{}", args.addr);
        serve(&server, &args);
        return Ok(());
    }

    // The demo: a PG on a free port that declines above 30,000 won.
    args.decline_above = Some(30_000);
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0")?);
    let addr = server.server_addr().to_ip().ok_or("no IP address")?;
    let pg_thread = {
        let (server, args) = (server.clone(), args.clone());
        thread::spawn(move || serve(&server, &args))
    };

    let dir = tempfile::tempdir()?;
    let gateway = HttpGateway::builder(format!("http://{addr}"), &args.secret).build();
    let shop = Shop::builder(dir.path().join("shop.db"))
        .gateway(gateway)
        .build()?;
    let kim = shop.create_user("Kim")?;
    shop.charge(kim.id, Money::new(100_000)?)?;
    let tea = shop.create_product(NewProduct {
        name: "Green tea".into(),
        price: Money::new(12_000)?,
        stock: 10,
    })?;

    let small = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    let payment = shop.pay(kim.id, small.id)?;
    println!(
        "order #{} ({}): payment {} approved as {}",
        small.id,
        small.total,
        payment.id,
        payment.pg_transaction_id.unwrap_or_default()
    );
    let big = shop.place_order(kim.id, &[OrderLine::new(tea.id, 3)])?;
    match shop.pay(kim.id, big.id) {
        Err(Error::PaymentDeclined { code, message, .. }) => {
            println!(
                "order #{} ({}): declined: {code}: {message}",
                big.id, big.total
            );
        }
        other => println!("order #{}: unexpected {other:?}", big.id),
    }
    let one = shop.refund_lines(kim.id, small.id, &[OrderLine::new(tea.id, 1)], "one cup")?;
    println!(
        "refund #{} of order #{}: {} back ({:?})",
        one.id, small.id, one.amount, one.status
    );
    let rest = shop.refund(kim.id, small.id, "demo refund")?;
    println!(
        "refund #{} of order #{}: {} back; the order is now {:?}",
        rest.id,
        small.id,
        rest.amount,
        shop.order(kim.id, small.id)?.status
    );
    println!("balance: {}", shop.balance(kim.id)?);

    server.unblock();
    let _ = pg_thread.join();
    Ok(())
}
