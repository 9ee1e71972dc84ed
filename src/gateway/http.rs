//! [`HttpGateway`]: a `ureq` client for a PG that speaks the JSON contract of
//! the confirm API of a widely used Korean PG.

use std::fmt;
use std::io;
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::{
    Approval, ApproveRequest, CancelRequest, Cancellation, GatewayError, PaymentGateway, PgStatus,
    StatusRequest,
};
use crate::money::Money;

/// Error codes that mean the PG may have acted: only a later status call
/// settles them.
const UNKNOWN_CODES: &[&str] = &[
    "PROVIDER_ERROR",
    "ALREADY_PROCESSED_PAYMENT",
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
    "FAILED_INTERNAL_SYSTEM_PROCESSING",
    "UNKNOWN_PAYMENT_ERROR",
    "IDEMPOTENT_REQUEST_PROCESSING",
];
/// Error codes (or prefixes, ending in `_`) of a final "no".
const DECLINED_CODES: &[&str] = &[
    "REJECT_",
    "INVALID_CARD_",
    "EXCEED_MAX_",
    "INVALID_STOPPED_CARD",
    "INVALID_REJECT_CARD",
    "BELOW_MINIMUM_AMOUNT",
    "NOT_FOUND_PAYMENT_SESSION",
    "NOT_CANCELABLE_",
    "EXCEED_CANCEL_",
];
/// Error codes that mean our request or configuration is wrong.
const INVALID_CODES: &[&str] = &[
    "INVALID_API_KEY",
    "UNAUTHORIZED_KEY",
    "INCORRECT_BASIC_AUTH_FORMAT",
    "INVALID_REQUEST",
    "INVALID_IDEMPOTENCY_KEY",
];
const PROCESSING: &str = "IDEMPOTENT_REQUEST_PROCESSING";
const NOT_FOUND_PAYMENT: &str = "NOT_FOUND_PAYMENT";
const ALREADY_CANCELED: &str = "ALREADY_CANCELED_PAYMENT";

/// Sorts a PG error code into its class. A code in no table is
/// [`GatewayError::Unknown`], never a decline: the money may have moved.
pub(crate) fn classify(code: &str, message: &str) -> GatewayError {
    let matches = |pattern: &&str| {
        if pattern.ends_with('_') {
            code.starts_with(pattern)
        } else {
            code == *pattern
        }
    };
    let (code, message) = (code.to_owned(), message.to_owned());
    if UNKNOWN_CODES.iter().any(matches) {
        GatewayError::Unknown {
            reason: format!("{code}: {message}"),
        }
    } else if DECLINED_CODES.iter().any(matches) {
        GatewayError::Declined { code, message }
    } else if INVALID_CODES.iter().any(matches) {
        GatewayError::Invalid { code, message }
    } else {
        GatewayError::Unknown {
            reason: format!("unlisted code {code}: {message}"),
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
///   or 404 `NOT_FOUND_PAYMENT`;
/// - cancel: `POST {base}/v1/payments/{paymentKey}/cancel` with
///   `{"cancelReason","cancelAmount"}` (the attempt's amount: the whole
///   payment or part of it) and the attempt's own `Idempotency-Key` → 200
///   with the payment object, `"status"` `CANCELED` or `PARTIAL_CANCELED`;
/// - errors: `{"code","message"}`, classified by `code` (not by HTTP status
///   alone) into [`GatewayError`]'s classes; any code it does not know is
///   `Unknown`, never `Declined`.
///
/// A reply whose `orderId` or `totalAmount` does not match the request is
/// `Unknown`. A 409 `IDEMPOTENT_REQUEST_PROCESSING` (the PG is still working
/// on the first request with this key) is asked again with the same key
/// after a short wait, a few times, then reported `Unknown`. Unavailable
/// calls are retried by the shop ([`RetryPolicy`](super::RetryPolicy)), not
/// here.
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
}

impl HttpGatewayBuilder {
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
        }
    }
}

impl fmt::Debug for HttpGatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpGatewayBuilder")
            .field("base", &self.base)
            .field("secret", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpGateway")
            .field("base", &self.base)
            .field("secret", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// The PG's payment object, as far as the shop reads it.
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

    /// The error a non-200 reply means.
    fn failure(&self) -> GatewayError {
        match self.error_body() {
            Some(error) => classify(&error.code, &error.message),
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
            let processing = reply.status == 409
                && reply
                    .error_body()
                    .is_some_and(|error| error.code == PROCESSING);
            if !processing {
                return Ok(reply);
            }
            if attempt == self.processing_retries {
                return Err(GatewayError::Unknown {
                    reason: format!("still {PROCESSING} after {attempt} retries"),
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
                request.send(body)
            }
            None => self
                .agent
                .get(url)
                .header("Authorization", &self.authorization)
                .call(),
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
    Ok(Approval {
        transaction_id: payment.last_transaction_key.unwrap_or(payment.payment_key),
        approved_amount,
        approved_at: payment.approved_at.unwrap_or_default(),
    })
}

impl PaymentGateway for HttpGateway {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        let url = format!("{}/v1/payments/confirm", self.base);
        let body = json!({
            "paymentKey": request.payment_key,
            "orderId": request.pg_order_id,
            "amount": request.amount.won(),
        })
        .to_string();
        let reply = self.send(&url, Some(&request.idempotency_key), Some(&body))?;
        if reply.status != 200 {
            let failure = reply.failure();
            if let GatewayError::Invalid { code, message } = &failure {
                tracing::error!(%code, %message, order = ?request.order, "payment gateway refused our approve request");
            }
            return Err(failure);
        }
        let payment = reply.payment()?;
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
        if reply.status == 404
            && reply
                .error_body()
                .is_some_and(|error| error.code == NOT_FOUND_PAYMENT)
        {
            return Ok(PgStatus::NotFound);
        }
        if reply.status != 200 {
            return Err(reply.failure());
        }
        let payment = reply.payment()?;
        match payment.status.as_str() {
            "DONE" => approval(payment, &request.pg_order_id, None).map(PgStatus::Approved),
            "CANCELED" | "ABORTED" | "EXPIRED" if payment.order_id == request.pg_order_id => {
                Ok(PgStatus::Declined {
                    message: format!("the payment gateway reports the payment {}", payment.status),
                    code: payment.status,
                })
            }
            other => Err(GatewayError::Unknown {
                reason: format!("payment {:?} has status {other}", payment.order_id),
            }),
        }
    }

    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        let url = format!(
            "{}/v1/payments/{}/cancel",
            self.base,
            path_segment(&request.payment_key)?
        );
        let body = json!({
            "cancelReason": request.reason,
            "cancelAmount": request.amount.won(),
        })
        .to_string();
        let reply = self.send(&url, Some(&request.idempotency_key), Some(&body))?;
        let done = Ok(Cancellation {
            cancelled_amount: request.amount,
        });
        if reply.status != 200 {
            if reply
                .error_body()
                .is_some_and(|error| error.code == ALREADY_CANCELED)
            {
                return done;
            }
            return Err(reply.failure());
        }
        match reply.payment()?.status.as_str() {
            "CANCELED" | "PARTIAL_CANCELED" => done,
            other => Err(GatewayError::Unknown {
                reason: format!("payment status {other} after cancel"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_by_the_table_and_unknown_codes_are_unknown() {
        let class = |code| match classify(code, "m") {
            GatewayError::Declined { .. } => "declined",
            GatewayError::Invalid { .. } => "invalid",
            GatewayError::Unknown { .. } => "unknown",
            GatewayError::Unavailable { .. } => "unavailable",
        };
        for code in [
            "REJECT_CARD_PAYMENT",
            "REJECT_ACCOUNT_PAYMENT",
            "INVALID_CARD_EXPIRATION",
            "INVALID_STOPPED_CARD",
            "INVALID_REJECT_CARD",
            "EXCEED_MAX_DAILY_PAYMENT_COUNT",
            "BELOW_MINIMUM_AMOUNT",
            "NOT_FOUND_PAYMENT_SESSION",
            "NOT_CANCELABLE_AMOUNT",
            "EXCEED_CANCEL_LIMIT",
        ] {
            assert_eq!(class(code), "declined", "{code}");
        }
        for code in [
            "INVALID_API_KEY",
            "UNAUTHORIZED_KEY",
            "INCORRECT_BASIC_AUTH_FORMAT",
            "INVALID_REQUEST",
            "INVALID_IDEMPOTENCY_KEY",
        ] {
            assert_eq!(class(code), "invalid", "{code}");
        }
        for code in [
            "PROVIDER_ERROR",
            "ALREADY_PROCESSED_PAYMENT",
            "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
            "FAILED_INTERNAL_SYSTEM_PROCESSING",
            "UNKNOWN_PAYMENT_ERROR",
            "IDEMPOTENT_REQUEST_PROCESSING",
            "SOMETHING_NEW",
            "INVALID_CARD", // not the INVALID_CARD_ prefix
            "",
        ] {
            assert_eq!(class(code), "unknown", "{code}");
        }
    }

    #[test]
    fn path_segments_refuse_anything_but_the_pg_alphabet() {
        assert!(path_segment("ls-12_ab").is_ok());
        for bad in ["", "a/b", "a b", "../x", "a?b=c"] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }
}
