//! Sends every paid order to a data platform over HTTP, exactly once as the
//! platform sees it, through a sink that fails on purpose.
//!
//! ```sh
//! cargo run --example data_platform
//! ```
//!
//! The shop's event pump hands `PaymentApproved` events to a handler that
//! POSTs each as JSON with the event's sequence number as
//! `Idempotency-Key`. The local sink refuses some requests outright and
//! loses the reply to others after it stored them (so the pump sends them
//! again); it de-duplicates by key. At the end the example checks that the
//! sink holds every paid order exactly once and exits non-zero otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use liteshop::{
    Event, EventPayload, FakeGateway, FakeOutcome, Money, NewProduct, OrderLine, PageRequest, Shop,
};
use serde_json::{Value, json};

/// What the sink received: first copies by key, and how often each came.
#[derive(Default)]
struct Received {
    orders: BTreeMap<u64, Value>,
    deliveries: BTreeMap<u64, u32>,
    refused: u32,
    lost_replies: u32,
}

/// Serves the sink: every 4th request is refused with 503 before it is
/// stored; every 5th is stored but answered with 500, as if the reply were
/// lost; every 11th and 12th are both refused, so that a request fails
/// three times in a row and the pump itself retries the batch.
fn sink(server: &tiny_http::Server, received: &Mutex<Received>) {
    let mut n = 0u32;
    while let Ok(mut request) = server.recv() {
        n += 1;
        let key = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Idempotency-Key"))
            .and_then(|h| h.value.as_str().parse::<u64>().ok());
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let status = {
            let mut got = received.lock().unwrap();
            match (key, serde_json::from_str::<Value>(&body)) {
                (Some(_), Ok(_))
                    if n.is_multiple_of(4) || n.is_multiple_of(11) || n.is_multiple_of(12) =>
                {
                    got.refused += 1;
                    503
                }
                (Some(key), Ok(value)) => {
                    *got.deliveries.entry(key).or_default() += 1;
                    got.orders.entry(key).or_insert(value);
                    if n.is_multiple_of(5) {
                        got.lost_replies += 1;
                        500
                    } else {
                        200
                    }
                }
                _ => 400,
            }
        };
        let _ = request.respond(tiny_http::Response::empty(status));
    }
}

/// The handler the pump calls: POST each paid order, in order, retrying
/// each request a few times; skip events already confirmed (a batch handed
/// over again after a failure starts from its beginning); fail the batch if
/// a request keeps failing, so the pump hands it over again later.
fn deliver(
    agent: &ureq::Agent,
    url: &str,
    confirmed: &mut u64,
    batch: &[Event],
) -> Result<(), String> {
    let from = *confirmed;
    for event in batch.iter().filter(|e| e.seq > from) {
        let EventPayload::PaymentApproved {
            amount,
            lines,
            discount,
            ..
        } = &event.payload
        else {
            *confirmed = event.seq;
            continue;
        };
        let body = json!({
            "seq": event.seq,
            "order": event.order,
            "user": event.user,
            "payment": event.payment,
            "amount": amount.won(),
            "discount": discount.won(),
            "lines": lines.iter().map(|l| json!({
                "product": l.product, "quantity": l.quantity, "amount": l.amount.won(),
            })).collect::<Vec<_>>(),
        })
        .to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = agent
                .post(url)
                .header("Idempotency-Key", event.seq.to_string())
                .content_type("application/json")
                .send(&body);
            match sent {
                Ok(_) => break,
                Err(err) if attempt >= 3 => return Err(format!("event {}: {err}", event.seq)),
                Err(_) => thread::sleep(Duration::from_millis(5 * attempt)),
            }
        }
        *confirmed = event.seq;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0")?);
    let addr = server.server_addr().to_ip().ok_or("no IP address")?;
    let received = Arc::new(Mutex::new(Received::default()));
    {
        let (server, received) = (server.clone(), received.clone());
        thread::spawn(move || sink(&server, &received));
    }

    let dir = tempfile::tempdir()?;
    let pg = FakeGateway::new();
    let shop = Shop::builder(dir.path().join("shop.db"))
        .gateway(pg.clone())
        .build()?;
    let url = format!("http://{addr}/orders");
    let agent = ureq::Agent::new_with_defaults();
    let mut confirmed = 0;
    let pump = shop.spawn_event_pump(
        "data-platform",
        move |batch: &[Event]| deliver(&agent, &url, &mut confirmed, batch),
        Duration::from_millis(20),
    )?;

    // Some shopping: 60 orders; every 7th payment declined, every 5th
    // order cancelled instead of paid.
    let kim = shop.create_user("Kim")?;
    shop.host_credit(kim.id, Money::new(2_000_000)?)?;
    let tea = shop.create_product(NewProduct {
        name: "Green tea".into(),
        price: Money::new(12_000)?,
        stock: 1_000,
    })?;
    for i in 0..60 {
        let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 1 + i % 3)])?;
        if i % 5 == 4 {
            shop.cancel_order(kim.id, order.id)?;
            continue;
        }
        if i % 7 == 6 {
            pg.push(FakeOutcome::decline());
            let _ = shop.pay_from_balance(kim.id, order.id);
        } else {
            shop.pay_from_balance(kim.id, order.id)?;
        }
    }

    // The paid orders, from the shop itself.
    let mut paid = BTreeSet::new();
    let mut page = PageRequest::first(100);
    loop {
        let orders = shop.orders(kim.id, page)?;
        paid.extend(
            orders
                .items
                .iter()
                .filter(|o| o.paid_at.is_some())
                .map(|o| o.id.get()),
        );
        match orders.next {
            Some(next) => page = PageRequest::after(next, 100),
            None => break,
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let last = shop.events(0, 1_000)?.last().map_or(0, |e| e.seq);
    while shop.event_cursor("data-platform")? < last {
        if Instant::now() > deadline {
            return Err("the pump did not drain the feed in 30 s".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
    pump.stop();

    let got = received.lock().unwrap();
    let arrived: BTreeSet<i64> = got
        .orders
        .values()
        .filter_map(|v| v["order"].as_i64())
        .collect();
    let sent_twice = got.deliveries.values().filter(|&&n| n > 1).count();
    println!(
        "paid orders: {}; arrived at the sink: {} distinct; requests refused: {}, replies lost: {}; \
         events delivered more than once (de-duplicated by Idempotency-Key): {sent_twice}",
        paid.len(),
        arrived.len(),
        got.refused,
        got.lost_replies,
    );
    let paid: BTreeSet<i64> = paid.into_iter().collect();
    if arrived == paid && got.orders.len() == paid.len() {
        println!("every paid order arrived exactly once");
        Ok(())
    } else {
        Err(format!("mismatch: paid {paid:?}, arrived {arrived:?}").into())
    }
}
