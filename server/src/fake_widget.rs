//! A FAKE stand-in for the PG's widget, for a shop that runs on the
//! in-process [`FakeGateway`] (see [`crate::Config::with_fake_widget`]).
//!
//! With a real PG the customer's browser runs the PG's widget
//! (`requestPayment({orderId, amount, orderName, customerKey})` with
//! Toss Payments) and the PG redirects back with `paymentKey`, `orderId`
//! and `amount`. Here one request plays both: it authorises the payment at
//! the fake and answers what the redirect would carry, which the client
//! then sends to `POST /me/payments/{id}/confirm`.
//!
//! For a browser (the storefront's "continue to the payment gateway"),
//! `GET /fake-pg/widget?orderId&amount&orderName&successUrl&failUrl` is a
//! page that plays the widget: "pay by card" and "pay by bank transfer"
//! authorise the payment at the fake and send the browser to `successUrl`
//! with `paymentType`, `orderId`, `paymentKey` and `amount`; "close"
//! sends it to `failUrl` with `code=PAY_PROCESS_CANCELED`, `message` and
//! `orderId` — Toss's redirects (docs.tosspayments.com/guides/v2/
//! payment-widget/integration). It redirects wherever it is told to: it is
//! a fake, for a demo on one machine.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json};
use liteshop::{FakeGateway, Money};
use maud::{DOCTYPE, html};
use serde::Deserialize;

use crate::body::{int, parse};
use crate::problem::{ApiError, Problem};

/// What the client's widget would be asked for: a started payment's
/// `pg_order_id` and `pg_amount`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WidgetStep {
    pg_order_id: String,
    #[serde(deserialize_with = "int")]
    amount: i64,
}

/// `POST /fake-pg/widget` (JSON), `GET /fake-pg/widget` (the page) and
/// `POST /fake-pg/widget/pay` (its buttons).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(pg: FakeGateway) -> Router<S> {
    let for_page = pg.clone();
    Router::new()
        .route(
            "/fake-pg/widget",
            post(move |body: Bytes| widget(pg.clone(), body)).get(page),
        )
        .route(
            "/fake-pg/widget/pay",
            post(move |form: Form<Choice>| choose(for_page.clone(), form.0)),
        )
}

/// What the storefront sends the browser to the widget with: Toss's
/// `requestPayment` parameters.
#[derive(Debug, Deserialize)]
struct Request {
    #[serde(default, rename = "orderId")]
    order_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default, rename = "orderName")]
    order_name: String,
    #[serde(default, rename = "successUrl")]
    success_url: String,
    #[serde(default, rename = "failUrl")]
    fail_url: String,
}

/// A button of the widget page: `card`, `transfer` or `close`, with the
/// request it was shown for.
#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    choice: String,
    #[serde(flatten)]
    request: Request,
}

/// The widget page: the payment, and a button for each way it can end.
async fn page(Query(request): Query<Request>) -> Response {
    let hidden = |name: &'static str, value: &str| {
        html! { input type="hidden" name=(name) value=(value); }
    };
    let fields = html! {
        (hidden("orderId", &request.order_id))
        (hidden("amount", &request.amount))
        (hidden("orderName", &request.order_name))
        (hidden("successUrl", &request.success_url))
        (hidden("failUrl", &request.fail_url))
    };
    let button = |choice: &'static str, label: &'static str| {
        html! {
            form method="post" action="/fake-pg/widget/pay" {
                (fields)
                input type="hidden" name="choice" value=(choice);
                button type="submit" id=(choice) { (label) }
            }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "FAKE payment gateway" } }
            body {
                h1 { "FAKE payment gateway — no money moves" }
                p { "Pay " strong id="amount" { (request.amount) " won" } " for " (request.order_name) }
                (button("card", "Pay by card"))
                (button("transfer", "Pay by bank transfer"))
                (button("close", "Close"))
            }
        }
    };
    let mut response = axum::response::Html(markup.into_string()).into_response();
    response
        .headers_mut()
        .insert("x-fake-pg", HeaderValue::from_static("true"));
    response
}

/// A button pressed: authorise and go to `successUrl`, or go to `failUrl`.
async fn choose(pg: FakeGateway, choice: Choice) -> Result<Response, ApiError> {
    let request = choice.request;
    let back = |url: &str, pairs: &[(&str, String)]| {
        let separator = if url.contains('?') { '&' } else { '?' };
        let to = format!("{url}{separator}{}", crate::storefront::url_query(pairs));
        axum::response::Redirect::to(&to).into_response()
    };
    if choice.choice == "close" {
        return Ok(back(
            &request.fail_url,
            &[
                ("code", "PAY_PROCESS_CANCELED".to_owned()),
                (
                    "message",
                    "The customer closed the payment window.".to_owned(),
                ),
                ("orderId", request.order_id),
            ],
        ));
    }
    let Ok(amount) = request.amount.parse::<i64>() else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_amount",
            "amount is not a number",
        )
        .into());
    };
    let amount = Money::new(amount)?;
    tracing::warn!(pg_order_id = %request.order_id, %amount, "FAKE PG widget page: no money moved");
    let redirect = if choice.choice == "transfer" {
        pg.pay_in_widget_by_transfer(
            &request.order_id,
            amount,
            std::time::Duration::from_secs(7 * 24 * 3_600),
        )
    } else {
        pg.pay_in_widget(&request.order_id, amount)
    };
    Ok(back(
        &request.success_url,
        &[
            ("paymentType", "NORMAL".to_owned()),
            ("orderId", redirect.pg_order_id),
            ("paymentKey", redirect.payment_key),
            ("amount", redirect.amount.won().to_string()),
        ],
    ))
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
    let mut response = (StatusCode::OK, Json(redirect)).into_response();
    response
        .headers_mut()
        .insert("x-fake-pg", HeaderValue::from_static("true"));
    Ok(response)
}
