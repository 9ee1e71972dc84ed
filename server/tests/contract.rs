//! The HTTP contract against any client: each finding of the black-box
//! review (issue "The HTTP contract holds against any client") over real
//! HTTP, with the shop checked afterwards to show a refusal changed
//! nothing; and every error path of every route, each status checked
//! against the operation's documented responses (the harness does that
//! for every answer of every test when the server drops).

mod common;

use std::collections::BTreeSet;

use common::{SECRET, Server, assert_problem, lines, start};
use liteshop::{OrderId, OrderStatus, PageRequest, UserId};
use serde_json::{Value, json};

/// A user with money and a paid order of 4 units of one product: 10,000
/// from the balance, 10,000 by card.
struct Paid {
    kim: String,
    kim_id: UserId,
    tea: i64,
    order: i64,
}

fn paid(s: &Server) -> Paid {
    let (kim_id, kim) = s.user("Kim");
    assert_eq!(s.top_up(&kim, 100_000), 100_000);
    let tea = s.product(5_000, 10);
    let order = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(tea, 4)]) }),
    );
    let order = order.body["id"].as_i64().unwrap();
    let paid = s.pay(&kim, order, 10_000);
    assert_eq!(paid.body["status"], json!("approved"), "{}", paid.body);
    Paid {
        kim,
        kim_id: UserId::new(kim_id),
        tea,
        order,
    }
}

fn uuid(n: u32) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

#[test]
fn a_typo_in_a_refund_is_refused_and_refunds_nothing() {
    let s = start();
    let p = paid(&s);
    let refunds = format!("/me/orders/{}/refunds", p.order);
    let before = s.shop.audit().unwrap().figures;
    for (body, field) in [
        (
            json!({ "line": lines(&[(p.tea, 1)]), "reason": "one broken" }),
            "line",
        ),
        (
            json!({ "lines": lines(&[(p.tea, 1)]), "reason": "x", "all": true }),
            "all",
        ),
    ] {
        let reply = s.post(&refunds, Some(&p.kim), body);
        assert_problem(&reply, 400, "malformed_body");
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("unknown field `{field}`")),
            "{detail}"
        );
    }
    // Neither `lines` nor `whole`, both, `whole: false`, or `lines: null`:
    // a whole refund is never reached by omission.
    for body in [
        json!({ "reason": "one broken" }),
        json!({ "lines": lines(&[(p.tea, 1)]), "whole": true, "reason": "x" }),
        json!({ "whole": false, "reason": "x" }),
        json!({ "lines": null, "reason": "x" }),
        json!({ "lines": null, "whole": true, "reason": "x" }),
    ] {
        assert_problem(&s.post(&refunds, Some(&p.kim), body), 400, "malformed_body");
    }
    let order = s.shop.order(p.kim_id, OrderId::new(p.order)).unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert!(s.shop.refunds(p.kim_id, order.id).unwrap().is_empty());
    assert_eq!(s.shop.audit().unwrap().figures, before);

    // Asked for by name, a whole refund returns every unit.
    let whole = s.post(
        &refunds,
        Some(&p.kim),
        json!({ "whole": true, "reason": "all of it" }),
    );
    assert_eq!(whole.status, 201, "{}", whole.body);
    assert_eq!(whole.body["amount"], json!(20_000));
    let order = s.shop.order(p.kim_id, order.id).unwrap();
    assert_eq!(order.status, OrderStatus::Refunded);
}

#[test]
fn every_body_refuses_unknown_fields_and_changes_nothing() {
    let s = start();
    let p = paid(&s);
    let (_, lee) = s.user("Lee");
    let admin = s.admin.clone();
    let coupon = json!({ "name": "Ten", "discount": { "kind": "fixed", "amount": 1_000 },
        "quantity": 5, "issuable_from": 0, "issuable_for_secs": 3_600, "valid_for_secs": 3_600,
        "min_order_total": 0 });
    let cart_line = s.post(
        "/me/cart/items",
        Some(&lee),
        json!({ "product": p.tea, "quantity": 1 }),
    );
    let cart_line = cart_line.body["id"].as_i64().unwrap();
    let before = s.shop.audit().unwrap().figures;
    let users_before = s
        .shop
        .products(PageRequest::first(100))
        .unwrap()
        .items
        .len();
    let mut with_extra = coupon.clone();
    with_extra["discount"]["percent"] = json!(5);
    let cases: Vec<(&str, String, Option<&str>, Value, &str)> = vec![
        (
            "POST",
            "/users".into(),
            None,
            json!({ "name": "Park", "admin": true }),
            "admin",
        ),
        (
            "POST",
            "/me/balance/charge".into(),
            Some(&lee),
            json!({ "amount": 1_000, "currency": "USD" }),
            "currency",
        ),
        (
            "POST",
            "/me/orders".into(),
            Some(&lee),
            json!({ "lines": lines(&[(p.tea, 1)]), "coupon_id": 1 }),
            "coupon_id",
        ),
        (
            "POST",
            "/me/cart/items".into(),
            Some(&lee),
            json!({ "product": p.tea, "quantity": 1, "note": "x" }),
            "note",
        ),
        (
            "PATCH",
            format!("/me/cart/items/{cart_line}"),
            Some(&lee),
            json!({ "quantity": 2, "qty": 3 }),
            "qty",
        ),
        (
            "POST",
            "/me/cart/checkout".into(),
            Some(&lee),
            json!({ "coupon": null, "coupons": [1] }),
            "coupons",
        ),
        (
            "POST",
            format!("/me/orders/{}/pay", p.order),
            Some(&p.kim),
            json!({ "paymentKey": "abc" }),
            "paymentKey",
        ),
        (
            "POST",
            "/admin/products".into(),
            Some(&admin),
            json!({ "name": "Tea", "price": 1, "stock": 1, "sku": "x" }),
            "sku",
        ),
        (
            "POST",
            format!("/admin/products/{}/restock", p.tea),
            Some(&admin),
            json!({ "quantity": 1, "by": 2 }),
            "by",
        ),
        (
            "PUT",
            format!("/admin/products/{}/price", p.tea),
            Some(&admin),
            json!({ "price": 1, "currency": "USD" }),
            "currency",
        ),
        (
            "POST",
            "/admin/coupons".into(),
            Some(&admin),
            {
                let mut c = coupon.clone();
                c["limit"] = json!(1);
                c
            },
            "limit",
        ),
        (
            "POST",
            "/admin/coupons".into(),
            Some(&admin),
            {
                let mut c = coupon.clone();
                c["discount"]["currency"] = json!("USD");
                c
            },
            "currency",
        ),
    ];
    for (method, path, token, body, field) in cases {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        let reply = s.request(method, &path, &headers, Some(&body.to_string()));
        assert_problem(&reply, 400, "malformed_body");
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("`{field}`")),
            "{method} {path}: {detail}"
        );
    }
    // A fixed discount with a percent is refused too.
    assert_problem(
        &s.post("/admin/coupons", Some(&admin), with_extra),
        400,
        "malformed_body",
    );
    assert_eq!(s.shop.audit().unwrap().figures, before);
    assert_eq!(
        s.shop
            .products(PageRequest::first(100))
            .unwrap()
            .items
            .len(),
        users_before
    );
    assert_eq!(s.get("/me/balance", Some(&lee)).body["balance"], json!(0));
    assert_eq!(
        s.get("/me/cart", Some(&lee)).body["lines"][0]["quantity"],
        json!(1)
    );

    // The document says so: every request body is closed.
    let doc = s.get("/openapi.json", None).body;
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let bodies = [
            "CreateUser",
            "Charge",
            "PlaceOrder",
            "AddToCart",
            "SetQuantity",
            "Checkout",
            "Pay",
            "CreateProduct",
            "Restock",
            "SetPrice",
            "CreateCoupon",
        ];
        if bodies.contains(&name.as_str()) {
            assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        }
    }
    for branch in doc["components"]["schemas"]["RefundRequest"]["oneOf"]
        .as_array()
        .unwrap()
    {
        assert_eq!(branch["additionalProperties"], json!(false));
    }
}

#[test]
fn an_empty_or_malformed_key_is_refused_and_either_case_is_one_key() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let charge = json!({ "amount": 1_000 }).to_string();
    let bearer = format!("Bearer {kim}");
    for key in [
        "",
        " ",
        "not-a-uuid",
        "1b4e28ba2fa14d2a8e3c6b5f0c3d9a77",
        "1b4e28ba-2fa1-4d2a-8e3c-6b5f0c3d9a7g",
    ] {
        let reply = s.request(
            "POST",
            "/me/balance/charge",
            &[("Authorization", &bearer), ("Idempotency-Key", key)],
            Some(&charge),
        );
        assert_problem(&reply, 400, "invalid_idempotency_key");
    }
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(0));

    // Upper case (Apple's uuidString) and lower case are one key.
    let upper = "1B4E28BA-2FA1-4D2A-8E3C-6B5F0C3D9A77";
    let first = s.post_keyed(
        "/me/balance/charge",
        &kim,
        upper,
        json!({ "amount": 1_000 }),
    );
    let again = s.post_keyed(
        "/me/balance/charge",
        &kim,
        &upper.to_ascii_lowercase(),
        json!({ "amount": 1_000 }),
    );
    assert_eq!((first.status, first.replayed), (200, false));
    assert_eq!((again.status, again.replayed), (200, true));
    assert_eq!(first.body["id"], again.body["id"], "one top-up started");
    assert_eq!(
        s.confirm(&kim, &first.body).body["status"],
        json!("approved")
    );
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(1_000)
    );
}

#[test]
fn a_key_is_one_request_per_user_across_every_route() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let tea = s.product(1_000, 10);
    let key = uuid(1);
    let charged = s.post_keyed(
        "/me/balance/charge",
        &kim,
        &key,
        json!({ "amount": 10_000 }),
    );
    assert_eq!(charged.status, 200);
    assert_eq!(
        s.confirm(&kim, &charged.body).body["status"],
        json!("approved")
    );
    // The same key on another route is refused; no order is placed.
    let order = s.post_keyed(
        "/me/orders",
        &kim,
        &key,
        json!({ "lines": lines(&[(tea, 1)]) }),
    );
    assert_problem(&order, 422, "idempotency_key_reused");
    assert_eq!(order.body["fields"]["key"], json!(key));
    assert_eq!(s.get("/me/orders", Some(&kim)).body["items"], json!([]));

    // One key cannot pay two orders.
    let place = |n| {
        s.post(
            "/me/orders",
            Some(&kim),
            json!({ "lines": lines(&[(tea, n)]) }),
        )
        .body["id"]
            .as_i64()
            .unwrap()
    };
    let (first, second) = (place(1), place(2));
    let pay_key = uuid(2);
    let paid = s.post_keyed(
        &format!("/me/orders/{first}/pay"),
        &kim,
        &pay_key,
        json!({ "balance_part": 1_000 }),
    );
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["status"], json!("approved"));
    let other = s.post_keyed(
        &format!("/me/orders/{second}/pay"),
        &kim,
        &pay_key,
        json!({ "balance_part": 1_000 }),
    );
    assert_problem(&other, 422, "idempotency_key_reused");
    assert_eq!(
        s.get(&format!("/me/orders/{second}"), Some(&kim)).body["status"],
        json!("pending")
    );
    assert_eq!(
        s.get("/me/balance", Some(&kim)).body["balance"],
        json!(9_000)
    );
    assert_eq!(s.pg.total_calls(), 1);

    // Another user's key space is their own.
    let (_, lee) = s.user("Lee");
    let theirs = s.post_keyed(
        "/me/balance/charge",
        &lee,
        &key,
        json!({ "amount": 10_000 }),
    );
    assert_eq!((theirs.status, theirs.replayed), (200, false));
}

#[test]
fn concurrent_requests_with_one_key_have_one_effect_and_all_replay_it() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let key = uuid(3);
    let replies: Vec<(u16, bool, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let r =
                        s.post_keyed("/me/balance/charge", &kim, &key, json!({ "amount": 700 }));
                    (r.status, r.replayed, r.body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(replies.iter().all(|(status, _, body)| *status == 200
        && body["id"] == replies[0].2["id"]
        && body["pg_amount"] == json!(700)));
    assert_eq!(
        replies.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    assert_eq!(
        s.confirm(&kim, &replies[0].2).body["status"],
        json!("approved")
    );
    assert_eq!(s.get("/me/balance", Some(&kim)).body["balance"], json!(700));
}

#[test]
fn unauthorized_answers_carry_a_bearer_challenge_and_the_scheme_is_case_insensitive() {
    let s = start();
    let (id, kim) = s.user("Kim");
    let none = s.request("GET", "/me", &[], None);
    assert_problem(&none, 401, "unauthorized");
    assert_eq!(none.www_authenticate.as_deref(), Some("Bearer"));
    let basic = s.request("GET", "/me", &[("Authorization", "Basic a2ltOnB3")], None);
    assert_eq!(basic.www_authenticate.as_deref(), Some("Bearer"));
    for bad in ["Bearer u1.00", "Bearer ", "bearer nonsense", "Bearer u1.zz"] {
        let reply = s.request("GET", "/me", &[("Authorization", bad)], None);
        assert_problem(&reply, 401, "invalid_token");
        assert_eq!(
            reply.www_authenticate.as_deref(),
            Some("Bearer error=\"invalid_token\""),
            "{bad}"
        );
    }
    let admin_bad = s.request(
        "GET",
        "/admin/audit",
        &[("Authorization", "Bearer wrong")],
        None,
    );
    assert_problem(&admin_bad, 401, "invalid_token");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let header = format!("{scheme} {kim}");
        let reply = s.request("GET", "/me", &[("Authorization", &header)], None);
        assert_eq!(reply.status, 200, "{scheme}");
        assert_eq!(reply.body["id"], json!(id));
    }
}

#[test]
fn tokens_minted_with_the_exported_function_are_accepted() {
    let s = start();
    let (id, token) = s.user("Kim");
    let minted = liteshop_server::user_token(SECRET, UserId::new(id));
    assert_eq!(minted, token);
    assert_eq!(
        liteshop_server::token_user(SECRET, &token),
        Some(UserId::new(id))
    );
    // The README's formula: u<id>.<hex HMAC-SHA-256 of "user:<id>">.
    assert!(token.starts_with(&format!("u{id}.")));
    assert_eq!(token.len(), format!("u{id}.").len() + 64);
    // A valid token for a user this shop does not have: 404, documented.
    let ghost = liteshop_server::user_token(SECRET, UserId::new(id + 1000));
    assert_problem(&s.get("/me", Some(&ghost)), 404, "user_not_found");
    assert_problem(&s.get("/me/balance", Some(&ghost)), 404, "user_not_found");
}

#[test]
fn numbers_are_read_exactly() {
    let s = start();
    let admin = s.admin.clone();
    for (price, expected) in [
        ("4118338983036210.0", 4_118_338_983_036_210_i64),
        ("9007199254740991", 9_007_199_254_740_991),
        ("9007199254740992.0", 9_007_199_254_740_992),
        ("9007199254740993.0", 9_007_199_254_740_993),
        ("1e3", 1_000),
        ("1.0", 1),
        ("-0", 0),
    ] {
        let body = format!(r#"{{"name": "Tea", "price": {price}, "stock": 1.0e0}}"#);
        let reply = s.call("POST", "/admin/products", Some(&admin), None, Some(&body));
        assert_eq!(reply.status, 201, "{price}: {}", reply.body);
        assert_eq!(reply.body["price"], json!(expected), "{price}");
        assert_eq!(reply.body["stock"], json!(1));
    }
    let products = s
        .shop
        .products(PageRequest::first(100))
        .unwrap()
        .items
        .len();
    for price in [
        "4503599627370496.5",
        "1.5",
        "1e-1",
        "9223372036854775808",
        "1e19",
        "-1",
    ] {
        let body = format!(r#"{{"name": "Tea", "price": {price}, "stock": 1}}"#);
        let reply = s.call("POST", "/admin/products", Some(&admin), None, Some(&body));
        assert_eq!(reply.status, 400, "{price}: {}", reply.body);
    }
    assert_eq!(
        s.shop
            .products(PageRequest::first(100))
            .unwrap()
            .items
            .len(),
        products
    );
}

#[test]
fn names_are_stored_as_sent_or_refused() {
    let s = start();
    for name in ["\u{b}\u{b8}", " Kim", "Kim ", "Kim\u{3000}", "\u{feff}Kim"] {
        let reply = s.post("/users", None, json!({ "name": name }));
        assert_eq!(reply.status, 400, "{name:?}: {}", reply.body);
    }
    let reply = s.post("/users", None, json!({ "name": "Kim  \u{b8}" }));
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["user"]["name"], json!("Kim  \u{b8}"));
    // The schema's pattern refuses exactly what the shop refuses.
    let doc = s.get("/openapi.json", None).body;
    let pattern = doc["components"]["schemas"]["CreateUser"]["properties"]["name"]["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    for space in [
        ' ', '\u{a0}', '\u{1680}', '\u{2000}', '\u{200a}', '\u{2028}', '\u{202f}', '\u{205f}',
        '\u{3000}', '\u{feff}',
    ] {
        let escaped = format!("\\u{:04x}", u32::from(space));
        let literal = if space == ' ' {
            "\\x20".to_owned()
        } else {
            escaped
        };
        assert!(
            pattern.contains(&literal) || space == ' ' || pattern.contains("\\u2000-\\u200a"),
            "{literal} in {pattern}"
        );
    }
}

#[test]
fn an_order_whose_total_overflows_is_a_conflict() {
    let s = start();
    let (_, kim) = s.user("Kim");
    let gold = s.product(i64::MAX, 5);
    let reply = s.post(
        "/me/orders",
        Some(&kim),
        json!({ "lines": lines(&[(gold, 2)]) }),
    );
    assert_problem(&reply, 409, "amount_overflow");
    assert_eq!(s.get("/me/orders", Some(&kim)).body["items"], json!([]));
}

/// Every route, driven through each error path it has: the generic ones
/// (no token, a bad token, another role's token, a token of no user, a
/// malformed body, an unknown field, a body over the limit, a bad key, a
/// bad id, an unknown id) from the document itself, and the domain ones
/// from a shop in a known state. The harness fails the test if any status
/// sent is not documented for its route; this test also checks that each
/// route was driven through at least one error status.
#[test]
fn every_error_path_of_every_route_sends_a_documented_status() {
    let s = start();
    let p = paid(&s);
    let admin = s.admin.clone();
    let ghost = liteshop_server::user_token(SECRET, UserId::new(999_999));
    let doc = s.get("/openapi.json", None).body;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let mut driven: Vec<(String, String, BTreeSet<u16>)> = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            let secured = operation.get("security").is_some();
            let admin_route = template.starts_with("/admin");
            let body = operation.get("requestBody").is_some();
            let keyed = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == json!("Idempotency-Key")));
            let id_path = |id: &str| template.replace("{id}", id);
            let good_id = if template.contains("/products/") {
                p.tea.to_string()
            } else {
                p.order.to_string()
            };
            let path = id_path(&good_id);
            let token = if admin_route {
                admin.as_str()
            } else {
                p.kim.as_str()
            };
            let mut statuses = BTreeSet::new();
            let mut run = |path: &str, headers: &[(&str, &str)], body: Option<&str>| {
                let reply = s.request(&method, path, headers, body);
                statuses.insert(reply.status);
            };
            let bearer = format!("Bearer {token}");
            if secured {
                run(&path, &[], Some("{}"));
                run(&path, &[("Authorization", "Bearer nonsense")], Some("{}"));
                if admin_route {
                    let user = format!("Bearer {}", p.kim);
                    run(&path, &[("Authorization", &user)], Some("{}"));
                } else {
                    let ghost = format!("Bearer {ghost}");
                    run(&path, &[("Authorization", &ghost)], Some("{}"));
                }
            }
            let auth: Vec<(&str, &str)> = if secured {
                vec![("Authorization", &bearer)]
            } else {
                vec![]
            };
            if body {
                run(&path, &auth, Some("{not json"));
                run(&path, &auth, Some(r#"{"surely_unknown": 1}"#));
                run(&path, &auth, Some(&big));
            }
            if keyed {
                let mut with_key = auth.clone();
                with_key.push(("Idempotency-Key", "not-a-uuid"));
                run(&path, &with_key, Some("{}"));
                with_key.pop();
                with_key.push(("Idempotency-Key", ""));
                run(&path, &with_key, Some("{}"));
            }
            if template.contains("{id}") {
                run(&id_path("0"), &auth, Some("{}"));
                run(&id_path("-5"), &auth, Some("{}"));
                run(&id_path("abc"), &auth, Some("{}"));
                run(&id_path("424242"), &auth, Some("{}"));
            }
            if operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == json!("query")))
            {
                run(&format!("{path}?limit=0&days=0&after=-1"), &auth, None);
                run(&format!("{path}?limit=abc"), &auth, None);
            }
            driven.push((method.clone(), template.clone(), statuses));
        }
    }
    // The domain refusals: state-dependent conflicts, a decline, an
    // unknown outcome, on the routes that can send them.
    let kim = Some(p.kim.as_str());
    let tea = p.tea;
    let order = |n: u32| s.post("/me/orders", kim, json!({ "lines": lines(&[(tea, n)]) }));
    assert_problem(&order(99), 409, "insufficient_stock");
    let over_limit = (0..20)
        .map(|_| s.post("/me/balance/charge", kim, json!({ "amount": 2_000_000 })))
        .find(|reply| reply.status != 200)
        .expect("the balance limit is reached");
    assert_problem(&over_limit, 409, "balance_limit_exceeded");
    let pending = order(1).body["id"].as_i64().unwrap();
    assert_problem(
        &s.post(
            &format!("/me/orders/{pending}/pay"),
            kim,
            json!({ "balance_part": 5_001 }),
        ),
        409,
        "balance_part_too_large",
    );
    s.pg.push(liteshop::FakeOutcome::decline());
    assert_problem(&s.pay(&p.kim, pending, 0), 402, "payment_declined");
    s.pg.push(liteshop::FakeOutcome::UnknownBeforeCharge);
    assert_problem(&s.pay(&p.kim, pending, 0), 202, "payment_outcome_unknown");
    assert_problem(
        &s.post(&format!("/me/orders/{pending}/cancel"), kim, json!({})),
        409,
        "invalid_transition",
    );
    assert_problem(
        &s.post(
            &format!("/me/orders/{}/refunds", p.order),
            kim,
            json!({ "lines": lines(&[(tea, 9)]), "reason": "x" }),
        ),
        409,
        "refund_exceeds_order",
    );
    s.pg.push_cancel(liteshop::FakeOutcome::decline());
    assert_problem(
        &s.post(
            &format!("/me/orders/{}/refunds", p.order),
            kim,
            json!({ "whole": true, "reason": "x" }),
        ),
        402,
        "refund_declined",
    );
    assert_problem(
        &s.post("/me/cart/checkout", kim, json!({})),
        409,
        "empty_cart",
    );
    s.post(
        "/me/cart/items",
        kim,
        json!({ "product": tea, "quantity": 1 }),
    );
    assert_problem(
        &s.post(
            "/me/cart/items",
            kim,
            json!({ "product": tea, "quantity": 1 }),
        ),
        409,
        "already_in_cart",
    );
    assert_problem(
        &s.post(
            &format!("/admin/products/{tea}/restock"),
            Some(&admin),
            json!({ "quantity": 4_294_967_295_u32 }),
        ),
        409,
        "stock_overflow",
    );

    for (method, template, statuses) in &driven {
        let errors = statuses.iter().filter(|s| **s >= 400).count();
        let expected =
            if template == "/healthz" || template == "/readyz" || template == "/openapi.json" {
                0
            } else {
                1
            };
        assert!(
            errors >= expected,
            "{method} {template} was driven through {statuses:?} only"
        );
    }
    assert!(s.answers() > 200, "{} answers", s.answers());
    assert!(s.undocumented().is_empty(), "{:#?}", s.undocumented());
}
