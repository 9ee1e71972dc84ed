//! The routes: thin handlers that parse, authenticate, and run one `Shop`
//! call on the blocking pool.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use liteshop::{Cursor, IdempotencyKey, Keyed, Money, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::keyed;
use crate::problem::{ApiError, Problem};

mod accounts;
mod carts;
mod catalogue;
mod coupons;
mod ops;
mod orders;
mod payments;
mod refunds;

/// Every route, for [`crate::router`] and [`crate::openapi`]: the
/// health checks here, each resource's in its own file.
pub(crate) fn all(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let router = router.routes(routes!(healthz)).routes(routes!(readyz));
    [
        accounts::routes,
        carts::routes,
        catalogue::routes,
        coupons::routes,
        ops::routes,
        orders::routes,
        payments::routes,
        refunds::routes,
    ]
    .into_iter()
    .fold(router, |router, routes| routes(router))
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

/// Runs `read` (or a plain write) on the blocking pool and answers its
/// value as JSON with 200.
async fn answer<T: Serialize + Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&liteshop::Shop) -> liteshop::Result<T> + Send + 'static,
) -> Result<Response, ApiError> {
    let shop = state.shop.clone();
    let value = blocking(move || read(&shop)).await?;
    Ok(Json(value).into_response())
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

/// The `{id}` of a route about one thing (an order, a payment, …): its
/// schema, and what the handler reads (`Path<IdPath>`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    id: i64,
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

contract!(
    /// The error responses of `readyz`.
    ReadyErrors = Contract::new(Auth::Public)
);

/// The database answers.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"), ReadyErrors))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let shop = state.shop.clone();
    blocking(move || shop.products(PageRequest::first(1)).map(drop)).await?;
    Ok("ready")
}
