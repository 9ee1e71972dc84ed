//! Refunds of an order's units and of a top-up's unspent money.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use liteshop::{OrderId, OrderLine, PaymentId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Me;
use crate::body::{Lines, int, parse, present};
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::KeyedBody;
use crate::problem::{ApiError, Problem};
use liteshop::ErrorKind::{
    Conflict, InvalidInput, NotFound, PaymentDeclined, PaymentOutcomeUnknown,
};

use super::{IdPath, KeyHeader, answer, money, write};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(refund, refunds))
        .routes(routes!(refund_top_up, top_up_refunds))
}

/// A refund: which units to return, and why. Exactly one of `lines` (some
/// units) or `"whole": true` (every unit not refunded yet): a whole refund
/// is asked for by name, never reached because a field was left out or
/// misspelt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": {"1": 1}, "reason": "arrived broken"}))]
pub(crate) struct RefundRequest {
    /// Product id → units to return.
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "present")]
    lines: Option<Lines>,
    /// `true`: every unit not refunded yet.
    #[serde(default, deserialize_with = "present")]
    whole: Option<bool>,
    /// Why, 1 to 200 characters of one line.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    reason: String,
}

impl RefundRequest {
    /// The units asked for: `Some(lines)`, or `None` for the whole order.
    fn units(self) -> Result<(Option<Vec<OrderLine>>, String), ApiError> {
        match (self.lines, self.whole) {
            (Some(lines), None) => Ok((Some(lines.0), self.reason)),
            (None, Some(true)) => Ok((None, self.reason)),
            _ => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "say which units to refund: either `lines` (product id to units) or `\"whole\": true`",
            )
            .into()),
        }
    }
}

contract!(
    /// The error responses of `refund`.
    RefundErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict, PaymentDeclined, PaymentOutcomeUnknown])
);

/// Refunds some or all units of a paid order. Send an `Idempotency-Key`: a
/// repeat starts no second refund and returns the attempt the key started.
#[utoipa::path(post, path = "/me/orders/{id}/refunds", params(IdPath, KeyHeader),
    request_body = RefundRequest, security(("bearer" = [])),
    responses((status = 201, body = liteshop::Refund), RefundErrors))]
async fn refund(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let (lines, reason) = parse::<RefundRequest>(&body)?.units()?;
    let order = OrderId::new(id);
    write(&state, StatusCode::CREATED, key, move |shop| match lines {
        Some(lines) => shop.refund_lines(user, order, &lines, &reason),
        None => shop.refund(user, order, &reason),
    })
    .await
}

contract!(
    /// The error responses of `refunds`.
    RefundsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);

/// Every refund attempt of one of the acting user's orders.
#[utoipa::path(get, path = "/me/orders/{id}/refunds", params(IdPath), security(("bearer" = [])),
    responses((status = 200, body = [liteshop::Refund]), RefundsErrors))]
async fn refunds(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.refunds(user, OrderId::new(id))).await
}

/// Money of a top-up to give back to the card, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 10000, "reason": "not needed"}))]
pub(crate) struct TopUpRefundRequest {
    /// Won, at least 1; no more than the top-up not yet refunded, nor than
    /// the balance.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "int")]
    amount: i64,
    /// Why, 1 to 200 characters of one line.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    reason: String,
}

contract!(
    /// The error responses of `refund_top_up`.
    RefundTopUpErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict, PaymentDeclined, PaymentOutcomeUnknown])
);

/// Gives money of a top-up back to the card it was paid with, while it is
/// still unspent in the balance: taken from the balance at once, cancelled
/// at the PG, and given back to the balance if the PG declines (402). Send
/// an `Idempotency-Key`: a repeat starts no second refund.
#[utoipa::path(post, path = "/me/top-ups/{id}/refunds", params(IdPath, KeyHeader),
    request_body = TopUpRefundRequest, security(("bearer" = [])),
    responses((status = 201, body = liteshop::Refund), RefundTopUpErrors))]
async fn refund_top_up(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: TopUpRefundRequest = parse(&body)?;
    let amount = money(request.amount)?;
    write(&state, StatusCode::CREATED, key, move |shop| {
        shop.refund_top_up(user, PaymentId::new(id), amount, &request.reason)
    })
    .await
}

contract!(
    /// The error responses of `top_up_refunds`.
    TopUpRefundsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);

/// Every refund attempt of one of the acting user's top-ups.
#[utoipa::path(get, path = "/me/top-ups/{id}/refunds", params(IdPath), security(("bearer" = [])),
    responses((status = 200, body = [liteshop::Refund]), TopUpRefundsErrors))]
async fn top_up_refunds(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| {
        shop.top_up_refunds(user, PaymentId::new(id))
    })
    .await
}
