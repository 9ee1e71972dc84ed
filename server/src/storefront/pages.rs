//! The storefront's pages, rendered on the server with maud (which escapes
//! every value it interpolates).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use liteshop::{
    Cart, Money, Order, OrderStatus, Payment, PaymentKind, PaymentStatus, Product, Refund,
    RefundStatus,
};
use maud::{Markup, html};

use crate::html::{self, Site};

use super::{Customer, OrderView};
use crate::console::format::{time, won};

/// The storefront: its brand, its stylesheet, and the pages in its
/// navigation (path, title).
const SITE: Site = Site {
    brand: "liteshop",
    stylesheet: "/shop/style.css",
    nav: &[
        ("/shop", "Products"),
        ("/shop/cart", "Cart"),
        ("/shop/orders", "Orders"),
        ("/shop/top-up", "Top up"),
    ],
};

/// Who a page's header is for: a signed-in customer (with "sign out"),
/// someone signed out (with "sign in"), or either (an error page).
enum Who<'a> {
    Customer(&'a Customer),
    SignedOut,
    Anyone,
}

impl<'a> From<Option<&'a Customer>> for Who<'a> {
    fn from(customer: Option<&'a Customer>) -> Who<'a> {
        customer.map_or(Who::SignedOut, Who::Customer)
    }
}

impl<'a> From<&'a Customer> for Who<'a> {
    fn from(customer: &'a Customer) -> Who<'a> {
        Who::Customer(customer)
    }
}

/// A whole page: the head, the navigation, and `body`.
fn page<'a>(title: &str, who: impl Into<Who<'a>>, current: &str, body: Markup) -> Response {
    let aside = match who.into() {
        Who::Customer(customer) => html::sign_out("/shop/sign-out", &customer.csrf),
        Who::SignedOut => html! { a class="sign-out" href="/shop/sign-in" { "Sign in" } },
        Who::Anyone => html! {},
    };
    SITE.page(title, Some(current), aside, body)
}

/// The CSRF field every form carries.
fn csrf(customer: &Customer) -> Markup {
    html! { input type="hidden" name="csrf" value=(customer.csrf); }
}

/// A page that says why something was refused, with its status.
pub(crate) fn failure(status: StatusCode, title: &str, message: &str) -> Response {
    failure_noting(status, title, message, None)
}

/// [`failure`], with a note under the message.
pub(crate) fn failure_noting(
    status: StatusCode,
    title: &str,
    message: &str,
    note: Option<&str>,
) -> Response {
    let body = html! {
        p class="alert" role="alert" { (message) }
        @if let Some(note) = note { p { (note) } }
        p { a href="/shop/orders" { "Your orders" } " · " a href="/shop" { "Products" } }
    };
    (status, page(title, Who::Anyone, "", body)).into_response()
}

/// Creating an account, or signing in with a token.
pub(crate) fn sign_in(message: Option<&str>) -> Response {
    let status = if message.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let body = html! {
        @if let Some(message) = message {
            p class="alert" role="alert" { (message) }
        }
        h2 { "New here" }
        form method="post" action="/shop/sign-up" {
            label for="name" { "Your name" }
            input id="name" name="name" type="text" autocomplete="name" required;
            " "
            button type="submit" { "Create an account" }
        }
        h2 { "Signed in before" }
        form method="post" action="/shop/sign-in" {
            label for="token" { "Your token" }
            input id="token" name="token" type="password" autocomplete="current-password" required;
            " "
            button type="submit" { "Sign in" }
        }
    };
    (status, page("Sign in", Who::SignedOut, "", body)).into_response()
}

/// The balance, as the header of a customer's pages shows it.
fn balance_line(balance: Money) -> Markup {
    html! { p class="summary" { "Your balance: " strong id="balance" { (won(balance.won())) } } }
}

/// Every product, with "add to cart" for a signed-in customer.
pub(crate) fn products(
    customer: Option<&Customer>,
    balance: Option<Money>,
    products: &[Product],
) -> Response {
    let body = html! {
        @if let Some(balance) = balance { (balance_line(balance)) }
        @if products.is_empty() {
            p { "Nothing for sale yet." }
        } @else {
            table {
                thead { tr { th { "Product" } th class="num" { "Price" } th class="num" { "Available" } th { "" } } }
                tbody {
                    @for product in products {
                        tr {
                            td { (product.name) }
                            td class="num" { (won(product.price.won())) }
                            td class="num" { (product.stock) }
                            td {
                                @if let Some(customer) = customer {
                                    @if product.stock > 0 {
                                        form method="post" action="/shop/cart" class="inline" {
                                            (csrf(customer))
                                            input type="hidden" name="product" value=(product.id);
                                            label for={"qty-" (product.id)} { "Quantity" }
                                            input id={"qty-" (product.id)} name="quantity" type="number" min="1" value="1" size="3";
                                            button type="submit" id={"add-" (product.id)} { "Add to cart" }
                                        }
                                    } @else {
                                        "Sold out"
                                    }
                                } @else {
                                    a href="/shop/sign-in" { "Sign in to buy" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Products", customer, "/shop", body)
}

/// The balance-part field of a checkout or pay form, at most `total`.
fn balance_part_field(balance: Money, total: Money) -> Markup {
    let suggested = balance.won().min(total.won());
    html! {
        label for="balance_part" { "Use from your balance (₩)" }
        input id="balance_part" name="balance_part" type="number" min="0" max=(suggested) value=(suggested);
        span class="note" { "The rest is paid through the payment gateway." }
    }
}

/// The cart, its total, and checkout.
pub(crate) fn cart(customer: &Customer, balance: Money, cart: &Cart) -> Response {
    let body = html! {
        (balance_line(balance))
        @if cart.lines.is_empty() {
            p { "Your cart is empty. " a href="/shop" { "See the products" } "." }
        } @else {
            table {
                thead { tr { th { "Product" } th class="num" { "Price" } th class="num" { "Quantity" } th class="num" { "Total" } th { "" } } }
                tbody {
                    @for line in &cart.lines {
                        tr {
                            td { (line.name) }
                            td class="num" { (won(line.unit_price.won())) }
                            td class="num" { (line.quantity) }
                            td class="num" { @if let Some(total) = line.line_total { (won(total.won())) } }
                            td {
                                form method="post" action={"/shop/cart/" (line.id) "/remove"} class="inline" {
                                    (csrf(customer))
                                    button type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(total) = cart.total {
                p class="summary" { "Total: " strong id="cart-total" { (won(total.won())) } }
                form method="post" action="/shop/checkout" {
                    (csrf(customer))
                    (balance_part_field(balance, total))
                    p { button type="submit" id="checkout" { "Place the order and pay" } }
                }
            }
        }
    };
    page("Your cart", customer, "/shop/cart", body)
}

/// A customer's orders, newest first.
pub(crate) fn orders(customer: &Customer, orders: &[Order]) -> Response {
    let body = html! {
        @if orders.is_empty() {
            p { "No orders yet." }
        } @else {
            table {
                thead { tr { th { "Order" } th { "Status" } th class="num" { "Total" } th class="num" { "Refunded" } } }
                tbody {
                    @for order in orders {
                        tr {
                            td { a href={"/shop/orders/" (order.id)} { "Order " (order.id) } }
                            td { (order_status(order.status)) }
                            td class="num" { (won(order.total.won())) }
                            td class="num" { (won(order.refunded.won())) }
                        }
                    }
                }
            }
        }
    };
    page("Your orders", customer, "/shop/orders", body)
}

/// An order's status in words.
fn order_status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "waiting for payment",
        OrderStatus::Paying => "being paid",
        OrderStatus::Paid => "paid",
        OrderStatus::PartiallyRefunded => "partly refunded",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Refunded => "refunded",
    }
}

/// A payment's status in words.
fn payment_status(payment: &Payment) -> String {
    match payment.status {
        PaymentStatus::Started => "waiting for the payment gateway's widget".to_owned(),
        PaymentStatus::Requested if payment.deposit.is_some() => {
            "waiting for your bank transfer".to_owned()
        }
        PaymentStatus::Requested | PaymentStatus::Unknown => {
            "waiting for the payment gateway's answer".to_owned()
        }
        PaymentStatus::Approved => "paid".to_owned(),
        PaymentStatus::Declined => match &payment.failure {
            Some(failure) => format!("not paid: {} ({})", failure.message, failure.code),
            None => "not paid".to_owned(),
        },
        PaymentStatus::Refunded => "refunded".to_owned(),
    }
}

/// A refund's status in words.
fn refund_status(refund: &Refund) -> String {
    match refund.status {
        RefundStatus::Completed => "refunded".to_owned(),
        RefundStatus::Requested | RefundStatus::Unknown => {
            "waiting for the payment gateway".to_owned()
        }
        RefundStatus::Declined => match &refund.failure {
            Some(failure) => format!("refused: {} ({})", failure.message, failure.code),
            None => "refused".to_owned(),
        },
    }
}

/// One order: its lines, what paying it stands at, its refunds, and the
/// forms that pay or refund it.
pub(crate) fn order(customer: &Customer, view: &OrderView, offset: i32) -> Response {
    let order = &view.order;
    let body = html! {
        p class="summary" { "Status: " strong id="order-status" { (order_status(order.status)) } }
        table {
            caption { "Lines" }
            thead { tr { th { "Product" } th class="num" { "Price" } th class="num" { "Quantity" } th class="num" { "Refunded" } th class="num" { "Amount" } } }
            tbody {
                @for line in &order.lines {
                    tr {
                        td { (line.name) }
                        td class="num" { (won(line.unit_price.won())) }
                        td class="num" { (line.quantity) }
                        td class="num" { (line.refunded) }
                        td class="num" { (won(line.amount.won())) }
                    }
                }
            }
        }
        dl {
            dt { "Total" } dd id="order-total" { (won(order.total.won())) }
            dt { "Refunded" } dd id="order-refunded" { (won(order.refunded.won())) }
        }
        @if order.status == OrderStatus::Pending {
            h2 { "Pay" }
            p class="note" { "Held for you until " (time(order.expires_at, offset)) "." }
            form method="post" action={"/shop/orders/" (order.id) "/pay"} {
                (csrf(customer))
                (balance_part_field(view.balance, order.total))
                p { button type="submit" id="pay" { "Pay" } }
            }
        }
        @if !view.payments.is_empty() {
            table {
                caption { "Payments" }
                thead { tr { th { "Payment" } th class="num" { "From the balance" } th class="num" { "Through the PG" } th { "Status" } } }
                tbody {
                    @for payment in &view.payments {
                        tr {
                            td { (payment.id) }
                            td class="num" { (won(payment.balance_amount.won())) }
                            td class="num" { (won(payment.pg_amount.won())) }
                            td class="payment-status" { (payment_status(payment)) }
                        }
                    }
                }
            }
        }
        @for payment in &view.payments {
            @if let (PaymentStatus::Requested, Some(deposit)) = (payment.status, &payment.deposit) {
                div class="report" id="deposit" {
                    p { "Transfer " strong { (won(payment.pg_amount.won())) } " to:" }
                    dl {
                        dt { "Bank" } dd { (deposit.bank) }
                        dt { "Account" } dd id="deposit-account" { (deposit.account_number) }
                        dt { "By" } dd { (time(deposit.due_at, offset)) }
                    }
                }
            }
        }
        @if !view.refunds.is_empty() {
            table {
                caption { "Refunds" }
                thead { tr { th { "Refund" } th class="num" { "To the balance" } th class="num" { "Through the PG" } th { "Status" } } }
                tbody {
                    @for refund in &view.refunds {
                        tr {
                            td { (refund.id) }
                            td class="num" { (won(refund.balance_amount.won())) }
                            td class="num" { (won(refund.pg_amount.won())) }
                            td { (refund_status(refund)) }
                        }
                    }
                }
            }
        }
        @if order.status.is_refundable() {
            h2 { "Ask for a refund" }
            p class="note" { "Each won goes back the way it came: the balance part to your balance, the rest through the payment gateway." }
            form method="post" action={"/shop/orders/" (order.id) "/refund"} class="inline" {
                (csrf(customer))
                label for="refund-product" { "Product" }
                select id="refund-product" name="product" {
                    @for line in order.lines.iter().filter(|l| l.refunded < l.quantity) {
                        option value=(line.product) { (line.name) }
                    }
                }
                label for="refund-quantity" { "Units" }
                input id="refund-quantity" name="quantity" type="number" min="1" value="1" size="3";
                button type="submit" id="refund" { "Refund" }
            }
        }
    };
    page(
        &format!("Order {}", order.id),
        Some(customer),
        "/shop/orders",
        body,
    )
}

/// The balance, the top-up form and the top-ups.
pub(crate) fn top_ups(
    customer: &Customer,
    balance: Money,
    top_ups: &[Payment],
    offset: i32,
) -> Response {
    let body = html! {
        (balance_line(balance))
        form method="post" action="/shop/top-up" class="inline" {
            (csrf(customer))
            label for="amount" { "Add (₩)" }
            input id="amount" name="amount" type="number" min="1" value="10000";
            button type="submit" id="top-up" { "Top up through the payment gateway" }
        }
        @if !top_ups.is_empty() {
            table {
                caption { "Your top-ups" }
                thead { tr { th { "Top-up" } th { "When" } th class="num" { "Amount" } th class="num" { "Refunded" } th { "Status" } th { "" } } }
                tbody {
                    @for top_up in top_ups {
                        tr {
                            td { (top_up.id) }
                            td { (time(top_up.created_at, offset)) }
                            td class="num" { (won(top_up.amount.won())) }
                            td class="num" { (won(top_up.refunded.won())) }
                            td class="payment-status" { (payment_status(top_up)) }
                            td {
                                // Money of a top-up goes back to the card
                                // while the balance still holds it.
                                @if top_up.status == PaymentStatus::Approved && top_up.refunded < top_up.amount {
                                    form method="post" action={"/shop/top-ups/" (top_up.id) "/refund"} class="inline" {
                                        (csrf(customer))
                                        label for={"refund-" (top_up.id)} { "Back to the card (₩)" }
                                        input id={"refund-" (top_up.id)} name="amount" type="number" min="1" max=(top_up.amount.won() - top_up.refunded.won()) size="8";
                                        button type="submit" id={"refund-top-up-" (top_up.id)} { "Refund" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Top up", customer, "/shop/top-up", body)
}

/// The step before the widget: what the PG will be asked for, and the
/// link that goes there.
pub(crate) fn pay(customer: &Customer, payment: &Payment, widget: &str, offset: i32) -> Response {
    let what = match payment.kind {
        PaymentKind::Order => "this order",
        PaymentKind::TopUp => "this top-up",
    };
    let body = html! {
        dl {
            dt { "For" } dd { (payment.order_name) }
            dt { "From your balance" } dd { (won(payment.balance_amount.won())) " (held)" }
            dt { "Through the payment gateway" } dd id="pg-amount" { (won(payment.pg_amount.won())) }
            dt { "Before" } dd { (time(payment.expires_at, offset)) }
        }
        p { "To pay " (what) ", continue to the payment gateway. You come back here when you are done." }
        p { a class="button" id="to-widget" href=(widget) { "Continue to the payment gateway" } }
    };
    page("Pay", customer, "", body)
}

/// After the PG's failure redirect: the attempt ended, nothing was paid.
pub(crate) fn abandoned(customer: &Customer, payment: &Payment, back: &str) -> Response {
    let body = html! {
        p class="alert" role="alert" id="abandoned" { (payment_status(payment)) }
        p { "Nothing was charged; what was held from your balance is back." }
        p { a href=(back) { "Back" } }
    };
    page("Payment not completed", customer, "", body)
}
