//! liteshop over HTTP: [`router`] builds an axum `Router` a host can mount
//! inside its own app; the `liteshop` binary (`serve`) runs a whole shop.
//!
//! Every `Shop` call runs on tokio's blocking pool, never on an async
//! worker. The acting user comes from the bearer token, never from a path or
//! a body. Errors are `application/problem+json` with a stable code per
//! [`liteshop::Error`] variant. POSTs that move money, stock or coupons
//! take an `Idempotency-Key` header: the first response is stored with its
//! effect, in the same transaction, and a repeat gets it back.
//!
//! Open the [`liteshop::Shop`] before the async runtime starts (or inside
//! `spawn_blocking`): on PostgreSQL the synchronous client starts a
//! runtime of its own to connect, which tokio refuses on an async worker.
//!
//! ```no_run
//! # async fn host() -> Result<(), Box<dyn std::error::Error>> {
//! let shop = liteshop::Shop::builder("shop.db").gateway(liteshop::FakeGateway::new()).build()?;
//! let config = liteshop_server::Config::new(b"a long random secret".to_vec(), "admin-token".into());
//! let app = axum::Router::new().nest("/api", liteshop_server::router(shop, config));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
mod body;
mod console;
mod contract;
mod fake_widget;
mod html;
mod idempotency;
mod openapi_text;
mod problem;
mod routes;
mod storefront;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use liteshop::Shop;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Admin, Me, Secrets, token_user, user_token};
pub use problem::{ApiError, Problem};
pub use storefront::Storefront;

/// How the API authenticates and what it accepts.
#[derive(Clone, Debug)]
pub struct Config {
    secrets: Secrets,
    /// The largest request body accepted, in bytes (64 KiB by default);
    /// a larger one is answered 413.
    pub body_limit: usize,
    /// How long a client has to send its whole request body once its
    /// headers arrived (30 s by default); a slower one is answered 408 and
    /// its connection closed, so a stalled client cannot hold a worker.
    pub body_timeout: std::time::Duration,
    /// The in-process fake PG whose widget step `POST /fake-pg/widget`
    /// plays, if any (see [`Config::with_fake_widget`]).
    fake_widget: Option<liteshop::FakeGateway>,
    /// The customer's storefront at `/shop`, if served (see
    /// [`Config::with_storefront`]).
    storefront: Option<Storefront>,
}

impl Config {
    /// A configuration signing user tokens with `token_secret` and guarding
    /// admin routes with `admin_token`.
    pub fn new(token_secret: Vec<u8>, admin_token: String) -> Config {
        Config {
            secrets: Secrets::new(&token_secret, &admin_token),
            body_limit: 64 * 1024,
            body_timeout: std::time::Duration::from_secs(30),
            fake_widget: None,
            storefront: None,
        }
    }

    /// Serves `POST /fake-pg/widget`, a FAKE stand-in for the PG's widget
    /// over `pg` (the shop's own [`liteshop::FakeGateway`]), so the whole
    /// payment flow can be tried with curl when no PG is configured: it
    /// takes `{"pg_order_id", "amount"}` of a started payment and answers
    /// the redirect (`payment_key`, `pg_order_id`, `amount`) to `POST
    /// /me/payments/{id}/confirm`. No money moves anywhere; every answer
    /// carries `X-Fake-PG: true` and every call is logged as fake. It is
    /// not in the OpenAPI document. Never configure it in front of a real
    /// PG (`liteshop serve` offers it only when it runs on the fake).
    pub fn with_fake_widget(mut self, pg: liteshop::FakeGateway) -> Config {
        self.fake_widget = Some(pg);
        self
    }

    /// Serves the customer's storefront at `/shop` (server-rendered pages:
    /// products, cart and checkout, orders with refunds, top-ups), sending
    /// customers to `storefront.widget_url` to pay the PG part. It is not
    /// in the OpenAPI document: it is pages for a browser, built on the
    /// same `Shop` calls as the API. Its pages link to `/shop/…` and its
    /// cookie is on `/shop`, as the console's pages are under `/console`:
    /// to use them, serve the router at the root of its host, not nested.
    pub fn with_storefront(mut self, storefront: Storefront) -> Config {
        self.storefront = Some(storefront);
        self
    }

    /// The secrets, to mint a user's token outside a request.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }
}

/// What every handler gets: the shop and the secrets.
#[derive(Clone)]
pub struct AppState {
    shop: Shop,
    secrets: Arc<Secrets>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "liteshop", description = "The liteshop API: users, balance, products, orders and payments."),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API as an axum router, with `/openapi.json`. Mount it where you like.
pub fn router(shop: Shop, config: Config) -> Router {
    let limits = shop.limits().clone();
    let state = AppState {
        shop,
        secrets: Arc::new(config.secrets.clone()),
    };
    let state_for_console = state.clone();
    let (router, api) = routes::all(OpenApiRouter::with_openapi(ApiDoc::openapi()))
        .with_state(state)
        .split_for_parts();
    let api = Arc::new(with_limits(api, &limits));
    let router = match config.fake_widget {
        Some(pg) => router.merge(fake_widget::routes(pg)),
        None => router,
    };
    let router = match config.storefront {
        Some(storefront) => router.merge(storefront::routes(state_for_console.clone(), storefront)),
        None => router,
    };
    router
        .merge(console::routes().with_state(state_for_console))
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let api = api.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such route",
            )
        })
        .layer(axum::middleware::map_response(problem_bodies))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            BodyRules {
                limit: config.body_limit,
                timeout: config.body_timeout,
            },
            read_body,
        ))
        // Outermost: every request gets an id (or keeps the client's
        // `x-request-id`), logged with its method, path, status and time —
        // never its headers or body, so no token or secret is logged — and
        // echoed in the response.
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %request.method(),
                        path = %request.uri().path(), request_id = %id)
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            RequestIds::default(),
        ))
}

/// How a request body is read: within a size and a deadline.
#[derive(Clone, Copy)]
struct BodyRules {
    limit: usize,
    timeout: std::time::Duration,
}

/// Reads the whole request body before the handler runs, within the size
/// limit (413) and the body deadline (408, and the connection is closed):
/// a client that stops sending half-way cannot hold a handler, nor keep
/// the server from stopping.
async fn read_body(
    axum::extract::State(rules): axum::extract::State<BodyRules>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(rules.timeout, axum::body::to_bytes(body, rules.limit));
    let problem = match read.await {
        Ok(Ok(bytes)) => {
            let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            return next.run(request).await;
        }
        Ok(Err(err)) => {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is over the limit",
                )
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request body could not be read",
                )
            }
        }
        Err(_) => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                rules.timeout.as_secs_f64()
            ),
        ),
    };
    let mut response = problem.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Request ids: a process-unique counter with a random prefix.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> RequestIds {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        RequestIds {
            prefix: hex::encode(bytes).into(),
            next: Arc::default(),
        }
    }
}

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// The document with this shop's limits written into the schemas, so a
/// request the schema allows is one the shop accepts.
fn with_limits(api: utoipa::openapi::OpenApi, limits: &liteshop::Limits) -> serde_json::Value {
    let mut doc = serde_json::to_value(&api).unwrap_or_default();
    openapi_text::translate(&mut doc);
    let schemas = at(&mut doc, &["components", "schemas"]);
    at(schemas, &["Charge", "properties", "amount"])["maximum"] = limits.max_charge.won().into();
    // Lines are a map of product id to quantity: each product once.
    let lines = serde_json::json!({
        "type": "object",
        "propertyNames": { "type": "string", "pattern": "^[1-9][0-9]{0,17}$" },
        "additionalProperties": {
            "type": "integer", "minimum": 1, "maximum": limits.max_order_quantity,
        },
        "minProperties": 1,
        "maxProperties": limits.max_order_lines,
        "description": "product id → quantity, each product once",
    });
    *at(schemas, &["PlaceOrder", "properties", "lines"]) = lines.clone();
    // A refund names its units: `lines`, or `"whole": true`; never both,
    // never neither.
    let reason = at(schemas, &["RefundRequest", "properties", "reason"]).take();
    *at(schemas, &["RefundRequest"]) = serde_json::json!({
        "description": "Which units to refund and why: `lines` (product id → units) or `\"whole\": true` (every unit not refunded yet).",
        "oneOf": [
            {
                "type": "object",
                "properties": { "lines": lines, "reason": reason },
                "required": ["lines", "reason"],
                "additionalProperties": false,
            },
            {
                "type": "object",
                "properties": { "whole": { "const": true }, "reason": reason },
                "required": ["whole", "reason"],
                "additionalProperties": false,
            },
        ],
        "example": { "lines": { "1": 1 }, "reason": "arrived broken" },
    });
    *at(schemas, &["CreateCoupon", "properties", "discount"]) = serde_json::json!({
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "kind": { "const": "fixed" },
                    "amount": { "type": "integer", "minimum": 1, "maximum": i64::MAX },
                },
                "required": ["kind", "amount"],
                "additionalProperties": false,
            },
            {
                "type": "object",
                "properties": {
                    "kind": { "const": "percent" },
                    "percent": { "type": "integer", "minimum": 1, "maximum": 100 },
                    "cap": { "type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX },
                },
                "required": ["kind", "percent"],
                "additionalProperties": false,
            },
        ],
    });
    for cart in ["AddToCart", "SetQuantity"] {
        at(schemas, &[cart, "properties", "quantity"])["maximum"] = limits.max_cart_quantity.into();
    }
    doc
}

/// The value at `path` in `doc`, which must be there: the schemas and
/// properties `with_limits` rewrites are named by string, so a renamed
/// type or field fails every test that builds the router instead of
/// silently adding a schema nobody uses.
fn at<'a>(doc: &'a mut serde_json::Value, path: &[&str]) -> &'a mut serde_json::Value {
    path.iter().fold(doc, |value, key| {
        value
            .get_mut(*key)
            .unwrap_or_else(|| panic!("the OpenAPI document has no {path:?}"))
    })
}

/// Gives the answers axum makes itself — a wrong method (405, keeping its
/// `Allow` header), a body over the limit (413), a wrong content type —
/// a problem body like every other error.
async fn problem_bodies(response: axum::response::Response) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let status = response.status();
    // A problem body already, or a console page (HTML) that explains itself.
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this route does not take that method")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is over the limit"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send JSON"),
        _ => ("bad_request", "the request could not be read"),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = Problem::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// The OpenAPI document of [`router`], for tools (without a shop's
/// limits, which the served `/openapi.json` writes in).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let api = routes::all(OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi()))
        .split_for_parts()
        .1;
    let mut doc = serde_json::to_value(&api).expect("an OpenAPI document is JSON");
    openapi_text::translate(&mut doc);
    serde_json::from_value(doc).expect("the translated document reads back")
}
