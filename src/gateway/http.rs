//! [`HttpGateway`]: a `ureq` client for Toss Payments' core API (confirm,
//! lookup, cancel) as Toss documents it.

use std::fmt;
use std::io;
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::codes::class_of;
use super::{
    Approval, ApproveRequest, CancelRequest, Cancellation, CodeClass, Deposit, GatewayError,
    PaymentGateway, PgApi, PgCancel, PgPending, PgStatus, StatusRequest, won_only,
};
use crate::clock::Timestamp;
use crate::money::Money;

const PROCESSING: &str = "IDEMPOTENT_REQUEST_PROCESSING";
const CONSECUTIVE: &str = "FORBIDDEN_CONSECUTIVE_REQUEST";

/// The error a PG error `code` (answered by `api` with HTTP `status`)
/// means, by [`TOSS_CODES`](super::TOSS_CODES). A code in no row is
/// [`GatewayError::Unknown`], never a decline: the money may have moved.
/// The classes a caller settles itself ([`CodeClass::SettleByLookup`],
/// [`CodeClass::NotFound`]) are unknown here.
pub(crate) fn classify(api: PgApi, status: u16, code: &str, message: &str) -> GatewayError {
    let (code, message) = (code.to_owned(), message.to_owned());
    match class_of(api, status, &code) {
        CodeClass::Declined => GatewayError::Declined { code, message },
        CodeClass::AlreadyCancelled => {
            // Whatever the PG cancelled before, this request cancelled
            // nothing: a cancel made outside the shop (the PG's dashboard, a
            // reversed deposit) for a person to look at, never a refund.
            tracing::error!(%code, %message,
                "the PG had already cancelled this payment outside the shop; nothing was refunded");
            GatewayError::Declined { code, message }
        }
        CodeClass::Invalid => GatewayError::Invalid { code, message },
        CodeClass::RetryLater | CodeClass::Processing => GatewayError::Unknown {
            reason: format!("{code} (ask again later with the same key): {message}"),
        },
        CodeClass::Unknown | CodeClass::SettleByLookup | CodeClass::NotFound => {
            GatewayError::Unknown {
                reason: format!("{code}: {message}"),
            }
        }
    }
}

/// A payment gateway reached over HTTP with `ureq`.
///
/// It speaks this contract (amounts in won):
///
/// - approve: `POST {base}/v1/payments/confirm` with
///   `Authorization: Basic base64(secret + ":")`, an `Idempotency-Key`
///   header and `{"paymentKey","orderId","amount"}` → 200 with the payment
///   object `{"paymentKey","orderId","status":"DONE","totalAmount","approvedAt",…}`;
/// - status: `GET {base}/v1/payments/orders/{orderId}` → the payment object,
///   or 404 `NOT_FOUND_PAYMENT`. Its `status` is read as Toss documents it
///   (docs.tosspayments.com/reference#payment-객체): `DONE` and
///   `PARTIAL_CANCELED` are approved (with `cancels[]`), `CANCELED` is
///   approved and cancelled whole, `READY`/`IN_PROGRESS`/`WAITING_FOR_DEPOSIT`
///   are pending, `ABORTED`/`EXPIRED` are declined;
/// - cancel: `POST {base}/v1/payments/{paymentKey}/cancel` with
///   `{"cancelReason","cancelAmount"}` (the attempt's amount: the whole
///   payment or part of it) and the attempt's own `Idempotency-Key` → 200
///   with the payment object. What this request cancelled is read from the
///   PG's record, not assumed: the entry of `cancels[]` whose
///   `transactionKey` is the payment's `lastTransactionKey`, with its
///   `cancelAmount`. `ALREADY_CANCELED_PAYMENT` is a decline (somebody
///   cancelled the payment outside the shop; this request cancelled
///   nothing), logged at error level for a person;
/// - errors: `{"code","message"}`, classified by the call, the code and its
///   HTTP status through one table transcribed from Toss's
///   ([`TOSS_CODES`](super::TOSS_CODES)); any code it does not list is
///   `Unknown`, never `Declined`.
///
/// A reply whose `orderId` or `totalAmount` does not match the request is
/// `Unknown`. A 409 `IDEMPOTENT_REQUEST_PROCESSING` (the PG is still working
/// on the first request with this key) or a 403
/// `FORBIDDEN_CONSECUTIVE_REQUEST` (a second request for the payment within
/// a second) is asked again with the same key after a short wait, a few
/// times, then reported `Unknown`. A confirm answered
/// `ALREADY_PROCESSED_PAYMENT` (Toss's answer for an approved, aborted,
/// cancelled or waiting payment alike) is settled by looking the payment
/// up. Unavailable calls are retried by the shop
/// ([`RetryPolicy`](super::RetryPolicy)), not here.
///
/// The secret never appears in `Debug`, `Display`, an error or a log line.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use liteshop::HttpGateway;
///
/// let pg = HttpGateway::builder("https://pg.example", "test_sk_secret")
///     .connect_timeout(Duration::from_secs(3))
///     .response_timeout(Duration::from_secs(30))
///     .build();
/// assert!(!format!("{pg:?}").contains("test_sk_secret"));
/// ```
pub struct HttpGateway {
    base: String,
    authorization: String,
    agent: ureq::Agent,
    processing_wait: Duration,
    processing_retries: u32,
    connect_timeout: Duration,
    response_timeout: Duration,
    headers: Vec<(String, String)>,
}

/// Configures an [`HttpGateway`]. Made by [`HttpGateway::builder`].
#[must_use = "a builder does nothing until .build() is called"]
pub struct HttpGatewayBuilder {
    base: String,
    secret: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    processing_wait: Duration,
    processing_retries: u32,
    headers: Vec<(String, String)>,
}

impl HttpGatewayBuilder {
    /// Adds a header to every call — for Toss's sandbox, for example,
    /// `TossPayments-Test-Code` with a documented error code, which makes
    /// the sandbox answer that error
    /// (docs.tosspayments.com/reference/using-api/test-code).
    pub fn header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> HttpGatewayBuilder {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long to wait for a connection; 5 s by default. A connect timeout
    /// is `Unavailable` (the request never left).
    pub fn connect_timeout(mut self, timeout: Duration) -> HttpGatewayBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the reply once the request is sent; 60 s by
    /// default. A reply timeout is `Unknown` (the PG may have acted).
    pub fn response_timeout(mut self, timeout: Duration) -> HttpGatewayBuilder {
        self.response_timeout = timeout;
        self
    }

    /// How long to wait before asking again after `IDEMPOTENT_REQUEST_PROCESSING`,
    /// and how many times; 1 s and 3 times by default.
    pub fn processing_retry(mut self, wait: Duration, times: u32) -> HttpGatewayBuilder {
        self.processing_wait = wait;
        self.processing_retries = times;
        self
    }

    /// Builds the client.
    pub fn build(self) -> HttpGateway {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(self.connect_timeout))
            .timeout_connect(Some(self.connect_timeout))
            .timeout_recv_response(Some(self.response_timeout))
            .timeout_recv_body(Some(self.response_timeout))
            .build();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.secret));
        HttpGateway {
            base: self.base.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {token}"),
            agent: ureq::Agent::new_with_config(config),
            processing_wait: self.processing_wait,
            processing_retries: self.processing_retries,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            headers: self.headers,
        }
    }
}

/// What `Debug` shows of a gateway or its builder: where it sends and how
/// long it waits, never the secret key.
fn redacted(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    base: &str,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> fmt::Result {
    f.debug_struct(name)
        .field("base", &base)
        .field("secret", &"<redacted>")
        .field("connect_timeout", &connect_timeout)
        .field("response_timeout", &response_timeout)
        .finish()
}

impl fmt::Debug for HttpGatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (connect, response) = (self.connect_timeout, self.response_timeout);
        redacted(f, "HttpGatewayBuilder", &self.base, connect, response)
    }
}

impl fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (connect, response) = (self.connect_timeout, self.response_timeout);
        redacted(f, "HttpGateway", &self.base, connect, response)
    }
}

/// The PG's payment object, as far as the shop reads it
/// (docs.tosspayments.com/reference#payment-객체).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentObject {
    payment_key: String,
    order_id: String,
    status: String,
    total_amount: i64,
    #[serde(default)]
    approved_at: Option<String>,
    #[serde(default)]
    last_transaction_key: Option<String>,
    /// `null` until something is cancelled.
    #[serde(default)]
    cancels: Option<Vec<CancelObject>>,
    #[serde(default)]
    failure: Option<ErrorBody>,
    /// A payment by bank transfer: the account issued (`null` otherwise).
    #[serde(default)]
    virtual_account: Option<VirtualAccountObject>,
    /// The payment's secret, which its deposit notices carry.
    #[serde(default)]
    secret: Option<Redacted>,
}

/// The payment object's `virtualAccount`
/// (docs.tosspayments.com/reference#payment-객체).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VirtualAccountObject {
    account_number: String,
    bank_code: String,
    /// ISO 8601, with its offset (`2025-11-30T15:17:19+09:00`).
    due_date: String,
}

/// A string that never shows in `Debug`.
#[derive(Deserialize)]
struct Redacted(String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An ISO 8601 time as Toss writes it (`2025-11-30T15:17:19+09:00`, or
/// with fractions of a second, `Z`, or no offset — then Korean time, the
/// PG's own), as milliseconds since the epoch.
fn parse_time(text: &str) -> Option<Timestamp> {
    let (date, rest) = text.split_once('T')?;
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let (clock, offset_minutes) = match rest.find(['+', '-', 'Z']) {
        Some(at) => {
            let (clock, zone) = rest.split_at(at);
            let offset = match zone {
                "Z" => 0,
                _ => {
                    let sign = if zone.starts_with('-') { -1 } else { 1 };
                    let (h, m) = zone[1..].split_once(':')?;
                    sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
                }
            };
            (clock, offset)
        }
        None => (rest, 9 * 60),
    };
    let (whole, millis) = match clock.split_once('.') {
        Some((whole, fraction)) => {
            let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
            (whole, digits.parse::<i64>().ok()?)
        }
        None => (clock, 0),
    };
    let mut hms = whole.splitn(3, ':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next()?.parse().ok()?;
    let second: i64 = hms.next().unwrap_or("0").parse().ok()?;
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(Timestamp::from_millis(seconds * 1_000 + millis))
}

/// One entry of the payment object's `cancels[]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelObject {
    transaction_key: String,
    cancel_amount: i64,
    #[serde(default)]
    tax_free_amount: i64,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// A reply: HTTP status and body text.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn error_body(&self) -> Option<ErrorBody> {
        serde_json::from_str(&self.body).ok()
    }

    /// The error code of a non-200 reply and its class for `api`.
    fn code(&self, api: PgApi) -> Option<(ErrorBody, CodeClass)> {
        let error = self.error_body()?;
        let class = class_of(api, self.status, &error.code);
        Some((error, class))
    }

    /// The error a non-200 reply from `api` means.
    fn failure(&self, api: PgApi) -> GatewayError {
        match self.error_body() {
            Some(error) => classify(api, self.status, &error.code, &error.message),
            None => GatewayError::Unknown {
                reason: format!("HTTP {} with an unreadable body", self.status),
            },
        }
    }

    fn payment(&self) -> Result<PaymentObject, GatewayError> {
        serde_json::from_str(&self.body).map_err(|err| GatewayError::Unknown {
            reason: format!("unreadable payment object: {err}"),
        })
    }
}

impl HttpGateway {
    /// A builder for a client of the PG at `base` (for example
    /// `https://api.pg.example`), authenticating with `secret`.
    pub fn builder(base: impl Into<String>, secret: impl Into<String>) -> HttpGatewayBuilder {
        HttpGatewayBuilder {
            base: base.into(),
            secret: secret.into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            processing_wait: Duration::from_secs(1),
            processing_retries: 3,
            headers: Vec::new(),
        }
    }

    /// Sends one request, asking again with the same key while the PG says
    /// it is still processing the first.
    fn send(
        &self,
        url: &str,
        idempotency_key: Option<&str>,
        body: Option<&str>,
    ) -> Result<Reply, GatewayError> {
        let mut attempt = 0;
        loop {
            let reply = self.exchange(url, idempotency_key, body)?;
            // Still working on the first request with this key (409), or a
            // second request for one payment within a second (403): the
            // same request, later (docs.tosspayments.com/reference/error-codes).
            let again =
                reply
                    .error_body()
                    .and_then(|error| match (reply.status, error.code.as_str()) {
                        (409, PROCESSING) => Some(PROCESSING),
                        (403, CONSECUTIVE) => Some(CONSECUTIVE),
                        _ => None,
                    });
            let Some(code) = again else {
                return Ok(reply);
            };
            if attempt == self.processing_retries {
                return Err(GatewayError::Unknown {
                    reason: format!("still {code} after {attempt} retries"),
                });
            }
            attempt += 1;
            tracing::debug!(
                url,
                attempt,
                "payment gateway still processing; asking again"
            );
            thread::sleep(self.processing_wait);
        }
    }

    fn exchange(
        &self,
        url: &str,
        idempotency_key: Option<&str>,
        body: Option<&str>,
    ) -> Result<Reply, GatewayError> {
        let result = match body {
            Some(body) => {
                let mut request = self
                    .agent
                    .post(url)
                    .header("Authorization", &self.authorization)
                    .content_type("application/json");
                if let Some(key) = idempotency_key {
                    request = request.header("Idempotency-Key", key);
                }
                for (name, value) in &self.headers {
                    request = request.header(name, value);
                }
                request.send(body)
            }
            None => {
                let mut request = self
                    .agent
                    .get(url)
                    .header("Authorization", &self.authorization);
                for (name, value) in &self.headers {
                    request = request.header(name, value);
                }
                request.call()
            }
        };
        let mut response = result.map_err(transport_error)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|err| GatewayError::Unknown {
                reason: format!("reading the reply failed: {err}"),
            })?;
        Ok(Reply { status, body })
    }
}

/// Sorts a transport failure: only failures before the request could have
/// left are `Unavailable`.
fn transport_error(err: ureq::Error) -> GatewayError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let unavailable = match &err {
        E::HostNotFound | E::ConnectionFailed => true,
        E::Timeout(T::Resolve | T::Connect) => true,
        E::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
        ),
        _ => false,
    };
    if unavailable {
        GatewayError::Unavailable {
            reason: err.to_string(),
        }
    } else if matches!(err, E::BadUri(_) | E::Http(_) | E::InvalidProxyUrl) {
        GatewayError::Invalid {
            code: "CLIENT_CONFIGURATION".into(),
            message: err.to_string(),
        }
    } else {
        GatewayError::Unknown {
            reason: err.to_string(),
        }
    }
}

/// Checks that `id` is safe in a URL path: the PG's own ids are
/// `[A-Za-z0-9_-]`.
fn path_segment(id: &str) -> Result<&str, GatewayError> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id)
    } else {
        Err(GatewayError::Invalid {
            code: "INVALID_REQUEST".into(),
            message: format!("{id:?} cannot be used in a URL path"),
        })
    }
}

/// Turns a `DONE` payment object into an approval, if it is the one asked for.
/// A confirm's answer for a payment by bank transfer: the virtual account
/// Toss issued (`WAITING_FOR_DEPOSIT`, docs.tosspayments.com/guides/payment/virtual-account)
/// with its due date and the payment's `secret`. One for another order or
/// amount, or without the account or the secret, is unknown.
fn awaiting_deposit(
    payment: PaymentObject,
    request: &ApproveRequest,
) -> Result<Approval, GatewayError> {
    let unknown = |reason: String| Err(GatewayError::Unknown { reason });
    if payment.order_id != request.pg_order_id || payment.total_amount != request.amount.won() {
        return unknown("the virtual account's reply names another order or amount".into());
    }
    let (Some(account), Some(Redacted(secret))) = (payment.virtual_account, payment.secret) else {
        return unknown("WAITING_FOR_DEPOSIT without a virtualAccount and a secret".into());
    };
    let Some(due_at) = parse_time(&account.due_date) else {
        return unknown(format!("unreadable dueDate {:?}", account.due_date));
    };
    Err(GatewayError::AwaitingDeposit(Box::new(Deposit {
        bank: account.bank_code,
        account_number: account.account_number,
        due_at,
        secret,
    })))
}

fn approval(
    payment: PaymentObject,
    pg_order_id: &str,
    amount: Option<Money>,
) -> Result<Approval, GatewayError> {
    if payment.order_id != pg_order_id {
        return Err(GatewayError::Unknown {
            reason: format!(
                "reply names order {:?}, asked for {pg_order_id:?}",
                payment.order_id
            ),
        });
    }
    let approved_amount = Money::new(payment.total_amount).map_err(|_| GatewayError::Unknown {
        reason: format!("negative totalAmount {}", payment.total_amount),
    })?;
    if amount.is_some_and(|asked| asked != approved_amount) {
        return Err(GatewayError::Unknown {
            reason: format!("reply amount {approved_amount} differs from the request"),
        });
    }
    let cancels = payment
        .cancels
        .unwrap_or_default()
        .into_iter()
        .map(|cancel| {
            Ok(PgCancel {
                amount: Money::new(cancel.cancel_amount).map_err(|_| GatewayError::Unknown {
                    reason: format!("negative cancelAmount {}", cancel.cancel_amount),
                })?,
                tax_free_amount: Money::new(cancel.tax_free_amount)
                    .ok()
                    .filter(|_| cancel.tax_free_amount <= cancel.cancel_amount)
                    .ok_or_else(|| GatewayError::Unknown {
                        reason: format!(
                            "taxFreeAmount {} of a cancel of {}",
                            cancel.tax_free_amount, cancel.cancel_amount
                        ),
                    })?,
                transaction_key: cancel.transaction_key,
            })
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    // The approval's own transaction: once something is cancelled,
    // `lastTransactionKey` names the last cancel instead.
    let transaction_id = if cancels.is_empty() {
        payment.last_transaction_key.unwrap_or(payment.payment_key)
    } else {
        payment.payment_key
    };
    Ok(Approval {
        transaction_id,
        approved_amount,
        approved_at: payment.approved_at.unwrap_or_default(),
        cancels,
    })
}

/// Reads a looked-up payment object as Toss documents its `status`.
fn pg_status(payment: PaymentObject, pg_order_id: &str) -> Result<PgStatus, GatewayError> {
    if payment.order_id != pg_order_id {
        return Err(GatewayError::Unknown {
            reason: format!(
                "reply names order {:?}, asked for {pg_order_id:?}",
                payment.order_id
            ),
        });
    }
    match payment.status.as_str() {
        "DONE" | "PARTIAL_CANCELED" => approval(payment, pg_order_id, None).map(PgStatus::Approved),
        "CANCELED" => approval(payment, pg_order_id, None).map(PgStatus::Cancelled),
        "READY" => Ok(PgStatus::Pending(PgPending::Ready)),
        "IN_PROGRESS" => Ok(PgStatus::Pending(PgPending::InProgress)),
        "WAITING_FOR_DEPOSIT" => Ok(PgStatus::Pending(PgPending::WaitingForDeposit)),
        "ABORTED" | "EXPIRED" => {
            let message = payment.failure.map_or_else(
                || format!("the payment gateway reports the payment {}", payment.status),
                |failure| format!("{}: {}", failure.code, failure.message),
            );
            Ok(PgStatus::Declined {
                code: payment.status,
                message,
            })
        }
        other => Err(GatewayError::Unknown {
            reason: format!("payment {:?} has status {other}", payment.order_id),
        }),
    }
}

/// What a cancel's reply says this request cancelled: the entry of
/// `cancels[]` the payment's `lastTransactionKey` names.
fn cancellation(payment: PaymentObject) -> Result<Cancellation, GatewayError> {
    if !matches!(payment.status.as_str(), "CANCELED" | "PARTIAL_CANCELED") {
        return Err(GatewayError::Unknown {
            reason: format!("payment status {} after cancel", payment.status),
        });
    }
    let last = payment.last_transaction_key.unwrap_or_default();
    let cancel = payment
        .cancels
        .unwrap_or_default()
        .into_iter()
        .find(|cancel| !last.is_empty() && cancel.transaction_key == last)
        .ok_or_else(|| GatewayError::Unknown {
            reason: format!(
                "no cancel in the reply's cancels[] has the lastTransactionKey {last:?}"
            ),
        })?;
    Ok(Cancellation {
        cancelled_amount: Money::new(cancel.cancel_amount).map_err(|_| GatewayError::Unknown {
            reason: format!("negative cancelAmount {}", cancel.cancel_amount),
        })?,
        transaction_key: cancel.transaction_key,
    })
}

impl PaymentGateway for HttpGateway {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        won_only(request.currency)?;
        let url = format!("{}/v1/payments/confirm", self.base);
        let mut body = json!({
            "paymentKey": request.payment_key,
            "orderId": request.pg_order_id,
            "amount": request.amount.won(),
        });
        // The tax-free part, for a shop selling tax-free goods
        // (docs.tosspayments.com/reference#결제-승인: `taxFreeAmount`).
        if !request.tax_free_amount.is_zero() {
            body["taxFreeAmount"] = json!(request.tax_free_amount.won());
        }
        let body = body.to_string();
        let reply = self.send(&url, Some(&request.idempotency_key), Some(&body))?;
        if reply.status != 200 {
            if let Some((error, CodeClass::SettleByLookup)) = reply.code(PgApi::Confirm) {
                return self.settle_by_lookup(request, &error);
            }
            let failure = reply.failure(PgApi::Confirm);
            if let GatewayError::Invalid { code, message } = &failure {
                tracing::error!(%code, %message, order = ?request.order, "payment gateway refused our approve request");
            }
            return Err(failure);
        }
        let payment = reply.payment()?;
        if payment.status == "WAITING_FOR_DEPOSIT" {
            return awaiting_deposit(payment, request);
        }
        if payment.status != "DONE" {
            return Err(GatewayError::Unknown {
                reason: format!("payment status {} after confirm", payment.status),
            });
        }
        approval(payment, &request.pg_order_id, Some(request.amount))
    }

    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        let url = format!(
            "{}/v1/payments/orders/{}",
            self.base,
            path_segment(&request.pg_order_id)?
        );
        let reply = self.send(&url, None, None)?;
        if reply.status != 200 {
            if let Some((_, CodeClass::NotFound)) = reply.code(PgApi::Lookup) {
                return Ok(PgStatus::NotFound);
            }
            return Err(reply.failure(PgApi::Lookup));
        }
        pg_status(reply.payment()?, &request.pg_order_id)
    }

    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        won_only(request.currency)?;
        let url = format!(
            "{}/v1/payments/{}/cancel",
            self.base,
            path_segment(&request.payment_key)?
        );
        let mut body = json!({
            "cancelReason": request.reason,
            "cancelAmount": request.amount.won(),
        });
        // The tax-free part of the cancel (docs.tosspayments.com/reference#결제-취소).
        if !request.tax_free_amount.is_zero() {
            body["taxFreeAmount"] = json!(request.tax_free_amount.won());
        }
        // A payment by bank transfer has no card: Toss sends its money to
        // `refundReceiveAccount` (docs.tosspayments.com/reference#결제-취소).
        if let Some(account) = &request.refund_account {
            body["refundReceiveAccount"] = json!({
                "bank": account.bank,
                "accountNumber": account.account_number,
                "holderName": account.holder_name,
            });
        }
        let body = body.to_string();
        let reply = self.send(&url, Some(&request.idempotency_key), Some(&body))?;
        if reply.status != 200 {
            return Err(reply.failure(PgApi::Cancel));
        }
        cancellation(reply.payment()?)
    }
}

impl HttpGateway {
    /// A confirm answered `ALREADY_PROCESSED_PAYMENT`: Toss's answer for a
    /// payment approved, aborted, cancelled or waiting for a deposit alike,
    /// so the PG's record of it decides.
    fn settle_by_lookup(
        &self,
        request: &ApproveRequest,
        error: &ErrorBody,
    ) -> Result<Approval, GatewayError> {
        let status = self.status(&StatusRequest {
            pg_order_id: request.pg_order_id.clone(),
            payment_key: Some(request.payment_key.clone()),
        })?;
        match status {
            PgStatus::Approved(approval)
                if approval.approved_amount == request.amount && approval.cancels.is_empty() =>
            {
                Ok(approval)
            }
            PgStatus::Declined { code, message } => Err(GatewayError::Declined { code, message }),
            other => Err(GatewayError::Unknown {
                reason: format!("{}: the payment gateway's record says {other}", error.code),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_toss_writes_them() {
        // 2025-11-30T06:17:19Z is 1,764,483,439 s after the epoch.
        let utc = Timestamp::from_millis(1_764_483_439_000);
        assert_eq!(parse_time("2025-11-30T15:17:19+09:00"), Some(utc));
        assert_eq!(parse_time("2025-11-30T06:17:19Z"), Some(utc));
        assert_eq!(parse_time("2025-11-30T15:17:19"), Some(utc), "Korean time");
        assert_eq!(
            parse_time("2025-11-30T15:17:19.250+09:00"),
            Some(Timestamp::from_millis(1_764_483_439_250))
        );
        assert_eq!(parse_time("2025-11-30T01:17:19-05:00"), Some(utc));
        for bad in [
            "",
            "2025-11-30",
            "2025-13-30T00:00:00Z",
            "x-y-zT1:2:3Z",
            "2025-11-30T25:00:00Z",
            "999999999999-01-01T00:00:00Z",
            "2025-11-30T15:17:19+0900",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_class_of_the_table_becomes_its_error() {
        let class = |api, status, code| match classify(api, status, code, "m") {
            GatewayError::Declined { .. } => "declined",
            GatewayError::Invalid { .. } => "invalid",
            GatewayError::Unknown { .. } => "unknown",
            GatewayError::Unavailable { .. } => "unavailable",
            GatewayError::AwaitingDeposit(_) => "awaiting a deposit",
        };
        for row in super::super::TOSS_CODES {
            let expected = match row.class {
                CodeClass::Declined | CodeClass::AlreadyCancelled => "declined",
                CodeClass::Invalid => "invalid",
                CodeClass::Unknown
                | CodeClass::RetryLater
                | CodeClass::Processing
                | CodeClass::SettleByLookup
                | CodeClass::NotFound => "unknown",
            };
            assert_eq!(class(row.api, row.status, row.code), expected, "{row:?}");
        }
        // A documented final decline, a cancel refusal, an unlisted code, a
        // known code with another status.
        assert_eq!(class(PgApi::Confirm, 403, "FDS_ERROR"), "declined");
        assert_eq!(
            class(PgApi::Cancel, 403, "NOT_ALLOWED_PARTIAL_REFUND"),
            "declined"
        );
        assert_eq!(class(PgApi::Confirm, 400, "SOMETHING_NEW"), "unknown");
        assert_eq!(class(PgApi::Confirm, 400, "INVALID_CARD"), "unknown");
        assert_eq!(class(PgApi::Confirm, 502, "REJECT_CARD_PAYMENT"), "unknown");
    }

    #[test]
    fn path_segments_refuse_anything_but_the_pg_alphabet() {
        assert!(path_segment("ls-12_ab").is_ok());
        for bad in ["", "a/b", "a b", "../x", "a?b=c"] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }
}
