//! The operator's console in a real browser: `liteshop serve` on a seeded
//! shop, headless Chromium driven through ChromeDriver (fantoccini, the
//! WebDriver client): sign in, every page, the reconcile button, sign out.
//! What each page shows is checked against `audit()` and the shop's reads,
//! and a screenshot of each page is saved under
//! `target/console-screenshots/`.
//!
//! It needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them and sets `LITESHOP_REQUIRE_BROWSER=1`, which makes their absence a
//! failure); elsewhere it says it is skipped and passes.

mod common;
#[path = "../../examples/support/fake_pg_server.rs"]
mod fake_pg_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, free_port};
use fantoccini::{ClientBuilder, Locator};
use liteshop::{
    Clock, FakeGateway, FakeOutcome, Law, ManualClock, Money, NewProduct, OrderId, OrderLine,
    OrderStatus, PageRequest, PaymentId, PaymentStatus, RefundStatus, Shop, SystemClock, Timestamp,
};

const ADMIN: &str = "browser-admin-token";

fn wait_for(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// A shop with two paid orders, a payment the gateway never answered, and
/// a consumer of the feed behind the head — all two hours ago, so the
/// unanswered payment is past reconciliation's grace period.
fn seed(path: &Path) -> (i64, i64) {
    let pg = FakeGateway::new();
    let two_hours_ago = SystemClock.now().as_millis() - 2 * 3_600_000;
    let shop = Shop::builder(path)
        .clock(ManualClock::new(Timestamp::from_millis(two_hours_ago)))
        .gateway(pg.clone())
        .utc_offset_minutes(9 * 60)
        .build()
        .unwrap();
    let kim = shop.create_user("Kim Min-ji").unwrap();
    shop.host_credit(kim.id, Money::new(500_000).unwrap())
        .unwrap();
    let product = |name: &str, price: i64| {
        shop.create_product(NewProduct {
            name: name.into(),
            price: Money::new(price).unwrap(),
            stock: 100,
        })
        .unwrap()
        .id
    };
    let tea = product("Green tea", 12_000);
    let cup = product("Celadon cup", 45_000);
    let paid = shop
        .place_order(kim.id, &[OrderLine::new(tea, 5), OrderLine::new(cup, 2)])
        .unwrap();
    shop.pay_from_balance(kim.id, paid.id).unwrap();
    let more = shop.place_order(kim.id, &[OrderLine::new(tea, 3)]).unwrap();
    common::pay_by_card(&shop, &pg, kim.id, more.id).unwrap();
    let stuck = shop.place_order(kim.id, &[OrderLine::new(cup, 1)]).unwrap();
    // By card, and the PG never answers the confirm.
    let started = shop.start_payment(kim.id, stuck.id, Money::ZERO).unwrap();
    let redirect = pg.pay_widget(&started.widget().unwrap());
    pg.push(FakeOutcome::UnknownBeforeCharge);
    assert!(shop.confirm_payment(kim.id, started.id, &redirect).is_err());
    shop.ack_events("warehouse", 2).unwrap();
    (paid.id.get(), stuck.id.get())
}

#[test]
fn the_console_in_a_real_browser() {
    let Some((driver, chromium)) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let (paid, stuck) = seed(&db);

    let addr = format!("127.0.0.1:{}", free_port());
    let _server = Running(
        Command::new(env!("CARGO_BIN_EXE_liteshop"))
            .args(["serve", "--db"])
            .arg(&db)
            .args(["--addr", &addr, "--reconcile-every", "3600"])
            .env("LITESHOP_ADMIN_TOKEN", ADMIN)
            .env("LITESHOP_TOKEN_SECRET", "browser-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (_driver, driver_port) = chromedriver(&driver);
    wait_for(&addr);

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let shop = Shop::open(&db).unwrap();
    let base = format!("http://{addr}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let session = Session::open(driver_port, &chromium, profile.path(), &shots).await;
        let browser = session.browser.clone();
        let shot = |name: &'static str| session.shot(name);
        let body = || session.main_text();
        let click = |what: Locator<'static>, then: Locator<'static>| session.click(what, then);

        // Signed out, every page is the sign-in form.
        browser
            .goto(&format!("{base}/console/books"))
            .await
            .unwrap();
        assert!(body().await.contains("Sign in with the shop's admin token"));
        shot("sign-in").await;
        let field = browser.find(Locator::Id("token")).await.unwrap();
        field.send_keys(ADMIN).await.unwrap();
        click(
            Locator::Css("main button[type=submit]"),
            Locator::XPath("//main/h1[. = 'Books']"),
        )
        .await;

        // Books: every law as audit() says, passing.
        let report = shop.audit().unwrap();
        assert!(report.is_clean());
        let text = body().await;
        assert!(
            text.contains("The books balance: every law holds."),
            "{text}"
        );
        for law in Law::ALL {
            assert!(text.contains(law.statement()), "{law:?}");
        }
        assert_eq!(text.matches("✓ pass").count(), Law::ALL.len());
        assert!(text.contains(&format!("₩{}", group(report.figures.charged))));
        assert!(text.contains("(UTC+09:00)"), "times in the shop's offset");
        shot("books").await;

        // Money in flight: the payment the gateway never answered; the
        // button settles it through the server's gateway — a fresh fake
        // that never saw the customer pay in its widget, so, as a real PG
        // refuses a key it never issued, it ends declined.
        let unsettled = shop.unsettled().unwrap();
        assert_eq!(unsettled.payments.len(), 1);
        click(
            Locator::LinkText("Money in flight"),
            Locator::XPath("//main/h1[. = 'Money in flight']"),
        )
        .await;
        let text = body().await;
        assert!(text.contains("1 payments hold ₩45,000"), "{text}");
        shot("in-flight").await;
        click(
            Locator::XPath("//button[contains(., 'Run one reconciliation round now')]"),
            Locator::Id("report"),
        )
        .await;
        let text = body().await;
        assert!(text.contains("Reconciliation just run"), "{text}");
        assert!(
            text.contains(&format!(
                "Payment {} of order {stuck}: declined",
                unsettled.payments[0].id
            )),
            "{text}"
        );
        assert!(text.contains("0 payments hold ₩0"), "{text}");
        assert!(shop.unsettled().unwrap().payments.is_empty());
        shot("reconciled").await;

        // Sales: the chart and the table agree with best_sellers().
        let ranking = shop.best_sellers(7, 10).unwrap();
        click(
            Locator::LinkText("Sales"),
            Locator::XPath("//main/h1[. = 'Sales']"),
        )
        .await;
        let days = browser.find(Locator::Id("days")).await.unwrap();
        days.clear().await.unwrap();
        days.send_keys("7").await.unwrap();
        browser
            .find(Locator::XPath("//button[. = 'Show']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_url(&url::Url::parse(&format!("{base}/console/sales?days=7")).unwrap())
            .await
            .unwrap();
        let text = body().await;
        for seller in &ranking {
            assert!(text.contains(&seller.name), "{text}");
            assert!(
                text.contains(&format!("₩{}", group(seller.revenue.won()))),
                "{text}"
            );
        }
        let bars = browser
            .find_all(Locator::Css("svg.chart rect.bar"))
            .await
            .unwrap();
        assert_eq!(bars.len(), ranking.len());
        shot("sales").await;

        // Orders: one order by id, with its payment history and events.
        click(
            Locator::LinkText("Orders"),
            Locator::XPath("//main/h1[. = 'Orders']"),
        )
        .await;
        browser
            .find(Locator::Id("order"))
            .await
            .unwrap()
            .send_keys(&paid.to_string())
            .await
            .unwrap();
        click(
            Locator::XPath("//button[. = 'Show the order']"),
            Locator::Id("order-title"),
        )
        .await;
        let text = body().await;
        assert!(text.contains(&format!("Order {paid}")), "{text}");
        assert!(text.contains("payment_approved"), "{text}");
        assert!(text.contains("Celadon cup"), "{text}");
        shot("order").await;

        // Feed: the consumer's lag against the head.
        let lag = shop.event_consumers().unwrap();
        click(
            Locator::LinkText("Feed"),
            Locator::XPath("//main/h1[. = 'Feed']"),
        )
        .await;
        let text = body().await;
        assert!(text.contains("warehouse"), "{text}");
        let row = browser
            .find(Locator::Css("tr[data-consumer=warehouse]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(row.contains(&lag[0].behind.to_string()), "{row}");
        shot("feed").await;

        // Sign out: the console is closed again.
        click(
            Locator::XPath("//button[contains(., 'Sign out')]"),
            Locator::XPath("//main/h1[. = 'Sign in']"),
        )
        .await;
        browser
            .goto(&format!("{base}/console/books"))
            .await
            .unwrap();
        assert!(body().await.contains("Sign in with the shop's admin token"));
        browser.close().await.unwrap();
    });
}

/// ChromeDriver and Chromium, if installed; their absence fails the test
/// when `LITESHOP_REQUIRE_BROWSER=1`, and skips it otherwise.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var("LITESHOP_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let tools = find("chromedriver").zip(find("chromium"));
    if tools.is_none() {
        assert!(
            !required,
            "LITESHOP_REQUIRE_BROWSER=1 but chromium or chromedriver is missing"
        );
        eprintln!(
            "skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        );
    }
    tools
}

/// ChromeDriver on a free port, up.
fn chromedriver(driver: &Path) -> (Running, u16) {
    let port = free_port();
    let running = Running(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&format!("127.0.0.1:{port}"));
    (running, port)
}

/// A browser driven through ChromeDriver, and where its screenshots go.
struct Session {
    browser: fantoccini::Client,
    shots: PathBuf,
}

impl Session {
    /// A headless Chromium session with a fresh profile.
    async fn open(driver_port: u16, chromium: &Path, profile: &Path, shots: &Path) -> Session {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a ChromeDriver session");
        Session {
            browser,
            shots: shots.to_owned(),
        }
    }

    /// Saves a screenshot of the page as `<name>.png`.
    async fn shot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The text of the page's main part, read again if the page changed
    /// under the read (a navigation still finishing).
    async fn main_text(&self) -> String {
        for _ in 0..50 {
            let main = self
                .browser
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css("main"))
                .await;
            if let Ok(main) = main
                && let Ok(text) = main.text().await
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no page at {:?}",
            self.browser.current_url().await.map(|u| u.to_string())
        );
    }

    /// Clicks what `what` finds, then waits for `then` on the next page.
    async fn click(&self, what: Locator<'_>, then: Locator<'_>) {
        self.browser
            .find(what)
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(then)
            .await
            .unwrap();
    }
}

/// `1,234,567`.
fn group(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The secret key the storefront test's PG double takes.
const PG_SECRET: &str = "test_sk_browser";

/// A call to the PG double as the shop's server (or the test) makes it.
fn pg_call(pg: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{PG_SECRET}:"));
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut reply = agent
        .post(&format!("{pg}{path}"))
        .header("Authorization", &format!("Basic {auth}"))
        .send_json(body)
        .unwrap();
    assert_eq!(reply.status(), 200, "{path}");
    reply.body_mut().read_json().unwrap()
}

/// The id at the end of the browser's path after `prefix`, as
/// `/shop/orders/7` → 7.
async fn id_after(browser: &fantoccini::Client, prefix: &str) -> i64 {
    let url = browser.current_url().await.unwrap();
    let rest = url
        .path()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{url} is not under {prefix}"));
    rest.split('/').next().unwrap().parse().unwrap()
}

/// The storefront in a real browser, paying through the Toss-like PG
/// double of `examples/fake_pg.rs` over HTTP (its widget page, its
/// redirects, its webhooks): sign up, top up by card, buy with a split
/// tender, abandon a payment in the widget, pay that order by bank
/// transfer and deposit, refund one unit, and try a tampered `amount` in
/// the success redirect. Each step is checked against the shop's reads,
/// the PG double's own records and, at the end, `audit()`; a screenshot of
/// each is saved under `target/storefront-screenshots/`.
#[test]
fn the_storefront_in_a_real_browser() {
    let Some((driver, chromium)) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let (tea, cup) = {
        let shop = Shop::open(&db).unwrap();
        let product = |name: &str, price: i64, stock: u32| {
            shop.create_product(NewProduct {
                name: name.into(),
                price: Money::new(price).unwrap(),
                stock,
            })
            .unwrap()
            .id
        };
        (
            product("Green tea", 12_000, 10),
            product("Celadon cup", 45_000, 5),
        )
    };

    // The PG double, sending its webhooks to the shop's server.
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let double = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let pg = format!("http://{}", double.server_addr().to_ip().unwrap());
    let records = std::sync::Arc::new(std::sync::Mutex::new(fake_pg_server::Pg::default()));
    {
        let (double, records) = (double.clone(), records.clone());
        let rules = fake_pg_server::Rules {
            secret: PG_SECRET.to_owned(),
            webhook_url: Some(format!("{base}/pg/webhook")),
            ..Default::default()
        };
        std::thread::spawn(move || fake_pg_server::serve(&double, &rules, &records));
    }
    let at_pg = |pg_order_id: &str| records.lock().unwrap().payments.get(pg_order_id).cloned();

    let _server = Running(
        Command::new(env!("CARGO_BIN_EXE_liteshop"))
            .args(["serve", "--db"])
            .arg(&db)
            .args(["--addr", &addr, "--reconcile-every", "3600"])
            .args(["--pg-url", &pg, "--widget-url", &format!("{pg}/widget")])
            .env("LITESHOP_PG_SECRET", PG_SECRET)
            .env("LITESHOP_ADMIN_TOKEN", ADMIN)
            .env("LITESHOP_TOKEN_SECRET", "browser-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (_driver, driver_port) = chromedriver(&driver);
    wait_for(&addr);

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/storefront-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let shop = Shop::open(&db).unwrap();
    let won = |n: i64| Money::new(n).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kim = runtime.block_on(async {
        let session = Session::open(driver_port, &chromium, profile.path(), &shots).await;
        let browser = session.browser.clone();
        let h1 = |title: &str| format!("//main/h1[. = '{title}']");
        let type_into = |id: &'static str, text: String| {
            let browser = browser.clone();
            async move {
                let field = browser.find(Locator::Id(id)).await.unwrap();
                field.clear().await.unwrap();
                field.send_keys(&text).await.unwrap();
            }
        };
        // From the storefront's pay page through the PG's widget, pressing
        // `button` there, to the page titled `then`.
        let through_widget = |button: &'static str, then: String| {
            let session = &session;
            async move {
                session
                    .click(Locator::Id("to-widget"), Locator::Id(button))
                    .await;
                session
                    .click(Locator::Id(button), Locator::XPath(&then))
                    .await;
            }
        };

        // Signed out, the products show and ask to sign in; creating an
        // account signs in.
        browser.goto(&format!("{base}/shop")).await.unwrap();
        let text = session.main_text().await;
        assert!(text.contains("Green tea") && text.contains("Sign in to buy"), "{text}");
        session
            .click(Locator::LinkText("Sign in"), Locator::Id("name"))
            .await;
        type_into("name", "Kim Min-ji".into()).await;
        session
            .click(
                Locator::XPath("//button[. = 'Create an account']"),
                Locator::Id("balance"),
            )
            .await;
        let cookie = browser.get_named_cookie("liteshop_shop").await.unwrap();
        assert_eq!(cookie.http_only(), Some(true));
        let kim = liteshop_server::token_user(b"browser-secret", cookie.value()).unwrap();
        assert_eq!(shop.user(kim).unwrap().name, "Kim Min-ji");
        assert!(session.main_text().await.contains("Your balance: ₩0"));
        session.shot("products").await;

        // Top up 30,000 by card.
        session
            .click(Locator::LinkText("Top up"), Locator::Id("top-up"))
            .await;
        type_into("amount", "30000".into()).await;
        session
            .click(Locator::Id("top-up"), Locator::XPath(&h1("Pay")))
            .await;
        assert!(session.main_text().await.contains("₩30,000"));
        session.shot("pay").await;
        session
            .click(Locator::Id("to-widget"), Locator::Id("card"))
            .await;
        session.shot("widget").await;
        session
            .click(Locator::Id("card"), Locator::XPath(&h1("Top up")))
            .await;
        let top_up = &shop.top_ups(kim, PageRequest::first(10)).unwrap().items[0];
        assert_eq!(top_up.status, PaymentStatus::Approved);
        assert_eq!(shop.balance(kim).unwrap(), won(30_000));
        assert_eq!(at_pg(&top_up.pg_order_id).unwrap()["status"], "DONE");
        assert!(session.main_text().await.contains("Your balance: ₩30,000"));

        // Two teas and a cup, 69,000: 30,000 from the balance, 39,000 by
        // card.
        for (product, quantity) in [(tea, "2"), (cup, "1")] {
            browser.goto(&format!("{base}/shop")).await.unwrap();
            let field = format!("qty-{product}");
            let field = browser.find(Locator::Id(&field)).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(quantity).await.unwrap();
            session
                .click(
                    Locator::Id(&format!("add-{product}")),
                    Locator::XPath(&h1("Your cart")),
                )
                .await;
        }
        let text = session.main_text().await;
        assert!(text.contains("Total: ₩69,000"), "{text}");
        session.shot("cart").await;
        session
            .click(Locator::Id("checkout"), Locator::XPath(&h1("Pay")))
            .await;
        let pg_part = browser.find(Locator::Id("pg-amount")).await.unwrap();
        assert_eq!(pg_part.text().await.unwrap(), "₩39,000");
        through_widget("card", "//main/h1[starts-with(., 'Order ')]".into()).await;
        let split = OrderId::new(id_after(&browser, "/shop/orders/").await);
        assert_eq!(shop.order(kim, split).unwrap().status, OrderStatus::Paid);
        let paid = &shop.payments_for_order(kim, split).unwrap()[0];
        assert_eq!(
            (paid.status, paid.balance_amount, paid.pg_amount),
            (PaymentStatus::Approved, won(30_000), won(39_000))
        );
        assert_eq!(shop.balance(kim).unwrap(), Money::ZERO);
        let record = at_pg(&paid.pg_order_id).unwrap();
        assert_eq!((record["status"].as_str(), record["totalAmount"].as_i64()), (Some("DONE"), Some(39_000)));
        assert!(session.main_text().await.contains("Status: paid"));
        session.shot("order-paid").await;

        // One more tea, all by card — and the customer closes the widget:
        // the failure redirect ends the attempt, nothing reached the PG.
        browser.goto(&format!("{base}/shop")).await.unwrap();
        session
            .click(
                Locator::Id(&format!("add-{tea}")),
                Locator::XPath(&h1("Your cart")),
            )
            .await;
        session
            .click(Locator::Id("checkout"), Locator::XPath(&h1("Pay")))
            .await;
        through_widget("close", h1("Payment not completed")).await;
        let text = session.main_text().await;
        assert!(text.contains("PAY_PROCESS_CANCELED"), "{text}");
        session.shot("abandoned").await;
        let orders = shop.orders(kim, PageRequest::first(10)).unwrap().items;
        let later = orders.iter().find(|o| o.id != split).unwrap().id;
        assert_eq!(shop.order(kim, later).unwrap().status, OrderStatus::Pending);
        let abandoned = &shop.payments_for_order(kim, later).unwrap()[0];
        assert_eq!(abandoned.status, PaymentStatus::Declined);
        assert_eq!(abandoned.failure.as_ref().unwrap().code, "PAY_PROCESS_CANCELED");
        assert!(at_pg(&abandoned.pg_order_id).is_none());

        // The same order by bank transfer: the confirm answers an account
        // to pay into; the deposit (the PG's webhook) makes it paid.
        session
            .click(Locator::LinkText("Back"), Locator::Id("pay"))
            .await;
        session
            .click(Locator::Id("pay"), Locator::XPath(&h1("Pay")))
            .await;
        through_widget("transfer", "//main/h1[starts-with(., 'Order ')]".into()).await;
        let transfer = shop
            .payments_for_order(kim, later)
            .unwrap()
            .into_iter()
            .find(|p| p.id != abandoned.id)
            .unwrap();
        assert_eq!(transfer.status, PaymentStatus::Requested);
        let account = transfer.deposit.clone().unwrap().account_number;
        let text = session.main_text().await;
        assert!(text.contains(&account) && text.contains("waiting for your bank transfer"), "{text}");
        assert_eq!(shop.order(kim, later).unwrap().status, OrderStatus::Paying);
        session.shot("bank-transfer").await;
        pg_call(&pg, "/v1/fake/deposit", serde_json::json!({ "orderId": transfer.pg_order_id }));
        common::wait_for(Duration::from_secs(30), || {
            (shop.order(kim, later).unwrap().status == OrderStatus::Paid).then_some(())
        });
        browser.refresh().await.unwrap();
        let text = session.main_text().await;
        assert!(text.contains("Status: paid"), "{text}");
        session.shot("deposited").await;

        // A refund of one tea of the split order: 12,000 back, each won
        // the way it came.
        browser
            .goto(&format!("{base}/shop/orders/{split}"))
            .await
            .unwrap();
        session
            .click(Locator::Id("refund"), Locator::XPath("//caption[. = 'Refunds']"))
            .await;
        let order = shop.order(kim, split).unwrap();
        assert_eq!((order.status, order.refunded), (OrderStatus::PartiallyRefunded, won(12_000)));
        let refund = &shop.refunds(kim, split).unwrap()[0];
        assert_eq!(refund.status, RefundStatus::Completed);
        assert_eq!(refund.balance_amount.won() + refund.pg_amount.won(), 12_000);
        assert_eq!(shop.balance(kim).unwrap(), refund.balance_amount);
        let record = at_pg(&paid.pg_order_id).unwrap();
        assert_eq!(record["balanceAmount"].as_i64(), Some(39_000 - refund.pg_amount.won()));
        let text = session.main_text().await;
        assert!(text.contains("Status: partly refunded"), "{text}");
        session.shot("refunded").await;

        // A tampered success redirect: the PG authorised 45,000 and the
        // URL says 1,000. Refused; nothing is confirmed anywhere.
        browser.goto(&format!("{base}/shop")).await.unwrap();
        session
            .click(
                Locator::Id(&format!("add-{cup}")),
                Locator::XPath(&h1("Your cart")),
            )
            .await;
        type_into("balance_part", "0".into()).await;
        session
            .click(Locator::Id("checkout"), Locator::XPath(&h1("Pay")))
            .await;
        let payment = PaymentId::new(id_after(&browser, "/shop/pay/").await);
        let before = shop.payment(kim, payment).unwrap();
        let redirect = pg_call(
            &pg,
            "/v1/fake/widget",
            serde_json::json!({ "orderId": before.pg_order_id, "amount": 45_000 }),
        );
        let balance = shop.balance(kim).unwrap();
        browser
            .goto(&format!(
                "{base}/shop/pay/{payment}/success?paymentType=NORMAL&orderId={}&paymentKey={}&amount=1000",
                before.pg_order_id,
                redirect["paymentKey"].as_str().unwrap()
            ))
            .await
            .unwrap();
        let text = session.main_text().await;
        assert!(text.contains("does not match"), "{text}");
        session.shot("tampered").await;
        assert_eq!(shop.payment(kim, payment).unwrap(), before);
        assert_eq!(shop.balance(kim).unwrap(), balance);
        assert!(at_pg(&before.pg_order_id).is_none(), "nothing confirmed at the PG");

        browser.close().await.unwrap();
        kim
    });

    // The books, the stock and the PG's records agree.
    let report = shop.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(shop.product(tea).unwrap().stock, 10 - 3 + 1);
    assert_eq!(shop.product(cup).unwrap().stock, 5 - 2);
    for order in shop.orders(kim, PageRequest::first(10)).unwrap().items {
        for payment in shop.payments_for_order(order.user, order.id).unwrap() {
            if payment.status == PaymentStatus::Approved && !payment.pg_amount.is_zero() {
                let record = at_pg(&payment.pg_order_id).unwrap();
                assert_eq!(
                    record["balanceAmount"].as_i64(),
                    Some(payment.pg_amount.won() - payment.pg_refunded.won()),
                    "{record}"
                );
            }
        }
    }
}
