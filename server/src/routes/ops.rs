//! The operator's feed and audit.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Admin;
use crate::contract::{Auth, Contract, contract};
use crate::problem::{ApiError, Problem};
use liteshop::ErrorKind::InvalidInput;

use super::{answer, blocking};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router.routes(routes!(events)).routes(routes!(audit))
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

contract!(
    /// The error responses of `events`.
    EventsErrors = Contract::new(Auth::Admin).params().errors(&[InvalidInput])
);

/// The order event feed, in sequence order (admin).
#[utoipa::path(get, path = "/admin/events", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = [liteshop::Event]), EventsErrors))]
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

contract!(
    /// The error responses of `audit`.
    AuditErrors = Contract::new(Auth::Admin)
);

/// Checks every conservation law of the books (admin). Reads every row.
#[utoipa::path(get, path = "/admin/audit", security(("bearer" = [])),
    responses((status = 200, body = liteshop::AuditReport), AuditErrors))]
async fn audit(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.audit()).await
}
