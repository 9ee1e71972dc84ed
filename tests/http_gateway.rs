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
    ApproveRequest, CancelRequest, Currency, GatewayError, HttpGateway, OrderId, OrderLine,
    OrderStatus, PaymentGateway, PaymentStatus, PgCancel, PgPending, PgStatus, RetryPolicy,
    StatusRequest,
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
    test_code: Option<String>,
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
                    let test_code = header(&request, "TossPayments-Test-Code");
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    seen.lock().unwrap().push(Seen {
                        method: request.method().to_string(),
                        url: request.url().to_owned(),
                        authorization,
                        idempotency_key,
                        test_code,
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
        currency: Currency::KRW,
        tax_free_amount: liteshop::Money::ZERO,
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

/// A payment object with `cancels[]` as Toss returns it after cancels:
/// `lastTransactionKey` names the last one.
fn cancelled_payment(status: &str, total: i64, cancels: &[(&str, i64)]) -> Value {
    let mut object = payment("ls-7-0011aabb", status, total);
    let left = total - cancels.iter().map(|(_, amount)| amount).sum::<i64>();
    object["balanceAmount"] = json!(left);
    object["cancels"] = json!(
        cancels
            .iter()
            .map(|(key, amount)| json!({
                "transactionKey": key,
                "cancelAmount": amount,
                "cancelReason": "changed my mind",
                "canceledAt": "2024-02-13T12:20:00+09:00",
            }))
            .collect::<Vec<_>>()
    );
    if let Some((last, _)) = cancels.last() {
        object["lastTransactionKey"] = json!(last);
    }
    object
}

#[test]
fn status_reads_every_state_toss_documents() {
    let pg = PgServer::start(vec![
        reply(200, payment("ls-7-0011aabb", "DONE", 15_000)),
        reply(200, payment("ls-7-0011aabb", "ABORTED", 15_000)),
        error(404, "NOT_FOUND_PAYMENT"),
        reply(200, payment("ls-7-0011aabb", "IN_PROGRESS", 15_000)),
        reply(200, payment("ls-7-0011aabb", "READY", 15_000)),
        reply(200, payment("ls-7-0011aabb", "WAITING_FOR_DEPOSIT", 15_000)),
        reply(200, payment("ls-7-0011aabb", "EXPIRED", 15_000)),
        reply(
            200,
            cancelled_payment("PARTIAL_CANCELED", 15_000, &[("c1", 5_000)]),
        ),
        reply(
            200,
            cancelled_payment("CANCELED", 15_000, &[("c1", 5_000), ("c2", 10_000)]),
        ),
        reply(200, payment("ls-7-0011aabb", "SOMETHING_ELSE", 15_000)),
    ]);
    let gateway = pg.gateway();
    let request = StatusRequest {
        pg_order_id: "ls-7-0011aabb".into(),
        payment_key: None,
    };
    assert!(
        matches!(gateway.status(&request), Ok(PgStatus::Approved(a)) if a.approved_amount == won(15_000) && a.cancels.is_empty())
    );
    assert!(
        matches!(gateway.status(&request), Ok(PgStatus::Declined { code, .. }) if code == "ABORTED")
    );
    assert_eq!(gateway.status(&request), Ok(PgStatus::NotFound));
    assert_eq!(
        gateway.status(&request),
        Ok(PgStatus::Pending(PgPending::InProgress))
    );
    assert_eq!(
        gateway.status(&request),
        Ok(PgStatus::Pending(PgPending::Ready))
    );
    assert_eq!(
        gateway.status(&request),
        Ok(PgStatus::Pending(PgPending::WaitingForDeposit))
    );
    assert!(
        matches!(gateway.status(&request), Ok(PgStatus::Declined { code, .. }) if code == "EXPIRED")
    );
    match gateway.status(&request) {
        Ok(PgStatus::Approved(approval)) => assert_eq!(
            approval.cancels,
            vec![PgCancel {
                transaction_key: "c1".into(),
                amount: won(5_000),
                tax_free_amount: won(0),
            }]
        ),
        other => panic!("PARTIAL_CANCELED is approved with its cancels: {other:?}"),
    }
    match gateway.status(&request) {
        Ok(PgStatus::Cancelled(approval)) => assert_eq!(approval.cancels.len(), 2),
        other => panic!("CANCELED is cancelled whole: {other:?}"),
    }
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
fn documented_final_confirm_declines_are_declines() {
    for (status, code) in [
        (403, "FDS_ERROR"),
        (403, "FORBIDDEN_REQUEST"),
        (403, "NOT_AVAILABLE_BANK"),
        (403, "INVALID_PASSWORD"),
        (400, "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT"),
        (400, "UNAPPROVED_ORDER_ID"),
        (400, "RESTRICTED_TRANSFER_ACCOUNT"),
        (404, "NOT_FOUND_PAYMENT_SESSION"),
    ] {
        let pg = PgServer::start(vec![error(status, code)]);
        let err = pg.gateway().approve(&approve_request()).unwrap_err();
        assert!(
            matches!(&err, GatewayError::Declined { code: c, .. } if c == code),
            "{code}: {err:?}"
        );
    }
}

#[test]
fn already_processed_is_settled_by_the_pgs_record_never_read_as_approved() {
    // Approved with this amount: the approval.
    let pg = PgServer::start(vec![
        error(400, "ALREADY_PROCESSED_PAYMENT"),
        reply(200, payment("ls-7-0011aabb", "DONE", 15_000)),
    ]);
    let approval = pg.gateway().approve(&approve_request()).unwrap();
    assert_eq!(approval.approved_amount, won(15_000));
    let seen = pg.seen();
    assert_eq!(seen[1].method, "GET");
    // Aborted: declined. Waiting for a deposit or cancelled: unknown.
    for (status, expected) in [
        ("ABORTED", "declined"),
        ("WAITING_FOR_DEPOSIT", "unknown"),
        ("CANCELED", "unknown"),
    ] {
        let pg = PgServer::start(vec![
            error(400, "ALREADY_PROCESSED_PAYMENT"),
            reply(200, payment("ls-7-0011aabb", status, 15_000)),
        ]);
        let err = pg.gateway().approve(&approve_request()).unwrap_err();
        let class = match err {
            GatewayError::Declined { .. } => "declined",
            GatewayError::Unknown { .. } => "unknown",
            _ => "other",
        };
        assert_eq!(class, expected, "{status}");
    }
}

#[test]
fn extra_headers_go_with_every_call() {
    let pg = PgServer::start(vec![error(403, "REJECT_CARD_PAYMENT")]);
    let gateway = HttpGateway::builder(&pg.base, SECRET)
        .header("TossPayments-Test-Code", "REJECT_CARD_PAYMENT")
        .build();
    let _ = gateway.approve(&approve_request());
    let _ = gateway.status(&StatusRequest {
        pg_order_id: "ls-7-0011aabb".into(),
        payment_key: None,
    });
    let seen = pg.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.test_code.as_deref() == Some("REJECT_CARD_PAYMENT"))
    );
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

fn cancel_request() -> CancelRequest {
    CancelRequest {
        payment_key: "pk_abc".into(),
        pg_order_id: "ls-7-0011aabb".into(),
        amount: won(5_000),
        currency: Currency::KRW,
        tax_free_amount: liteshop::Money::ZERO,
        reason: "changed my mind".into(),
        idempotency_key: "ls-pay-key-1-refund".into(),
        refund_account: None,
    }
}

#[test]
fn cancel_sends_the_contract_and_reads_what_the_pg_cancelled() {
    let pg = PgServer::start(vec![reply(
        200,
        cancelled_payment("PARTIAL_CANCELED", 15_000, &[("c0", 1_000), ("c1", 5_000)]),
    )]);
    let cancellation = pg.gateway().cancel(&cancel_request()).unwrap();
    assert_eq!(cancellation.cancelled_amount, won(5_000));
    assert_eq!(cancellation.transaction_key, "c1");
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
        json!({ "cancelReason": "changed my mind", "cancelAmount": 5_000 })
    );
}

#[test]
fn a_cancel_of_a_payment_cancelled_elsewhere_is_a_decline_never_a_refund() {
    // An operator cancelled the payment whole in the PG's dashboard.
    for (status, code) in [
        (400, "ALREADY_CANCELED_PAYMENT"),
        (400, "ALREADY_REFUND_PAYMENT"),
        (403, "NOT_ALLOWED_PARTIAL_REFUND"),
        (403, "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT"),
        (400, "REFUND_REJECTED"),
        (400, "INVALID_REFUND_ACCOUNT_INFO"),
        (400, "INVALID_BANK"),
    ] {
        let pg = PgServer::start(vec![error(status, code)]);
        let err = pg.gateway().cancel(&cancel_request()).unwrap_err();
        assert!(
            matches!(&err, GatewayError::Declined { code: c, .. } if c == code),
            "{code}: {err:?}"
        );
    }
}

#[test]
fn a_cancel_reply_that_does_not_show_the_cancel_is_unknown() {
    for body in [
        // No cancels[] at all.
        payment("ls-7-0011aabb", "CANCELED", 15_000),
        // lastTransactionKey names no entry of cancels[].
        {
            let mut object = cancelled_payment("PARTIAL_CANCELED", 15_000, &[("c1", 5_000)]);
            object["lastTransactionKey"] = json!("other");
            object
        },
        // Not cancelled.
        payment("ls-7-0011aabb", "DONE", 15_000),
    ] {
        let pg = PgServer::start(vec![reply(200, body.clone())]);
        let err = pg.gateway().cancel(&cancel_request()).unwrap_err();
        assert!(
            matches!(err, GatewayError::Unknown { .. }),
            "{body}: {err:?}"
        );
    }
}

#[test]
fn consecutive_requests_are_asked_again_later_not_declined() {
    let pg = PgServer::start(vec![
        error(403, "FORBIDDEN_CONSECUTIVE_REQUEST"),
        reply(
            200,
            cancelled_payment("PARTIAL_CANCELED", 15_000, &[("c1", 5_000)]),
        ),
    ]);
    let cancellation = pg.gateway().cancel(&cancel_request()).unwrap();
    assert_eq!(cancellation.transaction_key, "c1");
    let seen = pg.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
    // Still refused after every ask: unknown (asked again later), not a decline.
    let pg = PgServer::start(vec![error(403, "FORBIDDEN_CONSECUTIVE_REQUEST")]);
    let err = pg.gateway().cancel(&cancel_request()).unwrap_err();
    assert!(matches!(err, GatewayError::Unknown { .. }), "{err:?}");
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

#[path = "../examples/support/fake_pg_server.rs"]
#[allow(dead_code)]
mod fake_pg_server;

#[test]
fn the_toss_double_and_the_http_gateway_agree_on_toss_behaviour() -> liteshop::Result<()> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let addr = server.server_addr().to_ip().unwrap();
    let records = Arc::new(Mutex::new(fake_pg_server::Pg::default()));
    let handle = {
        let (server, records) = (server.clone(), records.clone());
        let rules = fake_pg_server::Rules {
            secret: SECRET.to_owned(),
            ..Default::default()
        };
        thread::spawn(move || fake_pg_server::serve(&server, &rules, &records))
    };
    let base = format!("http://{addr}");
    let gateway = HttpGateway::builder(&base, SECRET).build();
    let t = common::open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    let tea = t.product("Tea", 10_000, 5).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 3)])?.id;
    let started = t.shop.start_payment(kim, order, won(0))?;
    let widget = started.widget().unwrap();
    let payment_key = records
        .lock()
        .unwrap()
        .pay_in_widget(&widget.pg_order_id, widget.amount.won());

    // Authenticated, not confirmed: IN_PROGRESS at the PG.
    let lookup = HttpGateway::builder(&base, SECRET).build();
    let status = StatusRequest {
        pg_order_id: widget.pg_order_id.clone(),
        payment_key: None,
    };
    assert_eq!(
        lookup.status(&status),
        Ok(PgStatus::Pending(PgPending::InProgress))
    );
    let redirect = liteshop::PgRedirect {
        payment_key,
        pg_order_id: widget.pg_order_id.clone(),
        amount: widget.amount,
    };
    t.shop.confirm_payment(kim, started.id, &redirect)?;

    // A partial refund: the PG's transactionKey is stored with it.
    let refund = t
        .shop
        .refund_lines(kim, order, &[OrderLine::new(tea, 1)], "one back")?;
    assert_eq!(refund.status, liteshop::RefundStatus::Completed);
    let key = refund.pg_transaction_key.expect("the PG's key");
    assert!(key.starts_with("fakepg_cancel_"), "{key}");

    // An operator cancels the rest in the dashboard; the next refund is
    // declined as Toss declines it, and nothing is credited.
    let agent = ureq::Agent::new_with_defaults();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"))
    );
    agent
        .post(format!("{base}/v1/fake/dashboard/cancel"))
        .header("Authorization", &auth)
        .content_type("application/json")
        .send(json!({ "orderId": widget.pg_order_id, "cancelAmount": 20_000 }).to_string())
        .unwrap();
    let balance = t.shop.balance(kim)?;
    let err = t
        .shop
        .refund_lines(kim, order, &[OrderLine::new(tea, 1)], "another")
        .unwrap_err();
    assert!(
        matches!(&err, liteshop::Error::RefundDeclined { code, .. } if code == "ALREADY_CANCELED_PAYMENT"),
        "{err:?}"
    );
    assert_eq!(t.shop.balance(kim)?, balance);
    match lookup.status(&status) {
        Ok(PgStatus::Cancelled(approval)) => {
            assert_eq!(approval.cancels.len(), 2);
            assert_eq!(approval.cancels[0].transaction_key, key);
        }
        other => panic!("cancelled whole: {other:?}"),
    }
    server.unblock();
    handle.join().unwrap();
    Ok(())
}

#[test]
fn another_currency_than_won_is_refused_before_anything_is_sent() {
    let pg = PgServer::start(vec![ok_approval()]);
    let usd = Currency::new("USD").unwrap();
    let gateway = pg.gateway();
    let err = gateway
        .approve(&ApproveRequest {
            currency: usd,
            ..approve_request()
        })
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::Invalid { code, .. } if code == "INVALID_CURRENCY"),
        "{err:?}"
    );
    let err = gateway
        .cancel(&CancelRequest {
            currency: usd,
            ..cancel_request()
        })
        .unwrap_err();
    assert!(matches!(err, GatewayError::Invalid { .. }), "{err:?}");
    assert!(pg.seen().is_empty(), "nothing reached the PG");

    // A shop in dollars sends its currency with the confirm, and the
    // won-only gateway refuses it: declined, the balance part back.
    let gateway = pg.gateway();
    let t = common::open_with(move |b| b.gateway(gateway).currency(usd));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(5_000)).unwrap();
    let tea = t.product("Tea", 12_000, 3).id;
    let order = t
        .shop
        .place_order(kim, &[OrderLine::new(tea, 1)])
        .unwrap()
        .id;
    let started = t.shop.start_payment(kim, order, won(2_000)).unwrap();
    let widget = started.widget().unwrap();
    let redirect = liteshop::PgRedirect {
        payment_key: "pk_from_widget".into(),
        pg_order_id: widget.pg_order_id.clone(),
        amount: widget.amount,
    };
    let err = t
        .shop
        .confirm_payment(kim, started.id, &redirect)
        .unwrap_err();
    assert!(
        matches!(&err, liteshop::Error::GatewayRejected { code, .. } if code == "INVALID_CURRENCY"),
        "{err:?}"
    );
    assert_eq!(t.shop.balance(kim).unwrap(), won(5_000));
    assert!(pg.seen().is_empty());
    for bad in ["usd", "US", "USDX", "", "₩₩₩"] {
        assert!(Currency::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_toss_double_expires_a_payment_nobody_confirmed_in_its_window() -> liteshop::Result<()> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let addr = server.server_addr().to_ip().unwrap();
    let records = Arc::new(Mutex::new(fake_pg_server::Pg::default()));
    let handle = {
        let (server, records) = (server.clone(), records.clone());
        let rules = fake_pg_server::Rules {
            secret: SECRET.to_owned(),
            confirm_window: Some(Duration::ZERO),
            ..Default::default()
        };
        thread::spawn(move || fake_pg_server::serve(&server, &rules, &records))
    };
    let base = format!("http://{addr}");
    let gateway = HttpGateway::builder(&base, SECRET).build();
    let t = common::open_with(move |b| b.gateway(gateway));
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(4_000))?;
    let tea = t.product("Tea", 10_000, 5).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(tea, 1)])?.id;
    let started = t.shop.start_payment(kim, order, won(4_000))?;
    let widget = started.widget().unwrap();
    let payment_key = records
        .lock()
        .unwrap()
        .pay_in_widget(&widget.pg_order_id, widget.amount.won());
    let lookup = HttpGateway::builder(&base, SECRET).build();
    let status = StatusRequest {
        pg_order_id: widget.pg_order_id.clone(),
        payment_key: None,
    };
    assert!(
        matches!(lookup.status(&status), Ok(PgStatus::Declined { code, .. }) if code == "EXPIRED")
    );
    let redirect = liteshop::PgRedirect {
        payment_key,
        pg_order_id: widget.pg_order_id.clone(),
        amount: widget.amount,
    };
    let err = t
        .shop
        .confirm_payment(kim, started.id, &redirect)
        .unwrap_err();
    assert!(
        matches!(&err, liteshop::Error::PaymentDeclined { code, .. } if code == "NOT_FOUND_PAYMENT_SESSION"),
        "{err:?}"
    );
    assert_eq!(t.shop.balance(kim)?, won(4_000), "the balance part is back");
    assert_eq!(t.shop.order(kim, order)?.status, OrderStatus::Pending);
    server.unblock();
    handle.join().unwrap();
    Ok(())
}

/// A confirm of a payment by bank transfer answers `WAITING_FOR_DEPOSIT`
/// with the virtual account and the payment's secret
/// (docs.tosspayments.com/guides/payment/virtual-account): the gateway
/// reads it as awaiting a deposit, never as approved, and never shows the
/// secret in `Debug`; one without the account is unknown.
#[test]
fn a_virtual_account_is_awaiting_a_deposit_not_approved() {
    let mut waiting = payment("ls-7-0011aabb", "WAITING_FOR_DEPOSIT", 15_000);
    waiting["approvedAt"] = Value::Null;
    waiting["method"] = json!("가상계좌");
    waiting["secret"] = json!("ps_eqRGgYO1r57E4Z541ZMW3QnN2Eya");
    waiting["virtualAccount"] = json!({
        "accountNumber": "79019639679511",
        "accountType": "일반",
        "bankCode": "11",
        "customerName": "김토스",
        "dueDate": "2025-11-30T15:17:19+09:00",
        "expired": false,
        "settlementStatus": "INCOMPLETED",
        "refundStatus": "NONE",
    });
    let mut bare = waiting.clone();
    bare["virtualAccount"] = Value::Null;
    let pg = PgServer::start(vec![reply(200, waiting), reply(200, bare)]);
    let err = pg.gateway().approve(&approve_request()).unwrap_err();
    let liteshop::GatewayError::AwaitingDeposit(deposit) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        (deposit.bank.as_str(), deposit.account_number.as_str()),
        ("11", "79019639679511")
    );
    assert_eq!(deposit.due_at.as_millis(), 1_764_483_439_000);
    assert_eq!(deposit.secret, "ps_eqRGgYO1r57E4Z541ZMW3QnN2Eya");
    assert!(!format!("{err:?} {err}").contains("ps_eqRG"), "{err:?}");
    let err = pg.gateway().approve(&approve_request()).unwrap_err();
    assert!(
        matches!(err, liteshop::GatewayError::Unknown { .. }),
        "{err:?}"
    );
}

/// The cancel of a bank-transfer payment sends the customer's account as
/// Toss's `refundReceiveAccount` (docs.tosspayments.com/reference#결제-취소).
#[test]
fn a_bank_transfers_cancel_names_the_account_to_refund_to() {
    let pg = PgServer::start(vec![reply(
        200,
        cancelled_payment("PARTIAL_CANCELED", 15_000, &[("c1", 5_000)]),
    )]);
    let request = CancelRequest {
        refund_account: Some(liteshop::RefundAccount {
            bank: "20".into(),
            account_number: "1002123456789".into(),
            holder_name: "김민지".into(),
        }),
        ..cancel_request()
    };
    assert!(!format!("{request:?}").contains("1002123456789"));
    pg.gateway().cancel(&request).unwrap();
    let body: Value = serde_json::from_str(&pg.seen()[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "cancelReason": "changed my mind",
            "cancelAmount": 5_000,
            "refundReceiveAccount": {
                "bank": "20", "accountNumber": "1002123456789", "holderName": "김민지",
            },
        })
    );
}

/// A tax-free part goes with the confirm and the cancel as Toss's
/// `taxFreeAmount` (docs.tosspayments.com/reference#결제-승인, #결제-취소);
/// with none, the field is left out.
#[test]
fn a_tax_free_part_is_sent_as_tax_free_amount() {
    let pg = PgServer::start(vec![
        ok_approval(),
        reply(
            200,
            cancelled_payment("PARTIAL_CANCELED", 15_000, &[("c1", 5_000)]),
        ),
    ]);
    pg.gateway()
        .approve(&ApproveRequest {
            tax_free_amount: won(6_000),
            ..approve_request()
        })
        .unwrap();
    pg.gateway()
        .cancel(&CancelRequest {
            tax_free_amount: won(2_000),
            ..cancel_request()
        })
        .unwrap();
    let seen = pg.seen();
    let confirm: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(confirm["taxFreeAmount"], json!(6_000));
    let cancel: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(cancel["taxFreeAmount"], json!(2_000));
}

/// The Toss double end to end through `HttpGateway`: a bank transfer's
/// confirm issues an account; the deposit at the PG comes to the shop as a
/// `DEPOSIT_CALLBACK`, retried after an answer that is not a 200, and
/// settles the payment once; a dashboard cancel comes as a
/// `PAYMENT_STATUS_CHANGED` and is recorded once; the refund of the
/// transfer needs the customer's account.
#[test]
fn the_toss_double_sends_its_webhooks_again_until_the_shop_answers_200() -> liteshop::Result<()> {
    // The shop's webhook route, as the server has it: 500 to the first
    // notice, then the body's payment is settled from the PG's record.
    let receiver = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let hook = format!(
        "http://{}/pg/webhook",
        receiver.server_addr().to_ip().unwrap()
    );
    let pg = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let base = format!("http://{}", pg.server_addr().to_ip().unwrap());
    let records = Arc::new(Mutex::new(fake_pg_server::Pg::default()));
    let pg_thread = {
        let (server, records) = (pg.clone(), records.clone());
        let rules = fake_pg_server::Rules {
            secret: SECRET.to_owned(),
            webhook_url: Some(hook),
            webhook_unit: Some(std::time::Duration::from_millis(20)),
            ..Default::default()
        };
        thread::spawn(move || fake_pg_server::serve(&server, &rules, &records))
    };
    let gateway = HttpGateway::builder(&base, SECRET).build();
    let t = common::open_with(move |b| b.gateway(gateway));
    let notices = Arc::new(Mutex::new(Vec::<Value>::new()));
    let receiver_thread = {
        let (receiver, shop, notices) = (receiver.clone(), t.shop.clone(), notices.clone());
        thread::spawn(move || {
            while let Ok(mut request) = receiver.recv() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let notice: Value = serde_json::from_str(&body).unwrap();
                let first = {
                    let mut seen = notices.lock().unwrap();
                    seen.push(notice.clone());
                    seen.len() == 1
                };
                if first {
                    let _ = request.respond(tiny_http::Response::empty(500));
                    continue;
                }
                let id = notice["orderId"]
                    .as_str()
                    .or(notice["data"]["orderId"].as_str())
                    .unwrap()
                    .to_owned();
                let settled = match notice["secret"].as_str() {
                    Some(secret) => shop.deposit_notice(&id, secret),
                    None => shop.payment_changed_at_pg(&id),
                };
                assert!(settled.unwrap().is_some(), "{notice}");
                let _ = request.respond(tiny_http::Response::empty(200));
            }
        })
    };

    let kim = t.user("Kim").id;
    let rice = t.product("Rice", 10_000, 5).id;
    let order = t.shop.place_order(kim, &[OrderLine::new(rice, 2)])?.id;
    let started = t.shop.start_payment(kim, order, won(0))?;
    let widget = started.widget().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let authorised: Value = serde_json::from_str(
        &agent
            .post(format!("{base}/v1/fake/widget"))
            .send(
                json!({ "orderId": widget.pg_order_id, "amount": 20_000, "method": "VIRTUAL_ACCOUNT" })
                    .to_string(),
            )
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let redirect = liteshop::PgRedirect {
        payment_key: authorised["paymentKey"].as_str().unwrap().to_owned(),
        pg_order_id: widget.pg_order_id.clone(),
        amount: widget.amount,
    };
    let waiting = t.shop.confirm_payment(kim, started.id, &redirect)?;
    let account = waiting.deposit.clone().expect("an account to pay into");
    assert!(account.account_number.starts_with('X'), "{account:?}");
    assert_eq!(
        t.shop.order(kim, order)?.status,
        liteshop::OrderStatus::Paying
    );

    // The customer pays in; the notice is refused once, then settles it.
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"))
    );
    let deposited = agent
        .post(format!("{base}/v1/fake/deposit"))
        .header("Authorization", &auth)
        .send(json!({ "orderId": widget.pg_order_id }).to_string())
        .unwrap();
    assert_eq!(deposited.status(), 200);
    let paid = common::wait_until(|| {
        t.shop.order(kim, order).unwrap().status == liteshop::OrderStatus::Paid
    });
    assert!(paid, "the deposit notice settled the payment");
    assert_eq!(notices.lock().unwrap().len(), 2, "sent again after the 500");
    assert!(notices.lock().unwrap()[0].get("eventType").is_none());

    // The refund of a transfer goes to the customer's account.
    let err = t
        .shop
        .refund_lines(kim, order, &[OrderLine::new(rice, 1)], "one back")
        .unwrap_err();
    assert!(
        matches!(&err, liteshop::Error::RefundDeclined { code, .. } if code == "INVALID_REFUND_ACCOUNT_INFO"),
        "{err:?}"
    );
    t.shop.set_refund_account(
        kim,
        started.id,
        &liteshop::RefundAccount {
            bank: "20".into(),
            account_number: "1002123456789".into(),
            holder_name: "김민지".into(),
        },
    )?;
    let refund = t
        .shop
        .refund_lines(kim, order, &[OrderLine::new(rice, 1)], "one back")?;
    assert_eq!(refund.status, liteshop::RefundStatus::Completed);

    // An operator cancels the rest in the dashboard: the notice records it.
    let cancelled = agent
        .post(format!("{base}/v1/fake/dashboard/cancel"))
        .header("Authorization", &auth)
        .send(json!({ "orderId": widget.pg_order_id, "cancelAmount": 10_000 }).to_string())
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let recorded = common::wait_until(|| t.shop.order(kim, order).unwrap().refunded == won(20_000));
    assert!(recorded, "the dashboard's cancel is in the books");
    let refunds = t.shop.refunds(kim, order)?;
    assert_eq!(
        refunds.iter().map(|r| r.origin).collect::<Vec<_>>(),
        [
            liteshop::RefundOrigin::Shop,
            liteshop::RefundOrigin::Shop,
            liteshop::RefundOrigin::Pg
        ]
    );
    assert!(t.shop.audit()?.is_clean());

    pg.unblock();
    receiver.unblock();
    pg_thread.join().unwrap();
    receiver_thread.join().unwrap();
    Ok(())
}

/// Each cancel in the PG's record carries its tax-free part
/// (`cancels[].taxFreeAmount`); one larger than its cancel is unreadable.
#[test]
fn a_cancels_tax_free_part_is_read_from_the_pgs_record() {
    let mut record = cancelled_payment("PARTIAL_CANCELED", 15_000, &[("c1", 5_000)]);
    record["cancels"][0]["taxFreeAmount"] = json!(2_000);
    let mut wrong = record.clone();
    wrong["cancels"][0]["taxFreeAmount"] = json!(6_000);
    let pg = PgServer::start(vec![reply(200, record), reply(200, wrong)]);
    let request = StatusRequest {
        pg_order_id: "ls-7-0011aabb".into(),
        payment_key: None,
    };
    match pg.gateway().status(&request) {
        Ok(PgStatus::Approved(approval)) => {
            assert_eq!(approval.cancels[0].tax_free_amount, won(2_000));
        }
        other => panic!("{other:?}"),
    }
    let unreadable = pg.gateway().status(&request);
    assert!(
        matches!(unreadable, Err(GatewayError::Unknown { .. })),
        "{unreadable:?}"
    );
}

/// Over real HTTP against the Toss double's scripted faults — every third
/// call of the shop's processed and its reply lost half-way, every fifth
/// answered 500 unprocessed, every one 20 ms late — payments and refunds
/// end, after reconciliation, exactly as the PG's own record says: what
/// the shop counts as paid through the PG and refunded through it equals
/// each payment's `totalAmount`, `cancels[]` and `balanceAmount` there, and
/// the books balance.
#[test]
fn lost_replies_5xx_and_delays_leave_the_books_equal_to_the_pgs_record() -> liteshop::Result<()> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let records = Arc::new(Mutex::new(fake_pg_server::Pg::default()));
    let handle = {
        let (server, records) = (server.clone(), records.clone());
        let rules = fake_pg_server::Rules {
            secret: SECRET.to_owned(),
            faults: fake_pg_server::Faults {
                lose_reply_every: Some(3),
                fail_every: Some(5),
                delay: Some(Duration::from_millis(20)),
            },
            ..Default::default()
        };
        thread::spawn(move || fake_pg_server::serve(&server, &rules, &records))
    };
    let gateway = HttpGateway::builder(&base, SECRET)
        .response_timeout(Duration::from_millis(300))
        .build();
    let t = common::open_with(move |b| b.gateway(gateway).reconcile_grace(Duration::ZERO));
    let kim = t.user("Kim").id;
    let tea = t.product("Tea", 10_000, 100).id;
    let settle = || -> liteshop::Result<()> {
        for _ in 0..30 {
            let unsettled = t.shop.unsettled()?;
            if unsettled.payments.is_empty() && unsettled.refunds.is_empty() {
                return Ok(());
            }
            t.shop.reconcile_payments()?;
        }
        panic!("still unsettled: {:?}", t.shop.unsettled()?);
    };

    let mut orders = Vec::new();
    let mut unanswered = 0;
    for _ in 0..10 {
        let order = t.shop.place_order(kim, &[OrderLine::new(tea, 2)])?.id;
        let started = t.shop.start_payment(kim, order, won(0))?;
        let widget = started.widget().unwrap();
        let payment_key = records
            .lock()
            .unwrap()
            .pay_in_widget(&widget.pg_order_id, widget.amount.won());
        let redirect = liteshop::PgRedirect {
            payment_key,
            pg_order_id: widget.pg_order_id.clone(),
            amount: widget.amount,
        };
        if t.shop.confirm_payment(kim, started.id, &redirect).is_err() {
            unanswered += 1;
        }
        orders.push(order);
    }
    settle()?;
    for &order in &orders {
        if t.shop.order(kim, order)?.status == OrderStatus::Paid
            && t.shop
                .refund_lines(kim, order, &[OrderLine::new(tea, 1)], "one back")
                .is_err()
        {
            unanswered += 1;
        }
    }
    settle()?;
    assert!(unanswered > 0, "the faults reached the shop");

    let pg = records.lock().unwrap();
    let mut paid = 0;
    for &order in &orders {
        for payment in t.shop.payments_for_order(kim, order)? {
            let record = pg.payments.get(&payment.pg_order_id);
            match payment.status {
                PaymentStatus::Approved | PaymentStatus::Refunded => {
                    paid += 1;
                    let record = record.expect("the PG holds what the shop counts as paid");
                    let cancelled: i64 = record["cancels"]
                        .as_array()
                        .map(|c| c.iter().map(|c| c["cancelAmount"].as_i64().unwrap()).sum())
                        .unwrap_or(0);
                    assert_eq!(
                        record["totalAmount"].as_i64(),
                        Some(payment.pg_amount.won())
                    );
                    assert_eq!(cancelled, payment.pg_refunded.won(), "{record}");
                    assert_eq!(
                        record["balanceAmount"].as_i64(),
                        Some(payment.pg_amount.won() - payment.pg_refunded.won()),
                        "{record}"
                    );
                }
                status => assert!(
                    record.is_none(),
                    "{status:?} at the shop, {record:?} at the PG"
                ),
            }
        }
    }
    // Every customer paid in the widget and every refund was asked once:
    // through every fault, each ends done, none twice.
    assert_eq!(paid, orders.len());
    for &order in &orders {
        let refunds = t.shop.refunds(kim, order)?;
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].status, liteshop::RefundStatus::Completed);
        assert_eq!(refunds[0].pg_amount, won(10_000));
    }
    let report = t.shop.audit()?;
    assert!(report.is_clean(), "{report:?}");
    drop(pg);
    server.unblock();
    handle.join().unwrap();
    Ok(())
}
