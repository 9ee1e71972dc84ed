//! `liteshop serve` as a person first runs it, with no PG configured: the
//! in-process fake offers the widget step itself (`POST /fake-pg/widget`,
//! marked fake), so a top-up and a card payment run end to end over HTTP;
//! with a PG configured that route does not exist.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Running, call, free_port, wait_for};
use serde_json::json;

fn serve(dir: &tempfile::TempDir, pg: &[&str]) -> (Running, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_liteshop"))
        .arg("serve")
        .arg("--db")
        .arg(dir.path().join("shop.db"))
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .args(pg)
        .env_remove("LITESHOP_DB")
        .env("LITESHOP_ADMIN_TOKEN", "admin")
        .env("LITESHOP_TOKEN_SECRET", "secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (Running(child), base)
}

#[test]
fn with_no_pg_the_fake_widget_step_runs_a_top_up_and_a_card_payment_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = serve(&dir, &[]);
    let url = |path: &str| format!("{base}{path}");
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        call("POST", &url(path), token, None, Some(&body.to_string()))
    };
    let user = post("/users", None, json!({ "name": "Kim" }));
    let token = user.body["token"].as_str().unwrap().to_owned();
    let token = Some(token.as_str());

    let started = post("/me/balance/charge", token, json!({ "amount": 30_000 }));
    assert_eq!(started.body["status"], json!("started"), "{}", started.body);
    let step =
        json!({ "pg_order_id": started.body["pg_order_id"], "amount": started.body["pg_amount"] });
    // The fake says it is one, in a header and in the server's log.
    let raw = ureq::post(url("/fake-pg/widget"))
        .header("Content-Type", "application/json")
        .send(step.to_string())
        .unwrap();
    assert_eq!(raw.headers().get("x-fake-pg").unwrap(), "true");
    let redirect: serde_json::Value =
        serde_json::from_str(&raw.into_body().read_to_string().unwrap()).unwrap();
    let confirmed = post(
        &format!("/me/payments/{}/confirm", started.body["id"]),
        token,
        redirect,
    );
    assert_eq!(
        confirmed.body["status"],
        json!("approved"),
        "{}",
        confirmed.body
    );
    let balance = call("GET", &url("/me/balance"), token, None, None);
    assert_eq!(balance.body["balance"], json!(30_000));

    // A card payment of an order, the same way.
    let product = call(
        "POST",
        &url("/admin/products"),
        Some("admin"),
        None,
        Some(&json!({ "name": "Tea", "price": 12_000, "stock": 3 }).to_string()),
    );
    let lines = json!({ "lines": { product.body["id"].to_string(): 1 } });
    let order = post("/me/orders", token, lines);
    let started = post(
        &format!("/me/orders/{}/pay", order.body["id"]),
        token,
        json!({}),
    );
    let step =
        json!({ "pg_order_id": started.body["pg_order_id"], "amount": started.body["pg_amount"] });
    let redirect = post("/fake-pg/widget", None, step);
    let paid = post(
        &format!("/me/payments/{}/confirm", started.body["id"]),
        token,
        redirect.body,
    );
    assert_eq!(paid.body["status"], json!("approved"), "{}", paid.body);
    let balance = call("GET", &url("/me/balance"), token, None, None);
    assert_eq!(
        balance.body["balance"],
        json!(30_000),
        "the card paid it all"
    );
}

#[test]
fn with_a_pg_configured_there_is_no_fake_widget_step() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = serve(
        &dir,
        &["--pg-url", "http://127.0.0.1:9", "--pg-secret", "test_sk_x"],
    );
    let reply = call(
        "POST",
        &format!("{base}/fake-pg/widget"),
        None,
        None,
        Some(r#"{"pg_order_id": "ls-1-00000000", "amount": 1}"#),
    );
    assert_eq!(reply.status, 404);
}
