//! The routes: thin handlers that parse, authenticate, and run one `Shop`
//! call on the blocking pool.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use liteshop::{
    CartItemId, CouponId, Cursor, Discount, IdempotencyKey, Keyed, Money, NewCoupon, NewProduct,
    OrderId, OrderLine, OrderRequest, PageRequest, PaymentId, PgFailRedirect, PgRedirect,
    ProductId, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Me};
use crate::body::{Lines, int, opt_int, parse, present};
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::{KeyedBody, keyed};
use crate::problem::{ApiError, Problem};
use crate::{AppState, schemas};
use liteshop::ErrorKind::{
    Conflict, InvalidInput, NotFound, PaymentDeclined, PaymentOutcomeUnknown,
};

/// Every route, for [`crate::router`] and [`crate::openapi`].
pub(crate) fn all(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(create_user))
        .routes(routes!(me))
        .routes(routes!(balance))
        .routes(routes!(charge))
        .routes(routes!(ledger))
        .routes(routes!(grant))
        .routes(routes!(take_back))
        .routes(routes!(products))
        .routes(routes!(product))
        .routes(routes!(create_product))
        .routes(routes!(restock))
        .routes(routes!(set_price))
        .routes(routes!(set_tax_free))
        .routes(routes!(place_order, orders))
        .routes(routes!(order))
        .routes(routes!(cancel_order))
        .routes(routes!(pay))
        .routes(routes!(confirm_payment))
        .routes(routes!(fail_payment))
        .routes(routes!(set_refund_account))
        .routes(routes!(payment))
        .routes(routes!(payment_history))
        .routes(routes!(order_payments))
        .routes(routes!(refund, refunds))
        .routes(routes!(top_ups))
        .routes(routes!(refund_top_up, top_up_refunds))
        .routes(routes!(cart))
        .routes(routes!(add_to_cart))
        .routes(routes!(set_cart_quantity, remove_from_cart))
        .routes(routes!(checkout))
        .routes(routes!(create_coupon))
        .routes(routes!(coupon))
        .routes(routes!(issue_coupon))
        .routes(routes!(my_coupons))
        .routes(routes!(best_sellers))
        .routes(routes!(events))
        .routes(routes!(audit))
        .routes(routes!(pg_webhook))
}

// What each route can answer besides its success: its documented error
// responses are generated from these (see `contract.rs`).
contract!(
    /// The error responses of `readyz`.
    ReadyErrors = Contract::new(Auth::Public)
);
contract!(
    /// The error responses of `create_user`.
    CreateUserErrors = Contract::new(Auth::Public).body().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `me`.
    MeErrors = Contract::new(Auth::User)
);
contract!(
    /// The error responses of `balance`.
    BalanceErrors = Contract::new(Auth::User)
);
contract!(
    /// The error responses of `charge`.
    ChargeErrors = Contract::new(Auth::User).body().key().errors(&[InvalidInput, Conflict])
);
contract!(
    /// The error responses of `ledger`.
    LedgerErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `products`.
    ProductsErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `product`.
    ProductErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `create_product`.
    CreateProductErrors = Contract::new(Auth::Admin).body().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `restock`.
    RestockErrors = Contract::new(Auth::Admin).body().params().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `set_tax_free`.
    SetTaxFreeErrors = Contract::new(Auth::Admin).body().params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `set_price`.
    SetPriceErrors = Contract::new(Auth::Admin).body().params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `place_order`.
    PlaceOrderErrors = Contract::new(Auth::User).body().key().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `orders`.
    OrdersErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `order`.
    OrderErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `cancel_order`.
    CancelErrors = Contract::new(Auth::User).key().params().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `pay`.
    PayErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `confirm_payment`.
    ConfirmErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict, PaymentDeclined, PaymentOutcomeUnknown])
);
contract!(
    /// The error responses of `fail_payment`.
    FailErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `grant` and `take_back`.
    OperatorEntryErrors = Contract::new(Auth::Admin).body().key().params().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `set_refund_account`.
    RefundAccountErrors = Contract::new(Auth::User).body().params().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `payment`.
    PaymentErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `order_payments`.
    OrderPaymentsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `payment_history`.
    PaymentHistoryErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `refund`.
    RefundErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict, PaymentDeclined, PaymentOutcomeUnknown])
);
contract!(
    /// The error responses of `top_ups`.
    TopUpsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `refund_top_up`.
    RefundTopUpErrors = Contract::new(Auth::User).body().key().params().errors(&[InvalidInput, NotFound, Conflict, PaymentDeclined, PaymentOutcomeUnknown])
);
contract!(
    /// The error responses of `top_up_refunds`.
    TopUpRefundsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `refunds`.
    RefundsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `cart`.
    CartErrors = Contract::new(Auth::User)
);
contract!(
    /// The error responses of `add_to_cart`.
    AddToCartErrors = Contract::new(Auth::User).body().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `set_cart_quantity`.
    SetQuantityErrors = Contract::new(Auth::User).body().params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `remove_from_cart`.
    RemoveFromCartErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `checkout`.
    CheckoutErrors = Contract::new(Auth::User).body().key().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `create_coupon`.
    CreateCouponErrors = Contract::new(Auth::Admin).body().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `coupon`.
    CouponErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput, NotFound])
);
contract!(
    /// The error responses of `issue_coupon`.
    IssueCouponErrors = Contract::new(Auth::User).key().params().errors(&[InvalidInput, NotFound, Conflict])
);
contract!(
    /// The error responses of `my_coupons`.
    MyCouponsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `best_sellers`.
    BestSellersErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `events`.
    EventsErrors = Contract::new(Auth::Admin).params().errors(&[InvalidInput])
);
contract!(
    /// The error responses of `audit`.
    AuditErrors = Contract::new(Auth::Admin)
);
contract!(
    /// The error responses of `pg_webhook`.
    PgWebhookErrors = Contract::new(Auth::Public).body().errors(&[InvalidInput])
);

/// Runs `f` on the blocking pool: `Shop` calls wait on SQLite and must
/// never hold an async worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> liteshop::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(err) => {
            tracing::error!(error = %err, "a blocking task failed");
            Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into())
        }
    }
}

/// Runs a write of [`liteshop::Idempotent`] — under the request's key if
/// it sent one, plain otherwise — on the blocking pool, and answers with
/// `status`.
async fn write<T: Serialize + Send + 'static>(
    state: &AppState,
    status: StatusCode,
    key: Option<IdempotencyKey>,
    write: impl FnOnce(liteshop::Idempotent<'_>) -> liteshop::Result<Keyed<T>> + Send + 'static,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let result = blocking(move || write(shop.idempotent(key.as_ref()))).await?;
    Ok(keyed(status, result))
}

/// A keyed write that returns a balance, answered as [`Balance`]: the
/// stored response is the balance alone.
fn keyed_balance(result: Keyed<Money>) -> Response {
    keyed(StatusCode::OK, result.map(|balance| Balance { balance }))
}

fn money(won: i64) -> Result<Money, ApiError> {
    Money::new(won).map_err(ApiError::from)
}

/// The `Idempotency-Key` header of every retryable write, as the schema
/// shows it (read by [`KeyedBody`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // a schema only: `KeyedBody` reads the header
struct KeyHeader {
    /// makes a retry safe: a fresh UUID (either case) per intended write; one request per user across every route
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    key: Option<String>,
}

/// A page of a listing: `limit` items (1–100, default 20) after `after`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// How many items (1 to 100).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    after: Option<i64>,
}

impl PageQuery {
    /// The page asked for; a negative `after` is no page's `next`.
    fn request(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(20);
        match self.after {
            None => Ok(PageRequest::first(limit)),
            Some(after) if after >= 0 => {
                let cursor: Cursor =
                    serde_json::from_value(serde_json::json!(after)).map_err(|err| {
                        ApiError::from(Problem::new(
                            StatusCode::BAD_REQUEST,
                            "out_of_range",
                            err.to_string(),
                        ))
                    })?;
                Ok(PageRequest::after(cursor, limit))
            }
            Some(_) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "out_of_range",
                "after is the next of a previous page, 0 or more",
            )
            .into()),
        }
    }
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "up")))]
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"), ReadyErrors))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let shop = state.shop.clone();
    blocking(move || shop.products(PageRequest::first(1)).map(drop)).await?;
    Ok("ready")
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
    #[schema(value_type = schemas::User)]
    user: liteshop::User,
    /// `Authorization: Bearer <token>` for the `/me` routes.
    token: String,
}

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

/// The acting user.
#[utoipa::path(get, path = "/me", security(("bearer" = [])), responses(
    (status = 200, body = schemas::User), MeErrors))]
async fn me(State(state): State<AppState>, Me(user): Me) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let user = blocking(move || shop.user(user)).await?;
    Ok(Json(user).into_response())
}

/// A balance, in won.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Balance {
    #[schema(value_type = i64, example = 50000)]
    balance: Money,
}

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
        (status = 200, body = schemas::Payment, description = "the top-up, started: pay its widget step, then confirm"), ChargeErrors))]
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

/// Grants balance to a user (admin): points, compensation, a correction —
/// a `grant` ledger entry with the note, money in that no PG took. Send an
/// `Idempotency-Key` to make a retry safe: a repeat grants nothing more.
#[utoipa::path(post, path = "/admin/users/{id}/grant", request_body = OperatorEntry,
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = Balance, description = "the user's new balance"), OperatorEntryErrors))]
async fn grant(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: OperatorEntry = parse(&body)?;
    let amount = money(request.amount)?;
    let shop = state.shop.clone();
    let result = blocking(move || {
        shop.idempotent(key.as_ref())
            .grant(UserId::new(id), amount, &request.note)
    })
    .await?;
    Ok(keyed_balance(result))
}

/// Takes balance back from a user (admin), never more than the balance: a
/// `take_back` ledger entry with the note. Send an `Idempotency-Key` to
/// make a retry safe.
#[utoipa::path(post, path = "/admin/users/{id}/take-back", request_body = OperatorEntry,
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = Balance, description = "the user's new balance"), OperatorEntryErrors))]
async fn take_back(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: OperatorEntry = parse(&body)?;
    let amount = money(request.amount)?;
    let shop = state.shop.clone();
    let result = blocking(move || {
        shop.idempotent(key.as_ref())
            .take_back(UserId::new(id), amount, &request.note)
    })
    .await?;
    Ok(keyed_balance(result))
}

/// The acting user's ledger, newest first.
#[utoipa::path(get, path = "/me/ledger", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = schemas::LedgerPage), LedgerErrors))]
async fn ledger(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    let shop = state.shop.clone();
    let page = blocking(move || shop.ledger(user, page)).await?;
    Ok(Json(page).into_response())
}

/// The catalogue, in id order.
#[utoipa::path(get, path = "/products", params(PageQuery),
    responses((status = 200, body = schemas::ProductPage), ProductsErrors))]
async fn products(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    let shop = state.shop.clone();
    let page = blocking(move || shop.products(page)).await?;
    Ok(Json(page).into_response())
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)),
    responses((status = 200, body = schemas::Product), ProductErrors))]
async fn product(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let product = blocking(move || shop.product(ProductId::new(id))).await?;
    Ok(Json(product).into_response())
}

/// A product to add to the catalogue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Green tea", "price": 12000, "stock": 10}))]
pub(crate) struct CreateProduct {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    name: String,
    /// Won.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    #[serde(deserialize_with = "int")]
    price: i64,
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    #[serde(deserialize_with = "int")]
    stock: u32,
}

/// Adds a product (admin).
#[utoipa::path(post, path = "/admin/products", request_body = CreateProduct,
    security(("bearer" = [])),
    responses((status = 201, body = schemas::Product), CreateProductErrors))]
async fn create_product(
    State(state): State<AppState>,
    _: Admin,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateProduct = parse(&body)?;
    let price = money(request.price)?;
    let shop = state.shop.clone();
    let product = blocking(move || {
        shop.create_product(NewProduct {
            name: request.name,
            price,
            stock: request.stock,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(product)).into_response())
}

/// Units to add to a product's stock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quantity": 5}))]
pub(crate) struct Restock {
    #[schema(value_type = i64, minimum = 1, maximum = 4294967295_i64)]
    #[serde(deserialize_with = "int")]
    quantity: u32,
}

/// Adds stock (admin).
#[utoipa::path(post, path = "/admin/products/{id}/restock", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)),
    request_body = Restock, security(("bearer" = [])),
    responses((status = 200, body = schemas::Product), RestockErrors))]
async fn restock(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: Restock = parse(&body)?;
    let shop = state.shop.clone();
    let product = blocking(move || shop.restock(ProductId::new(id), request.quantity)).await?;
    Ok(Json(product).into_response())
}

/// A new unit price.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": 11000}))]
pub(crate) struct SetPrice {
    /// Won.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    #[serde(deserialize_with = "int")]
    price: i64,
}

/// Sets a product's price (admin); orders placed keep theirs.
#[utoipa::path(put, path = "/admin/products/{id}/price", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)),
    request_body = SetPrice, security(("bearer" = [])),
    responses((status = 200, body = schemas::Product), SetPriceErrors))]
async fn set_price(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SetPrice = parse(&body)?;
    let price = money(request.price)?;
    let shop = state.shop.clone();
    let product = blocking(move || shop.set_price(ProductId::new(id), price)).await?;
    Ok(Json(product).into_response())
}

/// Whether a product is sold free of VAT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tax_free": true}))]
pub(crate) struct SetTaxFree {
    tax_free: bool,
}

/// Marks a product tax-free (면세) or not (admin): orders placed from then
/// on send their tax-free lines' share of each PG amount as the PG's
/// `taxFreeAmount`; orders placed before keep what it was.
#[utoipa::path(put, path = "/admin/products/{id}/tax-free", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)),
    request_body = SetTaxFree, security(("bearer" = [])),
    responses((status = 200, body = schemas::Product), SetTaxFreeErrors))]
async fn set_tax_free(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SetTaxFree = parse(&body)?;
    let shop = state.shop.clone();
    let product = blocking(move || shop.set_tax_free(ProductId::new(id), request.tax_free)).await?;
    Ok(Json(product).into_response())
}

/// An order to place, with an optional coupon.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": {"1": 2}, "coupon": null}))]
pub(crate) struct PlaceOrder {
    /// Product id → quantity (1 to the order quantity limit); 1 to the line
    /// limit entries.
    #[schema(value_type = Object)]
    lines: Lines,
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    #[serde(default, deserialize_with = "opt_int")]
    coupon: Option<i64>,
}

/// Places an order for the acting user; its stock is reserved at once.
/// Send an `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/orders", request_body = PlaceOrder, security(("bearer" = [])),
    params(KeyHeader),
    responses((status = 201, body = schemas::Order), PlaceOrderErrors))]
async fn place_order(
    State(state): State<AppState>,
    Me(user): Me,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: PlaceOrder = parse(&body)?;
    let order = OrderRequest {
        lines: request.lines.0,
        coupon: request.coupon.map(CouponId::new),
    };
    write(&state, StatusCode::CREATED, key, move |shop| {
        shop.place_order(user, order)
    })
    .await
}

/// The acting user's orders, newest first.
#[utoipa::path(get, path = "/me/orders", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = schemas::OrderPage), OrdersErrors))]
async fn orders(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    let shop = state.shop.clone();
    let page = blocking(move || shop.orders(user, page)).await?;
    Ok(Json(page).into_response())
}

/// One of the acting user's orders (another user's is not found).
#[utoipa::path(get, path = "/me/orders/{id}", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), security(("bearer" = [])),
    responses((status = 200, body = schemas::Order), OrderErrors))]
async fn order(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let order = blocking(move || shop.order(user, OrderId::new(id))).await?;
    Ok(Json(order).into_response())
}

/// Cancels a pending order and releases its stock. Send an
/// `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/orders/{id}/cancel", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = schemas::Order), CancelErrors))]
async fn cancel_order(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
    KeyedBody { key, .. }: KeyedBody,
) -> Result<Response, ApiError> {
    write(&state, StatusCode::OK, key, move |shop| {
        shop.cancel_order(user, OrderId::new(id))
    })
    .await
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

/// Starts paying a pending order by tender: `balance_part` won from the
/// balance (held at once), the rest through the PG. Wholly by balance, the
/// answer is already `approved` and no PG is involved. Otherwise it is a
/// `started` payment whose `pg_order_id`, `pg_amount`, `order_name` and
/// `customer_key` are what the PG's widget needs; after the customer pays
/// there, `POST /me/payments/{id}/confirm` with the PG's redirect. Send an
/// `Idempotency-Key`: a repeat starts nothing and returns the attempt the
/// key started, as it is now.
#[utoipa::path(post, path = "/me/orders/{id}/pay", request_body(content = Pay, description = "optional"),
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = schemas::Payment), PayErrors))]
async fn pay(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
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

/// Confirms a started payment (of an order or a top-up) with the PG's
/// success redirect. An `orderId` or `amount` other than the payment's is
/// refused (409 `redirect_mismatch`) and nothing reaches the PG; a payment
/// already past `started` (a refreshed redirect) is returned as it is; an
/// expired one is refused (409 `payment_expired`). The PG's answer: 200
/// approved (the order paid, the top-up credited), 402 declined (the
/// balance part given back), 202 not known yet (reconciliation settles it).
/// Send an `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/payments/{id}/confirm", request_body = Confirm,
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = schemas::Payment), ConfirmErrors))]
async fn confirm_payment(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
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

/// Ends a started payment with the PG's failure redirect (the customer
/// closed the widget, the card company refused): `declined` at once, its
/// balance part given back, its order `pending` again; nothing reaches the
/// PG. A payment already past `started` is returned as it is.
#[utoipa::path(post, path = "/me/payments/{id}/fail", request_body = Fail,
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = schemas::Payment), FailErrors))]
async fn fail_payment(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
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

/// Sets where the refunds of one of the acting user's payments, made by
/// bank transfer (a virtual account), go: it has no card to go back to.
/// Set it before asking for the refund; a later call replaces it. Answers
/// the payment.
#[utoipa::path(put, path = "/me/payments/{id}/refund-account", request_body = RefundAccountBody,
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)),
    security(("bearer" = [])),
    responses((status = 200, body = schemas::Payment), RefundAccountErrors))]
async fn set_refund_account(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
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

/// One of the acting user's payments.
#[utoipa::path(get, path = "/me/payments/{id}", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), security(("bearer" = [])),
    responses((status = 200, body = schemas::Payment), PaymentErrors))]
async fn payment(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let payment = blocking(move || shop.payment(user, PaymentId::new(id))).await?;
    Ok(Json(payment).into_response())
}

/// Every payment attempt of one of the acting user's orders, oldest first.
#[utoipa::path(get, path = "/me/orders/{id}/payments", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), security(("bearer" = [])),
    responses((status = 200, body = [schemas::Payment]), OrderPaymentsErrors))]
async fn order_payments(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let payments = blocking(move || shop.payments_for_order(user, OrderId::new(id))).await?;
    Ok(Json(payments).into_response())
}

/// Every status change of one of the acting user's payments.
#[utoipa::path(get, path = "/me/payments/{id}/history", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), security(("bearer" = [])),
    responses((status = 200, body = [schemas::PaymentEvent]), PaymentHistoryErrors))]
async fn payment_history(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let history = blocking(move || shop.payment_history(user, PaymentId::new(id))).await?;
    Ok(Json(history).into_response())
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

/// Refunds some or all units of a paid order. Send an `Idempotency-Key`: a
/// repeat starts no second refund and returns the attempt the key started.
#[utoipa::path(post, path = "/me/orders/{id}/refunds", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    request_body = RefundRequest, security(("bearer" = [])),
    responses((status = 201, body = schemas::Refund), RefundErrors))]
async fn refund(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
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

/// Every refund attempt of one of the acting user's orders.
#[utoipa::path(get, path = "/me/orders/{id}/refunds", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), security(("bearer" = [])),
    responses((status = 200, body = [schemas::Refund]), RefundsErrors))]
async fn refunds(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let refunds = blocking(move || shop.refunds(user, OrderId::new(id))).await?;
    Ok(Json(refunds).into_response())
}

/// The acting user's top-ups, newest first.
#[utoipa::path(get, path = "/me/top-ups", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = schemas::PaymentPage), TopUpsErrors))]
async fn top_ups(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    let shop = state.shop.clone();
    let page = blocking(move || shop.top_ups(user, page)).await?;
    Ok(Json(page).into_response())
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

/// Gives money of a top-up back to the card it was paid with, while it is
/// still unspent in the balance: taken from the balance at once, cancelled
/// at the PG, and given back to the balance if the PG declines (402). Send
/// an `Idempotency-Key`: a repeat starts no second refund.
#[utoipa::path(post, path = "/me/top-ups/{id}/refunds", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    request_body = TopUpRefundRequest, security(("bearer" = [])),
    responses((status = 201, body = schemas::Refund), RefundTopUpErrors))]
async fn refund_top_up(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: TopUpRefundRequest = parse(&body)?;
    let amount = money(request.amount)?;
    write(&state, StatusCode::CREATED, key, move |shop| {
        shop.refund_top_up(user, PaymentId::new(id), amount, &request.reason)
    })
    .await
}

/// Every refund attempt of one of the acting user's top-ups.
#[utoipa::path(get, path = "/me/top-ups/{id}/refunds", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), security(("bearer" = [])),
    responses((status = 200, body = [schemas::Refund]), TopUpRefundsErrors))]
async fn top_up_refunds(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let refunds = blocking(move || shop.top_up_refunds(user, PaymentId::new(id))).await?;
    Ok(Json(refunds).into_response())
}

/// The acting user's cart, with line totals and the cart total.
#[utoipa::path(get, path = "/me/cart", security(("bearer" = [])),
    responses((status = 200, body = schemas::Cart), CartErrors))]
async fn cart(State(state): State<AppState>, Me(user): Me) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let cart = blocking(move || shop.cart(user)).await?;
    Ok(Json(cart).into_response())
}

/// A product to put in the cart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product": 1, "quantity": 2}))]
pub(crate) struct AddToCart {
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    #[serde(deserialize_with = "int")]
    product: i64,
    #[schema(minimum = 1, maximum = 99)]
    #[serde(deserialize_with = "int")]
    quantity: u32,
}

/// Adds a product to the cart (a product already there is a conflict).
#[utoipa::path(post, path = "/me/cart/items", request_body = AddToCart, security(("bearer" = [])),
    responses((status = 201, body = schemas::CartLine), AddToCartErrors))]
async fn add_to_cart(
    State(state): State<AppState>,
    Me(user): Me,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: AddToCart = parse(&body)?;
    let shop = state.shop.clone();
    let line =
        blocking(move || shop.add_to_cart(user, ProductId::new(request.product), request.quantity))
            .await?;
    Ok((StatusCode::CREATED, Json(line)).into_response())
}

/// A new quantity for a cart line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quantity": 3}))]
pub(crate) struct SetQuantity {
    #[schema(minimum = 1, maximum = 99)]
    #[serde(deserialize_with = "int")]
    quantity: u32,
}

/// Sets the quantity of one of the acting user's cart lines.
#[utoipa::path(patch, path = "/me/cart/items/{id}", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), request_body = SetQuantity,
    security(("bearer" = [])),
    responses((status = 200, body = schemas::CartLine), SetQuantityErrors))]
async fn set_cart_quantity(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SetQuantity = parse(&body)?;
    let shop = state.shop.clone();
    let line =
        blocking(move || shop.set_cart_quantity(user, CartItemId::new(id), request.quantity))
            .await?;
    Ok(Json(line).into_response())
}

/// Removes one of the acting user's cart lines.
#[utoipa::path(delete, path = "/me/cart/items/{id}", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)), security(("bearer" = [])),
    responses((status = 204, description = "removed"), RemoveFromCartErrors))]
async fn remove_from_cart(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let shop = state.shop.clone();
    blocking(move || shop.remove_from_cart(user, CartItemId::new(id))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A checkout, with an optional coupon.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"coupon": null}))]
pub(crate) struct Checkout {
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    #[serde(default, deserialize_with = "opt_int")]
    coupon: Option<i64>,
}

/// Places an order for the cart's lines and empties the cart. Send an
/// `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/cart/checkout", request_body = Checkout, security(("bearer" = [])),
    params(KeyHeader),
    responses((status = 201, body = schemas::Order), CheckoutErrors))]
async fn checkout(
    State(state): State<AppState>,
    Me(user): Me,
    KeyedBody { key, body }: KeyedBody,
) -> Result<Response, ApiError> {
    let request: Checkout = parse(&body)?;
    let coupon = request.coupon.map(CouponId::new);
    write(&state, StatusCode::CREATED, key, move |shop| {
        shop.checkout_cart(user, coupon)
    })
    .await
}

/// What a coupon takes off, as the API takes it: `{"kind": "fixed",
/// "amount": won}` or `{"kind": "percent", "percent": 1-100, "cap": won or
/// null}`, no other field. A plain struct rather than a tagged enum, so
/// that its integers are read exactly like every other (see [`int`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscountBody {
    kind: DiscountKind,
    #[serde(default, deserialize_with = "opt_int")]
    amount: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    percent: Option<u8>,
    #[serde(default, deserialize_with = "opt_int")]
    cap: Option<i64>,
}

/// The kinds of discount.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DiscountKind {
    Fixed,
    Percent,
}

impl DiscountBody {
    fn discount(self) -> Result<Discount, ApiError> {
        let fields = |what: &str| {
            ApiError::from(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                what,
            ))
        };
        Ok(match self {
            DiscountBody {
                kind: DiscountKind::Fixed,
                amount: Some(amount),
                percent: None,
                cap: None,
            } => Discount::Fixed {
                amount: money(amount)?,
            },
            DiscountBody {
                kind: DiscountKind::Percent,
                amount: None,
                percent: Some(percent),
                cap,
            } => Discount::Percent {
                percent,
                cap: cap.map(money).transpose()?,
            },
            DiscountBody {
                kind: DiscountKind::Fixed,
                ..
            } => return Err(fields("a fixed discount has `amount` and no other figure")),
            DiscountBody {
                kind: DiscountKind::Percent,
                ..
            } => {
                return Err(fields(
                    "a percent discount has `percent` and an optional `cap`, no `amount`",
                ));
            }
        })
    }
}

/// The latest a coupon's issue window may start: the year 3000, in UTC
/// milliseconds.
const LATEST_COUPON_START: i64 = 32_503_680_000_000;

/// The longest issue window or validity a coupon takes: 100 years.
const MAX_COUPON_SECS: i64 = 3_153_600_000;

/// A coupon offer (admin). It is issued from `issuable_from` (UTC
/// milliseconds) for `issuable_for_secs`; an issued coupon stays usable for
/// `valid_for_secs`. Durations rather than an end time, so that every
/// offer the schema allows is one the shop accepts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Welcome 10%", "discount": {"kind": "percent", "percent": 10, "cap": 5000},
    "quantity": 100, "issuable_from": 0, "issuable_for_secs": 3153600000_i64, "valid_for_secs": 604800,
    "min_order_total": 10000}))]
pub(crate) struct CreateCoupon {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    name: String,
    /// `{"kind": "fixed", "amount": won}` or `{"kind": "percent", "percent":
    /// 1-100, "cap": won or null}`.
    #[schema(value_type = Object)]
    discount: DiscountBody,
    #[schema(value_type = i64, minimum = 1, maximum = 4294967295_i64)]
    #[serde(deserialize_with = "int")]
    quantity: u32,
    /// UTC milliseconds, up to the year 3000.
    #[schema(minimum = 0, maximum = 32503680000000_i64)]
    #[serde(deserialize_with = "int")]
    issuable_from: i64,
    #[schema(minimum = 1, maximum = 3153600000_i64)]
    #[serde(deserialize_with = "int")]
    issuable_for_secs: i64,
    #[schema(minimum = 1, maximum = 3153600000_i64)]
    #[serde(deserialize_with = "int")]
    valid_for_secs: i64,
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    #[serde(deserialize_with = "int")]
    min_order_total: i64,
}

/// Creates a coupon offer (admin).
#[utoipa::path(post, path = "/admin/coupons", request_body = CreateCoupon, security(("bearer" = [])),
    responses((status = 201, body = schemas::Coupon), CreateCouponErrors))]
async fn create_coupon(
    State(state): State<AppState>,
    _: Admin,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateCoupon = parse(&body)?;
    let min_order_total = money(request.min_order_total)?;
    if !(0..=LATEST_COUPON_START).contains(&request.issuable_from) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "out_of_range",
            "issuable_from is a time in UTC milliseconds, from 0 to the year 3000",
        )
        .into());
    }
    for secs in [request.issuable_for_secs, request.valid_for_secs] {
        if !(1..=MAX_COUPON_SECS).contains(&secs) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "out_of_range",
                "issuable_for_secs and valid_for_secs are 1 to 3153600000 (100 years)",
            )
            .into());
        }
    }
    let new = NewCoupon {
        name: request.name,
        discount: request.discount.discount()?,
        quantity: request.quantity,
        issuable_from: Timestamp::from_millis(request.issuable_from),
        issuable_until: Timestamp::from_millis(request.issuable_from).saturating_add(
            Duration::from_secs(request.issuable_for_secs.unsigned_abs()),
        ),
        valid_for: Duration::from_secs(request.valid_for_secs.unsigned_abs()),
        min_order_total,
    };
    let shop = state.shop.clone();
    let coupon = blocking(move || shop.create_coupon(new)).await?;
    Ok((StatusCode::CREATED, Json(coupon)).into_response())
}

/// A coupon offer, with how many were issued.
#[utoipa::path(get, path = "/coupons/{id}", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)),
    responses((status = 200, body = schemas::Coupon), CouponErrors))]
async fn coupon(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let coupon = blocking(move || shop.coupon(CouponId::new(id))).await?;
    Ok(Json(coupon).into_response())
}

/// Issues a coupon to the acting user, first come first served. Send an
/// `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/coupons/{id}", params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64),
        KeyHeader),
    security(("bearer" = [])),
    responses((status = 201, body = schemas::UserCoupon), IssueCouponErrors))]
async fn issue_coupon(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
    KeyedBody { key, .. }: KeyedBody,
) -> Result<Response, ApiError> {
    write(&state, StatusCode::CREATED, key, move |shop| {
        shop.issue_coupon(user, CouponId::new(id))
    })
    .await
}

/// The coupons issued to the acting user, each with its state.
#[utoipa::path(get, path = "/me/coupons", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = schemas::UserCouponPage), MyCouponsErrors))]
async fn my_coupons(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    let shop = state.shop.clone();
    let page = blocking(move || shop.user_coupons(user, page)).await?;
    Ok(Json(page).into_response())
}

/// The window of a best-seller ranking.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BestSellersQuery {
    /// Calendar days, today included (1 to 30; default 3).
    #[param(minimum = 1, maximum = 30)]
    days: Option<u32>,
    /// How many products (1 to 100; default 5).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// Products ranked by units sold (paid, less refunded) in the last days.
#[utoipa::path(get, path = "/best-sellers", params(BestSellersQuery),
    responses((status = 200, body = [schemas::BestSeller]), BestSellersErrors))]
async fn best_sellers(
    State(state): State<AppState>,
    Query(query): Query<BestSellersQuery>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let ranking =
        blocking(move || shop.best_sellers(query.days.unwrap_or(3), query.limit.unwrap_or(5)))
            .await?;
    Ok(Json(ranking).into_response())
}

/// Where to read the event feed from.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// The last sequence number already read (0 for the start).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    after: Option<i64>,
    /// How many events (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The order event feed, in sequence order (admin).
#[utoipa::path(get, path = "/admin/events", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = [schemas::Event]), EventsErrors))]
async fn events(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    if query.after.is_some_and(|after| after < 0) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "out_of_range",
            "after is a sequence number, 0 or more",
        )
        .into());
    }
    let shop = state.shop.clone();
    let events = blocking(move || {
        shop.events(
            query.after.unwrap_or(0).unsigned_abs(),
            query.limit.unwrap_or(100),
        )
    })
    .await?;
    Ok(Json(events).into_response())
}

/// Checks every conservation law of the books (admin). Reads every row.
#[utoipa::path(get, path = "/admin/audit", security(("bearer" = [])),
    responses((status = 200, body = schemas::AuditReport), AuditErrors))]
async fn audit(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let report = blocking(move || shop.audit()).await?;
    Ok(Json(report).into_response())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_may_be_written_with_a_zero_fraction_but_not_another() {
        let charge: Charge = serde_json::from_str(r#"{"amount": 6.0}"#).unwrap();
        assert_eq!(charge.amount, 6);
        assert!(serde_json::from_str::<Charge>(r#"{"amount": 6.5}"#).is_err());
        let order: PlaceOrder =
            serde_json::from_str(r#"{"lines": {"2": 1.0, "1": 3}, "coupon": 3.0}"#).unwrap();
        let lines: Vec<(i64, u32)> = order
            .lines
            .0
            .iter()
            .map(|l| (l.product.get(), l.quantity))
            .collect();
        assert_eq!(lines, [(2, 1), (1, 3)], "in the order given");
        assert_eq!(order.coupon, Some(3));
        assert!(serde_json::from_str::<PlaceOrder>(r#"{"lines": {"x": 1}}"#).is_err());
        assert!(serde_json::from_str::<PlaceOrder>(r#"{"lines": {"1": -1}}"#).is_err());
    }
}
