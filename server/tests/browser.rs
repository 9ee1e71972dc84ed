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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, free_port};
use fantoccini::{ClientBuilder, Locator};
use liteshop::{
    Clock, FakeGateway, FakeOutcome, Law, ManualClock, Money, NewProduct, OrderLine, Shop,
    SystemClock, Timestamp,
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
    let required = std::env::var("LITESHOP_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let (Some(driver), Some(chromium)) = (find("chromedriver"), find("chromium")) else {
        assert!(
            !required,
            "LITESHOP_REQUIRE_BROWSER=1 but chromium or chromedriver is missing"
        );
        eprintln!(
            "skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        );
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
    let driver_port = free_port();
    let _driver = Running(
        Command::new(driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&addr);
    wait_for(&format!("127.0.0.1:{driver_port}"));

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let shop = Shop::open(&db).unwrap();
    let base = format!("http://{addr}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a ChromeDriver session");
        let shot = |name: &'static str| {
            let browser = browser.clone();
            let path = shots.join(format!("{name}.png"));
            async move {
                let png = browser.screenshot().await.unwrap();
                std::fs::write(&path, png).unwrap();
            }
        };
        // The text of the page's main part, read again if the page changed
        // under the read (a navigation still finishing).
        let body = || {
            let browser = browser.clone();
            async move {
                for _ in 0..50 {
                    let main = browser
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
                    browser.current_url().await.map(|u| u.to_string())
                );
            }
        };
        // Clicks what `what` finds, then waits for `then` on the next page.
        let click = |what: Locator<'static>, then: Locator<'static>| {
            let browser = browser.clone();
            async move {
                browser.find(what).await.unwrap().click().await.unwrap();
                browser
                    .wait()
                    .at_most(Duration::from_secs(10))
                    .for_element(then)
                    .await
                    .unwrap();
            }
        };

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
