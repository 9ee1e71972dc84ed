//! Payments: by tender and the PG's handshake (start, confirm, fail), a
//! virtual account's refund account, payment reads, top-ups, and the PG's
//! webhook.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use liteshop::{Money, OrderId, PaymentId, PgFailRedirect, PgRedirect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Me;
use crate::body::{int, parse};
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::KeyedBody;
use crate::problem::{ApiError, Problem};
use liteshop::ErrorKind::{
    Conflict, InvalidInput, NotFound, PaymentDeclined, PaymentOutcomeUnknown,
};

use super::{IdPath, KeyHeader, PageQuery, answer, blocking, money, write};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(pay))
        .routes(routes!(confirm_payment))
        .routes(routes!(fail_payment))
        .routes(routes!(set_refund_account))
        .routes(routes!(payment))
        .routes(routes!(payment_history))
        .routes(routes!(order_payments))
        .routes(routes!(top_ups))
        .routes(routes!(pg_webhook))
}

/// How to pay: how much of the order's total comes from the balance; the
/// rest is paid in the PG's widget.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"balance_part": 0}))]
pub(crate) struct Pay {
    /// Won of the total to take from the balance (0 when absent); the rest
    /// is paid in the PG's widget.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "int")]
    balance_part: i64,
}

contract!(
    /// The error responses of `pay`.
    PayErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict])
);

/// Starts paying a pending order by tender: `balance_part` won from the
/// balance (held at once), the rest through the PG. Wholly by balance, the
/// answer is already `approved` and no PG is involved. Otherwise it is a
/// `started` payment whose `pg_order_id`, `pg_amount`, `order_name` and
/// `customer_key` are what the PG's widget needs; after the customer pays
/// there, `POST /me/payments/{id}/confirm` with the PG's redirect. Send an
/// `Idempotency-Key`: a repeat starts nothing and returns the attempt the
/// key started, as it is now.
#[utoipa::path(post, path = "/me/orders/{id}/pay", request_body(content = Pay, description = "optional"),
    params(IdPath, KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = liteshop::Payment), PayErrors))]
async fn pay(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    // No body is `{}`: all of it through the PG.
    let request: Pay = if body.iter().all(u8::is_ascii_whitespace) {
        Pay::default()
    } else {
        parse(&body)?
    };
    let order = OrderId::new(id);
    let balance_part = Money::new(request.balance_part)?;
    write(&state, StatusCode::OK, key, move |shop| {
        shop.start_payment(user, order, balance_part)
    })
    .await
}

/// What the PG's success redirect brought back to the shop's success page
/// (`paymentKey`, `orderId` and `amount` in its query string).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"payment_key": "tgen_20261201abcd", "pg_order_id": "ls-1-6f1c2a9e", "amount": 14000}))]
pub(crate) struct Confirm {
    /// `paymentKey`: 1 to 200 characters of `A-Z`, `a-z`, `0-9`, `-`, `_`.
    #[schema(min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9_-]+$")]
    payment_key: String,
    /// `orderId`: must be the payment's `pg_order_id`.
    pg_order_id: String,
    /// `amount`: must be the payment's `pg_amount`.
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "int")]
    amount: i64,
}

contract!(
    /// The error responses of `confirm_payment`.
    ConfirmErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict, PaymentDeclined, PaymentOutcomeUnknown])
);

/// Confirms a started payment (of an order or a top-up) with the PG's
/// success redirect. An `orderId` or `amount` other than the payment's is
/// refused (409 `redirect_mismatch`) and nothing reaches the PG; a payment
/// already past `started` (a refreshed redirect) is returned as it is; an
/// expired one is refused (409 `payment_expired`). The PG's answer: 200
/// approved (the order paid, the top-up credited), 402 declined (the
/// balance part given back), 202 not known yet (reconciliation settles it).
/// Send an `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/payments/{id}/confirm", request_body = Confirm,
    params(IdPath, KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = liteshop::Payment), ConfirmErrors))]
async fn confirm_payment(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: Confirm = parse(&body)?;
    let redirect = PgRedirect {
        payment_key: request.payment_key,
        pg_order_id: request.pg_order_id,
        amount: money(request.amount)?,
    };
    write(&state, StatusCode::OK, key, move |shop| {
        shop.confirm_payment(user, PaymentId::new(id), &redirect)
    })
    .await
}

/// What the PG's failure redirect brought back to the shop's failure page
/// (`code`, `message` and `orderId` in its query string).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "PAY_PROCESS_CANCELED", "message": "the customer closed the widget", "pg_order_id": "ls-1-6f1c2a9e"}))]
pub(crate) struct Fail {
    /// `code`: 1 to 64 characters of `A-Z`, `a-z`, `0-9`, `_`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_]+$")]
    code: String,
    /// `message`: at most 500 characters, no control character.
    #[schema(max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    message: String,
    /// `orderId`: must be the payment's `pg_order_id`.
    pg_order_id: String,
}

contract!(
    /// The error responses of `fail_payment`.
    FailErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict])
);

/// Ends a started payment with the PG's failure redirect (the customer
/// closed the widget, the card company refused): `declined` at once, its
/// balance part given back, its order `pending` again; nothing reaches the
/// PG. A payment already past `started` is returned as it is.
#[utoipa::path(post, path = "/me/payments/{id}/fail", request_body = Fail,
    params(IdPath, KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = liteshop::Payment), FailErrors))]
async fn fail_payment(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: Fail = parse(&body)?;
    let redirect = PgFailRedirect {
        code: request.code,
        message: request.message,
        pg_order_id: request.pg_order_id,
    };
    write(&state, StatusCode::OK, key, move |shop| {
        shop.fail_payment(user, PaymentId::new(id), &redirect)
    })
    .await
}

/// The customer's bank account for the refunds of a payment made by bank
/// transfer. No `Debug`: the number and the holder are personal data.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"bank": "20", "account_number": "1002123456789", "holder_name": "김민지"}))]
pub(crate) struct RefundAccountBody {
    /// The bank, as the PG names it (Toss: a bank code such as `20`).
    #[schema(min_length = 1, max_length = 20, pattern = "^[A-Za-z0-9_]+$")]
    bank: String,
    /// Digits only.
    #[schema(min_length = 1, max_length = 20, pattern = "^[0-9]+$")]
    account_number: String,
    /// The holder's name: 1 to 60 characters, no control character, no
    /// white space at either end.
    #[schema(
        min_length = 1,
        max_length = 60,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    holder_name: String,
}

contract!(
    /// The error responses of `set_refund_account`.
    RefundAccountErrors = Contract::new(Auth::User).body().params().errors(&[InvalidInput, NotFound, Conflict])
);

/// Sets where the refunds of one of the acting user's payments, made by
/// bank transfer (a virtual account), go: it has no card to go back to.
/// Set it before asking for the refund; a later call replaces it. Answers
/// the payment.
#[utoipa::path(put, path = "/me/payments/{id}/refund-account", request_body = RefundAccountBody,
    params(IdPath),
    security(("bearer" = [])),
    responses((status = 200, body = liteshop::Payment), RefundAccountErrors))]
async fn set_refund_account(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: RefundAccountBody = parse(&body)?;
    let account = liteshop::RefundAccount {
        bank: request.bank,
        account_number: request.account_number,
        holder_name: request.holder_name,
    };
    let shop = state.shop.clone();
    let payment = blocking(move || {
        shop.set_refund_account(user, PaymentId::new(id), &account)?;
        shop.payment(user, PaymentId::new(id))
    })
    .await?;
    Ok(Json(payment).into_response())
}

contract!(
    /// The error responses of `payment`.
    PaymentErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);

/// One of the acting user's payments.
#[utoipa::path(get, path = "/me/payments/{id}", params(IdPath), security(("bearer" = [])),
    responses((status = 200, body = liteshop::Payment), PaymentErrors))]
async fn payment(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.payment(user, PaymentId::new(id))).await
}

contract!(
    /// The error responses of `order_payments`.
    OrderPaymentsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);

/// Every payment attempt of one of the acting user's orders, oldest first.
#[utoipa::path(get, path = "/me/orders/{id}/payments", params(IdPath), security(("bearer" = [])),
    responses((status = 200, body = [liteshop::Payment]), OrderPaymentsErrors))]
async fn order_payments(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| {
        shop.payments_for_order(user, OrderId::new(id))
    })
    .await
}

contract!(
    /// The error responses of `payment_history`.
    PaymentHistoryErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);

/// Every status change of one of the acting user's payments.
#[utoipa::path(get, path = "/me/payments/{id}/history", params(IdPath), security(("bearer" = [])),
    responses((status = 200, body = [liteshop::PaymentEvent]), PaymentHistoryErrors))]
async fn payment_history(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| {
        shop.payment_history(user, PaymentId::new(id))
    })
    .await
}

contract!(
    /// The error responses of `top_ups`.
    TopUpsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);

/// The acting user's top-ups, newest first.
#[utoipa::path(get, path = "/me/top-ups", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = liteshop::Page<liteshop::Payment>), TopUpsErrors))]
async fn top_ups(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    answer(&state, move |shop| shop.top_ups(user, page)).await
}

/// A notice from the PG: Toss's webhook body, `PAYMENT_STATUS_CHANGED`
/// (`{"eventType", "createdAt", "data": <payment object>}`) or
/// `DEPOSIT_CALLBACK` (`{"createdAt", "secret", "status", "transactionKey",
/// "orderId"}`, no `eventType`) — docs.tosspayments.com/guides/webhook.
/// Only the payment it names (and a `DEPOSIT_CALLBACK`'s `secret`) is
/// read; everything else in it is ignored, since a notice is never trusted.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-12-01T10:00:00.000",
    "data": {"orderId": "ls-7-0011aabb", "status": "DONE"}}))]
pub(crate) struct PgNotice {
    /// `PAYMENT_STATUS_CHANGED`; absent in a `DEPOSIT_CALLBACK`.
    #[serde(default)]
    event_type: Option<String>,
    /// The payment object of a `PAYMENT_STATUS_CHANGED`: only its
    /// `orderId` is read.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Map<String, serde_json::Value>>,
    /// The payment's `orderId` in a `DEPOSIT_CALLBACK`.
    #[serde(default)]
    order_id: Option<String>,
    /// A `DEPOSIT_CALLBACK`'s `secret`: the one the PG issued with the
    /// payment's virtual account, or the notice is ignored.
    #[serde(default)]
    secret: Option<String>,
}

/// The receipt of a PG notice.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PgNoticeReceipt {
    /// Always true: the notice was taken (Toss retries anything but a 200).
    received: bool,
}

contract!(
    /// The error responses of `pg_webhook`: only its body's, since the
    /// library's answer to a notice is logged, never sent to the PG.
    PgWebhookErrors = Contract::new(Auth::Public).body()
);

/// Takes a notice (webhook) from the PG and answers at once, as Toss
/// counts only a 200 within 10 seconds as delivered. The body is never
/// trusted: afterwards, on its own, the shop looks the payment it names up
/// at the PG and settles it from that record, exactly once however often
/// and in whatever order notices come (`Shop::payment_changed_at_pg`). A
/// `DEPOSIT_CALLBACK` (it carries a `secret`) settles the payment only if
/// the secret is the one the PG issued with its virtual account
/// (`Shop::deposit_notice`). A notice naming no payment, one the shop does
/// not know, or one with another secret is logged and changes nothing.
/// Register this URL in the PG's developer center.
#[utoipa::path(post, path = "/pg/webhook", request_body = PgNotice, responses(
    (status = 200, body = PgNoticeReceipt), PgWebhookErrors))]
async fn pg_webhook(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    // An object, as the schema says (serde would read a struct from an
    // array too).
    let object: serde_json::Map<String, serde_json::Value> = parse(&body)?;
    let notice: PgNotice =
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|err| {
            ApiError::from(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                err.to_string(),
            ))
        })?;
    let named = notice
        .data
        .as_ref()
        .and_then(|data| data.get("orderId"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .or(notice.order_id);
    match named {
        Some(pg_order_id) => {
            let shop = state.shop.clone();
            let event = notice
                .event_type
                .unwrap_or_else(|| "DEPOSIT_CALLBACK".into());
            let secret = notice.secret;
            tokio::task::spawn_blocking(move || {
                match match &secret {
                    Some(secret) => shop.deposit_notice(&pg_order_id, secret),
                    None => shop.payment_changed_at_pg(&pg_order_id),
                } {
                    Ok(Some(seen)) if seen.needs_review => {
                        tracing::warn!(%pg_order_id, %event, ?seen, "PG notice: needs a person");
                    }
                    Ok(Some(seen)) => {
                        tracing::info!(%pg_order_id, %event, ?seen, "PG notice settled")
                    }
                    Ok(None) => {
                        tracing::warn!(%pg_order_id, %event, "PG notice for an unknown payment, or with another secret; ignored")
                    }
                    Err(err) => {
                        tracing::error!(%pg_order_id, %event, error = %err, "PG notice failed")
                    }
                }
            });
        }
        None => tracing::warn!(?notice.event_type, "PG notice names no payment; ignored"),
    }
    Ok(Json(PgNoticeReceipt { received: true }).into_response())
}
