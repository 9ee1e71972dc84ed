//! The API over real HTTP on an ephemeral port: each route's happy path and
//! refusals with their status and problem code, authentication across
//! users, idempotent replays, and concurrent orders on a small stock.

mod common;

use common::{assert_problem, call, lines, start};
use serde_json::json;

#[test]
fn health_openapi_and_unknown_routes() {
    let s = start();
    let health = s.get("/healthz", None);
    assert_eq!(health.status, 200);
    assert!(
        health.request_id.is_some(),
        "every response carries its request id"
    );
    assert_eq!(s.get("/readyz", None).status, 200);
    let api = s.get("/openapi.json", None);
    assert_eq!(api.body["openapi"], json!("3.1.0"));
    assert!(api.body["paths"]["/me/balance/charge"]["post"].is_object());
    // Responses are typed: an order is an Order, with its fields.
    let order = &api.body["paths"]["/me/orders/{id}"]["get"]["responses"]["200"];
    assert_eq!(
        order["content"]["application/json"]["schema"]["$ref"],
        json!("#/components/schemas/Order")
    );
    assert!(api.body["components"]["schemas"]["Order"]["properties"]["lines"].is_object());
    assert_problem(&s.get("/nowhere", None), 404, "not_found");
    let wrong = call("DELETE", &s.url("/me/balance"), None, None, None);
    assert_problem(&wrong, 405, "method_not_allowed");
    assert!(wrong.allow.unwrap_or_default().contains("GET"));
    let big = "x".repeat(70 * 1024);
    let too_big = call(
        "POST",
        &s.url("/users"),
        None,
        None,
        Some(&format!("{{\"name\":\"{big}\"}}")),
    );
    assert_problem(&too_big, 413, "body_too_large");
}

#[test]
fn authentication_and_ownership() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let (_, lee) = s.user("Lee");
    assert_problem(&s.get("/me", None), 401, "unauthorized");
    assert_problem(&s.get("/me", Some("u1.00")), 401, "invalid_token");
    assert_eq!(s.get("/me", Some(&kim)).body["name"], json!("Kim"));
    // A user token on an admin route: 403; no token: 401.
    let body = json!({ "name": "Cup", "price": 1000, "stock": 1 });
    assert_problem(
        &s.post("/admin/products", Some(&kim), body.clone()),
        403,
        "forbidden",
    );
    assert_problem(&s.post("/admin/products", None, body), 401, "unauthorized");
    // Another user's order is not found.
    let tea = s.product(1_000, 10);
    s.post("/me/balance/charge", Some(&kim), json!({ "amount": 5_000 }));
    let order = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(tea, 1)]) }),
    );
    assert_eq!(order.status, 201, "{}", order.body);
    let id = order.body["id"].as_i64().unwrap();
    assert_problem(
        &s.get(&format!("/me/orders/{id}"), Some(&lee)),
        404,
        "order_not_found",
    );
    assert_eq!(s.get(&format!("/me/orders/{id}"), Some(&kim)).status, 200);
}

#[test]
fn the_flows_and_their_refusals() {
    let s = start();
    let (_, kim) = s.user("Kim");
    assert_problem(
        &s.post("/users", None, json!({ "name": "" })),
        400,
        "invalid_name",
    );
    assert_problem(
        &call("POST", &s.url("/users"), None, None, Some("{not json")),
        400,
        "malformed_body",
    );
    assert_problem(
        &s.post("/users", None, json!({ "name": 7 })),
        400,
        "malformed_body",
    );

    assert_problem(
        &s.post("/me/balance/charge", Some(&kim), json!({ "amount": 0 })),
        400,
        "zero_amount",
    );
    assert_problem(
        &s.post("/me/balance/charge", Some(&kim), json!({ "amount": -5 })),
        400,
        "negative_amount",
    );
    let charged = s.post(
        "/me/balance/charge",
        Some(&kim),
        json!({ "amount": 30_000 }),
    );
    assert_eq!(charged.body, json!({ "balance": 30_000 }));
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(30_000)
    );
    assert_eq!(
        s.get("/me/ledger", Some(&kim)).body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_problem(
        &s.get("/me/ledger?limit=0", Some(&kim)),
        400,
        "invalid_page_size",
    );

    let tea = s.product(12_000, 5);
    assert_eq!(
        s.get(&format!("/products/{tea}"), None).body["stock"],
        json!(5)
    );
    assert_problem(&s.get("/products/999", None), 404, "product_not_found");
    assert_problem(&s.get("/products/0", None), 400, "invalid_id");
    let admin = s.admin.clone();
    let restocked = s.post(
        &format!("/admin/products/{tea}/restock"),
        Some(&admin),
        json!({ "quantity": 5 }),
    );
    assert_eq!(restocked.body["stock"], json!(10));
    let priced = call(
        "PUT",
        &s.url(&format!("/admin/products/{tea}/price")),
        Some(&admin),
        None,
        Some(&json!({ "price": 10_000 }).to_string()),
    );
    assert_eq!(priced.body["price"], json!(10_000));
    assert_eq!(
        s.get("/products", None).body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let order = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(tea, 2)]) }),
    );
    assert_eq!(order.status, 201);
    let id = order.body["id"].as_i64().unwrap();
    assert_problem(
        &s.post(
            "/me/orders",
            Some(&kim),
            json!({ "lines": lines(&[(tea, 9)]) }),
        ),
        409,
        "insufficient_stock",
    );
    assert_problem(
        &s.post("/me/orders", Some(&kim), json!({ "lines": {} })),
        400,
        "empty_order",
    );
    let paid = s.post(&format!("/me/orders/{id}/pay"), Some(&kim), json!({}));
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["status"], json!("approved"));
    let payment = paid.body["id"].as_i64().unwrap();
    assert_eq!(
        s.get(&format!("/me/payments/{payment}"), Some(&kim)).body["status"],
        json!("approved")
    );
    assert_problem(
        &s.post(&format!("/me/orders/{id}/pay"), Some(&kim), json!({})),
        409,
        "invalid_transition",
    );
    assert_problem(
        &s.post(&format!("/me/orders/{id}/cancel"), Some(&kim), json!({})),
        409,
        "invalid_transition",
    );
    assert_eq!(
        s.get("/me/orders", Some(&kim)).body["items"][0]["status"],
        json!("paid")
    );
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(10_000)
    );

    let other = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(tea, 1)]) }),
    );
    let other = other.body["id"].as_i64().unwrap();
    let cancelled = s.post(&format!("/me/orders/{other}/cancel"), Some(&kim), json!({}));
    assert_eq!(cancelled.body["status"], json!("cancelled"));
}

#[test]
fn idempotent_posts_replay_and_refuse_a_different_body() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let first = s.post_keyed(
        "/me/balance/charge",
        &kim,
        "00000001-0000-4000-8000-000000000000",
        json!({ "amount": 7_000 }),
    );
    assert_eq!((first.status, first.replayed), (200, false));
    let again = s.post_keyed(
        "/me/balance/charge",
        &kim,
        "00000001-0000-4000-8000-000000000000",
        json!({ "amount": 7_000 }),
    );
    assert_eq!((again.status, again.replayed), (200, true));
    assert_eq!(again.body, first.body);
    assert_eq!(
        s.get("/me/ledger", Some(&kim)).body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let different = s.post_keyed(
        "/me/balance/charge",
        &kim,
        "00000001-0000-4000-8000-000000000000",
        json!({ "amount": 8_000 }),
    );
    assert_problem(&different, 422, "idempotency_key_reused");
    assert_eq!(
        different.body["fields"]["key"],
        json!("00000001-0000-4000-8000-000000000000")
    );
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(7_000)
    );

    let tea = s.product(1_000, 3);
    let body = json!({ "lines": lines(&[(tea, 1)]) });
    let placed = s.post_keyed(
        "/me/orders",
        &kim,
        "00000004-0000-4000-8000-000000000000",
        body.clone(),
    );
    let replayed = s.post_keyed(
        "/me/orders",
        &kim,
        "00000004-0000-4000-8000-000000000000",
        body,
    );
    assert_eq!(
        (placed.status, replayed.status, replayed.replayed),
        (201, 201, true)
    );
    assert_eq!(placed.body["id"], replayed.body["id"]);
    assert_eq!(
        s.get(&format!("/products/{tea}"), None).body["stock"],
        json!(2)
    );
}

#[test]
fn two_hundred_concurrent_orders_on_a_stock_of_seven() {
    let s = start();
    let tea = s.product(1_000, 7);
    let users: Vec<String> = (0..20)
        .map(|i| {
            let (_, token) = s.user(&format!("u{i}"));
            s.post(
                "/me/balance/charge",
                Some(&token),
                json!({ "amount": 100_000 }),
            );
            token
        })
        .collect();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let (s, token) = (&s, users[i % users.len()].clone());
                scope.spawn(move || {
                    s.post(
                        "/me/orders",
                        Some(&token),
                        json!({ "lines": lines(&[(tea, 1)]) }),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|&&c| c == 201).count(), 7);
    assert_eq!(statuses.iter().filter(|&&c| c == 409).count(), 193);
    assert_eq!(
        s.get(&format!("/products/{tea}"), None).body["stock"],
        json!(0)
    );
}

#[test]
fn cart_checkout_refunds_coupons_and_the_admin_reads() {
    let s = start();
    let (_, kim) = s.user("Kim");
    s.post(
        "/me/balance/charge",
        Some(&kim),
        json!({ "amount": 100_000 }),
    );
    let tea = s.product(10_000, 10);
    let admin = s.admin.clone();

    // Cart.
    let line = s.post(
        "/me/cart/items",
        Some(&kim),
        json!({ "product": tea, "quantity": 1 }),
    );
    assert_eq!(line.status, 201, "{}", line.body);
    let item = line.body["id"].as_i64().unwrap();
    assert_problem(
        &s.post(
            "/me/cart/items",
            Some(&kim),
            json!({ "product": tea, "quantity": 1 }),
        ),
        409,
        "already_in_cart",
    );
    let set = call(
        "PATCH",
        &s.url(&format!("/me/cart/items/{item}")),
        Some(&kim),
        None,
        Some(&json!({ "quantity": 3 }).to_string()),
    );
    assert_eq!(set.body["quantity"], json!(3));
    assert_eq!(s.get("/me/cart", Some(&kim)).body["total"], json!(30_000));

    // A coupon, issued with a key, used at checkout with a key.
    let coupon = s.post(
        "/admin/coupons",
        Some(&admin),
        json!({
            "name": "Five off", "discount": { "kind": "fixed", "amount": 5_000 }, "quantity": 1,
            "issuable_from": 0, "issuable_for_secs": 3_153_600_000_i64, "valid_for_secs": 86_400,
            "min_order_total": 0,
        }),
    );
    assert_eq!(coupon.status, 201, "{}", coupon.body);
    let coupon = coupon.body["id"].as_i64().unwrap();
    let issued = s.post_keyed(
        &format!("/me/coupons/{coupon}"),
        &kim,
        "00000003-0000-4000-8000-000000000000",
        json!(null),
    );
    let again = s.post_keyed(
        &format!("/me/coupons/{coupon}"),
        &kim,
        "00000003-0000-4000-8000-000000000000",
        json!(null),
    );
    assert_eq!(
        (issued.status, again.status, again.replayed),
        (201, 201, true)
    );
    assert_eq!(
        s.get(&format!("/coupons/{coupon}"), None).body["issued"],
        json!(1)
    );
    assert_eq!(
        s.get("/me/coupons", Some(&kim)).body["items"][0]["state"]["state"],
        json!("available")
    );

    let order = s.post_keyed(
        "/me/cart/checkout",
        &kim,
        "00000002-0000-4000-8000-000000000000",
        json!({ "coupon": coupon }),
    );
    assert_eq!(order.status, 201, "{}", order.body);
    assert_eq!(order.body["total"], json!(25_000));
    let id = order.body["id"].as_i64().unwrap();
    let replay = s.post_keyed(
        "/me/cart/checkout",
        &kim,
        "00000002-0000-4000-8000-000000000000",
        json!({ "coupon": coupon }),
    );
    assert_eq!(replay.body["id"], json!(id));
    let removed = call(
        "DELETE",
        &s.url(&format!("/me/cart/items/{item}")),
        Some(&kim),
        None,
        None,
    );
    assert_problem(&removed, 404, "cart_item_not_found");

    // Pay with a key, then a one-unit refund asked twice: one refund.
    let paid = call(
        "POST",
        &s.url(&format!("/me/orders/{id}/pay")),
        Some(&kim),
        Some("00000005-0000-4000-8000-000000000000"),
        None,
    );
    assert_eq!(paid.status, 200, "{}", paid.body);
    let payment = paid.body["id"].as_i64().unwrap();
    assert_eq!(
        s.get(&format!("/me/payments/{payment}/history"), Some(&kim))
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let body = json!({ "lines": lines(&[(tea, 1)]), "reason": "broken" });
    let refunded = s.post_keyed(
        &format!("/me/orders/{id}/refunds"),
        &kim,
        "00000006-0000-4000-8000-000000000000",
        body.clone(),
    );
    let repeat = s.post_keyed(
        &format!("/me/orders/{id}/refunds"),
        &kim,
        "00000006-0000-4000-8000-000000000000",
        body,
    );
    assert_eq!(
        (refunded.status, repeat.status, repeat.replayed),
        (201, 201, true)
    );
    assert_eq!(refunded.body["id"], repeat.body["id"]);
    assert_eq!(
        s.get(&format!("/me/orders/{id}/refunds"), Some(&kim))
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_problem(
        &s.post(
            &format!("/me/orders/{id}/refunds"),
            Some(&kim),
            json!({ "whole": true, "reason": "" }),
        ),
        400,
        "invalid_refund_reason",
    );

    // Best sellers, the feed and the audit.
    let top = s.get("/best-sellers?days=3&limit=5", None);
    assert_eq!(top.body[0]["units"], json!(2));
    assert_problem(&s.get("/best-sellers?days=31", None), 400, "out_of_range");
    assert_problem(&s.get("/admin/events", Some(&kim)), 403, "forbidden");
    let events = s.get("/admin/events?after=0&limit=100", Some(&admin));
    assert!(events.body.as_array().unwrap().len() >= 4);
    let audit = s.get("/admin/audit", Some(&admin));
    assert_eq!(audit.body["violations"], json!([]));
}

#[test]
fn an_idempotency_key_must_be_a_uuid() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let reply = s.post_keyed(
        "/me/balance/charge",
        &kim,
        "not-a-uuid",
        json!({ "amount": 1 }),
    );
    assert_problem(&reply, 400, "invalid_idempotency_key");
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(0));
}

#[test]
fn pay_with_the_pg_widgets_payment_key() {
    let s = start();
    let (_, kim) = s.user("Kim");
    s.post(
        "/me/balance/charge",
        Some(&kim),
        json!({ "amount": 10_000 }),
    );
    let tea = s.product(1_000, 5);
    let order = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(tea, 1)]) }),
    );
    let id = order.body["id"].as_i64().unwrap();
    assert_problem(
        &s.post(
            &format!("/me/orders/{id}/pay"),
            Some(&kim),
            json!({ "payment_key": "no spaces" }),
        ),
        400,
        "invalid_payment_key",
    );
    let paid = s.post(
        &format!("/me/orders/{id}/pay"),
        Some(&kim),
        json!({ "payment_key": "widget_key-1" }),
    );
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["payment_key"], json!("widget_key-1"));
    let payments = s.get(&format!("/me/orders/{id}/payments"), Some(&kim));
    assert_eq!(
        payments.body.as_array().unwrap().len(),
        1,
        "the refused payment key started no attempt"
    );
}
