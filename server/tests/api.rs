//! The API over real HTTP on an ephemeral port: each route's happy path and
//! refusals with their status and problem code, authentication across
//! users, idempotent replays, and concurrent orders on a small stock.

mod common;

use common::{assert_problem, call, lines, start};
use serde_json::json;
use std::time::Duration;

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
    // A charge starts a top-up through the PG and credits nothing.
    let charged = s.post(
        "/me/balance/charge",
        Some(&kim),
        json!({ "amount": 30_000 }),
    );
    assert_eq!(charged.status, 200, "{}", charged.body);
    assert_eq!(charged.body["kind"], json!("top_up"));
    assert_eq!(charged.body["status"], json!("started"));
    assert_eq!(charged.body["pg_amount"], json!(30_000));
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(0));
    let confirmed = s.confirm(&kim, &charged.body);
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.body["status"], json!("approved"));
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
    // An id that is not a number never reaches the shop: a problem body.
    assert_problem(&s.get("/products/tea", None), 400, "bad_request");
    assert_problem(&s.get("/me/orders/1x", Some(&kim)), 400, "bad_request");
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
    assert_eq!(priced.body["tax_free"], json!(false));
    let tax_free = |body: &str| {
        call(
            "PUT",
            &s.url(&format!("/admin/products/{tea}/tax-free")),
            Some(&admin),
            None,
            Some(body),
        )
    };
    assert_problem(&tax_free(r#"{"tax_free": 1}"#), 400, "malformed_body");
    assert_problem(
        &call(
            "PUT",
            &s.url(&format!("/admin/products/{tea}/tax-free")),
            Some(&kim),
            None,
            Some(r#"{"tax_free": true}"#),
        ),
        403,
        "forbidden",
    );
    assert_eq!(
        tax_free(r#"{"tax_free": true}"#).body["tax_free"],
        json!(true)
    );
    assert_eq!(
        tax_free(r#"{"tax_free": false}"#).body["tax_free"],
        json!(false)
    );
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
    // Wholly by balance: approved at once, no PG.
    let paid = s.post(
        &format!("/me/orders/{id}/pay"),
        Some(&kim),
        json!({ "balance_part": 20_000 }),
    );
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["pg_amount"], json!(0));
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

/// A key is fingerprinted with the route the request matched and its
/// parameters as read, not the bytes of its path: `/me/orders/7/pay` and
/// `/me/orders/007/pay` pay one order, so the second is the first's
/// replay, and the balance part is held once. Another order under the
/// same key is another request: refused, nothing held.
#[test]
fn a_key_names_the_route_and_its_ids_not_their_spelling() {
    let s = start();
    let (_, kim) = s.user("Kim");
    assert_eq!(s.top_up(&kim, 10_000), 10_000);
    let tea = s.product(1_000, 5);
    let place = || {
        s.post(
            "/me/orders",
            Some(&kim),
            json!({ "lines": lines(&[(tea, 1)]) }),
        )
        .body["id"]
            .as_i64()
            .unwrap()
    };
    let (id, other) = (place(), place());
    let key = "00000009-0000-4000-8000-000000000000";
    let body = json!({ "balance_part": 1_000 });
    let first = s.post_keyed(&format!("/me/orders/{id}/pay"), &kim, key, body.clone());
    assert_eq!(
        (first.status, first.replayed),
        (200, false),
        "{}",
        first.body
    );
    let padded = s.post_keyed(&format!("/me/orders/00{id}/pay"), &kim, key, body.clone());
    assert_eq!(
        (padded.status, padded.replayed),
        (200, true),
        "{}",
        padded.body
    );
    assert_eq!(padded.body["id"], first.body["id"]);
    let elsewhere = s.post_keyed(&format!("/me/orders/{other}/pay"), &kim, key, body);
    assert_problem(&elsewhere, 422, "idempotency_key_reused");
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(9_000),
        "the balance part was held once"
    );
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
    assert_eq!(again.body, first.body, "one top-up started");
    // Its confirm, keyed, credits once however often it is sent.
    let redirect = s.widget(&first.body);
    let confirm = format!("/me/payments/{}/confirm", first.body["id"]);
    for replayed in [false, true] {
        let confirmed = s.post_keyed(
            &confirm,
            &kim,
            "00000002-0000-4000-8000-000000000000",
            redirect.clone(),
        );
        assert_eq!((confirmed.status, confirmed.replayed), (200, replayed));
        assert_eq!(confirmed.body["status"], json!("approved"));
    }
    // A refreshed redirect without the key: the payment as it is.
    let refreshed = s.post(&confirm, Some(&kim), redirect);
    assert_eq!(refreshed.body["status"], json!("approved"));
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
    assert_eq!(s.top_up(&kim, 100_000), 100_000);
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

    // Pay by card with a key (no body: all of it through the PG), then a
    // one-unit refund asked twice: one refund.
    let started = call(
        "POST",
        &s.url(&format!("/me/orders/{id}/pay")),
        Some(&kim),
        Some("00000005-0000-4000-8000-000000000000"),
        None,
    );
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.body["status"], json!("started"));
    assert_eq!(started.body["pg_amount"], json!(25_000));
    let paid = s.confirm(&kim, &started.body);
    assert_eq!(paid.body["status"], json!("approved"), "{}", paid.body);
    let payment = paid.body["id"].as_i64().unwrap();
    let history = s.get(&format!("/me/payments/{payment}/history"), Some(&kim));
    let statuses: Vec<&serde_json::Value> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|event| &event["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("started"), &json!("requested"), &json!("approved")]
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
fn a_split_payment_takes_each_part_once_and_a_tampered_redirect_changes_nothing() {
    let s = start();
    let (kim_id, kim) = s.user("Kim");
    assert_eq!(s.top_up(&kim, 10_000), 10_000);
    let tea = s.product(1_000, 5);
    let order = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(tea, 3)]) }),
    );
    let id = order.body["id"].as_i64().unwrap();
    assert_problem(
        &s.post(
            &format!("/me/orders/{id}/pay"),
            Some(&kim),
            json!({ "balance_part": 3_001 }),
        ),
        409,
        "balance_part_too_large",
    );
    // 1,000 from the balance (held at once), 2,000 by card.
    let started = s.post(
        &format!("/me/orders/{id}/pay"),
        Some(&kim),
        json!({ "balance_part": 1_000 }),
    );
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(
        (&started.body["balance_amount"], &started.body["pg_amount"]),
        (&json!(1_000), &json!(2_000))
    );
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(9_000)
    );

    // Tampered or malformed redirects are refused and change nothing.
    let confirm = format!("/me/payments/{}/confirm", started.body["id"]);
    let redirect = s.widget(&started.body);
    let before = s.get(&format!("/me/payments/{}", started.body["id"]), Some(&kim));
    let mut cheaper = redirect.clone();
    cheaper["amount"] = json!(1);
    assert_problem(
        &s.post(&confirm, Some(&kim), cheaper),
        409,
        "redirect_mismatch",
    );
    let mut other = redirect.clone();
    other["pg_order_id"] = json!("ls-999-00000000");
    assert_problem(
        &s.post(&confirm, Some(&kim), other),
        409,
        "redirect_mismatch",
    );
    let mut bad_key = redirect.clone();
    bad_key["payment_key"] = json!("no spaces");
    assert_problem(
        &s.post(&confirm, Some(&kim), bad_key),
        400,
        "invalid_payment_key",
    );
    let (_, lee) = s.user("Lee");
    assert_problem(
        &s.post(&confirm, Some(&lee), redirect.clone()),
        404,
        "payment_not_found",
    );
    assert_eq!(
        s.get(&format!("/me/payments/{}", started.body["id"]), Some(&kim))
            .body,
        before.body
    );
    assert_eq!(
        s.pg.total_calls(),
        1,
        "only the top-up's confirm reached the PG"
    );

    let paid = s.post(&confirm, Some(&kim), redirect);
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["status"], json!("approved"));
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(9_000)
    );
    let ledger = s.get("/me/ledger", Some(&kim)).body;
    assert_eq!(ledger["items"][0]["kind"], json!("payment"));
    assert_eq!(
        ledger["items"][0]["amount"],
        json!(1_000),
        "the ledger shows the balance part"
    );

    // The whole refund: the card part to the card, the balance part back.
    let refund = s.post(
        &format!("/me/orders/{id}/refunds"),
        Some(&kim),
        json!({ "whole": true, "reason": "changed my mind" }),
    );
    assert_eq!(refund.status, 201, "{}", refund.body);
    assert_eq!(
        (&refund.body["balance_amount"], &refund.body["pg_amount"]),
        (&json!(1_000), &json!(2_000))
    );
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(10_000)
    );

    // The PG's failure redirect ends an attempt and gives its part back.
    let again = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(tea, 1)]) }),
    );
    let again = again.body["id"].as_i64().unwrap();
    let started = s.post(
        &format!("/me/orders/{again}/pay"),
        Some(&kim),
        json!({ "balance_part": 500 }),
    );
    let fail = format!("/me/payments/{}/fail", started.body["id"]);
    assert_problem(
        &s.post(
            &fail,
            Some(&kim),
            json!({ "code": "PAY PROCESS", "message": "", "pg_order_id": started.body["pg_order_id"] }),
        ),
        400,
        "invalid_fail_redirect",
    );
    let failed = s.post(
        &fail,
        Some(&kim),
        json!({ "code": "PAY_PROCESS_CANCELED", "message": "closed", "pg_order_id": started.body["pg_order_id"] }),
    );
    assert_eq!(failed.body["status"], json!("declined"), "{}", failed.body);
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(10_000)
    );
    assert_eq!(
        s.get(&format!("/me/orders/{again}"), Some(&kim)).body["status"],
        json!("pending")
    );
    assert!(s.shop.audit().unwrap().is_clean());
    let _ = kim_id;
}

#[test]
fn a_user_token_cannot_mint_money_and_an_operator_grants_with_a_note() {
    let s = start();
    let (kim_id, kim) = s.user("Kim");
    // Three charges, never paid at the PG: nothing credited.
    for _ in 0..3 {
        let started = s.post(
            "/me/balance/charge",
            Some(&kim),
            json!({ "amount": 2_000_000 }),
        );
        assert_eq!(started.body["status"], json!("started"), "{}", started.body);
    }
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(0));
    // The admin routes refuse a user's token.
    let grant = format!("/admin/users/{kim_id}/grant");
    let body = json!({ "amount": 3_000, "note": "late delivery" });
    assert_problem(&s.post(&grant, Some(&kim), body.clone()), 403, "forbidden");
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(0));

    let admin = s.admin.clone();
    let key = "00000009-0000-4000-8000-000000000000";
    let granted = s.post_keyed(&grant, &admin, key, body.clone());
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body, json!({ "balance": 3_000 }));
    let replayed = s.post_keyed(&grant, &admin, key, body);
    assert_eq!(
        (replayed.replayed, &replayed.body),
        (true, &json!({ "balance": 3_000 }))
    );
    assert_problem(
        &s.post(&grant, Some(&admin), json!({ "amount": 1, "note": "" })),
        400,
        "invalid_note",
    );
    assert_problem(
        &s.post(
            "/admin/users/999/grant",
            Some(&admin),
            json!({ "amount": 1, "note": "x" }),
        ),
        404,
        "user_not_found",
    );
    let take_back = format!("/admin/users/{kim_id}/take-back");
    assert_problem(
        &s.post(
            &take_back,
            Some(&admin),
            json!({ "amount": 3_001, "note": "too much" }),
        ),
        409,
        "insufficient_balance",
    );
    let taken = s.post(
        &take_back,
        Some(&admin),
        json!({ "amount": 1_000, "note": "granted twice" }),
    );
    assert_eq!(taken.body, json!({ "balance": 2_000 }));
    let ledger = s.get("/me/ledger", Some(&kim)).body;
    assert_eq!(ledger["items"][0]["kind"], json!("take_back"));
    assert_eq!(ledger["items"][0]["note"], json!("granted twice"));
    assert_eq!(ledger["items"][1]["kind"], json!("grant"));
    assert_eq!(ledger["items"][1]["note"], json!("late delivery"));
    assert_eq!(ledger["items"].as_array().unwrap().len(), 2);
    assert!(s.shop.audit().unwrap().is_clean());
}

#[test]
fn a_top_up_goes_back_to_the_card_while_unspent() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let started = s.post(
        "/me/balance/charge",
        Some(&kim),
        json!({ "amount": 20_000 }),
    );
    s.confirm(&kim, &started.body);
    let id = started.body["id"].as_i64().unwrap();
    let listed = s.get("/me/top-ups", Some(&kim));
    assert_eq!(listed.body["items"][0]["id"], json!(id));
    let refunds = format!("/me/top-ups/{id}/refunds");
    assert_problem(
        &s.post(
            &refunds,
            Some(&kim),
            json!({ "amount": 20_001, "reason": "all" }),
        ),
        409,
        "refund_exceeds_top_up",
    );
    let refund = s.post(
        &refunds,
        Some(&kim),
        json!({ "amount": 15_000, "reason": "not needed" }),
    );
    assert_eq!(refund.status, 201, "{}", refund.body);
    assert_eq!(refund.body["order"], json!(null));
    assert_eq!(refund.body["status"], json!("completed"));
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(5_000)
    );
    assert_eq!(
        s.get(&refunds, Some(&kim)).body.as_array().unwrap().len(),
        1
    );
    let pg_order = started.body["pg_order_id"].as_str().unwrap();
    assert_eq!(s.pg.cancelled(pg_order), liteshop::Money::from_won(15_000));
    assert!(s.shop.audit().unwrap().is_clean());
}

#[test]
fn a_pg_notice_is_answered_at_once_and_settles_only_from_the_pgs_record() {
    let s = common::start();
    let (_, token) = s.user("Kim");
    let tea = s.product(10_000, 5);
    let placed = s.post(
        "/me/orders",
        Some(&token),
        json!({ "lines": common::lines(&[(tea, 1)]) }),
    );
    assert_eq!(placed.status, 201, "{}", placed.body);
    let order = placed.body["id"].as_i64().unwrap();
    let started = s.post(
        &format!("/me/orders/{order}/pay"),
        Some(&token),
        json!({ "balance_part": 0 }),
    );
    assert_eq!(started.status, 200, "{}", started.body);
    // The PG approves, and the reply to the shop is lost.
    s.pg.push(liteshop::FakeOutcome::UnknownAfterCharge);
    let lost = s.confirm(&token, &started.body);
    assert_eq!(lost.status, 202, "{}", lost.body);
    let pg_order_id = started.body["pg_order_id"].as_str().unwrap().to_owned();

    // A notice whose body claims anything: the shop asks the PG.
    let notice = json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-12-01T10:00:00.000",
        "data": { "orderId": pg_order_id, "status": "CANCELED", "totalAmount": 1 },
    });
    for _ in 0..3 {
        let reply = s.post("/pg/webhook", None, notice.clone());
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["received"], true);
    }
    let paid = common::wait_for(Duration::from_secs(10), || {
        let order = s.get(&format!("/me/orders/{order}"), Some(&token)).body;
        (order["status"] == "paid").then_some(order)
    });
    assert_eq!(paid["status"], "paid");
    assert_eq!(s.pg.approved_count(), 1);

    // A deposit callback (no eventType) for a payment the shop does not
    // know, and a notice naming nothing: answered, nothing changes.
    let before = s.shop.audit().unwrap().figures;
    for body in [
        json!({ "createdAt": "2026-12-01T10:00:00.000", "secret": "x", "status": "DONE",
                "transactionKey": "t", "orderId": "ls-unknown-1" }),
        json!({ "eventType": "PAYMENT_STATUS_CHANGED" }),
    ] {
        let reply = s.post("/pg/webhook", None, body);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // A body that is not a notice is a documented 400.
    for body in [
        "[1, 2",
        "[null, null]",
        r#"{"data": "x"}"#,
        r#"{"eventType": 5}"#,
    ] {
        let reply = common::send(
            "POST",
            &s.url("/pg/webhook"),
            &[("Content-Type", "application/json")],
            Some(body),
        );
        common::assert_problem(&reply, 400, "malformed_body");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.shop.audit().unwrap().figures, before);
    assert!(s.undocumented().is_empty(), "{:?}", s.undocumented());
}

/// The `paymentKey` of a confirm is whatever the customer's browser sends:
/// one the PG never issued is the PG's decline of that top-up (402), never
/// a server error, and credits nothing.
#[test]
fn a_top_up_confirmed_with_an_invented_key_is_declined_not_a_server_error() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let charged = s.post(
        "/me/balance/charge",
        Some(&kim),
        json!({ "amount": 10_000 }),
    );
    assert_eq!(charged.status, 200, "{}", charged.body);
    let mut invented = s.widget(&charged.body);
    invented["payment_key"] = json!("lsk_invented_by_the_browser");
    let declined = s.post(
        &format!("/me/payments/{}/confirm", charged.body["id"]),
        Some(&kim),
        invented,
    );
    assert_problem(&declined, 402, "top_up_declined");
    assert_eq!(
        declined.body["fields"]["pg_code"],
        json!("NOT_FOUND_PAYMENT")
    );
    let payment = s.get(&format!("/me/payments/{}", charged.body["id"]), Some(&kim));
    assert_eq!(payment.body["status"], json!("declined"));
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(0));
}

/// A top-up paid by bank transfer: the confirm answers 200 with the
/// payment still `requested` and the virtual account to pay into; a
/// deposit callback with another secret changes nothing; the PG's own one
/// credits the balance.
#[test]
fn a_top_up_by_bank_transfer_waits_for_the_deposit_callback_with_its_secret() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let charged = s.post(
        "/me/balance/charge",
        Some(&kim),
        json!({ "amount": 20_000 }),
    );
    assert_eq!(charged.status, 200, "{}", charged.body);
    let pg_order_id = charged.body["pg_order_id"].as_str().unwrap().to_owned();
    let redirect = s.pg.pay_in_widget_by_transfer(
        &pg_order_id,
        liteshop::Money::new(20_000).unwrap(),
        Duration::from_secs(3 * 24 * 3_600),
    );
    let confirm = format!("/me/payments/{}/confirm", charged.body["id"]);
    let waiting = s.post(
        &confirm,
        Some(&kim),
        json!({ "payment_key": redirect.payment_key, "pg_order_id": pg_order_id, "amount": 20_000 }),
    );
    assert_eq!(waiting.status, 200, "{}", waiting.body);
    assert_eq!(waiting.body["status"], json!("requested"));
    assert!(
        waiting.body["deposit"]["account_number"].is_string(),
        "{}",
        waiting.body
    );
    assert!(waiting.body["deposit"]["due_at"].is_i64());
    assert!(
        !waiting.body.to_string().contains("secret"),
        "{}",
        waiting.body
    );
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(0));

    let secret = s.pg.deposit(&pg_order_id).unwrap();
    let callback = |secret: &str| {
        json!({ "createdAt": "2026-12-01T10:00:00.000", "secret": secret, "status": "DONE",
                "transactionKey": "t1", "orderId": pg_order_id })
    };
    let forged = s.post("/pg/webhook", None, callback("ps_forged"));
    assert_eq!(forged.status, 200, "{}", forged.body);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(0),
        "another secret settles nothing"
    );
    let real = s.post("/pg/webhook", None, callback(&secret));
    assert_eq!(real.status, 200, "{}", real.body);
    let balance = common::wait_for(Duration::from_secs(10), || {
        let balance = s.get("/me/balance", Some(&kim)).body["balance"].clone();
        (balance == json!(20_000)).then_some(balance)
    });
    assert_eq!(balance, json!(20_000));
    assert!(s.shop.audit().unwrap().is_clean());

    // Its refund goes to the account the customer gives: a bad one is a
    // documented 400; then the refund runs.
    let bearer = format!("Bearer {kim}");
    let put = |body: serde_json::Value| {
        s.request(
            "PUT",
            &format!("/me/payments/{}/refund-account", charged.body["id"]),
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            Some(&body.to_string()),
        )
    };
    assert_problem(
        &put(json!({ "bank": "20", "account_number": "12-34", "holder_name": "김민지" })),
        400,
        "invalid_refund_account",
    );
    let set =
        put(json!({ "bank": "20", "account_number": "1002123456789", "holder_name": "김민지" }));
    assert_eq!(set.status, 200, "{}", set.body);
    let refund = s.post(
        &format!("/me/top-ups/{}/refunds", charged.body["id"]),
        Some(&kim),
        json!({ "amount": 5_000, "reason": "not needed" }),
    );
    assert_eq!(refund.status, 201, "{}", refund.body);
    assert_eq!(refund.body["status"], json!("completed"));
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(15_000)
    );
    assert!(s.undocumented().is_empty(), "{:?}", s.undocumented());
}
