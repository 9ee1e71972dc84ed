//! Accounts: signing up, the acting user, balances, top-ups' start, an
//! operator's grants and take-backs, the ledger.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use liteshop::{Keyed, Money, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Admin, Me};
use crate::body::{int, parse};
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::KeyedBody;
use crate::problem::ApiError;
use liteshop::ErrorKind::{Conflict, InvalidInput, NotFound};

use super::{IdPath, KeyHeader, PageQuery, answer, blocking, money, write};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(create_user))
        .routes(routes!(me))
        .routes(routes!(balance))
        .routes(routes!(charge))
        .routes(routes!(ledger))
        .routes(routes!(grant))
        .routes(routes!(take_back))
}

/// A keyed write's new balance, answered as [`Balance`]: the stored
/// response is the balance alone.
fn balance_of(result: liteshop::Result<Keyed<Money>>) -> liteshop::Result<Keyed<Balance>> {
    result.map(|keyed| keyed.map(|balance| Balance { balance }))
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Kim"}))]
pub(crate) struct CreateUser {
    /// 1 to 100 characters of one line.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    name: String,
}

/// A user, with the bearer token that acts as them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedUser {
    #[schema(value_type = liteshop::User)]
    user: liteshop::User,
    /// `Authorization: Bearer <token>` for the `/me` routes.
    token: String,
}

contract!(
    /// The error responses of `create_user`.
    CreateUserErrors = Contract::new(Auth::Public).body().errors(&[InvalidInput])
);

/// Creates a user and returns their token (shown once; it can be derived
/// again only with the server's secret).
#[utoipa::path(post, path = "/users", request_body = CreateUser, responses(
    (status = 201, body = CreatedUser), CreateUserErrors))]
async fn create_user(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request: CreateUser = parse(&body)?;
    let shop = state.shop.clone();
    let user = blocking(move || shop.create_user(&request.name)).await?;
    let token = state.secrets.user_token(user.id);
    Ok((StatusCode::CREATED, Json(CreatedUser { user, token })).into_response())
}

contract!(
    /// The error responses of `me`.
    MeErrors = Contract::new(Auth::User)
);

/// The acting user.
#[utoipa::path(get, path = "/me", security(("bearer" = [])), responses(
    (status = 200, body = liteshop::User), MeErrors))]
async fn me(State(state): State<AppState>, Me(user): Me) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.user(user)).await
}

/// A balance, in won.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Balance {
    #[schema(value_type = i64, example = 50000)]
    balance: Money,
}

contract!(
    /// The error responses of `balance`.
    BalanceErrors = Contract::new(Auth::User)
);

/// The acting user's balance.
#[utoipa::path(get, path = "/me/balance", security(("bearer" = [])), responses(
    (status = 200, body = Balance), BalanceErrors))]
async fn balance(State(state): State<AppState>, Me(user): Me) -> Result<Json<Balance>, ApiError> {
    let shop = state.shop.clone();
    let balance = blocking(move || shop.balance(user)).await?;
    Ok(Json(Balance { balance }))
}

/// Money to add to the balance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 10000}))]
pub(crate) struct Charge {
    /// Won, at least 1.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "int")]
    amount: i64,
}

contract!(
    /// The error responses of `charge`.
    ChargeErrors = Contract::new(Auth::User).body().key().errors(&[InvalidInput, Conflict])
);

/// Starts a top-up of the acting user's balance, paid through the payment
/// gateway: nothing is credited here. The answer is a `started` payment
/// whose `pg_order_id`, `pg_amount`, `order_name` and `customer_key` are
/// what the PG's widget needs; after the customer pays there, `POST
/// /me/payments/{id}/confirm` with the PG's redirect credits the balance
/// once. Send an `Idempotency-Key` to make a retry safe: a repeat starts no
/// second top-up.
#[utoipa::path(post, path = "/me/balance/charge", request_body = Charge,
    security(("bearer" = [])),
    params(KeyHeader),
    responses(
        (status = 200, body = liteshop::Payment, description = "the top-up, started: pay its widget step, then confirm"), ChargeErrors))]
async fn charge(
    State(state): State<AppState>,
    Me(user): Me,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: Charge = parse(&body)?;
    let amount = money(request.amount)?;
    write(&state, StatusCode::OK, key, move |shop| {
        shop.start_top_up(user, amount)
    })
    .await
}

/// Balance an operator grants or takes back, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 3000, "note": "late delivery"}))]
pub(crate) struct OperatorEntry {
    /// Won, at least 1.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "int")]
    amount: i64,
    /// Why, 1 to 200 characters of one line; kept on the ledger entry.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    note: String,
}

contract!(
    /// The error responses of `grant` and `take_back`.
    OperatorEntryErrors = Contract::new(Auth::Admin).body().key().params().errors(&[InvalidInput, NotFound, Conflict])
);

/// Grants balance to a user (admin): points, compensation, a correction —
/// a `grant` ledger entry with the note, money in that no PG took. Send an
/// `Idempotency-Key` to make a retry safe: a repeat grants nothing more.
#[utoipa::path(post, path = "/admin/users/{id}/grant", request_body = OperatorEntry,
    params(IdPath, KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = Balance, description = "the user's new balance"), OperatorEntryErrors))]
async fn grant(
    State(state): State<AppState>,
    _: Admin,
    Path(IdPath { id }): Path<IdPath>,
    keyed: KeyedBody,
) -> Result<Response, ApiError> {
    operator_entry(state, id, keyed, true).await
}

/// A grant (or, not `grant`, a take-back) as its route answers it: the body read,
/// the amount checked, the new balance under the key.
async fn operator_entry(
    state: AppState,
    id: i64,
    KeyedBody { key, body }: KeyedBody,
    grant: bool,
) -> Result<Response, ApiError> {
    let request: OperatorEntry = parse(&body)?;
    let amount = money(request.amount)?;
    write(&state, StatusCode::OK, key, move |shop| {
        let user = UserId::new(id);
        balance_of(if grant {
            shop.grant(user, amount, &request.note)
        } else {
            shop.take_back(user, amount, &request.note)
        })
    })
    .await
}

/// Takes balance back from a user (admin), never more than the balance: a
/// `take_back` ledger entry with the note. Send an `Idempotency-Key` to
/// make a retry safe.
#[utoipa::path(post, path = "/admin/users/{id}/take-back", request_body = OperatorEntry,
    params(IdPath, KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = Balance, description = "the user's new balance"), OperatorEntryErrors))]
async fn take_back(
    State(state): State<AppState>,
    _: Admin,
    Path(IdPath { id }): Path<IdPath>,
    keyed: KeyedBody,
) -> Result<Response, ApiError> {
    operator_entry(state, id, keyed, false).await
}

contract!(
    /// The error responses of `ledger`.
    LedgerErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);

/// The acting user's ledger, newest first.
#[utoipa::path(get, path = "/me/ledger", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = liteshop::Page<liteshop::LedgerEntry>), LedgerErrors))]
async fn ledger(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    answer(&state, move |shop| shop.ledger(user, page)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_may_be_written_with_a_zero_fraction_but_not_another() {
        let charge: Charge = serde_json::from_str(r#"{"amount": 6.0}"#).unwrap();
        assert_eq!(charge.amount, 6);
        assert!(serde_json::from_str::<Charge>(r#"{"amount": 6.5}"#).is_err());
    }
}
