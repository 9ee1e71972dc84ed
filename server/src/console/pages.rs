//! The console's pages, rendered on the server with maud (which escapes
//! every value it interpolates).

use axum::response::Response;
use liteshop::{
    AuditReport, BestSeller, ConsumerLag, Law, Lease, Order, ReconcileReport, Shop, Timestamp,
    Unsettled, UserId,
};
use maud::{Markup, PreEscaped, html};

use crate::html::{self, Site};

use super::format::{age, grouped, time, won, zone};
use super::{Operator, OrderView};

/// The console: its brand, its stylesheet, and the pages in its
/// navigation (path, title).
const SITE: Site = Site {
    brand: "liteshop console",
    stylesheet: "/console/style.css",
    nav: &[
        ("/console/books", "Books"),
        ("/console/in-flight", "Money in flight"),
        ("/console/sales", "Sales"),
        ("/console/orders", "Orders"),
        ("/console/feed", "Feed"),
    ],
};

/// A whole page: the head, the navigation (for a signed-in operator), and
/// `body`.
fn page(title: &str, operator: Option<&Operator>, current: &str, body: Markup) -> Response {
    match operator {
        Some(operator) => SITE.page(
            title,
            Some(current),
            html::sign_out("/console/sign-out", &operator.csrf),
            body,
        ),
        None => SITE.page(title, None, html! {}, body),
    }
}

/// The sign-in form, with a message after a failed attempt.
pub(crate) fn sign_in(message: Option<&str>) -> Response {
    page(
        "Sign in",
        None,
        "",
        html! {
            p { "Sign in with the shop's admin token. A user's token does not open the console." }
            @if let Some(message) = message {
                p class="alert" role="alert" { (message) }
            }
            form method="post" action="/console/sign-in" {
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A page that says a read failed.
pub(crate) fn failure(message: &str) -> Response {
    page(
        "Something went wrong",
        None,
        "",
        html! {
            p class="alert" role="alert" { (message) }
            p { a href="/console" { "Back to the console" } }
        },
    )
}

/// Pass or fail, in words and colour.
fn verdict(pass: bool) -> Markup {
    if pass {
        html! { span class="pass" { "✓ pass" } }
    } else {
        html! { span class="fail" { "✗ FAIL" } }
    }
}

/// Every law of the books with its verdict and figures.
pub(crate) fn books(operator: &Operator, report: &AuditReport, offset: i32) -> Response {
    let f = &report.figures;
    let failed = |law: Law| report.violations.iter().filter(|v| v.law == law).count();
    page(
        "Books",
        Some(operator),
        "/console/books",
        html! {
            p class="summary" {
                @if report.is_clean() {
                    span class="pass" { "The books balance: every law holds." }
                } @else {
                    span class="fail" { (report.violations.len()) " breaches: the books do not balance." }
                }
                " Checked " (time(report.at, offset)) " (" (zone(offset)) ")."
            }
            table {
                caption { "The laws of the books" }
                (html::head(&["Law", "Result", "Breaches"]))
                tbody {
                    @for law in Law::ALL {
                        tr data-law=(serde_json::to_value(law).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) {
                            td { (law.statement()) }
                            td { (verdict(failed(law) == 0)) }
                            td class="num" { (failed(law)) }
                        }
                    }
                }
            }
            h2 { "Figures" }
            table class="figures" {
                caption { "What the laws compare" }
                tbody {
                    tr { th scope="row" { "Money charged" } td class="num" { (won(f.charged)) } }
                    tr { th scope="row" { "Balances" } td class="num" { (won(f.balances)) } }
                    tr { th scope="row" { "Held by payments in flight" } td class="num" { (won(f.held_by_payments)) } }
                    tr { th scope="row" { "Kept by approved payments" } td class="num" { (won(f.kept)) } }
                    tr { th scope="row" { "Refunded" } td class="num" { (won(f.refunded)) } }
                    tr { th scope="row" { "Units ever stocked" } td class="num" { (grouped(f.units_stocked)) } }
                    tr { th scope="row" { "Units on hand" } td class="num" { (grouped(f.units_on_hand)) } }
                    tr { th scope="row" { "Units held by orders" } td class="num" { (grouped(f.units_held)) } }
                    tr { th scope="row" { "Events in the feed" } td class="num" { (grouped(f.events)) } }
                }
            }
            @if !report.violations.is_empty() {
                h2 { "Breaches" }
                table {
                    caption { "Each breach with both sides" }
                    (html::head(&["Law", "Subject", "Expected", "Found"]))
                    tbody {
                        @for v in &report.violations {
                            tr { td { (v.law.statement()) } td { (v.subject) } td class="num" { (grouped(v.expected)) } td class="num" { (grouped(v.found)) } }
                        }
                    }
                }
            }
        },
    )
}

/// The money in flight, and the report of a round just run.
pub(crate) fn in_flight(
    operator: &Operator,
    shop: &Shop,
    unsettled: &Unsettled,
    leases: &[Lease],
    report: Option<&ReconcileReport>,
) -> Response {
    let offset = shop.utc_offset_minutes();
    let review_after = i64::try_from(shop.review_after().as_millis()).unwrap_or(i64::MAX);
    let for_a_person =
        |created: Timestamp| unsettled.at.as_millis() - created.as_millis() >= review_after;
    // A payment awaiting a bank transfer is the customer's until its
    // account closes (its due date and the grace after it).
    let grace = i64::try_from(liteshop::DEPOSIT_GRACE.as_millis()).unwrap_or(i64::MAX);
    let payment_for_a_person = |p: &liteshop::Payment| match &p.deposit {
        Some(deposit) => {
            unsettled.at.as_millis() >= deposit.due_at.as_millis().saturating_add(grace)
        }
        None => for_a_person(p.created_at),
    };
    let held: i64 = unsettled.payments.iter().map(|p| p.amount.won()).sum();
    let owed: i64 = unsettled.refunds.iter().map(|r| r.amount.won()).sum();
    page(
        "Money in flight",
        Some(operator),
        "/console/in-flight",
        html! {
            p class="summary" {
                (unsettled.payments.len()) " payments hold " (won(held)) "; "
                (unsettled.refunds.len()) " refunds owe " (won(owed)) ". "
                "Those unsettled for longer than " (grouped(review_after / 60_000)) " minutes need a person: "
                "reconciliation never settles them on a guess."
            }
            @if let Some(report) = report {
                section class="report" aria-labelledby="report" {
                    h2 id="report" { "Reconciliation just run" }
                    p {
                        (report.payments.len()) " payments and " (report.refunds.len()) " refunds looked at; "
                        @if report.needs_review() { span class="fail" { "some need a person." } }
                        @else { span class="pass" { "none needs a person." } }
                    }
                    @if !report.payments.is_empty() || !report.refunds.is_empty() {
                        ul {
                            @for p in &report.payments {
                                li { "Payment " (p.payment) @if let Some(order) = p.order { " of order " (order) } @else { " (a top-up)" } ": " (p.status) @if p.needs_review { " — needs a person" } }
                            }
                            @for r in &report.refunds {
                                li { "Refund " (r.refund) @if let Some(order) = r.order { " of order " (order) } @else { " (of a top-up)" } ": " (r.status) @if r.needs_review { " — needs a person" } }
                            }
                        }
                    }
                }
            }
            form method="post" action="/console/in-flight/reconcile" {
                input type="hidden" name="csrf" value=(operator.csrf);
                button type="submit" { "Run one reconciliation round now" }
            }
            table {
                caption { "Payments in flight" }
                (html::head(&["Payment", "Order", "User", "Amount", "Status", "Since", "Age", "Needs a person"]))
                tbody {
                    @for p in &unsettled.payments {
                        tr {
                            td { (p.id) } td { @if let Some(order) = p.order { a href={ "/console/orders?order=" (order) } { (order) } } @else { "top-up" } } td { (p.user) }
                            td class="num" { (won(p.amount.won())) }
                            td { (p.status) @if let Some(deposit) = &p.deposit { " — awaiting a bank transfer until " (time(deposit.due_at, offset)) } }
                            td { (time(p.created_at, offset)) } td { (age(p.created_at, unsettled.at)) }
                            td { @if payment_for_a_person(p) { span class="fail" { "yes" } } @else { "no" } }
                        }
                    }
                    @if unsettled.payments.is_empty() { tr { td colspan="8" { "None." } } }
                }
            }
            table {
                caption { "Refunds in flight" }
                (html::head(&["Refund", "Order", "User", "Amount", "Status", "Since", "Age", "Needs a person"]))
                tbody {
                    @for r in &unsettled.refunds {
                        tr {
                            td { (r.id) } td { @if let Some(order) = r.order { a href={ "/console/orders?order=" (order) } { (order) } } @else { "top-up " (r.payment) } } td { (r.user) }
                            td class="num" { (won(r.amount.won())) } td { (r.status) }
                            td { (time(r.created_at, offset)) } td { (age(r.created_at, unsettled.at)) }
                            td { @if for_a_person(r.created_at) { span class="fail" { "yes" } } @else { "no" } }
                        }
                    }
                    @if unsettled.refunds.is_empty() { tr { td colspan="8" { "None." } } }
                }
            }
            table {
                caption { "Changed at the PG outside the shop (latest first): recorded so the books follow the PG; a person decides on the goods" }
                (html::head(&["Refund", "Order", "User", "Amount", "PG transaction", "Found"]))
                tbody {
                    @for r in &unsettled.external {
                        tr {
                            td { (r.id) } td { @if let Some(order) = r.order { a href={ "/console/orders?order=" (order) } { (order) } } @else { "top-up " (r.payment) } } td { (r.user) }
                            td class="num" { (won(r.amount.won())) } td { (r.pg_transaction_key.as_deref().unwrap_or("")) }
                            td { (time(r.created_at, offset)) }
                        }
                    }
                    @if unsettled.external.is_empty() { tr { td colspan="6" { "None." } } }
                }
            }
            table {
                caption { "Background work: which process leads each job" }
                (html::head(&["Job", "Held by", "Until"]))
                tbody {
                    @for l in leases {
                        tr data-job=(l.job) {
                            td { (l.job) } td { (l.holder) }
                            td {
                                (time(l.expires_at, offset))
                                @if l.expires_at <= unsettled.at { " — expired: free for another process" }
                            }
                        }
                    }
                    @if leases.is_empty() { tr { td colspan="3" { "No background job runs." } } }
                }
            }
            p class="note" { "Times in " (zone(offset)) ". " (PreEscaped("Each job runs in the one process holding its lease, renewed every round; another takes over when a holder stops renewing (<code>Shop::take_lease</code>).")) }
        },
    )
}

/// The best sellers as a bar chart and a table.
pub(crate) fn sales(operator: &Operator, days: u32, ranking: &[BestSeller]) -> Response {
    page(
        "Sales",
        Some(operator),
        "/console/sales",
        html! {
            form method="get" action="/console/sales" class="inline" {
                label for="days" { "Days, today included (1 to 30)" }
                input id="days" name="days" type="number" min="1" max="30" value=(days) required;
                button type="submit" { "Show" }
            }
            @if ranking.is_empty() {
                p { "Nothing sold in the last " (days) " days." }
            } @else {
                (chart(ranking, days))
                table {
                    caption { "Best sellers of the last " (days) " days: units paid, less refunded" }
                    (html::head(&["Rank", "Product", "Units", "Revenue"]))
                    tbody {
                        @for (i, seller) in ranking.iter().enumerate() {
                            tr data-product=(seller.product) {
                                td class="num" { (i + 1) } td { (seller.name) " (" (seller.product) ")" }
                                td class="num" { (grouped(i64::try_from(seller.units).unwrap_or(i64::MAX))) }
                                td class="num" { (won(seller.revenue.won())) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A horizontal bar chart of units sold, drawn as inline SVG.
fn chart(ranking: &[BestSeller], days: u32) -> Markup {
    const WIDTH: u64 = 640;
    const LABEL: u64 = 200;
    const BAR: u64 = 28;
    let most = ranking.iter().map(|s| s.units).max().unwrap_or(1).max(1);
    let height = BAR * ranking.len() as u64 + 8;
    let span = WIDTH - LABEL - 90;
    html! {
        svg class="chart" role="img" viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height)
            aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg" {
            title id="chart-title" { "Units sold in the last " (days) " days, by product" }
            @for (i, seller) in ranking.iter().enumerate() {
                @let y = i as u64 * BAR + 4;
                @let width = (seller.units * span / most).max(1);
                text x=(LABEL - 8) y=(y + 18) text-anchor="end" class="label" { (truncate(&seller.name, 26)) }
                rect x=(LABEL) y=(y) width=(width) height=(BAR - 8) class="bar" {}
                text x=(LABEL + width + 6) y=(y + 18) class="value" { (grouped(i64::try_from(seller.units).unwrap_or(i64::MAX))) " units" }
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

/// The order look-up: a form, then one order or a user's orders.
pub(crate) fn orders(
    operator: &Operator,
    offset: i32,
    message: Option<&str>,
    view: Option<&OrderView>,
    list: Option<(UserId, &[Order])>,
) -> Response {
    page(
        "Orders",
        Some(operator),
        "/console/orders",
        html! {
            form method="get" action="/console/orders" class="inline" {
                label for="order" { "Order id" }
                input id="order" name="order" type="number" min="1";
                button type="submit" { "Show the order" }
            }
            form method="get" action="/console/orders" class="inline" {
                label for="user" { "User id" }
                input id="user" name="user" type="number" min="1";
                button type="submit" { "Show the user's orders" }
            }
            @if let Some(message) = message { p class="alert" role="alert" { (message) } }
            @if let Some(view) = view { (order_view(view, offset)) }
            @if let Some((user, orders)) = list {
                table {
                    caption { "Orders of user " (user) ", newest first" }
                    (html::head(&["Order", "Status", "Total", "Refunded", "Placed"]))
                    tbody {
                        @for o in orders {
                            tr {
                                td { a href={ "/console/orders?order=" (o.id) } { (o.id) } } td { (o.status) }
                                td class="num" { (won(o.total.won())) } td class="num" { (won(o.refunded.won())) }
                                td { (time(o.created_at, offset)) }
                            }
                        }
                        @if orders.is_empty() { tr { td colspan="5" { "No orders." } } }
                    }
                }
            }
            p class="note" { "Times in " (zone(offset)) "." }
        },
    )
}

fn order_view(view: &OrderView, offset: i32) -> Markup {
    let o = &view.order;
    html! {
        section aria-labelledby="order-title" {
            h2 id="order-title" { "Order " (o.id) }
            dl {
                dt { "User" } dd { a href={ "/console/orders?user=" (o.user) } { (o.user) } }
                dt { "Status" } dd data-status=(o.status) { (o.status) }
                dt { "Subtotal" } dd { (won(o.subtotal.won())) }
                dt { "Discount" } dd { (won(o.discount.won())) }
                dt { "Total" } dd { (won(o.total.won())) }
                dt { "Refunded" } dd { (won(o.refunded.won())) }
                dt { "Placed" } dd { (time(o.created_at, offset)) }
                @if let Some(paid) = o.paid_at { dt { "Paid" } dd { (time(paid, offset)) } }
            }
            table {
                caption { "Lines" }
                (html::head(&["Product", "Unit price", "Units", "Paid", "Units refunded"]))
                tbody {
                    @for line in &o.lines {
                        tr { td { (line.name) " (" (line.product) ")" } td class="num" { (won(line.unit_price.won())) } td class="num" { (line.quantity) } td class="num" { (won(line.amount.won())) } td class="num" { (line.refunded) } }
                    }
                }
            }
            table {
                caption { "Payments and their history" }
                (html::head(&["Payment", "Amount", "Status", "History"]))
                tbody {
                    @for (p, history) in &view.payments {
                        tr {
                            td { (p.id) } td class="num" { (won(p.amount.won())) } td { (p.status) }
                            td { ul class="plain" { @for e in history { li { (time(e.created_at, offset)) " " (e.status) @if !e.detail.is_empty() { " — " (e.detail) } } } } }
                        }
                    }
                    @if view.payments.is_empty() { tr { td colspan="4" { "No payment." } } }
                }
            }
            table {
                caption { "Refunds" }
                (html::head(&["Refund", "Amount", "Status", "Reason", "When"]))
                tbody {
                    @for r in &view.refunds {
                        tr { td { (r.id) } td class="num" { (won(r.amount.won())) } td { (r.status) } td { (r.reason) } td { (time(r.created_at, offset)) } }
                    }
                    @if view.refunds.is_empty() { tr { td colspan="5" { "No refund." } } }
                }
            }
            table {
                caption { "Events" }
                (html::head(&["Seq", "Kind", "When"]))
                tbody {
                    @for e in &view.events {
                        tr { td class="num" { (e.seq) } td { (e.kind) } td { (time(e.created_at, offset)) } }
                    }
                    @if view.events.is_empty() { tr { td colspan="3" { "No event left in the feed." } } }
                }
            }
        }
    }
}

/// Each consumer of the feed with its cursor and lag.
pub(crate) fn feed(operator: &Operator, consumers: &[ConsumerLag], offset: i32) -> Response {
    let head = consumers.first().map(|c| c.head);
    page(
        "Feed",
        Some(operator),
        "/console/feed",
        html! {
            @if let Some(head) = head {
                p class="summary" { "The feed's head is event " (grouped(i64::try_from(head).unwrap_or(i64::MAX))) "." }
            }
            table {
                caption { "Consumers of the event feed" }
                (html::head(&["Consumer", "Cursor", "Behind the head", "Oldest event not acked", "Last ack"]))
                tbody {
                    @for c in consumers {
                        tr data-consumer=(c.name) {
                            td { (c.name) }
                            td class="num" { (c.acked) }
                            td class="num" { (grouped(i64::try_from(c.behind).unwrap_or(i64::MAX))) }
                            td { @match c.oldest_unacked_at { Some(at) => { (time(at, offset)) }, None => { "— (caught up)" } } }
                            td { (time(c.updated_at, offset)) }
                        }
                    }
                    @if consumers.is_empty() { tr { td colspan="5" { "No consumer has registered." } } }
                }
            }
            p class="note" { "Times in " (zone(offset)) ". " (PreEscaped("A consumer registers with its first ack (<code>liteshop events --consumer NAME</code>, or <code>Shop::ack_events</code>).")) }
        },
    )
}
