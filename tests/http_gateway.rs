//! HttpGateway against a real HTTP server on loopback (tiny_http), scripted
//! per test: what it answers, and what it saw.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use base64::Engine as _;
use common::won;
use liteshop::{
    ApproveRequest, CancelRequest, GatewayError, HttpGateway, OrderId, OrderLine, OrderStatus,
    PaymentGateway, PaymentStatus, PgStatus, RetryPolicy, StatusRequest,
};
use serde_json::{Value, json};

const SECRET: &str = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R";

/// One scripted reply.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn error(status: u16, code: &str) -> Reply {
    reply(
        status,
        json!({ "code": code, "message": format!("{code} happened") }),
    )
}

/// A payment object as the PG returns it.
fn payment(order_id: &str, status: &str, amount: i64) -> Value {
    json!({
        "paymentKey": "pk_abc",
        "orderId": order_id,
        "status": status,
        "totalAmount": amount,
        "approvedAt": "2024-02-13T12:18:14+09:00",
        "lastTransactionKey": "tx_123",
        "method": "CARD",
    })
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    url: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: String,
}

/// A PG on 127.0.0.1 that answers the scripted replies in order (the last
/// one again once they run out) and records each request.
struct PgServer {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl PgServer {
    fn start(replies: Vec<Reply>) -> PgServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, seen) = (server.clone(), seen.clone());
            thread::spawn(move || {
                let mut index = 0;
                while let Ok(mut request) = server.recv() {
                    let header = |request: &tiny_http::Request, name: &'static str| {
                        request
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv(name))
                            .map(|h| h.value.to_string())
                    };
                    let authorization = header(&request, "Authorization");
                    let idempotency_key = header(&request, "Idempotency-Key");
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    seen.lock().unwrap().push(Seen {
                        method: request.method().to_string(),
                        url: request.url().to_owned(),
                        authorization,
                        idempotency_key,
                        body,
                    });
                    let next = replies[index.min(replies.len() - 1)].clone();
                    index += 1;
                    thread::sleep(next.delay);
                    let response = tiny_http::Response::from_string(next.body)
                        .with_status_code(next.status)
                        .with_header(
                            "Content-Type: application/json"
                                .parse::<tiny_http::Header>()
                                .unwrap(),
                        );
                    let _ = request.respond(response);
                }
            })
        };
        PgServer {
            base: format!("http://{addr}"),
            seen,
            server,
            thread: Some(thread),
        }
    }

    fn gateway(&self) -> HttpGateway {
        HttpGateway::builder(&self.base, SECRET)
            .connect_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_millis(500))
            .processing_retry(Duration::from_millis(10), 3)
            .build()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn approve_request() -> ApproveRequest {
    ApproveRequest {
        payment_key: "pk_abc".into(),
        pg_order_id: "ls-7-0011aabb".into(),
        amount: won(15_000),
        idempotency_key: "ls-pay-key-1".into(),
        order: Some(OrderId::new(7)),
    }
}

fn ok_approval() -> Reply {
    reply(200, payment("ls-7-0011aabb", "DONE", 15_000))
}

#[test]
fn approve_sends_the_contract_and_reads_the_approval() {
    let pg = PgServer::start(vec![ok_approval()]);
    let approval = pg.gateway().approve(&approve_request()).unwrap();
    assert_eq!(approval.transaction_id, "tx_123");
    assert_eq!(approval.approved_amount, won(15_000));
    assert_eq!(approval.approved_at, "2024-02-13T12:18:14+09:00");

    let seen = pg.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(
        (request.method.as_str(), request.url.as_str()),
        ("POST", "/v1/payments/confirm")
    );
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"))
    );
    assert_eq!(
        request.authorization.as_deref(),
        Some(expected_auth.as_str())
    );
    assert_eq!(request.idempotency_key.as_deref(), Some("ls-pay-key-1"));
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(
        body,
        json!({ "paymentKey": "pk_abc", "orderId": "ls-7-0011aabb", "amount": 15_000 })
    );
}

#[test]
fn a_rejected_card_is_declined() {
    let pg = PgServer::start(vec![error(403, "REJECT_CARD_PAYMENT")]);
    let err = pg.gateway().approve(&approve_request()).unwrap_err();
    assert!(
        matches!(&err, GatewayError::Declined { code, .. } if code == "REJECT_CARD_PAYMENT"),
        "{err:?}"
    );
}

#[test]
fn still_processing_is_asked_again_with_the_same_key() {
    let pg = PgServer::start(vec![
        error(409, "IDEMPOTENT_REQUEST_PROCESSING"),
        ok_approval(),
    ]);
    let approval = pg.gateway().approve(&approve_request()).unwrap();
    assert_eq!(approval.approved_amount, won(15_000));
    let seen = pg.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.idempotency_key.as_deref() == Some("ls-pay-key-1"))
    );
    assert_eq!(seen[0].body, seen[1].body);
}

#[test]
fn still_processing_after_every_retry_is_unknown() {
    let pg = PgServer::start(vec![error(409, "IDEMPOTENT_REQUEST_PROCESSING")]);
    let err = pg.gateway().approve(&approve_request()).unwrap_err();
    assert!(matches!(err, GatewayError::Unknown { .. }), "{err:?}");
    assert_eq!(pg.seen().len(), 4); // the first ask and 3 more
}

#[test]
fn status_reads_done_aborted_and_not_found() {
    let pg = PgServer::start(vec![
        reply(200, payment("ls-7-0011aabb", "DONE", 15_000)),
        reply(200, payment("ls-7-0011aabb", "ABORTED", 15_000)),
        error(404, "NOT_FOUND_PAYMENT"),
        reply(200, payment("ls-7-0011aabb", "IN_PROGRESS", 15_000)),
    ]);
    let gateway = pg.gateway();
    let request = StatusRequest {
        pg_order_id: "ls-7-0011aabb".into(),
    };
    assert!(
        matches!(gateway.status(&request), Ok(PgStatus::Approved(a)) if a.approved_amount == won(15_000))
    );
    assert!(
        matches!(gateway.status(&request), Ok(PgStatus::Declined { code, .. }) if code == "ABORTED")
    );
    assert_eq!(gateway.status(&request), Ok(PgStatus::NotFound));
    assert!(matches!(
        gateway.status(&request),
        Err(GatewayError::Unknown { .. })
    ));
    let seen = pg.seen();
    assert!(
        seen.iter()
            .all(|s| s.method == "GET" && s.url == "/v1/payments/orders/ls-7-0011aabb")
    );
    assert!(seen.iter().all(|s| s.authorization.is_some()));
}

#[test]
fn server_errors_and_unknown_codes_are_unknown_never_declined() {
    for reply in [
        error(500, "INTERNAL_SERVER_ERROR"),
        Reply {
            status: 502,
            body: "<html>bad gateway</html>".into(),
            delay: Duration::ZERO,
        },
        error(400, "PROVIDER_ERROR"),
        error(429, "TOO_MANY_REQUESTS"),
        error(400, "A_CODE_NOBODY_LISTED"),
        error(200, "NOT_A_PAYMENT_OBJECT"),
        Reply {
            status: 200,
            body: "{ not json".into(),
            delay: Duration::ZERO,
        },
    ] {
        let status = reply.status;
        let pg = PgServer::start(vec![reply]);
        let err = pg.gateway().approve(&approve_request()).unwrap_err();
        assert!(
            matches!(err, GatewayError::Unknown { .. }),
            "HTTP {status}: {err:?}"
        );
    }
}

#[test]
fn a_bad_api_key_is_invalid() {
    let pg = PgServer::start(vec![error(401, "UNAUTHORIZED_KEY")]);
    let err = pg.gateway().approve(&approve_request()).unwrap_err();
    assert!(matches!(err, GatewayError::Invalid { .. }), "{err:?}");
    assert!(!err.to_string().contains(SECRET));
}

#[test]
fn a_reply_for_another_order_or_amount_is_unknown() {
    for body in [
        payment("ls-7-0011aabb", "DONE", 14_000),
        payment("ls-8-ffffffff", "DONE", 15_000),
        payment("ls-7-0011aabb", "WAITING_FOR_DEPOSIT", 15_000),
    ] {
        let pg = PgServer::start(vec![reply(200, body.clone())]);
        let err = pg.gateway().approve(&approve_request()).unwrap_err();
        assert!(
            matches!(err, GatewayError::Unknown { .. }),
            "{body}: {err:?}"
        );
    }
}

#[test]
fn a_reply_slower_than_the_timeout_is_unknown() {
    let slow = Reply {
        delay: Duration::from_millis(1_500),
        ..ok_approval()
    };
    let pg = PgServer::start(vec![slow]);
    let err = pg.gateway().approve(&approve_request()).unwrap_err();
    assert!(matches!(err, GatewayError::Unknown { .. }), "{err:?}");
}

#[test]
fn a_refused_connection_is_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = HttpGateway::builder(format!("http://127.0.0.1:{port}"), SECRET).build();
    let err = gateway.approve(&approve_request()).unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable { .. }), "{err:?}");
    assert!(!format!("{err:?}").contains(SECRET));
}

#[test]
fn cancel_sends_the_contract_and_already_cancelled_counts_as_done() {
    let pg = PgServer::start(vec![
        reply(200, payment("ls-7-0011aabb", "CANCELED", 15_000)),
        error(400, "ALREADY_CANCELED_PAYMENT"),
        error(403, "REJECT_CARD_PAYMENT"),
    ]);
    let gateway = pg.gateway();
    let request = CancelRequest {
        payment_key: "pk_abc".into(),
        pg_order_id: "ls-7-0011aabb".into(),
        amount: won(15_000),
        reason: "changed my mind".into(),
        idempotency_key: "ls-pay-key-1-refund".into(),
    };
    assert_eq!(
        gateway.cancel(&request).unwrap().cancelled_amount,
        won(15_000)
    );
    assert_eq!(
        gateway.cancel(&request).unwrap().cancelled_amount,
        won(15_000)
    );
    assert!(matches!(
        gateway.cancel(&request),
        Err(GatewayError::Declined { .. })
    ));
    let seen = pg.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].url.as_str()),
        ("POST", "/v1/payments/pk_abc/cancel")
    );
    assert_eq!(
        seen[0].idempotency_key.as_deref(),
        Some("ls-pay-key-1-refund")
    );
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({ "cancelReason": "changed my mind", "cancelAmount": 15_000 })
    );
}

#[test]
fn the_secret_never_shows_in_debug() {
    let pg = PgServer::start(vec![ok_approval()]);
    let gateway = pg.gateway();
    assert!(!format!("{gateway:?}").contains(SECRET));
    let builder = HttpGateway::builder("http://x", SECRET);
    assert!(!format!("{builder:?}").contains(SECRET));
    let shop_dir = tempfile::tempdir().unwrap();
    let shop = liteshop::Shop::builder(shop_dir.path().join("s.db"))
        .gateway(gateway)
        .build()
        .unwrap();
    assert!(!format!("{shop:?}").contains(SECRET));
}

#[test]
fn a_shop_pays_end_to_end_through_the_http_gateway() -> liteshop::Result<()> {
    // The server approves whatever it is asked; the reply must echo the
    // shop's own pg_order_id, so answer from the request.
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let addr = server.server_addr().to_ip().unwrap();
    let handle = {
        let server = server.clone();
        thread::spawn(move || {
            while let Ok(mut request) = server.recv() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let asked: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let reply = payment(
                    asked["orderId"].as_str().unwrap_or(""),
                    "DONE",
                    asked["amount"].as_i64().unwrap_or(0),
                );
                let _ = request.respond(tiny_http::Response::from_string(reply.to_string()));
            }
        })
    };
    let gateway = HttpGateway::builder(format!("http://{addr}"), SECRET).build();
    let t = common::open_with(move |b| b.gateway(gateway).gateway_retry(RetryPolicy::default()));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(20_000))?;
    let tea = t.product("Tea", 12_000, 3).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 1)])?.id;
    // 2,000 from the balance, 10,000 by card: the widget's redirect (this
    // test server accepts any key) is confirmed for the PG part only.
    let started = t.shop.start_payment(kim, order, won(2_000))?;
    let widget = started.widget().expect("a PG part");
    assert_eq!(widget.amount, won(10_000));
    let redirect = liteshop::PgRedirect {
        payment_key: "pk_from_widget".into(),
        pg_order_id: widget.pg_order_id.clone(),
        amount: widget.amount,
    };
    let paid = t.shop.confirm_payment(kim, started.id, &redirect)?;
    assert_eq!(paid.status, PaymentStatus::Approved);
    assert_eq!(paid.pg_transaction_id.as_deref(), Some("tx_123"));
    assert_eq!(paid.pg_amount, won(10_000));
    assert_eq!(t.shop.order(kim, order)?.status, OrderStatus::Paid);
    assert_eq!(t.shop.balance(kim)?, won(18_000));
    server.unblock();
    handle.join().unwrap();
    Ok(())
}
