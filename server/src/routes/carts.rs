//! The acting user's cart and its checkout.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use liteshop::{CartItemId, CouponId, ProductId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Me;
use crate::body::{int, opt_int, parse};
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::KeyedBody;
use crate::problem::ApiError;
use liteshop::ErrorKind::{Conflict, InvalidInput, NotFound};

use super::{IdPath, KeyHeader, answer, blocking, write};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(cart))
        .routes(routes!(add_to_cart))
        .routes(routes!(set_cart_quantity, remove_from_cart))
        .routes(routes!(checkout))
}

contract!(
    /// The error responses of `cart`.
    CartErrors = Contract::new(Auth::User)
);

/// The acting user's cart, with line totals and the cart total.
#[utoipa::path(get, path = "/me/cart", security(("bearer" = [])),
    responses((status = 200, body = liteshop::Cart), CartErrors))]
async fn cart(State(state): State<AppState>, Me(user): Me) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.cart(user)).await
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

contract!(
    /// The error responses of `add_to_cart`.
    AddToCartErrors = Contract::new(Auth::User).body().errors(&[InvalidInput, NotFound, Conflict])
);

/// Adds a product to the cart (a product already there is a conflict).
#[utoipa::path(post, path = "/me/cart/items", request_body = AddToCart, security(("bearer" = [])),
    responses((status = 201, body = liteshop::CartLine), AddToCartErrors))]
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

contract!(
    /// The error responses of `set_cart_quantity`.
    SetQuantityErrors = Contract::new(Auth::User).body().params().errors(&[InvalidInput, NotFound])
);

/// Sets the quantity of one of the acting user's cart lines.
#[utoipa::path(patch, path = "/me/cart/items/{id}", params(IdPath), request_body = SetQuantity,
    security(("bearer" = [])),
    responses((status = 200, body = liteshop::CartLine), SetQuantityErrors))]
async fn set_cart_quantity(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SetQuantity = parse(&body)?;
    let shop = state.shop.clone();
    let line =
        blocking(move || shop.set_cart_quantity(user, CartItemId::new(id), request.quantity))
            .await?;
    Ok(Json(line).into_response())
}

contract!(
    /// The error responses of `remove_from_cart`.
    RemoveFromCartErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);

/// Removes one of the acting user's cart lines.
#[utoipa::path(delete, path = "/me/cart/items/{id}", params(IdPath), security(("bearer" = [])),
    responses((status = 204, description = "removed"), RemoveFromCartErrors))]
async fn remove_from_cart(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
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

contract!(
    /// The error responses of `checkout`.
    CheckoutErrors = Contract::new(Auth::User).body().key().errors(&[InvalidInput, NotFound, Conflict])
);

/// Places an order for the cart's lines and empties the cart. Send an
/// `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/cart/checkout", request_body = Checkout, security(("bearer" = [])),
    params(KeyHeader),
    responses((status = 201, body = liteshop::Order), CheckoutErrors))]
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
