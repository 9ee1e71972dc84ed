//! The operator's console at `/console`: server-rendered HTML, no
//! JavaScript, every asset inside the binary.
//!
//! - **Sign in** with the admin token: a form that sets an `HttpOnly`,
//!   `SameSite=Strict` session cookie signed with the token secret, valid
//!   for eight hours ([`SESSION_HOURS`]); a new admin token or token secret
//!   ends every session. A user's token never opens it.
//! - Every state-changing button (reconcile, sign out) is a POST carrying a
//!   CSRF token derived from the session, which another site cannot know;
//!   its handler takes a [`Posted`], which checks the token before it runs.
//! - Every answer carries a `Content-Security-Policy` that allows only the
//!   console's own stylesheet: no script, no frame, no outside request.
//!
//! Pages: **Books** (every audit law, pass or fail, with its figures),
//! **Money in flight** (unsettled payments and refunds, those past
//! `review_after` marked for a person, a button that runs one
//! reconciliation round), **Sales** (best sellers for 1–30 days as an
//! inline SVG bar chart), **Orders** (one order with its lines, payments,
//! refunds, history and events; a user's orders) and **Feed** (each
//! consumer's cursor and lag).

pub(crate) mod format;
mod pages;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use liteshop::{Clock, OrderId, PageRequest, SystemClock, UserId};
use serde::Deserialize;

use crate::AppState;

/// How long a console session lasts.
pub(crate) const SESSION_HOURS: i64 = 8;

/// The session cookie's name.
const COOKIE: &str = "liteshop_console";

/// The console's routes, to merge into the API's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/books", get(books))
        .route("/console/in-flight", get(in_flight))
        .route("/console/in-flight/reconcile", post(reconcile))
        .route("/console/sales", get(sales))
        .route("/console/orders", get(orders))
        .route("/console/feed", get(feed))
        .route("/console/style.css", get(style))
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers of every console (and storefront) answer: only the page's
/// own stylesheet and images may load, nothing may frame it, nothing is
/// cached.
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A signed-in operator: the session from the cookie, and its CSRF token.
pub(crate) struct Operator {
    csrf: String,
    session: String,
}

/// A console page's operator: a request without a valid session gets the
/// sign-in page instead.
impl axum::extract::FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Operator, Response> {
        Operator::of(state, &parts.headers).ok_or_else(signed_out)
    }
}

impl Operator {
    /// The operator of a request, if its cookie holds a valid session.
    fn of(state: &AppState, headers: &HeaderMap) -> Option<Operator> {
        let session = cookie(headers, COOKIE)?;
        let now = SystemClock.now().as_millis();
        state
            .secrets
            .console_session_valid(&session, now)
            .then(|| Operator {
                csrf: state.secrets.csrf_token(&session),
                session,
            })
    }
}

/// The operator of a console POST whose form carried this session's CSRF
/// token: a handler that takes it cannot run on a forged form, which gets
/// the 403 page instead (a request without a valid session, the sign-in
/// page). Every state-changing console route takes one.
pub(crate) struct Posted(Operator);

impl axum::extract::FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Posted, Response> {
        let (operator, form): (Operator, Csrf) = signed_in_form(request, state).await?;
        if !state.secrets.csrf_valid(&operator.session, &form.csrf) {
            return Err(forged());
        }
        Ok(Posted(operator))
    }
}

/// The signed-in `who` of a POST (its rejection, if not) and its form: what
/// a console or storefront `Posted` reads before it checks the form's CSRF
/// token against `who`'s session.
pub(crate) async fn signed_in_form<S, P, T>(
    request: axum::extract::Request,
    state: &S,
) -> Result<(P, T), Response>
where
    S: Send + Sync,
    P: axum::extract::FromRequestParts<S, Rejection = Response>,
    T: serde::de::DeserializeOwned,
{
    use axum::extract::FromRequest;
    let (mut parts, body) = request.into_parts();
    let who = P::from_request_parts(&mut parts, state).await?;
    let request = axum::extract::Request::from_parts(parts, body);
    let Form(form) = Form::<T>::from_request(request, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((who, form))
}

/// The value of cookie `name` in a request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The answer to a request without a valid session: the sign-in page.
fn signed_out() -> Response {
    (StatusCode::UNAUTHORIZED, pages::sign_in(None)).into_response()
}

/// Runs a `Shop` read on the blocking pool; a failure is a page that says so.
async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&liteshop::Shop) -> liteshop::Result<T> + Send + 'static,
) -> Result<T, Refusal> {
    let shop = state.shop.clone();
    match tokio::task::spawn_blocking(move || f(&shop)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            let status = crate::problem::status(&err);
            Err((status, pages::failure(&err.to_string()))
                .into_response()
                .into())
        }
        Err(_) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::failure("internal error"),
        )
            .into_response()
            .into()),
    }
}

/// The page a handler answers instead of going on: a refusal, a bad form
/// or path, a failure. Boxed, so a `Result` of it stays small.
pub(crate) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(page: Response) -> Refusal {
        Refusal(Box::new(page))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// What a page's handler answers: its page, or the page of a refusal.
pub(crate) type Answer = Result<Response, Refusal>;

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match Operator::of(&state, &headers) {
        Some(_) => Redirect::to("/console/books").into_response(),
        None => pages::sign_in(None).into_response(),
    }
}

async fn sign_in_page() -> Response {
    pages::sign_in(None).into_response()
}

/// The sign-in form.
#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
}

async fn sign_in(State(state): State<AppState>, Form(form): Form<SignIn>) -> Response {
    if !state.secrets.is_admin(form.token.trim()) {
        return (
            StatusCode::UNAUTHORIZED,
            pages::sign_in(Some("That is not the admin token.")),
        )
            .into_response();
    }
    let expires = SystemClock.now().as_millis() + SESSION_HOURS * 3_600_000;
    let session = state.secrets.console_session(expires);
    let cookie = format!(
        "{COOKIE}={session}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_HOURS * 3_600
    );
    let mut response = Redirect::to("/console/books").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A form whose only field is the CSRF token (missing: refused as forged).
#[derive(Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(_: Posted) -> Response {
    let mut response = Redirect::to("/console").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "liteshop_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// The answer to a POST whose CSRF token is missing or not this session's.
fn forged() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::failure("This form did not come from this console: reload the page and try again."),
    )
        .into_response()
}

async fn books(State(state): State<AppState>, operator: Operator) -> Answer {
    let report = read(&state, liteshop::Shop::audit).await?;
    Ok(pages::books(
        &operator,
        &report,
        state.shop.utc_offset_minutes(),
    ))
}

async fn in_flight(State(state): State<AppState>, operator: Operator) -> Answer {
    let (unsettled, leases) = read(&state, in_flight_now).await?;
    Ok(pages::in_flight(
        &operator,
        &state.shop,
        &unsettled,
        &leases,
        None,
    ))
}

async fn reconcile(State(state): State<AppState>, Posted(operator): Posted) -> Answer {
    let report = read(&state, liteshop::Shop::reconcile_payments).await?;
    tracing::info!(
        payments = report.payments.len(),
        refunds = report.refunds.len(),
        needs_review = report.needs_review(),
        "reconciliation run from the console"
    );
    let (unsettled, leases) = read(&state, in_flight_now).await?;
    Ok(pages::in_flight(
        &operator,
        &state.shop,
        &unsettled,
        &leases,
        Some(&report),
    ))
}

/// What the "Money in flight" page shows: the attempts in flight, and who
/// runs the background work that settles them.
fn in_flight_now(
    shop: &liteshop::Shop,
) -> liteshop::Result<(liteshop::Unsettled, Vec<liteshop::Lease>)> {
    Ok((shop.unsettled()?, shop.leases()?))
}

/// The sales window asked for: 1 to 30 days (7 when missing or not a
/// number; clamped into the range otherwise).
#[derive(Deserialize)]
struct SalesQuery {
    days: Option<String>,
}

async fn sales(
    State(state): State<AppState>,
    operator: Operator,
    Query(query): Query<SalesQuery>,
) -> Answer {
    let days = query
        .days
        .and_then(|days| days.trim().parse::<u32>().ok())
        .unwrap_or(7)
        .clamp(1, 30);
    let ranking = read(&state, move |shop| shop.best_sellers(days, 10)).await?;
    Ok(pages::sales(&operator, days, &ranking))
}

/// An order, or a user's orders, to look up.
#[derive(Deserialize)]
struct OrdersQuery {
    order: Option<String>,
    user: Option<String>,
}

/// One order as the console shows it: the order with its payments, refunds,
/// each payment's history, and its events.
pub(crate) struct OrderView {
    order: liteshop::Order,
    payments: Vec<(liteshop::Payment, Vec<liteshop::PaymentEvent>)>,
    refunds: Vec<liteshop::Refund>,
    events: Vec<liteshop::Event>,
}

async fn orders(
    State(state): State<AppState>,
    operator: Operator,
    Query(query): Query<OrdersQuery>,
) -> Answer {
    let id = |text: &Option<String>| {
        text.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<i64>().ok().filter(|n| *n > 0).ok_or(t.to_owned()))
    };
    let offset = state.shop.utc_offset_minutes();
    Ok(match (id(&query.order), id(&query.user)) {
        (Some(Err(bad)), _) | (_, Some(Err(bad))) => pages::orders(
            &operator,
            offset,
            Some(&format!("{bad:?} is not an id.")),
            None,
            None,
        ),
        (Some(Ok(order)), _) => {
            let order = OrderId::new(order);
            let view = read(&state, move |shop| {
                let user = shop.order_owner(order)?;
                let payments = shop
                    .payments_for_order(user, order)?
                    .into_iter()
                    .map(|p| {
                        let history = shop.payment_history(user, p.id)?;
                        Ok((p, history))
                    })
                    .collect::<liteshop::Result<Vec<_>>>()?;
                Ok(OrderView {
                    order: shop.order(user, order)?,
                    payments,
                    refunds: shop.refunds(user, order)?,
                    events: shop.order_events(order)?,
                })
            })
            .await?;
            pages::orders(&operator, offset, None, Some(&view), None)
        }
        (None, Some(Ok(user))) => {
            let user = UserId::new(user);
            let page = read(&state, move |shop| {
                shop.orders(user, PageRequest::first(50))
            })
            .await?;
            pages::orders(&operator, offset, None, None, Some((user, &page.items)))
        }
        (None, None) => pages::orders(&operator, offset, None, None, None),
    })
}

async fn feed(State(state): State<AppState>, operator: Operator) -> Answer {
    let consumers = read(&state, liteshop::Shop::event_consumers).await?;
    Ok(pages::feed(
        &operator,
        &consumers,
        state.shop.utc_offset_minutes(),
    ))
}

/// The stylesheet, inside the binary.
async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
        .into_response()
}
