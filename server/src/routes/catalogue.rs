//! The catalogue: products, an operator's stock, prices and tax-free flag,
//! and the best sellers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use liteshop::{NewProduct, ProductId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Admin;
use crate::body::{int, parse};
use crate::contract::{Auth, Contract, contract};
use crate::problem::ApiError;
use liteshop::ErrorKind::{Conflict, InvalidInput, NotFound};

use super::{IdPath, PageQuery, answer, blocking, money};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(products))
        .routes(routes!(product))
        .routes(routes!(create_product))
        .routes(routes!(restock))
        .routes(routes!(set_price))
        .routes(routes!(set_tax_free))
        .routes(routes!(best_sellers))
}

contract!(
    /// The error responses of `products`.
    ProductsErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput])
);

/// The catalogue, in id order.
#[utoipa::path(get, path = "/products", params(PageQuery),
    responses((status = 200, body = liteshop::Page<liteshop::Product>), ProductsErrors))]
async fn products(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    answer(&state, move |shop| shop.products(page)).await
}

contract!(
    /// The error responses of `product`.
    ProductErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput, NotFound])
);

/// One product.
#[utoipa::path(get, path = "/products/{id}", params(IdPath),
    responses((status = 200, body = liteshop::Product), ProductErrors))]
async fn product(
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.product(ProductId::new(id))).await
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

contract!(
    /// The error responses of `create_product`.
    CreateProductErrors = Contract::new(Auth::Admin).body().errors(&[InvalidInput])
);

/// Adds a product (admin).
#[utoipa::path(post, path = "/admin/products", request_body = CreateProduct,
    security(("bearer" = [])),
    responses((status = 201, body = liteshop::Product), CreateProductErrors))]
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

contract!(
    /// The error responses of `restock`.
    RestockErrors = Contract::new(Auth::Admin).body().params().errors(&[InvalidInput, NotFound, Conflict])
);

/// Adds stock (admin).
#[utoipa::path(post, path = "/admin/products/{id}/restock", params(IdPath),
    request_body = Restock, security(("bearer" = [])),
    responses((status = 200, body = liteshop::Product), RestockErrors))]
async fn restock(
    State(state): State<AppState>,
    _: Admin,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: Restock = parse(&body)?;
    answer(&state, move |shop| {
        shop.restock(ProductId::new(id), request.quantity)
    })
    .await
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

contract!(
    /// The error responses of `set_price`.
    SetPriceErrors = Contract::new(Auth::Admin).body().params().errors(&[InvalidInput, NotFound])
);

/// Sets a product's price (admin); orders placed keep theirs.
#[utoipa::path(put, path = "/admin/products/{id}/price", params(IdPath),
    request_body = SetPrice, security(("bearer" = [])),
    responses((status = 200, body = liteshop::Product), SetPriceErrors))]
async fn set_price(
    State(state): State<AppState>,
    _: Admin,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SetPrice = parse(&body)?;
    let price = money(request.price)?;
    answer(&state, move |shop| {
        shop.set_price(ProductId::new(id), price)
    })
    .await
}

/// Whether a product is sold free of VAT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tax_free": true}))]
pub(crate) struct SetTaxFree {
    tax_free: bool,
}

contract!(
    /// The error responses of `set_tax_free`.
    SetTaxFreeErrors = Contract::new(Auth::Admin).body().params().errors(&[InvalidInput, NotFound])
);

/// Marks a product tax-free (면세) or not (admin): orders placed from then
/// on send their tax-free lines' share of each PG amount as the PG's
/// `taxFreeAmount`; orders placed before keep what it was.
#[utoipa::path(put, path = "/admin/products/{id}/tax-free", params(IdPath),
    request_body = SetTaxFree, security(("bearer" = [])),
    responses((status = 200, body = liteshop::Product), SetTaxFreeErrors))]
async fn set_tax_free(
    State(state): State<AppState>,
    _: Admin,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SetTaxFree = parse(&body)?;
    answer(&state, move |shop| {
        shop.set_tax_free(ProductId::new(id), request.tax_free)
    })
    .await
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

contract!(
    /// The error responses of `best_sellers`.
    BestSellersErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput])
);

/// Products ranked by units sold (paid, less refunded) in the last days.
#[utoipa::path(get, path = "/best-sellers", params(BestSellersQuery),
    responses((status = 200, body = [liteshop::BestSeller]), BestSellersErrors))]
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
