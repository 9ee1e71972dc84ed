//! The fake payment gateway's records and HTTP loop, shared by the
//! `fake_pg` example and the server's failover test (included with
//! `#[path]`): Toss Payments' contract as its documentation states it, the
//! one `HttpGateway` speaks.
//!
//! What it does as Toss does (docs.tosspayments.com: reference
//! `/reference#payment-객체` and `/reference/error-codes`, guide
//! `/guides/using-api/idempotency-key`):
//!
//! - a confirm takes only a `paymentKey` its widget issued, with that
//!   `orderId` and `amount`; a second confirm of a processed payment with
//!   another key is `ALREADY_PROCESSED_PAYMENT`;
//! - a lookup of a payment authenticated in the widget and not confirmed is
//!   `IN_PROGRESS`, not 404;
//! - a cancel appends to `cancels[]` (`transactionKey`, `cancelAmount`) and
//!   moves `lastTransactionKey`, `balanceAmount` and `status`; a cancel of a
//!   payment cancelled whole is `ALREADY_CANCELED_PAYMENT`; a partial cancel
//!   when partial cancels are off is `NOT_ALLOWED_PARTIAL_REFUND`;
//! - an idempotency key replays its first reply, and is forgotten after
//!   `key_lifetime` (Toss: 15 days);
//! - `POST /v1/fake/dashboard/cancel {"orderId","cancelAmount"}` (with the
//!   secret; not a Toss API) plays an operator cancelling in the dashboard;
//! - a widget payment with `"method": "VIRTUAL_ACCOUNT"` is a bank
//!   transfer: its confirm answers `WAITING_FOR_DEPOSIT` with a
//!   `virtualAccount` (`dueDate` `dueInSecs` ahead, default 7 days) and the
//!   payment's `secret`, its lookup says so, and `POST /v1/fake/deposit
//!   {"orderId"}` (with the secret; not a Toss API) plays the customer's
//!   transfer: `DONE` (docs.tosspayments.com/guides/payment/virtual-account);
//! - for a browser, `GET /widget?orderId&amount&orderName&successUrl&failUrl`
//!   is the widget's page (Toss's is its JavaScript SDK's `requestPayment`
//!   with these parameters): "pay by card" and "pay by bank transfer"
//!   authorise the payment and redirect to `successUrl` with
//!   `paymentType=NORMAL`, `orderId`, `paymentKey` and `amount`; "close"
//!   redirects to `failUrl` with `code=PAY_PROCESS_CANCELED`, `message`
//!   and `orderId` (docs.tosspayments.com/guides/v2/payment-widget/integration);
//! - with `Rules::webhook_url`, it sends Toss's webhooks
//!   (docs.tosspayments.com/guides/webhook): `PAYMENT_STATUS_CHANGED` after
//!   a dashboard cancel, `DEPOSIT_CALLBACK` (no `eventType`, with the
//!   payment's `secret`) after a deposit; any answer but a 200 is retried
//!   up to 7 times, after 1, 4, 16, 64, 256, 1,024 and 4,096 units of
//!   `webhook_unit` (Toss: minutes).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// How the fake behaves.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// The secret key clients must authenticate with.
    pub secret: String,
    /// Decline any payment above this many won.
    pub decline_above: Option<i64>,
    /// Decline any payment whose orderId starts with this prefix.
    pub decline_order_prefix: Option<String>,
    /// Stop after this many requests.
    pub max_requests: Option<usize>,
    /// Log each request to standard error.
    pub log: bool,
    /// Refuse partial cancels (`NOT_ALLOWED_PARTIAL_REFUND`), as Toss does
    /// for escrow and cash-card payments.
    pub whole_cancel_only: bool,
    /// Forget an idempotency key this long after its first use (default:
    /// never).
    pub key_lifetime: Option<Duration>,
    /// How long after authentication a confirm is taken (default: Toss's
    /// 10 minutes; later the confirm is `NOT_FOUND_PAYMENT_SESSION` and the
    /// lookup `EXPIRED`, docs.tosspayments.com/reference/error-codes).
    pub confirm_window: Option<Duration>,
    /// Where to send webhooks (none when unset).
    pub webhook_url: Option<String>,
    /// The unit of the webhook retry schedule (Toss: a minute; default
    /// here 50 ms, so tests and demos see retries).
    pub webhook_unit: Option<Duration>,
    /// Scripted faults on the shop's calls (confirm, lookup, cancel).
    pub faults: Faults,
}

/// Faults the double plays on the shop's calls (`POST /v1/payments/…`,
/// `GET /v1/payments/orders/…`), counted over those calls together (the
/// widget step and the fake's own routes are not counted), so a run is the
/// same every time: the Nth, 2Nth, … of them.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The call is processed (its effect and its idempotent reply kept),
    /// then the reply is lost: the status line and half the headers are
    /// sent and the connection goes silent, as when a network drops
    /// mid-answer. The caller cannot know what happened.
    pub lose_reply_every: Option<u32>,
    /// The call is answered 500 `FAILED_INTERNAL_SYSTEM_PROCESSING`
    /// without being processed (Toss's table: retry; the outcome is not
    /// known to the caller).
    pub fail_every: Option<u32>,
    /// Every call is processed, then answered this much later (the loop
    /// goes on serving others meanwhile).
    pub delay: Option<Duration>,
}

/// What the double does with one call of the shop's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    LoseReply,
    Fail,
}

impl Faults {
    /// The fault for the `n`th call (from 1).
    fn of(&self, n: u32) -> Fault {
        let every = |k: Option<u32>| k.is_some_and(|k| k > 0 && n.is_multiple_of(k));
        if every(self.lose_reply_every) {
            Fault::LoseReply
        } else if every(self.fail_every) {
            Fault::Fail
        } else {
            Fault::None
        }
    }
}

/// Toss's webhook retry schedule, in units (docs.tosspayments.com/guides/webhook:
/// 1 → 4 → 16 → 64 → 256 → 1,024 → 4,096 minutes).
const WEBHOOK_RETRIES: [u32; 7] = [1, 4, 16, 64, 256, 1_024, 4_096];

/// Sends `body` to `url` as Toss sends a webhook: again, on the schedule,
/// until a 200 comes back or the retries run out. Returns at once; the
/// sending runs on its own thread.
fn send_webhook(url: String, unit: Duration, body: Value) {
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        for wait in std::iter::once(0).chain(WEBHOOK_RETRIES) {
            std::thread::sleep(unit * wait);
            let sent = agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string());
            if sent.is_ok_and(|reply| reply.status() == 200) {
                return;
            }
        }
    });
}

impl Rules {
    fn confirm_window(&self) -> Duration {
        self.confirm_window.unwrap_or(Duration::from_secs(10 * 60))
    }

    fn webhook(&self, body: Value) {
        if let Some(url) = &self.webhook_url {
            let unit = self.webhook_unit.unwrap_or(Duration::from_millis(50));
            send_webhook(url.clone(), unit, body);
        }
    }
}

/// The PG's own records.
#[derive(Default)]
pub struct Pg {
    /// Every payment it approved, by the shop's order id: `status`,
    /// `totalAmount`, `balanceAmount` (once cancelled from), `cancels`.
    pub payments: HashMap<String, Value>,
    replies: HashMap<String, (Instant, u16, Value)>,
    transactions: u64,
    /// `paymentKey` → (`orderId`, `amount`, when) a customer authorised in
    /// the widget: the only payments a confirm may take, within the window.
    authorised: HashMap<String, (String, i64, Instant)>,
    /// `orderId` → how long its virtual account stays open, for the
    /// payments the customer chose to pay by bank transfer.
    transfers: HashMap<String, Duration>,
    /// `orderId` → amount of each payment whose confirm was declined:
    /// Toss's lookup says `ABORTED`, and another confirm is
    /// `ALREADY_PROCESSED_PAYMENT` (docs.tosspayments.com/reference/error-codes).
    pub aborted: HashMap<String, i64>,
}

impl Pg {
    /// The customer's browser paying `amount` for `order_id` in the PG's
    /// widget: returns the `paymentKey` the success redirect carries. Over
    /// HTTP the same step is `POST /v1/fake/widget {"orderId","amount"}`
    /// (this fake's stand-in for the browser; not an API Toss offers).
    pub fn pay_in_widget(&mut self, order_id: &str, amount: i64) -> String {
        self.transactions += 1;
        let payment_key = format!("fakepg_pk_{}_{order_id}", self.transactions);
        self.authorised.insert(
            payment_key.clone(),
            (order_id.to_owned(), amount, Instant::now()),
        );
        payment_key
    }

    fn handle(
        &mut self,
        rules: &Rules,
        method: &str,
        url: &str,
        key: Option<String>,
        body: &str,
    ) -> (u16, Value) {
        if let Some((first, status, reply)) = key.as_ref().and_then(|k| self.replies.get(k)) {
            let forgotten = rules
                .key_lifetime
                .is_some_and(|lifetime| first.elapsed() >= lifetime);
            if !forgotten {
                return (*status, reply.clone());
            }
        }
        let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let segments: Vec<&str> = url.trim_start_matches('/').split('/').collect();
        let reply = match (method, segments.as_slice()) {
            ("POST", ["v1", "payments", "confirm"]) => self.confirm(rules, &request),
            ("POST", ["v1", "fake", "widget"]) => {
                match (request["orderId"].as_str(), request["amount"].as_i64()) {
                    (Some(order_id), Some(amount)) => {
                        let payment_key = self.pay_in_widget(order_id, amount);
                        if request["method"] == "VIRTUAL_ACCOUNT" {
                            let due = request["dueInSecs"].as_u64().unwrap_or(7 * 24 * 3_600);
                            self.transfers
                                .insert(order_id.to_owned(), Duration::from_secs(due));
                        }
                        (
                            200,
                            json!({ "paymentKey": payment_key, "orderId": order_id, "amount": amount }),
                        )
                    }
                    _ => error(400, "INVALID_REQUEST", "orderId and amount are required"),
                }
            }
            ("GET", ["v1", "payments", "orders", order_id]) => self.lookup(rules, order_id),
            ("POST", ["v1", "fake", "deposit"]) => self.deposit(rules, &request),
            ("POST", ["v1", "fake", "dashboard", "cancel"]) => {
                let payment_key = request["orderId"]
                    .as_str()
                    .and_then(|id| self.payments.get(id))
                    .and_then(|payment| payment["paymentKey"].as_str())
                    .map(str::to_owned);
                match payment_key {
                    Some(payment_key) => {
                        let reply = self.cancel(rules, &payment_key, &request, true);
                        if reply.0 == 200 {
                            rules.webhook(json!({
                                "eventType": "PAYMENT_STATUS_CHANGED",
                                "createdAt": "2026-01-01T00:00:00.000",
                                "data": reply.1,
                            }));
                        }
                        reply
                    }
                    None => error(404, "NOT_FOUND_PAYMENT", "no such payment"),
                }
            }
            ("POST", ["v1", "payments", payment_key, "cancel"]) => {
                self.cancel(rules, payment_key, &request, false)
            }
            _ => error(404, "NOT_FOUND", "no such endpoint"),
        };
        if let Some(key) = key {
            self.replies
                .insert(key, (Instant::now(), reply.0, reply.1.clone()));
        }
        reply
    }

    /// A payment by `orderId`: the processed one, or an authenticated one
    /// waiting for its confirm (`IN_PROGRESS`, or `EXPIRED` past the
    /// window).
    fn lookup(&self, rules: &Rules, order_id: &str) -> (u16, Value) {
        if let Some(payment) = self.payments.get(order_id) {
            return (200, payment.clone());
        }
        if let Some(amount) = self.aborted.get(order_id) {
            return (
                200,
                json!({
                    "orderId": order_id,
                    "status": "ABORTED",
                    "totalAmount": amount,
                    "balanceAmount": amount,
                    "cancels": null,
                    "failure": { "code": "REJECT_CARD_PAYMENT", "message": "the card company declined the payment" },
                }),
            );
        }
        match self
            .authorised
            .iter()
            .find(|(_, (authorised, _, _))| authorised == order_id)
        {
            Some((payment_key, (_, amount, at))) => (
                200,
                json!({
                    "paymentKey": payment_key,
                    "orderId": order_id,
                    "status": if at.elapsed() >= rules.confirm_window() { "EXPIRED" } else { "IN_PROGRESS" },
                    "totalAmount": amount,
                    "balanceAmount": amount,
                    "cancels": null,
                }),
            ),
            None => error(404, "NOT_FOUND_PAYMENT", "no such payment"),
        }
    }

    fn confirm(&mut self, rules: &Rules, request: &Value) -> (u16, Value) {
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
        if self.payments.contains_key(order_id) || self.aborted.contains_key(order_id) {
            // Processed before (with another key, or one it forgot).
            return error(400, "ALREADY_PROCESSED_PAYMENT", "already processed");
        }
        // Toss confirms only the payment the customer authorised in its
        // widget, with that paymentKey, orderId and amount: an unknown key
        // is 404 NOT_FOUND_PAYMENT, another orderId or amount a 400
        // (docs.tosspayments.com, "결제 승인" and /reference/error-codes).
        match self.authorised.get(payment_key) {
            None => return error(404, "NOT_FOUND_PAYMENT", "no payment with this paymentKey"),
            Some((authorised, authorised_amount, _))
                if authorised != order_id || *authorised_amount != amount =>
            {
                return error(
                    400,
                    "INVALID_REQUEST",
                    "orderId or amount differs from the authorised payment",
                );
            }
            Some((_, _, at)) if at.elapsed() >= rules.confirm_window() => {
                return error(
                    404,
                    "NOT_FOUND_PAYMENT_SESSION",
                    "the payment session expired before the confirm",
                );
            }
            Some(_) => {}
        }
        let declined = rules.decline_above.is_some_and(|limit| amount > limit)
            || rules
                .decline_order_prefix
                .as_deref()
                .is_some_and(|prefix| order_id.starts_with(prefix));
        if declined {
            self.aborted.insert(order_id.to_owned(), amount);
            return error(
                403,
                "REJECT_CARD_PAYMENT",
                "the card company declined the payment",
            );
        }
        self.transactions += 1;
        if let Some(due_in) = self.transfers.get(order_id) {
            let due = chrono_like(due_in.as_secs());
            let payment = json!({
                "paymentKey": payment_key,
                "orderId": order_id,
                "status": "WAITING_FOR_DEPOSIT",
                "method": "가상계좌",
                "totalAmount": amount,
                "balanceAmount": amount,
                "approvedAt": null,
                "lastTransactionKey": format!("fakepg_tx_{}", self.transactions),
                "cancels": null,
                "secret": format!("ps_fakepg_{}", self.transactions),
                "virtualAccount": {
                    "accountNumber": format!("X{:013}", self.transactions),
                    "bankCode": "20",
                    "customerName": "fake",
                    "dueDate": due,
                    "expired": false,
                    "settlementStatus": "INCOMPLETED",
                    "refundStatus": "NONE",
                },
            });
            self.payments.insert(order_id.to_owned(), payment.clone());
            return (200, payment);
        }
        let payment = json!({
            "paymentKey": payment_key,
            "orderId": order_id,
            "status": "DONE",
            "totalAmount": amount,
            "balanceAmount": amount,
            "approvedAt": "2026-01-01T00:00:00+09:00",
            "lastTransactionKey": format!("fakepg_tx_{}", self.transactions),
            "cancels": null,
        });
        self.payments.insert(order_id.to_owned(), payment.clone());
        (200, payment)
    }

    /// The customer's transfer into the virtual account of `orderId`: the
    /// payment is `DONE`, and the shop gets a `DEPOSIT_CALLBACK`.
    fn deposit(&mut self, rules: &Rules, request: &Value) -> (u16, Value) {
        let Some(payment) = request["orderId"]
            .as_str()
            .and_then(|id| self.payments.get_mut(id))
            .filter(|payment| payment["status"] == "WAITING_FOR_DEPOSIT")
        else {
            return error(404, "NOT_FOUND_PAYMENT", "no payment awaiting a deposit");
        };
        payment["status"] = json!("DONE");
        payment["approvedAt"] = json!("2026-01-01T00:00:00+09:00");
        let payment = payment.clone();
        rules.webhook(json!({
            "createdAt": "2026-01-01T00:00:00.000",
            "secret": payment["secret"],
            "status": "DONE",
            "transactionKey": payment["lastTransactionKey"],
            "orderId": payment["orderId"],
        }));
        (200, payment)
    }

    /// A whole or partial cancel: `cancelAmount` (default: what is left)
    /// comes off `balanceAmount` and is appended to `cancels[]` with a new
    /// `transactionKey`, which becomes `lastTransactionKey`; the payment is
    /// `PARTIAL_CANCELED` until nothing is left, then `CANCELED`. From the
    /// dashboard (`dashboard`), partial cancels are always allowed.
    fn cancel(
        &mut self,
        rules: &Rules,
        payment_key: &str,
        request: &Value,
        dashboard: bool,
    ) -> (u16, Value) {
        self.transactions += 1;
        let transaction_key = format!("fakepg_cancel_{}", self.transactions);
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
        let transfer = payment["method"] == "가상계좌";
        if transfer && !dashboard && !request["refundReceiveAccount"].is_object() {
            // A bank transfer has no card to go back to
            // (docs.tosspayments.com/reference#결제-취소).
            return error(
                400,
                "INVALID_REFUND_ACCOUNT_INFO",
                "a bank transfer is refunded to refundReceiveAccount",
            );
        }
        if amount < left && rules.whole_cancel_only && !dashboard {
            return error(
                403,
                "NOT_ALLOWED_PARTIAL_REFUND",
                "this payment can only be cancelled whole",
            );
        }
        payment["balanceAmount"] = json!(left - amount);
        payment["status"] = json!(if left == amount {
            "CANCELED"
        } else {
            "PARTIAL_CANCELED"
        });
        let mut cancels = payment["cancels"].as_array().cloned().unwrap_or_default();
        cancels.push(json!({
            "transactionKey": transaction_key,
            "cancelAmount": amount,
            "cancelReason": request["cancelReason"],
        }));
        payment["cancels"] = json!(cancels);
        payment["lastTransactionKey"] = json!(transaction_key);
        (200, payment.clone())
    }
}

/// Now plus `secs`, as Toss writes a time (ISO 8601, Korean time).
fn chrono_like(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let at = i64::try_from(now.saturating_add(secs)).unwrap_or(i64::MAX) + 9 * 3_600;
    let (days, rest) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    // The civil date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+09:00",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// The widget's page for a browser: `GET` shows the payment and a button
/// for each way it can end; `POST` (the button) authorises it and sends
/// the browser to `successUrl`, or to `failUrl` when the customer closed
/// the widget.
fn widget_page(
    pg: &Mutex<Pg>,
    method: &str,
    url: &str,
    body: &str,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let fields = if method == "POST" {
        form(body)
    } else {
        form(url.split_once('?').map(|(_, q)| q).unwrap_or_default())
    };
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let html = |status: u16, text: String| {
        tiny_http::Response::from_string(text)
            .with_status_code(status)
            .with_header(
                "Content-Type: text/html; charset=utf-8"
                    .parse::<tiny_http::Header>()
                    .unwrap(),
            )
    };
    let redirect = |to: &str, pairs: &[(&str, &str)]| {
        let separator = if to.contains('?') { '&' } else { '?' };
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        let location = format!("{to}{separator}{}", query.join("&"));
        tiny_http::Response::from_string(String::new())
            .with_status_code(303)
            .with_header(
                tiny_http::Header::from_bytes(&b"Location"[..], location.as_bytes()).unwrap(),
            )
    };
    let (order_id, amount) = (field("orderId"), field("amount"));
    if method != "POST" {
        let hidden: String = ["orderId", "amount", "orderName", "successUrl", "failUrl"]
            .iter()
            .map(|name| {
                format!(
                    r#"<input type="hidden" name="{name}" value="{}">"#,
                    escape(&field(name))
                )
            })
            .collect();
        let button = |choice: &str, label: &str| {
            format!(
                r#"<form method="post" action="/widget">{hidden}<input type="hidden" name="choice" value="{choice}"><button type="submit" id="{choice}">{label}</button></form>"#
            )
        };
        return html(
            200,
            format!(
                r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>fake_pg widget</title></head><body><h1>fake_pg: a Toss-like widget (no money moves)</h1><p>Pay <strong id="amount">{} won</strong> for {}</p>{}{}{}</body></html>"#,
                escape(&amount),
                escape(&field("orderName")),
                button("card", "Pay by card"),
                button("transfer", "Pay by bank transfer"),
                button("close", "Close"),
            ),
        );
    }
    if field("choice") == "close" {
        return redirect(
            &field("failUrl"),
            &[
                ("code", "PAY_PROCESS_CANCELED"),
                ("message", "The customer closed the payment window."),
                ("orderId", &order_id),
            ],
        );
    }
    let Ok(won) = amount.parse::<i64>() else {
        return html(400, "amount is not a number".to_owned());
    };
    let payment_key = {
        let mut pg = pg.lock().unwrap();
        if field("choice") == "transfer" {
            pg.transfers
                .insert(order_id.clone(), Duration::from_secs(7 * 24 * 3_600));
        }
        pg.pay_in_widget(&order_id, won)
    };
    redirect(
        &field("successUrl"),
        &[
            ("paymentType", "NORMAL"),
            ("orderId", &order_id),
            ("paymentKey", &payment_key),
            ("amount", &amount),
        ],
    )
}

/// A form body or URL query (`a=1&b=two+words`), decoded.
fn form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (unpercent(k), unpercent(v)))
        .collect()
}

/// `text` percent-decoded, `+` read as a space.
fn unpercent(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every byte but RFC 3986's unreserved ones percent-encoded.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `text` safe inside HTML text and a quoted attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({ "code": code, "message": message }))
}

/// Serves until `max_requests` requests were answered (or forever, or
/// until the server is unblocked), keeping its records in `pg`.
pub fn serve(server: &tiny_http::Server, rules: &Rules, pg: &Mutex<Pg>) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", rules.secret))
    );
    let mut served = 0;
    let mut calls = 0u32;
    while rules.max_requests.is_none_or(|max| served < max) {
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
        // The widget step is the customer's browser, which never holds
        // the shop's secret key: Toss's widget SDK authenticates with the
        // client key, and the secret key is for server calls only
        // (docs.tosspayments.com/reference/using-api/api-keys, "API 키").
        let browser = method == "POST" && url == "/v1/fake/widget";
        let path = url.split('?').next().unwrap_or_default();
        if path == "/widget" {
            let page = widget_page(pg, &method, &url, &body);
            if rules.log {
                eprintln!("fake_pg: {method} {url} -> {}", page.status_code().0);
            }
            let _ = request.respond(page);
            continue;
        }
        let shops_call = authorized && path.starts_with("/v1/payments");
        let fault = if shops_call {
            calls += 1;
            rules.faults.of(calls)
        } else {
            Fault::None
        };
        let (status, reply) = if fault == Fault::Fail {
            error(
                500,
                "FAILED_INTERNAL_SYSTEM_PROCESSING",
                "scripted fault: not processed",
            )
        } else if authorized || browser {
            pg.lock().unwrap().handle(rules, &method, &url, key, &body)
        } else {
            error(401, "UNAUTHORIZED_KEY", "unknown secret key")
        };
        if rules.log {
            eprintln!("fake_pg: {method} {url} -> {status} ({fault:?})");
        }
        if fault == Fault::LoseReply {
            // Processed; the answer starts and never ends.
            let mut writer = request.into_writer();
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: appl");
            let _ = writer.flush();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(30));
                drop(writer);
            });
            continue;
        }
        let response = tiny_http::Response::from_string(reply.to_string())
            .with_status_code(status)
            .with_header(
                "Content-Type: application/json"
                    .parse::<tiny_http::Header>()
                    .unwrap(),
            );
        match rules.faults.delay.filter(|_| shops_call) {
            Some(delay) => {
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = request.respond(response);
                });
            }
            None => {
                let _ = request.respond(response);
            }
        }
    }
}
