//! The harness of the HTTP tests: a server on an ephemeral port over a
//! temp-file shop (kept at hand, to check what a refusal left), a client
//! that never treats a status as an error, and a record of every answer:
//! when the server drops, each status it sent is checked against the
//! statuses its OpenAPI document lists for that operation.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liteshop::{FakeGateway, Shop};
use serde_json::{Value, json};

/// The token secret and admin token the test servers use.
pub const SECRET: &[u8] = b"test secret";

pub struct Server {
    pub base: String,
    pub admin: String,
    pub shop: Shop,
    pub pg: FakeGateway,
    /// Every (method, path, status) answered, for the document check.
    sent: Arc<Mutex<Vec<(String, String, u16)>>>,
    _dir: tempfile::TempDir,
}

/// A server on a fresh shop: a temp file, or — with the `postgres` feature
/// and `LITESHOP_TEST_POSTGRES` set — a fresh schema of that server.
pub fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pg = FakeGateway::new();
    let postgres = std::env::var("LITESHOP_TEST_POSTGRES")
        .ok()
        .filter(|_| cfg!(feature = "postgres"));
    let builder = match &postgres {
        Some(url) => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).unwrap();
            Shop::builder(url).pg_schema(&format!("s_{}", u64::from_le_bytes(bytes)))
        }
        None => Shop::builder(dir.path().join("shop.db")),
    };
    let shop = builder.gateway(pg.clone()).build().unwrap();
    let admin = "test-admin-token".to_owned();
    let app = liteshop_server::router(
        shop.clone(),
        liteshop_server::Config::new(SECRET.to_vec(), admin.clone())
            .with_fake_widget(pg.clone())
            .with_storefront(liteshop_server::Storefront {
                widget_url: "/fake-pg/widget".to_owned(),
                public_url: None,
            }),
    );
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    Server {
        base: format!("http://{addr}"),
        admin,
        shop,
        pg,
        sent: Arc::default(),
        _dir: dir,
    }
}

/// A response: status, headers we look at, body as JSON (or Null).
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
    pub replayed: bool,
    pub allow: Option<String>,
    pub request_id: Option<String>,
    pub www_authenticate: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// One request with any headers, and its reply.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let agent = agent();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header("Content-Type", "application/json")
        .body(body.unwrap_or("").to_owned())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let replayed = header("idempotent-replayed").is_some();
    let allow = header("allow");
    let request_id = header("x-request-id");
    let www_authenticate = header("www-authenticate");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        content_type,
        replayed,
        allow,
        request_id,
        www_authenticate,
    }
}

/// The headers of a request with an optional bearer token and key.
fn credentials(token: Option<&str>, key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key.to_owned()));
    }
    headers
}

fn borrowed<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// One request with an optional bearer token and idempotency key.
pub fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: Option<&str>,
) -> Reply {
    send(method, url, &borrowed(&credentials(token, key)), body)
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request through the recorder.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let reply = send(method, &self.url(path), headers, body);
        self.sent
            .lock()
            .unwrap()
            .push((method.to_owned(), path.to_owned(), reply.status));
        reply
    }

    /// A request with an optional token and key, through the recorder.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.request(method, path, &borrowed(&credentials(token, key)), body)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, None, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call("POST", path, token, None, Some(&body.to_string()))
    }

    pub fn post_keyed(&self, path: &str, token: &str, key: &str, body: Value) -> Reply {
        self.call(
            "POST",
            path,
            Some(token),
            Some(key),
            Some(&body.to_string()),
        )
    }

    pub fn user(&self, name: &str) -> (i64, String) {
        let reply = self.post("/users", None, json!({ "name": name }));
        assert_eq!(reply.status, 201, "{}", reply.body);
        (
            reply.body["user"]["id"].as_i64().unwrap(),
            reply.body["token"].as_str().unwrap().to_owned(),
        )
    }

    pub fn product(&self, price: i64, stock: u32) -> i64 {
        let reply = self.post(
            "/admin/products",
            Some(&self.admin),
            json!({ "name": "Tea", "price": price, "stock": stock }),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["id"].as_i64().unwrap()
    }

    /// The customer's browser at the (fake) PG's widget for a started
    /// payment (its JSON): the redirect to confirm with.
    pub fn widget(&self, payment: &Value) -> Value {
        let reply = self.post(
            "/fake-pg/widget",
            None,
            json!({ "pg_order_id": payment["pg_order_id"], "amount": payment["pg_amount"] }),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    /// Confirms a started payment (its JSON) after paying its widget step.
    pub fn confirm(&self, token: &str, payment: &Value) -> Reply {
        let redirect = self.widget(payment);
        self.post(
            &format!("/me/payments/{}/confirm", payment["id"]),
            Some(token),
            redirect,
        )
    }

    /// Tops the balance up by `amount` through the (fake) PG: start, pay
    /// in the widget, confirm. Returns the new balance.
    pub fn top_up(&self, token: &str, amount: i64) -> i64 {
        let started = self.post(
            "/me/balance/charge",
            Some(token),
            json!({ "amount": amount }),
        );
        assert_eq!(started.status, 200, "{}", started.body);
        let confirmed = self.confirm(token, &started.body);
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
        assert_eq!(confirmed.body["status"], "approved");
        self.get("/me/balance", Some(token)).body["balance"]
            .as_i64()
            .unwrap()
    }

    /// Pays order `order` with `balance_part` from the balance and the
    /// rest in the (fake) PG's widget; the last answer (the start's when
    /// it is wholly by balance or refused, else the confirm's).
    pub fn pay(&self, token: &str, order: i64, balance_part: i64) -> Reply {
        let started = self.post(
            &format!("/me/orders/{order}/pay"),
            Some(token),
            json!({ "balance_part": balance_part }),
        );
        if started.status != 200 || started.body["status"] != "started" {
            return started;
        }
        self.confirm(token, &started.body)
    }

    /// Every status sent that the document does not list for its
    /// operation, as "METHOD /template: status".
    pub fn undocumented(&self) -> Vec<String> {
        let doc = send("GET", &self.url("/openapi.json"), &[], None).body;
        let paths = doc["paths"].as_object().unwrap();
        let mut undocumented = Vec::new();
        for (method, path, status) in self.sent.lock().unwrap().iter() {
            let path = path.split('?').next().unwrap_or(path);
            let Some((template, item)) = paths.iter().find(|(t, _)| matches(t, path)) else {
                continue; // no such route: the fallback's 404, not an operation
            };
            let Some(operation) = item.get(method.to_ascii_lowercase()) else {
                continue; // a method the route does not take: 405
            };
            if operation["responses"].get(status.to_string()).is_none() {
                undocumented.push(format!("{method} {template}: {status}"));
            }
        }
        undocumented.sort();
        undocumented.dedup();
        undocumented
    }

    /// How many answers the recorder holds.
    pub fn answers(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let undocumented = self.undocumented();
        assert!(
            undocumented.is_empty(),
            "statuses sent that the OpenAPI document does not list: {undocumented:#?}"
        );
    }
}

/// A raw answer (for the HTML pages): status, headers, body text.
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    /// The value of header `name`, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Where a redirect sends the browser.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

/// One request as a browser's form sends it (`Cookie: <cookie>`, a form
/// body), redirects not followed.
pub fn fetch(method: &str, url: &str, cookie: Option<&str>, form: Option<&str>) -> Page {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    );
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let request = request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.unwrap_or("").to_owned())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Page {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// The CSRF token in a page's forms.
pub fn csrf(page: &Page) -> String {
    let at = page
        .body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page.body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Whether a concrete path matches a template such as `/me/orders/{id}`.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

/// Pays `order` of `user` wholly by card through the library: starts the
/// payment, plays the customer's browser at `pg`'s widget, confirms.
pub fn pay_by_card(
    shop: &Shop,
    pg: &FakeGateway,
    user: liteshop::UserId,
    order: liteshop::OrderId,
) -> liteshop::Result<liteshop::Payment> {
    let started = shop.start_payment(user, order, liteshop::Money::ZERO)?;
    let redirect = pg.pay_widget(&started.widget().expect("a PG part"));
    shop.confirm_payment(user, started.id, &redirect)
}

/// Order or refund lines: product id → quantity.
pub fn lines(pairs: &[(i64, u32)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(product, quantity)| (product.to_string(), json!(quantity)))
            .collect(),
    )
}

pub fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["code"], json!(code), "{}", reply.body);
    assert_eq!(reply.body["status"], json!(status));
}

/// A loopback port free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed and reaped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 20 ms until it gives a value; fails after `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
