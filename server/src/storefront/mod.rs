//! The customer's storefront at `/shop`: server-rendered HTML like the
//! console, no JavaScript, every asset inside the binary. It is a
//! reference for a host's own shop front, built only on [`liteshop::Shop`]'s
//! public calls, and what the browser test buys from.
//!
//! - **A customer's session** is their bearer token (the API's, see
//!   [`crate::user_token`]) in an `HttpOnly`, `SameSite=Lax` cookie on
//!   `/shop`: `Lax`, because the PG's redirect back after the widget is a
//!   top-level navigation from the PG's site, which must arrive signed in.
//!   "Create an account" makes a user; "sign in" takes a token.
//! - Every state-changing button is a POST carrying a CSRF token derived
//!   from the session (as the console's), which another site cannot know.
//! - **Paying** follows the PG's handshake (Toss: docs.tosspayments.com/
//!   guides/v2/payment-widget/integration): checkout places the order and
//!   starts the payment with the balance part the customer chose; a PG part
//!   sends the customer to the widget page ([`Storefront::widget_url`]) with
//!   `orderId`, `amount`, `orderName`, `customerKey`, `successUrl` and
//!   `failUrl`. The PG sends the browser back to
//!   `/shop/pay/{id}/success?paymentType&orderId&paymentKey&amount`, which
//!   confirms — the shop checks `orderId` and `amount` against the payment
//!   it started, so a tampered `amount` is refused and nothing is sent to
//!   the PG — or to `/shop/pay/{id}/fail?code&message&orderId`, which ends
//!   the attempt and gives the balance part back.
//! - Pages: products, the cart with checkout, orders (each with its
//!   payments, a bank transfer's account, refunds, and a form to refund
//!   some units), top-ups.
//!
//! Toss's widget is its JavaScript SDK, not a page to link to: in front of
//! Toss, [`Storefront::widget_url`] is a page of the host's that loads the
//! SDK and calls `requestPayment` with the query it is given. The PG
//! doubles serve such a page themselves: `liteshop serve` on its
//! in-process fake (`/fake-pg/widget`) and the `fake_pg` example
//! (`/widget`).

mod pages;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use liteshop::{
    Error, ErrorKind, Money, OrderId, OrderLine, PageRequest, PaymentId, PaymentKind, PgRedirect,
    ProductId, Shop, UserId,
};
use serde::Deserialize;

use crate::AppState;
use crate::console::{Answer, Refusal};

/// Where the storefront sends a customer to pay the PG part.
#[derive(Clone, Debug)]
pub struct Storefront {
    /// The widget page: the customer's browser is sent to it with
    /// `orderId`, `amount`, `orderName`, `customerKey`, `successUrl` and
    /// `failUrl` in the query (absolute, or a path on this server).
    pub widget_url: String,
    /// This server's address as the customer's browser reaches it (for
    /// example `https://shop.example`), from which `successUrl` and
    /// `failUrl` are made; without it, `http://` and the request's `Host`.
    pub public_url: Option<String>,
}

/// The session cookie's name.
const COOKIE: &str = "liteshop_shop";

/// How long a storefront session lasts, in hours.
const SESSION_HOURS: i64 = 24;

/// The storefront's state: the API's, and where the widget is.
#[derive(Clone)]
pub(crate) struct StoreState {
    app: AppState,
    storefront: std::sync::Arc<Storefront>,
}

/// The storefront's routes, to merge into the API's router.
pub(crate) fn routes(app: AppState, storefront: Storefront) -> Router {
    let state = StoreState {
        app,
        storefront: std::sync::Arc::new(storefront),
    };
    Router::new()
        .route("/shop", get(products))
        .route("/shop/sign-in", get(sign_in_page).post(sign_in))
        .route("/shop/sign-up", post(sign_up))
        .route("/shop/sign-out", post(sign_out))
        .route("/shop/cart", get(cart).post(add_to_cart))
        .route("/shop/cart/{item}/remove", post(remove_from_cart))
        .route("/shop/checkout", post(checkout))
        .route("/shop/orders", get(orders))
        .route("/shop/orders/{id}", get(order))
        .route("/shop/orders/{id}/pay", post(pay))
        .route("/shop/orders/{id}/refund", post(refund))
        .route("/shop/top-up", get(top_ups).post(top_up))
        .route("/shop/top-ups/{id}/refund", post(refund_top_up))
        .route("/shop/pay/{id}", get(pay_page))
        .route("/shop/pay/{id}/success", get(success))
        .route("/shop/pay/{id}/fail", get(fail))
        .route("/shop/style.css", get(style))
        .layer(axum::middleware::map_response(
            crate::console::security_headers,
        ))
        .with_state(state)
}

/// A signed-in customer: the user, the session, its CSRF token.
pub(crate) struct Customer {
    user: UserId,
    csrf: String,
}

impl axum::extract::FromRequestParts<StoreState> for Customer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &StoreState,
    ) -> Result<Customer, Response> {
        Customer::of(&state.app, &parts.headers)
            .ok_or_else(|| Redirect::to("/shop/sign-in").into_response())
    }
}

impl Customer {
    fn of(state: &AppState, headers: &HeaderMap) -> Option<Customer> {
        let token = crate::console::cookie(headers, COOKIE)?;
        let user = state.secrets.token_user(&token)?;
        Some(Customer {
            user,
            csrf: state.secrets.csrf_token(&session_of(&token)),
        })
    }

    /// Whether `csrf` is this session's CSRF token (in constant time).
    fn sent(&self, state: &StoreState, csrf: &str) -> bool {
        let token = state.app.secrets.user_token(self.user);
        state.app.secrets.csrf_valid(&session_of(&token), csrf)
    }
}

/// A form that carries the session's CSRF token in its `csrf` field.
trait WithCsrf {
    fn csrf(&self) -> &str;
}

macro_rules! with_csrf {
    ($($form:ty),*) => {
        $(impl WithCsrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}

with_csrf!(Csrf, LineForm, PayForm, TopUpForm);

/// A form a signed-in customer posted with this session's CSRF token: a
/// request without a session goes to the sign-in page, one with another
/// token is refused (403) before the handler runs.
pub(crate) struct Posted<T> {
    customer: Customer,
    form: T,
}

impl<T> axum::extract::FromRequest<StoreState> for Posted<T>
where
    T: serde::de::DeserializeOwned + WithCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &StoreState,
    ) -> Result<Posted<T>, Response> {
        let (customer, form): (Customer, T) =
            crate::console::signed_in_form(request, state).await?;
        if !customer.sent(state, form.csrf()) {
            return Err(forged());
        }
        Ok(Posted { customer, form })
    }
}

/// The session a CSRF token is derived from: the user's token, marked as
/// the storefront's, so a console form's token never passes here.
fn session_of(token: &str) -> String {
    format!("shop:{token}")
}

/// Runs `f` on the blocking pool (a confirm or a refund calls the PG);
/// a failure is a page that says what happened, with its status.
async fn run<T: Send + 'static>(
    state: &StoreState,
    f: impl FnOnce(&Shop) -> liteshop::Result<T> + Send + 'static,
) -> Result<T, Refusal> {
    let shop = state.app.shop.clone();
    match tokio::task::spawn_blocking(move || f(&shop)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(refused(&err).into()),
        Err(_) => Err(pages::failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "internal error",
        )
        .into()),
    }
}

/// Runs `f` as [`run`] does and answers `then` of its value, or the page
/// of its failure.
async fn answer<T: Send + 'static>(
    state: &StoreState,
    f: impl FnOnce(&Shop) -> liteshop::Result<T> + Send + 'static,
    then: impl FnOnce(T) -> Response,
) -> Answer {
    Ok(then(run(state, f).await?))
}

/// The page of an error: its status, its message (an internal error's
/// detail stays in the log).
fn refused(err: &Error) -> Response {
    let status = crate::problem::status(err);
    let (title, message) = match err.kind() {
        ErrorKind::Internal => {
            tracing::error!(error = %err, "storefront: internal error");
            ("Something went wrong", "internal error".to_owned())
        }
        ErrorKind::PaymentDeclined => ("Declined", err.to_string()),
        ErrorKind::PaymentOutcomeUnknown => ("Waiting for the payment gateway", err.to_string()),
        ErrorKind::Busy => ("Busy", "the shop is busy: try again".to_owned()),
        _ => ("Refused", err.to_string()),
    };
    // The PG's redirect refused before anything was sent to the PG.
    let note = matches!(err, Error::RedirectMismatch { .. })
        .then_some("Nothing was charged: the payment was not confirmed.");
    pages::failure_noting(status, title, &message, note)
}

/// The answer to a POST whose CSRF token is not this session's.
fn forged() -> Response {
    pages::failure(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form did not come from this shop: reload the page and try again.",
    )
}

/// A redirect after a POST: the browser GETs `to`.
fn see(to: &str) -> Response {
    Redirect::to(to).into_response()
}

async fn products(State(state): State<StoreState>, headers: HeaderMap) -> Answer {
    let customer = Customer::of(&state.app, &headers);
    let user = customer.as_ref().map(|c| c.user);
    answer(
        &state,
        move |shop| {
            let products = shop.products(PageRequest::first(100))?.items;
            let balance = user.map(|u| shop.balance(u)).transpose()?;
            Ok((products, balance))
        },
        |(products, balance)| pages::products(customer.as_ref(), balance, &products),
    )
    .await
}

async fn sign_in_page() -> Response {
    pages::sign_in(None)
}

/// The sign-up form.
#[derive(Deserialize)]
struct SignUp {
    #[serde(default)]
    name: String,
}

/// The sign-in form.
#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
}

/// The answer that starts a session for `user`: its cookie, and the shop.
fn signed_in(state: &StoreState, user: UserId) -> Response {
    let token = state.app.secrets.user_token(user);
    let cookie = format!(
        "{COOKIE}={token}; Path=/shop; HttpOnly; SameSite=Lax; Max-Age={}",
        SESSION_HOURS * 3_600
    );
    let mut response = see("/shop");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn sign_up(State(state): State<StoreState>, Form(form): Form<SignUp>) -> Answer {
    let name = form.name;
    answer(
        &state,
        move |shop| shop.create_user(name.trim()),
        |user| signed_in(&state, user.id),
    )
    .await
}

async fn sign_in(State(state): State<StoreState>, Form(form): Form<SignIn>) -> Response {
    match state.app.secrets.token_user(form.token.trim()) {
        Some(user) => signed_in(&state, user),
        None => pages::sign_in(Some("That is not a token of this shop.")),
    }
}

/// A form whose only field is the CSRF token.
#[derive(Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(_: Posted<Csrf>) -> Response {
    let mut response = see("/shop");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("liteshop_shop=; Path=/shop; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    response
}

/// A number a person typed: digits, maybe with thousands separators.
fn number(text: &str) -> Option<i64> {
    let digits: String = text.trim().chars().filter(|c| *c != ',').collect();
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A form field that is not a number: a 400 page.
fn not_a_number(field: &str) -> Response {
    pages::failure(
        StatusCode::BAD_REQUEST,
        "Refused",
        &format!("The {field} must be a whole number."),
    )
}

/// The "add to cart" and "refund" forms: some units of one product.
#[derive(Deserialize)]
struct LineForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    quantity: String,
}

impl LineForm {
    /// The form's product and quantity, or the page that says which is
    /// not a number.
    fn line(&self) -> Result<OrderLine, Refusal> {
        let product = number(&self.product).ok_or_else(|| not_a_number("product"))?;
        let quantity = number(&self.quantity)
            .and_then(|q| u32::try_from(q).ok())
            .ok_or_else(|| not_a_number("quantity"))?;
        Ok(OrderLine::new(ProductId::new(product), quantity))
    }
}

async fn add_to_cart(
    State(state): State<StoreState>,
    Posted { customer, form }: Posted<LineForm>,
) -> Answer {
    let line = form.line()?;
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.add_to_cart(user, line.product, line.quantity),
        |_| see("/shop/cart"),
    )
    .await
}

async fn remove_from_cart(
    State(state): State<StoreState>,
    Path(item): Path<String>,
    Posted { customer, .. }: Posted<Csrf>,
) -> Answer {
    let item = number(&item).ok_or_else(|| not_a_number("cart item"))?;
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.remove_from_cart(user, liteshop::CartItemId::new(item)),
        |()| see("/shop/cart"),
    )
    .await
}

async fn cart(State(state): State<StoreState>, customer: Customer) -> Answer {
    let user = customer.user;
    answer(
        &state,
        move |shop| Ok((shop.cart(user)?, shop.balance(user)?)),
        |(cart, balance)| pages::cart(&customer, balance, &cart),
    )
    .await
}

/// The checkout and pay forms: how much of the balance to use.
#[derive(Deserialize)]
struct PayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    balance_part: String,
}

impl PayForm {
    /// The balance part; empty is none.
    fn balance_part(&self) -> Result<Money, Refusal> {
        if self.balance_part.trim().is_empty() {
            return Ok(Money::ZERO);
        }
        let n = number(&self.balance_part).ok_or_else(|| not_a_number("balance part"))?;
        Money::new(n).map_err(|err| refused(&err).into())
    }
}

/// Where the customer goes once a payment is started: the order (paid
/// from the balance at once), or the PG's widget.
fn after_start(payment: &liteshop::Payment) -> Response {
    match payment.widget() {
        Some(_) => see(&format!("/shop/pay/{}", payment.id)),
        None => see(&back_to(payment)),
    }
}

/// The page a payment belongs to: its order's, or the top-ups.
fn back_to(payment: &liteshop::Payment) -> String {
    match (payment.kind, payment.order) {
        (PaymentKind::Order, Some(order)) => format!("/shop/orders/{order}"),
        _ => "/shop/top-up".to_owned(),
    }
}

async fn checkout(
    State(state): State<StoreState>,
    Posted { customer, form }: Posted<PayForm>,
) -> Answer {
    let balance_part = form.balance_part()?;
    let user = customer.user;
    // The order stands even if the payment cannot start (a balance part
    // over the balance, say): the customer lands on it and pays again.
    let order = run(&state, move |shop| shop.checkout_cart(user, None)).await?;
    let id = order.id;
    answer(
        &state,
        move |shop| shop.start_payment(user, id, balance_part),
        |payment| after_start(&payment),
    )
    .await
}

async fn orders(State(state): State<StoreState>, customer: Customer) -> Answer {
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.orders(user, PageRequest::first(50)),
        |page| pages::orders(&customer, &page.items),
    )
    .await
}

/// An order as the customer sees it.
pub(crate) struct OrderView {
    order: liteshop::Order,
    payments: Vec<liteshop::Payment>,
    refunds: Vec<liteshop::Refund>,
    balance: Money,
}

/// An id in a path: a positive number, or a 404 page.
fn id_in_path(text: &str) -> Result<i64, Refusal> {
    number(text).filter(|n| *n > 0).ok_or_else(|| {
        pages::failure(StatusCode::NOT_FOUND, "Not found", "There is no such page.").into()
    })
}

async fn order(
    State(state): State<StoreState>,
    customer: Customer,
    Path(id): Path<String>,
) -> Answer {
    let id = OrderId::new(id_in_path(&id)?);
    let user = customer.user;
    answer(
        &state,
        move |shop| {
            Ok(OrderView {
                order: shop.order(user, id)?,
                payments: shop.payments_for_order(user, id)?,
                refunds: shop.refunds(user, id)?,
                balance: shop.balance(user)?,
            })
        },
        |view| pages::order(&customer, &view, state.app.shop.utc_offset_minutes()),
    )
    .await
}

async fn pay(
    State(state): State<StoreState>,
    Path(id): Path<String>,
    Posted { customer, form }: Posted<PayForm>,
) -> Answer {
    let id = OrderId::new(id_in_path(&id)?);
    let balance_part = form.balance_part()?;
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.start_payment(user, id, balance_part),
        |payment| after_start(&payment),
    )
    .await
}

async fn refund(
    State(state): State<StoreState>,
    Path(id): Path<String>,
    Posted { customer, form }: Posted<LineForm>,
) -> Answer {
    let id = OrderId::new(id_in_path(&id)?);
    let line = form.line()?;
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.refund_lines(user, id, &[line], "asked for in the storefront"),
        |_| see(&format!("/shop/orders/{id}")),
    )
    .await
}

async fn top_ups(State(state): State<StoreState>, customer: Customer) -> Answer {
    let user = customer.user;
    answer(
        &state,
        move |shop| {
            Ok((
                shop.balance(user)?,
                shop.top_ups(user, PageRequest::first(50))?.items,
            ))
        },
        |(balance, top_ups)| {
            pages::top_ups(
                &customer,
                balance,
                &top_ups,
                state.app.shop.utc_offset_minutes(),
            )
        },
    )
    .await
}

/// The top-up form.
#[derive(Deserialize)]
struct TopUpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    amount: String,
}

/// The form's amount, or the page that says why it is none.
fn amount_of(form: &TopUpForm) -> Result<Money, Refusal> {
    match number(&form.amount).map(Money::new) {
        Some(Ok(amount)) => Ok(amount),
        Some(Err(err)) => Err(refused(&err).into()),
        None => Err(not_a_number("amount").into()),
    }
}

async fn top_up(
    State(state): State<StoreState>,
    Posted { customer, form }: Posted<TopUpForm>,
) -> Answer {
    let amount = amount_of(&form)?;
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.start_top_up(user, amount),
        |payment| after_start(&payment),
    )
    .await
}

async fn refund_top_up(
    State(state): State<StoreState>,
    Path(id): Path<String>,
    Posted { customer, form }: Posted<TopUpForm>,
) -> Answer {
    let id = PaymentId::new(id_in_path(&id)?);
    let amount = amount_of(&form)?;
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.refund_top_up(user, id, amount, "asked for in the storefront"),
        |_| see("/shop/top-up"),
    )
    .await
}

/// Where the PG sends the browser back to, for payment `id`: `kind` is
/// `success` or `fail`.
fn return_url(state: &StoreState, headers: &HeaderMap, id: PaymentId, kind: &str) -> String {
    let base = match &state.storefront.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{base}/shop/pay/{id}/{kind}")
}

async fn pay_page(
    State(state): State<StoreState>,
    customer: Customer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let id = PaymentId::new(id_in_path(&id)?);
    let user = customer.user;
    let payment = run(&state, move |shop| shop.payment(user, id)).await?;
    let Some(widget) = payment.widget() else {
        // Past the widget already: show where it ended up.
        return Ok(see(&back_to(&payment)));
    };
    let query = [
        ("orderId", widget.pg_order_id.clone()),
        ("amount", widget.amount.won().to_string()),
        ("orderName", widget.order_name.clone()),
        ("customerKey", widget.customer_key.clone()),
        ("successUrl", return_url(&state, &headers, id, "success")),
        ("failUrl", return_url(&state, &headers, id, "fail")),
    ];
    let query = url_query(&query);
    let separator = if state.storefront.widget_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let href = format!("{}{separator}{query}", state.storefront.widget_url);
    Ok(pages::pay(
        &customer,
        &payment,
        &href,
        state.app.shop.utc_offset_minutes(),
    ))
}

/// `a=1&b=two%20words`: pairs, percent-encoded as a URL query.
pub(crate) fn url_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", percent(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `value` with every byte but RFC 3986's unreserved ones percent-encoded.
fn percent(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Toss's success redirect: `paymentType`, `orderId`, `paymentKey`,
/// `amount` (docs.tosspayments.com/guides/v2/payment-widget/integration,
/// "결제 성공"). Missing fields read as empty and are refused by the shop.
#[derive(Deserialize)]
struct Success {
    #[serde(default, rename = "orderId")]
    order_id: String,
    #[serde(default, rename = "paymentKey")]
    payment_key: String,
    #[serde(default)]
    amount: String,
}

async fn success(
    State(state): State<StoreState>,
    customer: Customer,
    Path(id): Path<String>,
    Query(back): Query<Success>,
) -> Answer {
    let id = PaymentId::new(id_in_path(&id)?);
    let amount = number(&back.amount).ok_or_else(|| not_a_number("amount in the PG's redirect"))?;
    let amount = Money::new(amount).map_err(|err| refused(&err))?;
    let redirect = PgRedirect {
        payment_key: back.payment_key,
        pg_order_id: back.order_id,
        amount,
    };
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.confirm_payment(user, id, &redirect),
        |payment| see(&back_to(&payment)),
    )
    .await
}

/// Toss's failure redirect: `code`, `message`, `orderId`
/// (docs.tosspayments.com/guides/v2/payment-widget/integration, "결제
/// 실패"; `PAY_PROCESS_CANCELED` when the customer closed the widget).
#[derive(Deserialize)]
struct Failed {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default, rename = "orderId")]
    order_id: String,
}

async fn fail(
    State(state): State<StoreState>,
    customer: Customer,
    Path(id): Path<String>,
    Query(back): Query<Failed>,
) -> Answer {
    let id = PaymentId::new(id_in_path(&id)?);
    let redirect = liteshop::PgFailRedirect {
        code: back.code,
        message: back.message,
        pg_order_id: back.order_id,
    };
    let user = customer.user;
    answer(
        &state,
        move |shop| shop.fail_payment(user, id, &redirect),
        |payment| pages::abandoned(&customer, &payment, &back_to(&payment)),
    )
    .await
}

/// The stylesheet: the console's, inside the binary.
async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../console/style.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_digits_with_separators_only() {
        assert_eq!(number(" 12,000 "), Some(12_000));
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("-5"), None);
        assert_eq!(number("1.5"), None);
        assert_eq!(number(""), None);
        assert_eq!(number("99999999999999999999"), None);
    }

    #[test]
    fn a_query_is_percent_encoded() {
        assert_eq!(
            url_query(&[
                ("orderName", "Tea & cups".to_owned()),
                ("successUrl", "http://a:1/b?c".to_owned())
            ]),
            "orderName=Tea%20%26%20cups&successUrl=http%3A%2F%2Fa%3A1%2Fb%3Fc"
        );
    }
}
