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
//! Basic auth with the secret, `Idempotency-Key` replayed like a real PG —
//! and Toss's states and codes as `support/fake_pg_server.rs` lists them.

#[path = "support/fake_pg_server.rs"]
mod fake_pg_server;

use std::sync::{Arc, Mutex};
use std::thread;

use clap::Parser;
use fake_pg_server::{Faults, Pg, Rules};
use liteshop::{Error, HttpGateway, Money, NewProduct, OrderLine, Shop};

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
    /// Refuse partial cancels with NOT_ALLOWED_PARTIAL_REFUND.
    #[arg(long)]
    whole_cancel_only: bool,
    /// Forget an idempotency key this many seconds after its first use
    /// (Toss keeps them 15 days).
    #[arg(long)]
    key_lifetime_secs: Option<u64>,
    /// Take a confirm this many seconds after authentication (Toss: 600).
    #[arg(long)]
    confirm_window_secs: Option<u64>,
    /// Send Toss's webhooks (a dashboard cancel's PAYMENT_STATUS_CHANGED,
    /// a deposit's DEPOSIT_CALLBACK) to this URL, e.g. a shop's
    /// `http://127.0.0.1:8080/pg/webhook`, retrying anything but a 200.
    #[arg(long)]
    webhook_url: Option<String>,
    /// The unit of the webhook retry schedule in milliseconds (Toss: a
    /// minute; default 50).
    #[arg(long)]
    webhook_unit_ms: Option<u64>,
    /// Lose the reply of every Nth call of the shop's (processed, then the
    /// answer stops half-way).
    #[arg(long)]
    lose_reply_every: Option<u32>,
    /// Answer every Nth call of the shop's 500
    /// FAILED_INTERNAL_SYSTEM_PROCESSING, unprocessed.
    #[arg(long)]
    fail_every: Option<u32>,
    /// Answer every call of the shop's this many milliseconds late.
    #[arg(long)]
    delay_ms: Option<u64>,
    /// Start on a free port, pay two orders through a shop, print, and exit.
    #[arg(long)]
    demo: bool,
}

impl Args {
    fn rules(&self) -> Rules {
        Rules {
            secret: self.secret.clone(),
            decline_above: self.decline_above,
            decline_order_prefix: self.decline_order_prefix.clone(),
            max_requests: self.max_requests,
            log: true,
            whole_cancel_only: self.whole_cancel_only,
            key_lifetime: self.key_lifetime_secs.map(std::time::Duration::from_secs),
            confirm_window: self.confirm_window_secs.map(std::time::Duration::from_secs),
            webhook_url: self.webhook_url.clone(),
            webhook_unit: self.webhook_unit_ms.map(std::time::Duration::from_millis),
            faults: Faults {
                lose_reply_every: self.lose_reply_every,
                fail_every: self.fail_every,
                delay: self.delay_ms.map(std::time::Duration::from_millis),
            },
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = Args::parse();
    if !args.demo {
        let server = tiny_http::Server::http(&args.addr)?;
        eprintln!("fake_pg: listening on http://{}", args.addr);
        fake_pg_server::serve(&server, &args.rules(), &Mutex::new(Pg::default()));
        return Ok(());
    }

    // The demo: a PG on a free port that declines above 30,000 won.
    args.decline_above = Some(30_000);
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0")?);
    let addr = server.server_addr().to_ip().ok_or("no IP address")?;
    let records = Arc::new(Mutex::new(Pg::default()));
    let pg_thread = {
        let (server, rules, records) = (server.clone(), args.rules(), records.clone());
        thread::spawn(move || fake_pg_server::serve(&server, &rules, &records))
    };
    // The customer's browser: pays a started payment in the fake's widget
    // and comes back with its redirect.
    let widget = |started: &liteshop::Payment| -> liteshop::PgRedirect {
        let widget = started.widget().expect("a PG part");
        let payment_key = records
            .lock()
            .unwrap()
            .pay_in_widget(&widget.pg_order_id, widget.amount.won());
        liteshop::PgRedirect {
            payment_key,
            pg_order_id: widget.pg_order_id,
            amount: widget.amount,
        }
    };

    let dir = tempfile::tempdir()?;
    let gateway = HttpGateway::builder(format!("http://{addr}"), &args.secret).build();
    let shop = Shop::builder(dir.path().join("shop.db"))
        .gateway(gateway)
        .build()?;
    let kim = shop.create_user("Kim")?;
    shop.host_credit(kim.id, Money::new(100_000)?)?;
    let tea = shop.create_product(NewProduct {
        name: "Green tea".into(),
        price: Money::new(12_000)?,
        stock: 10,
    })?;

    // 4,000 from the balance, the rest by card.
    let small = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    let started = shop.start_payment(kim.id, small.id, Money::new(4_000)?)?;
    let payment = shop.confirm_payment(kim.id, started.id, &widget(&started))?;
    println!(
        "order #{} ({}): payment {} approved as {} ({} from the balance, {} by card)",
        small.id,
        small.total,
        payment.id,
        payment.pg_transaction_id.unwrap_or_default(),
        payment.balance_amount,
        payment.pg_amount
    );
    let big = shop.place_order(kim.id, &[OrderLine::new(tea.id, 3)])?;
    let started = shop.start_payment(kim.id, big.id, Money::ZERO)?;
    match shop.confirm_payment(kim.id, started.id, &widget(&started)) {
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
