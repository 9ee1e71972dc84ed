//! The operator's console over real HTTP: who gets in (the admin token, a
//! signed unexpired session; never a user token, a forged or an expired
//! cookie), the CSRF check on every button, the security headers, and what
//! each page shows, checked against `audit()` and the shop's own reads.

mod common;

use common::{Page, SECRET, Server, csrf, lines, start};
use hmac::{Hmac, Mac};
use liteshop::FakeOutcome;
use serde_json::json;
use sha2::Sha256;

const PAGES: [&str; 5] = [
    "/console/books",
    "/console/in-flight",
    "/console/sales",
    "/console/orders",
    "/console/feed",
];

/// A console request, with the session cookie `cookie` if any.
fn fetch(method: &str, url: &str, cookie: Option<&str>, form: Option<&str>) -> Page {
    let cookie = cookie.map(|c| format!("liteshop_console={c}"));
    common::fetch(method, url, cookie.as_deref(), form)
}

/// Signs in with `token`; the session cookie's value if one was set.
fn sign_in(s: &Server, token: &str) -> (Page, Option<String>) {
    let page = fetch(
        "POST",
        &s.url("/console/sign-in"),
        None,
        Some(&format!("token={token}")),
    );
    let cookie = page.header("set-cookie").and_then(|c| {
        c.strip_prefix("liteshop_console=")
            .and_then(|rest| rest.split(';').next())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    });
    (page, cookie)
}

/// A session cookie signed as the server signs one, ending at `expires`.
fn session_ending(admin: &str, expires: i64) -> String {
    let mac = |message: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    };
    let mut message = format!("console:{expires}:").into_bytes();
    message.extend(mac(format!("admin:{admin}").as_bytes()));
    format!("{expires}.{}", hex::encode(mac(&message)))
}

#[test]
fn only_the_admin_token_opens_the_console() {
    let s = start();
    let (_, kim) = s.user("Kim");
    for path in PAGES {
        let page = fetch("GET", &s.url(path), None, None);
        assert_eq!(page.status, 401, "{path}");
        assert!(
            page.body.contains("Admin token"),
            "{path}: the sign-in form"
        );
        assert!(!page.body.contains("Sign out"));
    }
    // A user's token, or nonsense, signs nobody in.
    for token in [kim.as_str(), "nonsense", ""] {
        let (page, cookie) = sign_in(&s, token);
        assert_eq!(page.status, 401);
        assert!(cookie.is_none());
        assert!(page.body.contains("not the admin token"));
    }
    // The admin token does, with a cookie scripts cannot read nor other
    // sites send.
    let (page, cookie) = sign_in(&s, &s.admin);
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some("/console/books"));
    let set = page.header("set-cookie").unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = cookie.unwrap();
    for path in PAGES {
        let page = fetch("GET", &s.url(path), Some(&cookie), None);
        assert_eq!(page.status, 200, "{path}");
        assert!(page.body.contains("Sign out"), "{path}");
    }
    // A forged, an expired, or another admin token's session gets nothing.
    let (expires, _) = cookie.split_once('.').unwrap();
    let forged = cookie.replacen(expires, "99999999999999", 1);
    let expired = session_ending(&s.admin, 1_000);
    let valid_but_other_admin = session_ending("another admin", i64::MAX - 1);
    let sound = session_ending(&s.admin, i64::MAX - 1);
    assert_eq!(
        fetch("GET", &s.url("/console/books"), Some(&sound), None).status,
        200
    );
    for bad in [
        forged.as_str(),
        &expired,
        &valid_but_other_admin,
        "garbage",
        "",
    ] {
        let page = fetch("GET", &s.url("/console/books"), Some(bad), None);
        assert_eq!(page.status, 401, "{bad}");
        assert!(!page.body.contains("The laws of the books"));
    }
}

#[test]
fn every_answer_carries_a_strict_content_security_policy() {
    let s = start();
    let (_, cookie) = sign_in(&s, &s.admin);
    for path in PAGES
        .iter()
        .chain(&["/console", "/console/sign-in", "/console/style.css"])
    {
        let page = fetch("GET", &s.url(path), cookie.as_deref(), None);
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("style-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("script-src"), "no script may run");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        // Nothing is fetched from elsewhere: no absolute URL, no script.
        assert!(!page.body.contains("<script"), "{path}");
        assert!(
            !page.body.contains("https://") && !page.body.contains("http://"),
            "{path}"
        );
    }
}

#[test]
fn buttons_need_the_sessions_csrf_token() {
    let s = start();
    let (_, cookie) = sign_in(&s, &s.admin);
    let cookie = cookie.unwrap();
    let page = fetch("GET", &s.url("/console/in-flight"), Some(&cookie), None);
    let token = csrf(&page);
    for form in [
        "",
        "csrf=",
        "csrf=00ff",
        &format!("csrf={}", "a".repeat(64)),
    ] {
        let reply = fetch(
            "POST",
            &s.url("/console/in-flight/reconcile"),
            Some(&cookie),
            Some(form),
        );
        assert_eq!(reply.status, 403, "{form:?}");
        let reply = fetch(
            "POST",
            &s.url("/console/sign-out"),
            Some(&cookie),
            Some(form),
        );
        assert_eq!(reply.status, 403, "{form:?}");
    }
    // Another session's token does not do either.
    let other = session_ending(&s.admin, i64::MAX - 1);
    let other_token = csrf(&fetch("GET", &s.url("/console/books"), Some(&other), None));
    let reply = fetch(
        "POST",
        &s.url("/console/in-flight/reconcile"),
        Some(&cookie),
        Some(&format!("csrf={other_token}")),
    );
    assert_eq!(reply.status, 403);
    // This session's token does.
    let reply = fetch(
        "POST",
        &s.url("/console/in-flight/reconcile"),
        Some(&cookie),
        Some(&format!("csrf={token}")),
    );
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("Reconciliation just run"));
    let out = fetch(
        "POST",
        &s.url("/console/sign-out"),
        Some(&cookie),
        Some(&format!("csrf={token}")),
    );
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

#[test]
fn the_pages_show_what_the_shop_holds() {
    let s = start();
    let (kim_id, kim) = s.user("Kim");
    assert_eq!(s.top_up(&kim, 100_000), 100_000);
    let tea = s.product(12_000, 10);
    let order = |n: u32| {
        s.post(
            "/me/orders",
            Some(&kim),
            json!({ "lines": lines(&[(tea, n)]) }),
        )
        .body["id"]
            .as_i64()
            .unwrap()
    };
    let paid = order(3);
    assert_eq!(s.pay(&kim, paid, 36_000).body["status"], json!("approved"));
    // One payment left in flight: 2,000 from the balance, 10,000 by card,
    // and the gateway gives no definite answer to the confirm.
    let stuck = order(1);
    s.pg.push(FakeOutcome::UnknownBeforeCharge);
    assert_eq!(s.pay(&kim, stuck, 2_000).status, 202);
    s.shop.ack_events("warehouse", 1).unwrap();
    let (_, cookie) = sign_in(&s, &s.admin);
    let cookie = cookie.unwrap();
    let get = |path: &str| fetch("GET", &s.url(path), Some(&cookie), None).body;

    // Books: every law, each as audit() says.
    let report = s.shop.audit().unwrap();
    assert!(report.is_clean());
    let books = get("/console/books");
    assert!(books.contains("The books balance: every law holds."));
    for law in liteshop::Law::ALL {
        assert!(books.contains(law.statement()), "{law:?}");
    }
    assert_eq!(books.matches("✓ pass").count(), liteshop::Law::ALL.len());
    let f = &report.figures;
    assert_eq!(
        (f.charged, f.balances, f.held_by_payments, f.kept),
        (100_000, 62_000, 2_000, 36_000)
    );
    for figure in ["₩100,000", "₩62,000", "₩2,000", "₩36,000"] {
        assert!(
            books.contains(&format!("<td class=\"num\">{figure}</td>")),
            "{figure}"
        );
    }

    // Money in flight: the stuck payment, with its amount, order and user,
    // and who runs the background work (nobody yet; then one live lease
    // and one expired).
    let unsettled = s.shop.unsettled().unwrap();
    assert_eq!(unsettled.payments.len(), 1);
    assert!(get("/console/in-flight").contains("No background job runs."));
    let minute = std::time::Duration::from_secs(60);
    assert!(s.shop.take_lease("reconciler", "server-a", minute).unwrap());
    assert!(
        s.shop
            .take_lease("nightly", "server-b", std::time::Duration::ZERO)
            .unwrap()
    );
    let flight = get("/console/in-flight");
    assert!(flight.contains("1 payments hold ₩12,000"), "{flight}");
    assert!(flight.contains(&format!("/console/orders?order={stuck}")));
    assert!(flight.contains("unknown"));
    assert!(!flight.contains("No background job runs."));
    let row = |job: &str| {
        let start = flight.find(&format!("data-job=\"{job}\"")).unwrap();
        flight[start..start + flight[start..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row("reconciler").contains("server-a") && !row("reconciler").contains("expired"));
    assert!(row("nightly").contains("server-b") && row("nightly").contains("expired: free"));

    // Sales: the paid units and their revenue, drawn and listed.
    let ranking = s.shop.best_sellers(7, 10).unwrap();
    let sales = get("/console/sales?days=7");
    assert!(sales.contains("<svg") && sales.contains("3 units"));
    assert!(sales.contains(&format!("₩{}", "36,000")));
    assert_eq!(ranking[0].units, 3);

    // Orders: one order whoever owns it, with its payment history and events.
    let view = get(&format!("/console/orders?order={paid}"));
    assert!(view.contains(&format!("Order {paid}")));
    assert!(view.contains("data-status=\"paid\""));
    assert!(view.contains("payment_approved"));
    assert!(view.contains("approved"));
    let theirs = get(&format!("/console/orders?user={kim_id}"));
    assert!(theirs.contains(&format!("/console/orders?order={paid}")));
    assert!(theirs.contains(&format!("/console/orders?order={stuck}")));
    assert!(get("/console/orders?order=abc").contains("is not an id"));
    assert!(get("/console/orders?order=9999").contains("not found"));

    // Feed: the consumer's cursor and lag against the head.
    let lag = s.shop.event_consumers().unwrap();
    assert_eq!(lag[0].acked, 1);
    let feed = get("/console/feed");
    assert!(feed.contains("data-consumer=\"warehouse\""));
    assert!(feed.contains(&format!("<td class=\"num\">{}</td>", lag[0].behind)));

    // An order paid by card; an operator cancels 6,000 of it in the PG's
    // dashboard; the PG's notice makes the shop record it, and the page
    // lists it.
    assert!(get("/console/in-flight").contains("Changed at the PG outside the shop"));
    let by_card = order(1);
    assert_eq!(s.pay(&kim, by_card, 0).body["status"], json!("approved"));
    let payment = &s
        .shop
        .payments_for_order(kim_id.into(), by_card.into())
        .unwrap()[0];
    let key =
        s.pg.cancel_in_dashboard(&payment.pg_order_id, liteshop::Money::new(6_000).unwrap())
            .unwrap();
    let seen = s.shop.payment_changed_at_pg(&payment.pg_order_id).unwrap();
    assert!(seen.unwrap().needs_review);
    let flight = get("/console/in-flight");
    let listed = &flight[flight.find("Changed at the PG outside the shop").unwrap()..];
    let listed = &listed[..listed.find("</table>").unwrap()];
    assert!(
        listed.contains("₩6,000") && listed.contains(&key),
        "{listed}"
    );
    assert!(listed.contains(&format!("/console/orders?order={by_card}")));

    // A top-up awaiting a bank transfer is in flight, but the customer's
    // to finish until its account closes: not for a person.
    let charged = s.post("/me/balance/charge", Some(&kim), json!({ "amount": 7_000 }));
    let pg_order_id = charged.body["pg_order_id"].as_str().unwrap().to_owned();
    let redirect = s.pg.pay_in_widget_by_transfer(
        &pg_order_id,
        liteshop::Money::new(7_000).unwrap(),
        std::time::Duration::from_secs(3 * 24 * 3_600),
    );
    let waiting = s.post(
        &format!("/me/payments/{}/confirm", charged.body["id"]),
        Some(&kim),
        json!({ "payment_key": redirect.payment_key, "pg_order_id": pg_order_id, "amount": 7_000 }),
    );
    assert_eq!(waiting.status, 200, "{}", waiting.body);
    let flight = get("/console/in-flight");
    let start = flight
        .find("awaiting a bank transfer until")
        .expect("listed");
    let row = &flight[start..start + flight[start..].find("</tr>").unwrap()];
    assert!(row.contains(">no<"), "{row}");
}

#[test]
fn every_form_field_is_labelled() {
    let s = start();
    let (_, cookie) = sign_in(&s, &s.admin);
    let cookie = cookie.unwrap();
    for path in PAGES.iter().chain(&["/console/sign-in"]) {
        let body = fetch("GET", &s.url(path), Some(&cookie), None).body;
        let mut rest = body.as_str();
        while let Some(at) = rest.find("<input") {
            rest = &rest[at + 6..];
            let tag = &rest[..rest.find('>').unwrap()];
            if tag.contains("type=\"hidden\"") {
                continue;
            }
            let id = tag
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("{path}: an input without an id: {tag}"));
            assert!(
                body.contains(&format!("<label for=\"{id}\">")),
                "{path}: no label for #{id}"
            );
        }
    }
}
