//! The fake payment gateway's records and HTTP loop, shared by the
//! `fake_pg` example and the server's failover test (included with
//! `#[path]`): the contract `HttpGateway` expects.

use std::collections::HashMap;
use std::sync::Mutex;

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
}

/// The PG's own records.
#[derive(Default)]
pub struct Pg {
    /// Every payment it approved, by the shop's order id: `status`,
    /// `totalAmount`, `balanceAmount` (once cancelled from), `cancels`.
    pub payments: HashMap<String, Value>,
    replies: HashMap<String, (u16, Value)>,
    transactions: u64,
    /// `paymentKey` → (`orderId`, `amount`) a customer authorised in the
    /// widget: the only payments a confirm may take.
    authorised: HashMap<String, (String, i64)>,
}

impl Pg {
    /// The customer's browser paying `amount` for `order_id` in the PG's
    /// widget: returns the `paymentKey` the success redirect carries. Over
    /// HTTP the same step is `POST /v1/fake/widget {"orderId","amount"}`
    /// (this fake's stand-in for the browser; not an API Toss offers).
    pub fn pay_in_widget(&mut self, order_id: &str, amount: i64) -> String {
        self.transactions += 1;
        let payment_key = format!("fakepg_pk_{}_{order_id}", self.transactions);
        self.authorised
            .insert(payment_key.clone(), (order_id.to_owned(), amount));
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
        if let Some(reply) = key.as_ref().and_then(|k| self.replies.get(k)) {
            return reply.clone();
        }
        let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let segments: Vec<&str> = url.trim_start_matches('/').split('/').collect();
        let reply = match (method, segments.as_slice()) {
            ("POST", ["v1", "payments", "confirm"]) => self.confirm(rules, &request),
            ("POST", ["v1", "fake", "widget"]) => {
                match (request["orderId"].as_str(), request["amount"].as_i64()) {
                    (Some(order_id), Some(amount)) => {
                        let payment_key = self.pay_in_widget(order_id, amount);
                        (
                            200,
                            json!({ "paymentKey": payment_key, "orderId": order_id, "amount": amount }),
                        )
                    }
                    _ => error(400, "INVALID_REQUEST", "orderId and amount are required"),
                }
            }
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
        if let Some(done) = self.payments.get(order_id) {
            return (200, done.clone());
        }
        // Toss confirms only the payment the customer authorised in its
        // widget, with that paymentKey, orderId and amount: an unknown key
        // is 404 NOT_FOUND_PAYMENT, another orderId or amount a 400
        // (docs.tosspayments.com, "결제 승인" and /reference/error-codes).
        match self.authorised.get(payment_key) {
            None => return error(404, "NOT_FOUND_PAYMENT", "no payment with this paymentKey"),
            Some((authorised, authorised_amount))
                if authorised != order_id || *authorised_amount != amount =>
            {
                return error(
                    400,
                    "INVALID_REQUEST",
                    "orderId or amount differs from the authorised payment",
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

/// Serves until `max_requests` requests were answered (or forever, or
/// until the server is unblocked), keeping its records in `pg`.
pub fn serve(server: &tiny_http::Server, rules: &Rules, pg: &Mutex<Pg>) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", rules.secret))
    );
    let mut served = 0;
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
        let (status, reply) = if authorized || browser {
            pg.lock().unwrap().handle(rules, &method, &url, key, &body)
        } else {
            error(401, "UNAUTHORIZED_KEY", "unknown secret key")
        };
        if rules.log {
            eprintln!("fake_pg: {method} {url} -> {status}");
        }
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
