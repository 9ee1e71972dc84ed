//! A FAKE stand-in for the PG's widget, for a shop that runs on the
//! in-process [`FakeGateway`] (see [`crate::Config::with_fake_widget`]).
//!
//! With a real PG the customer's browser runs the PG's widget
//! (`requestPayment({orderId, amount, orderName, customerKey})` with
//! Toss Payments) and the PG redirects back with `paymentKey`, `orderId`
//! and `amount`. Here one request plays both: it authorises the payment at
//! the fake and answers what the redirect would carry, which the client
//! then sends to `POST /me/payments/{id}/confirm`.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use liteshop::{FakeGateway, Money};
use serde::Deserialize;

use crate::body::{int, parse};
use crate::problem::ApiError;

/// What the client's widget would be asked for: a started payment's
/// `pg_order_id` and `pg_amount`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WidgetStep {
    pg_order_id: String,
    #[serde(deserialize_with = "int")]
    amount: i64,
}

/// `POST /fake-pg/widget`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(pg: FakeGateway) -> Router<S> {
    Router::new().route(
        "/fake-pg/widget",
        post(move |body: Bytes| widget(pg.clone(), body)),
    )
}

async fn widget(pg: FakeGateway, body: Bytes) -> Result<Response, ApiError> {
    let step: WidgetStep = parse(&body)?;
    let amount = Money::new(step.amount)?;
    tracing::warn!(
        pg_order_id = %step.pg_order_id,
        %amount,
        "FAKE PG widget step: no money moved"
    );
    let redirect = pg.pay_in_widget(&step.pg_order_id, amount);
    let mut response = (StatusCode::OK, axum::Json(redirect)).into_response();
    response
        .headers_mut()
        .insert("x-fake-pg", HeaderValue::from_static("true"));
    Ok(response)
}
