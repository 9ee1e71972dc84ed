//! Orders: placing, listing, reading and cancelling.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use liteshop::{CouponId, OrderId, OrderRequest};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Me;
use crate::body::{Lines, opt_int, parse};
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::KeyedBody;
use crate::problem::ApiError;
use liteshop::ErrorKind::{Conflict, InvalidInput, NotFound};

use super::{IdPath, KeyHeader, PageQuery, answer, write};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(place_order, orders))
        .routes(routes!(order))
        .routes(routes!(cancel_order))
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

contract!(
    /// The error responses of `place_order`.
    PlaceOrderErrors = Contract::new(Auth::User).body().key().errors(&[InvalidInput, NotFound, Conflict])
);

/// Places an order for the acting user; its stock is reserved at once.
/// Send an `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/orders", request_body = PlaceOrder, security(("bearer" = [])),
    params(KeyHeader),
    responses((status = 201, body = liteshop::Order), PlaceOrderErrors))]
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

contract!(
    /// The error responses of `orders`.
    OrdersErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);

/// The acting user's orders, newest first.
#[utoipa::path(get, path = "/me/orders", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = liteshop::Page<liteshop::Order>), OrdersErrors))]
async fn orders(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    answer(&state, move |shop| shop.orders(user, page)).await
}

contract!(
    /// The error responses of `order`.
    OrderErrors = Contract::new(Auth::User).params().errors(&[InvalidInput, NotFound])
);

/// One of the acting user's orders (another user's is not found).
#[utoipa::path(get, path = "/me/orders/{id}", params(IdPath), security(("bearer" = [])),
    responses((status = 200, body = liteshop::Order), OrderErrors))]
async fn order(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.order(user, OrderId::new(id))).await
}

contract!(
    /// The error responses of `cancel_order`.
    CancelErrors = Contract::new(Auth::User).key().params().errors(&[InvalidInput, NotFound, Conflict])
);

/// Cancels a pending order and releases its stock. Send an
/// `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/orders/{id}/cancel", params(IdPath, KeyHeader),
    security(("bearer" = [])),
    responses((status = 200, body = liteshop::Order), CancelErrors))]
async fn cancel_order(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    KeyedBody { key, .. }: KeyedBody,
) -> Result<Response, ApiError> {
    write(&state, StatusCode::OK, key, move |shop| {
        shop.cancel_order(user, OrderId::new(id))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_may_be_written_with_a_zero_fraction_but_not_another() {
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
