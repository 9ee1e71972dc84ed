//! The customer's storefront over real HTTP, without a browser: who gets
//! in (a session cookie holding the customer's token, never a forged
//! one), the CSRF check on every button, the security headers, a refusal
//! that changes nothing, and the whole widget handshake through the
//! in-process fake's widget page — each checked against the shop's reads.
//! (`browser.rs` buys from it in Chromium, through the HTTP PG double.)

mod common;

use common::{Page, Server, csrf, fetch, start};
use liteshop::{
    Money, NewProduct, OrderId, OrderStatus, PageRequest, PaymentId, PaymentStatus, ProductId,
    UserId,
};

/// A customer's session: the cookie the storefront set at sign-up.
struct Customer {
    user: UserId,
    cookie: String,
}

impl Customer {
    fn get(&self, s: &Server, path: &str) -> Page {
        fetch("GET", &s.url(path), Some(&self.cookie), None)
    }

    fn post(&self, s: &Server, path: &str, form: &str) -> Page {
        fetch("POST", &s.url(path), Some(&self.cookie), Some(form))
    }

    /// This session's CSRF token, from a page's forms.
    fn csrf(&self, s: &Server) -> String {
        csrf(&self.get(s, "/shop"))
    }
}

/// Signs up `name` through the storefront.
fn sign_up(s: &Server, name: &str) -> Customer {
    let page = fetch(
        "POST",
        &s.url("/shop/sign-up"),
        None,
        Some(&format!("name={name}")),
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let set = page.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/shop"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let token = cookie.strip_prefix("liteshop_shop=").unwrap();
    let user = liteshop_server::token_user(common::SECRET, token).unwrap();
    Customer { user, cookie }
}

fn product(s: &Server, name: &str, price: i64, stock: u32) -> ProductId {
    s.shop
        .create_product(NewProduct {
            name: name.into(),
            price: Money::new(price).unwrap(),
            stock,
        })
        .unwrap()
        .id
}

/// The value of `name=` in a URL's query, percent-decoded enough for the
/// values the shop makes (no `+`, `%XX` only).
fn query_value(url: &str, name: &str) -> String {
    let query = url.split_once('?').unwrap().1.replace("&amp;", "&");
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .to_owned();
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&raw[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The widget link on a pay page.
fn widget_link(page: &Page) -> String {
    let at = page
        .body
        .find("id=\"to-widget\" href=\"")
        .expect("a widget link");
    let rest = &page.body[at + "id=\"to-widget\" href=\"".len()..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

/// Presses `choice` on the fake widget's page behind `link`: where the
/// PG's redirect sends the browser back to.
fn press(s: &Server, link: &str, choice: &str) -> String {
    let query = link.split_once('?').unwrap().1;
    let page = fetch(
        "POST",
        &s.url("/fake-pg/widget/pay"),
        None,
        Some(&format!("{query}&choice={choice}")),
    );
    assert_eq!(page.status, 303, "{}", page.body);
    page.location().unwrap().to_owned()
}

#[test]
fn signed_out_the_pages_send_to_sign_in_and_change_nothing() {
    let s = start();
    let tea = product(&s, "Tea", 12_000, 5);
    let page = fetch("GET", &s.url("/shop"), None, None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Tea") && page.body.contains("Sign in to buy"));
    for path in [
        "/shop/cart",
        "/shop/orders",
        "/shop/orders/1",
        "/shop/top-up",
        "/shop/pay/1",
    ] {
        let page = fetch("GET", &s.url(path), None, None);
        assert_eq!(
            (page.status, page.location()),
            (303, Some("/shop/sign-in")),
            "{path}"
        );
    }
    let form = format!("product={tea}&quantity=1");
    for cookie in [None, Some("liteshop_shop=u1.00ff"), Some("liteshop_shop=")] {
        let page = fetch("POST", &s.url("/shop/cart"), cookie, Some(&form));
        assert_eq!(page.location(), Some("/shop/sign-in"), "{cookie:?}");
    }
    // A token signs in only if it is one of ours.
    let (_, token) = s.user("Kim");
    let page = fetch(
        "POST",
        &s.url("/shop/sign-in"),
        None,
        Some("token=u1.nonsense"),
    );
    assert_eq!(page.status, 401);
    assert!(page.header("set-cookie").is_none());
    let page = fetch(
        "POST",
        &s.url("/shop/sign-in"),
        None,
        Some(&format!("token={token}")),
    );
    assert_eq!(page.status, 303);
    assert!(
        page.header("set-cookie")
            .unwrap()
            .starts_with(&format!("liteshop_shop={token};"))
    );
    // An empty name makes no account.
    let page = fetch("POST", &s.url("/shop/sign-up"), None, Some("name=+"));
    assert_eq!(page.status, 400);
    assert!(page.header("set-cookie").is_none());
    assert!(s.shop.user(UserId::new(2)).is_err());
}

#[test]
fn every_button_needs_this_sessions_csrf_token() {
    let s = start();
    let tea = product(&s, "Tea", 12_000, 5);
    let kim = sign_up(&s, "Kim");
    let lee = sign_up(&s, "Lee");
    s.shop
        .grant(kim.user, Money::new(50_000).unwrap(), "test")
        .unwrap();
    let good = kim.csrf(&s);
    assert_ne!(good, lee.csrf(&s), "a token per session");
    let page = kim.post(
        &s,
        "/shop/cart",
        &format!("csrf={good}&product={tea}&quantity=2"),
    );
    assert_eq!(page.location(), Some("/shop/cart"));
    let cart = s.shop.cart(kim.user).unwrap();

    for forged in ["", "00", lee.csrf(&s).as_str()] {
        for (path, form) in [
            ("/shop/cart", format!("product={tea}&quantity=1")),
            ("/shop/checkout", "balance_part=0".to_owned()),
            ("/shop/top-up", "amount=10000".to_owned()),
            ("/shop/sign-out", String::new()),
        ] {
            let page = kim.post(&s, path, &format!("csrf={forged}&{form}"));
            assert_eq!(page.status, 403, "{path} with {forged:?}");
            assert!(page.body.contains("did not come from this shop"));
        }
    }
    assert_eq!(s.shop.cart(kim.user).unwrap(), cart);
    assert!(
        s.shop
            .orders(kim.user, PageRequest::first(10))
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.shop
            .top_ups(kim.user, PageRequest::first(10))
            .unwrap()
            .items
            .is_empty()
    );

    // Paid from the balance; a forged refund gives nothing back.
    let page = kim.post(
        &s,
        "/shop/checkout",
        &format!("csrf={good}&balance_part=24000"),
    );
    let order = s
        .shop
        .orders(kim.user, PageRequest::first(10))
        .unwrap()
        .items[0]
        .clone();
    assert_eq!(
        page.location(),
        Some(format!("/shop/orders/{}", order.id).as_str())
    );
    assert_eq!(order.status, OrderStatus::Paid);
    let page = kim.post(
        &s,
        &format!("/shop/orders/{}/refund", order.id),
        &format!("csrf={}&product={tea}&quantity=1", lee.csrf(&s)),
    );
    assert_eq!(page.status, 403);
    assert_eq!(s.shop.order(kim.user, order.id).unwrap(), order);
    assert_eq!(
        s.shop.balance(kim.user).unwrap(),
        Money::new(26_000).unwrap()
    );

    // Every page carries the headers that keep other sites out.
    let page = kim.get(&s, "/shop");
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn bad_input_is_a_400_page_that_changes_nothing() {
    let s = start();
    let tea = product(&s, "Tea", 12_000, 5);
    let kim = sign_up(&s, "Kim");
    let csrf = kim.csrf(&s);
    kim.post(
        &s,
        "/shop/cart",
        &format!("csrf={csrf}&product={tea}&quantity=1"),
    );
    let cart = s.shop.cart(kim.user).unwrap();
    let stock = s.shop.product(tea).unwrap();
    for (path, form, status) in [
        ("/shop/cart", format!("product={tea}&quantity=abc"), 400),
        ("/shop/cart", format!("product={tea}&quantity=-1"), 400),
        ("/shop/cart", format!("product={tea}&quantity=0"), 400),
        ("/shop/cart", "product=tea&quantity=1".to_owned(), 400),
        ("/shop/cart", "product=999&quantity=1".to_owned(), 404),
        ("/shop/checkout", "balance_part=lots".to_owned(), 400),
        ("/shop/checkout", "balance_part=1.5".to_owned(), 400),
        ("/shop/top-up", "amount=0".to_owned(), 400),
        ("/shop/top-up", "amount=ten".to_owned(), 400),
    ] {
        let page = kim.post(&s, path, &format!("csrf={csrf}&{form}"));
        assert_eq!(page.status, status, "{path} {form}: {}", page.body);
        assert!(page.body.contains("role=\"alert\""), "{path} {form}");
    }
    assert_eq!(s.shop.cart(kim.user).unwrap(), cart);
    assert_eq!(s.shop.product(tea).unwrap(), stock);
    assert!(
        s.shop
            .orders(kim.user, PageRequest::first(10))
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.shop
            .top_ups(kim.user, PageRequest::first(10))
            .unwrap()
            .items
            .is_empty()
    );
    // A balance part over the balance: the order stands, unpaid, and the
    // balance is untouched.
    let page = kim.post(
        &s,
        "/shop/checkout",
        &format!("csrf={csrf}&balance_part=5000"),
    );
    assert_eq!(page.status, 409, "{}", page.body);
    let order = &s
        .shop
        .orders(kim.user, PageRequest::first(10))
        .unwrap()
        .items[0];
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(s.shop.balance(kim.user).unwrap(), Money::ZERO);
    for path in ["/shop/orders/abc", "/shop/orders/0", "/shop/pay/-1"] {
        assert_eq!(kim.get(&s, path).status, 404, "{path}");
    }
}

#[test]
fn another_customers_order_and_payment_are_not_found() {
    let s = start();
    let tea = product(&s, "Tea", 12_000, 5);
    let kim = sign_up(&s, "Kim");
    let lee = sign_up(&s, "Lee");
    let csrf = kim.csrf(&s);
    kim.post(
        &s,
        "/shop/cart",
        &format!("csrf={csrf}&product={tea}&quantity=1"),
    );
    let page = kim.post(&s, "/shop/checkout", &format!("csrf={csrf}&balance_part=0"));
    let pay = page.location().unwrap().to_owned();
    assert!(pay.starts_with("/shop/pay/"), "{pay}");
    let order = s
        .shop
        .orders(kim.user, PageRequest::first(1))
        .unwrap()
        .items[0]
        .clone();
    let lee_csrf = lee.csrf(&s);
    assert_eq!(
        lee.get(&s, &format!("/shop/orders/{}", order.id)).status,
        404
    );
    assert_eq!(lee.get(&s, &pay).status, 404);
    let page = lee.post(
        &s,
        &format!("/shop/orders/{}/pay", order.id),
        &format!("csrf={lee_csrf}&balance_part=0"),
    );
    assert_eq!(page.status, 404);
    assert_eq!(s.shop.order(kim.user, order.id).unwrap(), order);
}

#[test]
fn the_fake_widget_page_plays_the_pgs_handshake() {
    let s = start();
    let tea = product(&s, "Tea", 12_000, 5);
    let kim = sign_up(&s, "Kim");
    s.shop
        .grant(kim.user, Money::new(5_000).unwrap(), "test")
        .unwrap();
    let csrf = kim.csrf(&s);
    kim.post(
        &s,
        "/shop/cart",
        &format!("csrf={csrf}&product={tea}&quantity=2"),
    );
    let page = kim.post(
        &s,
        "/shop/checkout",
        &format!("csrf={csrf}&balance_part=5000"),
    );
    let pay = page.location().unwrap().to_owned();
    let payment = PaymentId::new(pay.rsplit('/').next().unwrap().parse().unwrap());
    let started = s.shop.payment(kim.user, payment).unwrap();
    assert_eq!(started.pg_amount, Money::new(19_000).unwrap());
    assert_eq!(s.shop.balance(kim.user).unwrap(), Money::ZERO, "held");

    // The pay page links to the widget with Toss's parameters.
    let link = widget_link(&kim.get(&s, &pay));
    assert!(link.starts_with("/fake-pg/widget?"), "{link}");
    assert_eq!(query_value(&link, "orderId"), started.pg_order_id);
    assert_eq!(query_value(&link, "amount"), "19000");
    assert_eq!(query_value(&link, "customerKey"), started.customer_key);
    let success = query_value(&link, "successUrl");
    assert_eq!(success, s.url(&format!("/shop/pay/{payment}/success")));
    let widget = fetch("GET", &s.url(&link), None, None);
    assert_eq!(widget.header("x-fake-pg"), Some("true"));
    assert!(widget.body.contains("Pay by card"));

    // "Close": Toss's failure redirect; the attempt ends, the balance part
    // comes back.
    let fail = press(&s, &link, "close");
    assert_eq!(query_value(&fail, "code"), "PAY_PROCESS_CANCELED");
    assert_eq!(query_value(&fail, "orderId"), started.pg_order_id);
    let page = kim.get(&s, fail.strip_prefix(&s.base).unwrap());
    assert_eq!(page.status, 200);
    assert!(page.body.contains("PAY_PROCESS_CANCELED"));
    let declined = s.shop.payment(kim.user, payment).unwrap();
    assert_eq!(declined.status, PaymentStatus::Declined);
    assert_eq!(
        s.shop.balance(kim.user).unwrap(),
        Money::new(5_000).unwrap()
    );

    // Again, and "pay by card": the success redirect confirms.
    let order = started.order.unwrap();
    let page = kim.post(
        &s,
        &format!("/shop/orders/{order}/pay"),
        &format!("csrf={csrf}&balance_part=5000"),
    );
    let pay = page.location().unwrap().to_owned();
    let back = press(&s, &widget_link(&kim.get(&s, &pay)), "card");
    assert_eq!(query_value(&back, "paymentType"), "NORMAL");
    let page = kim.get(&s, back.strip_prefix(&s.base).unwrap());
    assert_eq!(
        page.location(),
        Some(format!("/shop/orders/{order}").as_str())
    );
    assert_eq!(
        s.shop
            .order(kim.user, OrderId::new(order.get()))
            .unwrap()
            .status,
        OrderStatus::Paid
    );
    assert_eq!(s.shop.balance(kim.user).unwrap(), Money::ZERO);
    let page = kim.get(&s, &format!("/shop/orders/{order}"));
    assert!(page.body.contains("Ask for a refund"));

    // The same success redirect again changes nothing.
    let again = kim.get(&s, back.strip_prefix(&s.base).unwrap());
    assert_eq!(
        again.location(),
        Some(format!("/shop/orders/{order}").as_str())
    );
    assert!(s.shop.audit().unwrap().is_clean());
}

#[test]
fn a_top_up_is_paid_in_the_widget_and_refunded_to_the_card_while_unspent() {
    let s = start();
    let kim = sign_up(&s, "Kim");
    let csrf = kim.csrf(&s);
    let page = kim.post(&s, "/shop/top-up", &format!("csrf={csrf}&amount=30000"));
    let pay = page.location().unwrap().to_owned();
    let back = press(&s, &widget_link(&kim.get(&s, &pay)), "card");
    let page = kim.get(&s, back.strip_prefix(&s.base).unwrap());
    assert_eq!(page.location(), Some("/shop/top-up"));
    assert_eq!(
        s.shop.balance(kim.user).unwrap(),
        Money::new(30_000).unwrap()
    );
    let top_up = s
        .shop
        .top_ups(kim.user, PageRequest::first(1))
        .unwrap()
        .items[0]
        .clone();
    let page = kim.get(&s, "/shop/top-up");
    assert!(page.body.contains(&format!("refund-top-up-{}", top_up.id)));

    // More than the top-up: refused, nothing moved; then 5,000 back.
    let refund = format!("/shop/top-ups/{}/refund", top_up.id);
    let page = kim.post(&s, &refund, &format!("csrf={csrf}&amount=40000"));
    assert!(page.status >= 400, "{}", page.status);
    assert_eq!(
        s.shop.balance(kim.user).unwrap(),
        Money::new(30_000).unwrap()
    );
    let page = kim.post(&s, &refund, &format!("csrf={csrf}&amount=5000"));
    assert_eq!(page.location(), Some("/shop/top-up"));
    assert_eq!(
        s.shop.balance(kim.user).unwrap(),
        Money::new(25_000).unwrap()
    );
    let refunds = s.shop.top_up_refunds(kim.user, top_up.id).unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].pg_amount, Money::new(5_000).unwrap());
    assert!(s.shop.audit().unwrap().is_clean());
}
