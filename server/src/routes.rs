//! The routes: thin handlers that parse, authenticate, and run one `Shop`
//! call on the blocking pool.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use liteshop::{
    CouponId, Cursor, IdempotencyKey, Keyed, Money, NewProduct, OrderId, OrderLine, OrderRequest,
    PageRequest, PaymentId, ProductId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Admin, Me};
use crate::problem::{ApiError, Problem};

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
        .routes(routes!(products))
        .routes(routes!(product))
        .routes(routes!(create_product))
        .routes(routes!(restock))
        .routes(routes!(set_price))
        .routes(routes!(place_order, orders))
        .routes(routes!(order))
        .routes(routes!(cancel_order))
        .routes(routes!(pay))
        .routes(routes!(payment))
}

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

/// Parses a JSON body, answering malformed JSON or wrong types with a 400
/// problem rather than axum's plain-text rejection.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::from(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            err.to_string(),
        ))
    })
}

/// The `Idempotency-Key` header, if any, with a fingerprint of the request
/// (method, path and body), so the same key with another request is caught.
fn idempotency_key(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &Bytes,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = key.to_str().map_err(|_| {
        ApiError::from(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "the Idempotency-Key header is not printable ASCII",
        ))
    })?;
    let mut digest = Sha256::new();
    digest.update(method.as_bytes());
    digest.update(b" ");
    digest.update(path.as_bytes());
    digest.update(b"\n");
    digest.update(body);
    Ok(Some(IdempotencyKey::new(
        key,
        hex::encode(digest.finalize()),
    )))
}

/// A keyed write's response: its status and body the first time and on
/// every repeat, which also carries `Idempotent-Replayed: true`.
fn keyed<T: Serialize>(status: StatusCode, result: Keyed<T>) -> Response {
    let replayed = result.is_replay();
    let mut response = (status, Json(result.to_json())).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn money(won: i64) -> Result<Money, ApiError> {
    Money::new(won).map_err(ApiError::from)
}

/// A page of a listing: `limit` items (1–100, default 20) after `after`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// How many items (1 to 100).
    limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(value_type = Option<i64>)]
    after: Option<Cursor>,
}

impl PageQuery {
    fn request(&self) -> PageRequest {
        let limit = self.limit.unwrap_or(20);
        match self.after {
            Some(cursor) => PageRequest::after(cursor, limit),
            None => PageRequest::first(limit),
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
    (status = 200, description = "ready"),
    (status = 503, description = "the database does not answer", body = Problem),
))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let shop = state.shop.clone();
    blocking(move || shop.products(PageRequest::first(1)).map(drop)).await?;
    Ok("ready")
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Kim"}))]
pub(crate) struct CreateUser {
    /// 1 to 100 characters of one line.
    name: String,
}

/// A user, with the bearer token that acts as them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedUser {
    #[schema(value_type = Object)]
    user: liteshop::User,
    /// `Authorization: Bearer <token>` for the `/me` routes.
    token: String,
}

/// Creates a user and returns their token (shown once; it can be derived
/// again only with the server's secret).
#[utoipa::path(post, path = "/users", request_body = CreateUser, responses(
    (status = 201, body = CreatedUser),
    (status = 400, body = Problem),
))]
async fn create_user(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request: CreateUser = parse(&body)?;
    let shop = state.shop.clone();
    let user = blocking(move || shop.create_user(&request.name)).await?;
    let token = state.secrets.user_token(user.id);
    Ok((StatusCode::CREATED, Json(CreatedUser { user, token })).into_response())
}

/// The acting user.
#[utoipa::path(get, path = "/me", security(("bearer" = [])), responses(
    (status = 200, body = Object),
    (status = 401, body = Problem),
))]
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
    (status = 200, body = Balance),
    (status = 401, body = Problem),
))]
async fn balance(State(state): State<AppState>, Me(user): Me) -> Result<Json<Balance>, ApiError> {
    let shop = state.shop.clone();
    let balance = blocking(move || shop.balance(user)).await?;
    Ok(Json(Balance { balance }))
}

/// Money to add to the balance.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"amount": 10000}))]
pub(crate) struct Charge {
    /// Won, at least 1.
    amount: i64,
}

/// Charges the acting user's balance. Send an `Idempotency-Key` to make a
/// retry safe: a repeat returns the first response and charges nothing.
#[utoipa::path(post, path = "/me/balance/charge", request_body = Charge,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    responses(
        (status = 200, body = Balance),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 422, description = "the key was used for another request", body = Problem),
    ))]
async fn charge(
    State(state): State<AppState>,
    Me(user): Me,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers, "POST", "/me/balance/charge", &body)?;
    let request: Charge = parse(&body)?;
    let amount = money(request.amount)?;
    let shop = state.shop.clone();
    let result = blocking(move || match key {
        Some(key) => shop.charge_keyed(user, amount, &key),
        None => shop.charge(user, amount).map(Keyed::Fresh),
    })
    .await?;
    // The library stores the new balance; the response wraps it, the same
    // way the first time and on a repeat.
    let wrapped = match result {
        Keyed::Fresh(balance) => Keyed::Fresh(serde_json::json!({ "balance": balance })),
        Keyed::Replayed(balance) => Keyed::Replayed(serde_json::json!({ "balance": balance })),
    };
    Ok(keyed(StatusCode::OK, wrapped))
}

/// The acting user's ledger, newest first.
#[utoipa::path(get, path = "/me/ledger", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn ledger(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let page = blocking(move || shop.ledger(user, page.request())).await?;
    Ok(Json(page).into_response())
}

/// The catalogue, in id order.
#[utoipa::path(get, path = "/products", params(PageQuery),
    responses((status = 200, body = Object), (status = 400, body = Problem)))]
async fn products(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let page = blocking(move || shop.products(page.request())).await?;
    Ok(Json(page).into_response())
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn product(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let product = blocking(move || shop.product(ProductId::new(id))).await?;
    Ok(Json(product).into_response())
}

/// A product to add to the catalogue.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Green tea", "price": 12000, "stock": 10}))]
pub(crate) struct CreateProduct {
    name: String,
    /// Won.
    price: i64,
    stock: u32,
}

/// Adds a product (admin).
#[utoipa::path(post, path = "/admin/products", request_body = CreateProduct,
    security(("bearer" = [])),
    responses((status = 201, body = Object), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
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
#[schema(example = json!({"quantity": 5}))]
pub(crate) struct Restock {
    quantity: u32,
}

/// Adds stock (admin).
#[utoipa::path(post, path = "/admin/products/{id}/restock", params(("id" = i64, Path)),
    request_body = Restock, security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
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
#[schema(example = json!({"price": 11000}))]
pub(crate) struct SetPrice {
    /// Won.
    price: i64,
}

/// Sets a product's price (admin); orders placed keep theirs.
#[utoipa::path(put, path = "/admin/products/{id}/price", params(("id" = i64, Path)),
    request_body = SetPrice, security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
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

/// One line of an order.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Line {
    product: i64,
    quantity: u32,
}

/// An order to place, with an optional coupon.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"lines": [{"product": 1, "quantity": 2}], "coupon": null}))]
pub(crate) struct PlaceOrder {
    lines: Vec<Line>,
    coupon: Option<i64>,
}

/// Places an order for the acting user; its stock is reserved at once.
/// Send an `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/orders", request_body = PlaceOrder, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    responses((status = 201, body = Object), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn place_order(
    State(state): State<AppState>,
    Me(user): Me,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers, "POST", "/me/orders", &body)?;
    let request: PlaceOrder = parse(&body)?;
    let order = OrderRequest {
        lines: request
            .lines
            .iter()
            .map(|l| OrderLine::new(ProductId::new(l.product), l.quantity))
            .collect(),
        coupon: request.coupon.map(CouponId::new),
    };
    let shop = state.shop.clone();
    let result = blocking(move || match key {
        Some(key) => shop.place_order_keyed(user, order, &key),
        None => shop.place_order(user, order).map(Keyed::Fresh),
    })
    .await?;
    Ok(keyed(StatusCode::CREATED, result))
}

/// The acting user's orders, newest first.
#[utoipa::path(get, path = "/me/orders", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn orders(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let page = blocking(move || shop.orders(user, page.request())).await?;
    Ok(Json(page).into_response())
}

/// One of the acting user's orders (another user's is not found).
#[utoipa::path(get, path = "/me/orders/{id}", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem)))]
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
#[utoipa::path(post, path = "/me/orders/{id}/cancel", params(("id" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn cancel_order(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = format!("/me/orders/{id}/cancel");
    let key = idempotency_key(&headers, "POST", &path, &Bytes::new())?;
    let shop = state.shop.clone();
    let result = blocking(move || match key {
        Some(key) => shop.cancel_order_keyed(user, OrderId::new(id), &key),
        None => shop.cancel_order(user, OrderId::new(id)).map(Keyed::Fresh),
    })
    .await?;
    Ok(keyed(StatusCode::OK, result))
}

/// Pays a pending order through the payment gateway. A retry is safe
/// without a key: a paid order cannot be paid again (409).
#[utoipa::path(post, path = "/me/orders/{id}/pay", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 202, description = "no definite answer yet; reconciliation settles it", body = Problem),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 402, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
async fn pay(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let payment = blocking(move || shop.pay(user, OrderId::new(id))).await?;
    Ok(Json(payment).into_response())
}

/// One of the acting user's payments.
#[utoipa::path(get, path = "/me/payments/{id}", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem)))]
async fn payment(
    State(state): State<AppState>,
    Me(user): Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let payment = blocking(move || shop.payment(user, PaymentId::new(id))).await?;
    Ok(Json(payment).into_response())
}
