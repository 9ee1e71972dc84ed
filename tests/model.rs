//! Model-based test: random sequences of every public call against a plain
//! in-memory model of the shop. After each step the call's result (value or
//! `ErrorKind`) and the shop's observable state (balances, ledgers, stock,
//! carts, order and payment states) must equal the model's.
//!
//! Failing cases proptest finds are shrunk and saved next to this file
//! (`model.proptest-regressions`), which is committed: they are replayed
//! first on every run. `LITESHOP_MODEL_CASES` sets the number of cases
//! (default 128) for soak runs.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestShop, open_with, won};
use liteshop::{
    CartItemId, ErrorKind, EventKind, FakeGateway, FakeOutcome, NewProduct, OrderId, OrderLine,
    OrderStatus, PageRequest, PaymentId, PaymentStatus, ProductId, RefundStatus, RetryPolicy,
    UserId,
};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const MAX_CHARGE: i64 = 50_000;
const MAX_BALANCE: i64 = 100_000;
const MAX_QUANTITY: u32 = 3;
const RESERVATION_SECS: u64 = 600;
/// How long the PG takes a confirm after authentication (Toss: 10 minutes).
const CONFIRM_WINDOW_SECS: u64 = 600;

/// What a call returned: a number that identifies the result (an id, a
/// balance, a count) or nothing, or the kind of its error.
type Outcome = Result<Option<i64>, ErrorKind>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pg {
    Approve,
    Decline,
    LostBeforeCharge,
    LostAfterCharge,
}

#[derive(Clone, Debug)]
enum Step {
    CreateUser,
    Charge {
        user: i64,
        amount: i64,
    },
    CreateProduct {
        price: i64,
        stock: u32,
    },
    Restock {
        product: i64,
        quantity: u32,
    },
    AddToCart {
        user: i64,
        product: i64,
        quantity: u32,
    },
    SetCartQuantity {
        user: i64,
        item: i64,
        quantity: u32,
    },
    RemoveFromCart {
        user: i64,
        item: i64,
    },
    PlaceOrder {
        user: i64,
        lines: Vec<(i64, u32)>,
    },
    Checkout {
        user: i64,
    },
    Cancel {
        user: i64,
        order: i64,
    },
    Advance {
        secs: u64,
    },
    Expire,
    Pay {
        user: i64,
        order: i64,
        pg: Pg,
    },
    Reconcile,
    /// A refund of some lines (`Some`) or of every unit left (`None`), whose
    /// cancel the gateway answers as `pg` says.
    Refund {
        user: i64,
        order: i64,
        lines: Option<Vec<(i64, u32)>>,
        pg: Pg,
    },
}

#[derive(Clone, Debug)]
struct MUser {
    balance: i64,
    ledger: usize,
}

#[derive(Clone, Debug)]
struct MProduct {
    price: i64,
    stock: u32,
}

#[derive(Clone, Debug)]
struct MItem {
    user: i64,
    product: i64,
    quantity: u32,
}

#[derive(Clone, Debug)]
struct MLine {
    product: i64,
    quantity: u32,
    price: i64,
    refunded: u32,
}

#[derive(Clone, Debug)]
struct MOrder {
    user: i64,
    status: OrderStatus,
    lines: Vec<MLine>,
    total: i64,
    refunded: i64,
    expires_at: u64,
}

#[derive(Clone, Debug)]
struct MRefund {
    order: i64,
    user: i64,
    amount: i64,
    /// Its parts by the refund rule: the PG part first.
    balance_part: i64,
    pg_part: i64,
    /// (line index, units)
    units: Vec<(usize, u32)>,
    status: RefundStatus,
}

#[derive(Clone, Debug)]
struct MPayment {
    order: i64,
    user: i64,
    /// The tender: half the total (rounded down) from the balance, the rest
    /// by card.
    balance_part: i64,
    pg_part: i64,
    pg_refunded: i64,
    status: PaymentStatus,
    /// The confirm never reached the PG (it holds the payment
    /// authenticated, `IN_PROGRESS`, until its window ends).
    lost_before_charge: bool,
    /// When the confirm was sent, in the model's seconds.
    confirmed_at: u64,
}

/// The shop as plain data, and the outcome of the last step.
#[derive(Clone, Debug)]
struct Model {
    now_secs: u64,
    users: Vec<MUser>,
    products: Vec<MProduct>,
    cart: BTreeMap<i64, MItem>,
    /// Cart line ids given so far: PostgreSQL's identity never reuses one.
    cart_ids: i64,
    orders: Vec<MOrder>,
    payments: Vec<MPayment>,
    refunds: Vec<MRefund>,
    last: Outcome,
}

use ErrorKind::{Conflict, InvalidInput, NotFound, PaymentDeclined, PaymentOutcomeUnknown};

impl Model {
    fn user(&self, id: i64) -> Result<usize, ErrorKind> {
        usize::try_from(id - 1)
            .ok()
            .filter(|&i| i < self.users.len())
            .ok_or(NotFound)
    }

    fn product(&self, id: i64) -> Result<usize, ErrorKind> {
        usize::try_from(id - 1)
            .ok()
            .filter(|&i| i < self.products.len())
            .ok_or(NotFound)
    }

    /// The order `id` if it is `user`'s.
    fn order_of(&self, user: i64, id: i64) -> Result<usize, ErrorKind> {
        usize::try_from(id - 1)
            .ok()
            .filter(|&i| i < self.orders.len() && self.orders[i].user == user)
            .ok_or(NotFound)
    }

    /// Money in flight for `user`: held by payments, owed by refunds.
    fn held(&self, user: i64) -> i64 {
        let payments: i64 = self
            .payments
            .iter()
            .filter(|p| p.user == user && p.status.is_unsettled())
            .map(|p| p.balance_part)
            .sum();
        let refunds: i64 = self
            .refunds
            .iter()
            .filter(|r| r.user == user && r.status.is_unsettled())
            .map(|r| r.balance_part)
            .sum();
        payments + refunds
    }

    /// Units of `product` held by orders: reserved or sold, not released.
    fn units_held(&self, product: i64) -> u32 {
        self.orders
            .iter()
            .filter(|o| o.status.holds_stock())
            .flat_map(|o| &o.lines)
            .filter(|l| l.product == product)
            .map(|l| l.quantity - l.refunded)
            .sum()
    }

    /// Completes refund `r`: credit, units back, order and payment moved.
    fn complete_refund(&mut self, r: usize) {
        let MRefund {
            order,
            user,
            amount,
            balance_part,
            pg_part,
            ref units,
            ..
        } = self.refunds[r];
        let o = (order - 1) as usize;
        for &(line, n) in &units.clone() {
            self.orders[o].lines[line].refunded += n;
            let product = self.orders[o].lines[line].product;
            self.products[(product - 1) as usize].stock += n;
        }
        self.orders[o].refunded += amount;
        let all = self.orders[o]
            .lines
            .iter()
            .all(|l| l.refunded == l.quantity);
        self.orders[o].status = if all {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        let p = self
            .payments
            .iter()
            .position(|p| p.order == order && p.status == PaymentStatus::Approved)
            .expect("a refunded order has an approved payment");
        self.payments[p].pg_refunded += pg_part;
        if all {
            self.payments[p].status = PaymentStatus::Refunded;
        }
        if balance_part > 0 {
            self.credit(user, balance_part);
        }
        self.refunds[r].status = RefundStatus::Completed;
    }

    fn credit(&mut self, user: i64, amount: i64) {
        let u = &mut self.users[(user - 1) as usize];
        u.balance += amount;
        u.ledger += 1;
    }

    fn release(&mut self, order: usize) {
        for line in self.orders[order].lines.clone() {
            self.products[(line.product - 1) as usize].stock += line.quantity - line.refunded;
        }
    }

    fn expire_where(&mut self, holds: impl Fn(&MOrder) -> bool) -> i64 {
        let now_ms = self.now_secs * 1_000;
        let due: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                let o = &self.orders[i];
                o.status == OrderStatus::Pending && o.expires_at <= now_ms && holds(o)
            })
            .collect();
        for &i in &due {
            self.orders[i].status = OrderStatus::Cancelled;
            self.release(i);
        }
        due.len() as i64
    }

    fn validate_lines(lines: &[(i64, u32)]) -> Result<(), ErrorKind> {
        if lines.is_empty() {
            return Err(InvalidInput);
        }
        let mut seen = Vec::new();
        for &(product, quantity) in lines {
            if !(1..=MAX_QUANTITY).contains(&quantity) || seen.contains(&product) {
                return Err(InvalidInput);
            }
            seen.push(product);
        }
        Ok(())
    }

    /// Places an order for a user known to exist, on a copy kept only on
    /// success.
    fn place(&mut self, user: i64, lines: &[(i64, u32)]) -> Outcome {
        for &(product, _) in lines {
            self.product(product)?;
        }
        let mut m = self.clone();
        // Every product short as it stood before this placement has its
        // overdue holders expired — all of them, even where an earlier
        // line's expiry already gave back enough — and then each line
        // takes its units.
        for &(product, quantity) in lines {
            if self.products[(product - 1) as usize].stock < quantity {
                m.expire_where(|o| o.lines.iter().any(|l| l.product == product));
            }
        }
        for &(product, quantity) in lines {
            let p = (product - 1) as usize;
            if m.products[p].stock < quantity {
                return Err(Conflict);
            }
            m.products[p].stock -= quantity;
        }
        let total: i64 = lines
            .iter()
            .map(|&(product, quantity)| {
                m.products[(product - 1) as usize].price * i64::from(quantity)
            })
            .sum();
        // Placing checks stock, not the balance: the payment checks its
        // balance part.
        let lines = lines
            .iter()
            .map(|&(product, quantity)| MLine {
                product,
                quantity,
                price: m.products[(product - 1) as usize].price,
                refunded: 0,
            })
            .collect();
        m.orders.push(MOrder {
            user,
            status: OrderStatus::Pending,
            lines,
            total,
            refunded: 0,
            expires_at: (m.now_secs + RESERVATION_SECS) * 1_000,
        });
        let id = m.orders.len() as i64;
        *self = m;
        Ok(Some(id))
    }

    fn step(&mut self, step: &Step) -> Outcome {
        match *step {
            Step::CreateUser => {
                self.users.push(MUser {
                    balance: 0,
                    ledger: 0,
                });
                Ok(Some(self.users.len() as i64))
            }
            Step::Charge { user, amount } => {
                if amount == 0 {
                    return Err(InvalidInput);
                }
                let u = self.user(user)?;
                if amount > MAX_CHARGE {
                    return Err(InvalidInput);
                }
                if self.users[u].balance + self.held(user) + amount > MAX_BALANCE {
                    // Over the balance limit depends on the balance: a conflict.
                    return Err(Conflict);
                }
                self.credit(user, amount);
                Ok(Some(self.users[u].balance))
            }
            Step::CreateProduct { price, stock } => {
                self.products.push(MProduct { price, stock });
                Ok(Some(self.products.len() as i64))
            }
            Step::Restock { product, quantity } => {
                if quantity == 0 {
                    return Err(InvalidInput);
                }
                let p = self.product(product)?;
                self.products[p].stock += quantity;
                Ok(Some(i64::from(self.products[p].stock)))
            }
            Step::AddToCart {
                user,
                product,
                quantity,
            } => {
                if !(1..=MAX_QUANTITY).contains(&quantity) {
                    return Err(InvalidInput);
                }
                self.user(user)?;
                self.product(product)?;
                if self
                    .cart
                    .values()
                    .any(|i| i.user == user && i.product == product)
                {
                    return Err(Conflict);
                }
                // SQLite gives a rowid one past the largest in the table;
                // PostgreSQL's identity the next number, never reused.
                self.cart_ids += 1;
                let id = if common::postgres_url().is_some() {
                    self.cart_ids
                } else {
                    self.cart.keys().next_back().map_or(1, |max| max + 1)
                };
                self.cart.insert(
                    id,
                    MItem {
                        user,
                        product,
                        quantity,
                    },
                );
                Ok(Some(id))
            }
            Step::SetCartQuantity {
                user,
                item,
                quantity,
            } => {
                if !(1..=MAX_QUANTITY).contains(&quantity) {
                    return Err(InvalidInput);
                }
                match self.cart.get_mut(&item).filter(|i| i.user == user) {
                    Some(line) => {
                        line.quantity = quantity;
                        Ok(None)
                    }
                    None => Err(NotFound),
                }
            }
            Step::RemoveFromCart { user, item } => {
                if self.cart.get(&item).is_some_and(|i| i.user == user) {
                    self.cart.remove(&item);
                    Ok(None)
                } else {
                    Err(NotFound)
                }
            }
            Step::PlaceOrder { user, ref lines } => {
                Self::validate_lines(lines)?;
                self.user(user)?;
                self.place(user, lines)
            }
            Step::Checkout { user } => {
                self.user(user)?;
                let lines: Vec<(i64, u32)> = self
                    .cart
                    .values()
                    .filter(|i| i.user == user)
                    .map(|i| (i.product, i.quantity))
                    .collect();
                if lines.is_empty() {
                    return Err(Conflict);
                }
                let placed = self.place(user, &lines)?;
                self.cart.retain(|_, i| i.user != user);
                Ok(placed)
            }
            Step::Cancel { user, order } => {
                let o = self.order_of(user, order)?;
                if self.orders[o].status != OrderStatus::Pending {
                    return Err(Conflict);
                }
                self.orders[o].status = OrderStatus::Cancelled;
                self.release(o);
                Ok(None)
            }
            Step::Advance { secs } => {
                self.now_secs += secs;
                Ok(None)
            }
            Step::Expire => Ok(Some(self.expire_where(|_| true))),
            Step::Pay { user, order, pg } => {
                let o = self.order_of(user, order)?;
                let (status, total) = (self.orders[o].status, self.orders[o].total);
                if status != OrderStatus::Pending {
                    return Err(Conflict);
                }
                if self.orders[o].expires_at <= self.now_secs * 1_000 {
                    return Err(Conflict); // expired, swept or not
                }
                if total == 0 {
                    return Err(InvalidInput);
                }
                let balance_part = total / 2;
                if self.users[(user - 1) as usize].balance < balance_part {
                    return Err(Conflict);
                }
                if balance_part > 0 {
                    self.credit(user, -balance_part);
                }
                self.payments.push(MPayment {
                    order,
                    user,
                    balance_part,
                    pg_part: total - balance_part,
                    pg_refunded: 0,
                    status: PaymentStatus::Requested,
                    lost_before_charge: pg == Pg::LostBeforeCharge,
                    confirmed_at: self.now_secs,
                });
                let id = self.payments.len() as i64;
                let payment = self.payments.last_mut().expect("just pushed");
                match pg {
                    Pg::Approve => {
                        payment.status = PaymentStatus::Approved;
                        self.orders[o].status = OrderStatus::Paid;
                        Ok(Some(id))
                    }
                    Pg::Decline => {
                        payment.status = PaymentStatus::Declined;
                        if balance_part > 0 {
                            self.credit(user, balance_part);
                        }
                        Err(PaymentDeclined)
                    }
                    Pg::LostBeforeCharge | Pg::LostAfterCharge => {
                        payment.status = PaymentStatus::Unknown;
                        self.orders[o].status = OrderStatus::Paying;
                        Err(PaymentOutcomeUnknown)
                    }
                }
            }
            Step::Reconcile => {
                // With no grace, every unknown payment is settled: found
                // approved at the PG, or held authenticated (`IN_PROGRESS`)
                // and sent again inside the PG's 10-minute confirm window
                // (the fake then approves), or expired by the PG after it
                // (declined: the balance part back, the order pending).
                // Then every unknown refund: its cancel sent again with its
                // key is replayed as done, or (never received) done now.
                let mut settled = 0;
                for i in 0..self.payments.len() {
                    if self.payments[i].status == PaymentStatus::Unknown {
                        let p = &self.payments[i];
                        let o = (p.order - 1) as usize;
                        if p.lost_before_charge
                            && self.now_secs - p.confirmed_at >= CONFIRM_WINDOW_SECS
                        {
                            let (user, part) = (p.user, p.balance_part);
                            self.payments[i].status = PaymentStatus::Declined;
                            self.orders[o].status = OrderStatus::Pending;
                            if part > 0 {
                                self.credit(user, part);
                            }
                        } else {
                            self.payments[i].status = PaymentStatus::Approved;
                            self.orders[o].status = OrderStatus::Paid;
                        }
                        settled += 1;
                    }
                }
                for r in 0..self.refunds.len() {
                    if self.refunds[r].status == RefundStatus::Unknown {
                        self.complete_refund(r);
                        settled += 1;
                    }
                }
                Ok(Some(settled))
            }
            Step::Refund {
                user,
                order,
                ref lines,
                pg,
            } => {
                if let Some(lines) = lines {
                    Self::validate_lines(lines)?;
                }
                let o = self.order_of(user, order)?;
                if !self.orders[o].status.is_refundable() {
                    return Err(Conflict);
                }
                if self
                    .refunds
                    .iter()
                    .any(|r| r.order == order && r.status.is_unsettled())
                {
                    return Err(Conflict);
                }
                let mine = &self.orders[o].lines;
                let units: Vec<(usize, u32)> = match lines {
                    None => (0..mine.len())
                        .filter(|&i| mine[i].refunded < mine[i].quantity)
                        .map(|i| (i, mine[i].quantity - mine[i].refunded))
                        .collect(),
                    Some(lines) => {
                        let mut units = Vec::new();
                        for &(product, n) in lines {
                            match mine.iter().position(|l| l.product == product) {
                                Some(i) if n <= mine[i].quantity - mine[i].refunded => {
                                    units.push((i, n));
                                }
                                _ => return Err(Conflict),
                            }
                        }
                        units.sort_unstable();
                        units
                    }
                };
                let amount: i64 = units
                    .iter()
                    .map(|&(i, n)| mine[i].price * i64::from(n))
                    .sum();
                let paid = self
                    .payments
                    .iter()
                    .find(|p| p.order == order && p.status == PaymentStatus::Approved)
                    .expect("a refundable order has an approved payment");
                let pg_part = amount.min(paid.pg_part - paid.pg_refunded);
                let balance_part = amount - pg_part;
                if self.users[(user - 1) as usize].balance + self.held(user) + balance_part
                    > MAX_BALANCE
                {
                    return Err(Conflict);
                }
                self.refunds.push(MRefund {
                    order,
                    user,
                    amount,
                    balance_part,
                    pg_part,
                    units,
                    status: RefundStatus::Requested,
                });
                let r = self.refunds.len() - 1;
                let id = Some(r as i64 + 1);
                if pg_part == 0 {
                    self.complete_refund(r);
                    return Ok(id);
                }
                match pg {
                    Pg::Approve => {
                        self.complete_refund(r);
                        Ok(id)
                    }
                    Pg::Decline => {
                        self.refunds[r].status = RefundStatus::Declined;
                        Err(PaymentDeclined)
                    }
                    Pg::LostBeforeCharge | Pg::LostAfterCharge => {
                        self.refunds[r].status = RefundStatus::Unknown;
                        Err(PaymentOutcomeUnknown)
                    }
                }
            }
        }
    }
}

struct ShopModel;

/// An id of one of `n` records, now and then one past them (not found).
fn id_up_to(n: usize) -> BoxedStrategy<i64> {
    let n = n as i64;
    if n == 0 {
        Just(1).boxed()
    } else {
        prop_oneof![9 => 1..=n, 1 => Just(n + 1)].boxed()
    }
}

/// Every case starts from two users with money and three products, so
/// short sequences reach orders and payments.
const START_USERS: [i64; 2] = [50_000, 30_000];
const START_PRODUCTS: [(i64, u32); 3] = [(1_000, 5), (5_000, 3), (20_000, 2)];

impl ReferenceStateMachine for ShopModel {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            now_secs: 0,
            users: START_USERS
                .iter()
                .map(|&balance| MUser { balance, ledger: 1 })
                .collect(),
            products: START_PRODUCTS
                .iter()
                .map(|&(price, stock)| MProduct { price, stock })
                .collect(),
            cart: BTreeMap::new(),
            cart_ids: 0,
            orders: Vec::new(),
            payments: Vec::new(),
            refunds: Vec::new(),
            last: Ok(None),
        })
        .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let user = id_up_to(state.users.len());
        let product = id_up_to(state.products.len());
        let order = id_up_to(state.orders.len());
        let item = (1..=state.cart.keys().next_back().copied().unwrap_or(0) + 1).boxed();
        let quantity =
            prop_oneof![8 => 1..=MAX_QUANTITY, 1 => Just(0), 1 => Just(MAX_QUANTITY + 1)];
        let amount = prop_oneof![
            Just(0),
            Just(MAX_CHARGE),
            Just(MAX_CHARGE + 1),
            1..=MAX_CHARGE
        ];
        let pg = prop_oneof![
            4 => Just(Pg::Approve),
            2 => Just(Pg::Decline),
            1 => Just(Pg::LostBeforeCharge),
            1 => Just(Pg::LostAfterCharge),
        ];
        let lines = prop::collection::vec((product.clone(), quantity.clone()), 0..4);
        let refund_lines = prop_oneof![
            1 => Just(None),
            1 => prop::collection::vec((product.clone(), quantity.clone()), 0..3).prop_map(Some),
        ];
        prop_oneof![
            2 => Just(Step::CreateUser),
            4 => (user.clone(), amount).prop_map(|(user, amount)| Step::Charge { user, amount }),
            2 => (prop_oneof![Just(0_i64), Just(1_000), Just(5_000), Just(20_000)], 0..6_u32)
                .prop_map(|(price, stock)| Step::CreateProduct { price, stock }),
            1 => (product.clone(), 0..4_u32).prop_map(|(product, quantity)| Step::Restock { product, quantity }),
            3 => (user.clone(), product.clone(), quantity.clone())
                .prop_map(|(user, product, quantity)| Step::AddToCart { user, product, quantity }),
            1 => (user.clone(), item.clone(), quantity)
                .prop_map(|(user, item, quantity)| Step::SetCartQuantity { user, item, quantity }),
            1 => (user.clone(), item).prop_map(|(user, item)| Step::RemoveFromCart { user, item }),
            6 => (user.clone(), lines).prop_map(|(user, lines)| Step::PlaceOrder { user, lines }),
            2 => user.clone().prop_map(|user| Step::Checkout { user }),
            2 => (user.clone(), order.clone()).prop_map(|(user, order)| Step::Cancel { user, order }),
            3 => prop_oneof![Just(300_u64), Just(RESERVATION_SECS)].prop_map(|secs| Step::Advance { secs }),
            1 => Just(Step::Expire),
            6 => (user.clone(), order.clone(), pg.clone()).prop_map(|(user, order, pg)| Step::Pay { user, order, pg }),
            1 => Just(Step::Reconcile),
            4 => (user, order, refund_lines, pg)
                .prop_map(|(user, order, lines, pg)| Step::Refund { user, order, lines, pg }),
        ]
        .boxed()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.last = state.step(step);
        state
    }
}

struct Sut {
    t: TestShop,
    pg: FakeGateway,
}

fn kind<T>(result: liteshop::Result<T>, value: impl FnOnce(T) -> Option<i64>) -> Outcome {
    result.map(value).map_err(|err| err.kind())
}

impl StateMachineTest for ShopModel {
    type SystemUnderTest = Sut;
    type Reference = ShopModel;

    fn init_test(_: &Model) -> Sut {
        let pg = FakeGateway::new();
        let gateway = pg.clone();
        let t = open_with(move |b| {
            b.gateway(gateway)
                .gateway_retry(RetryPolicy {
                    retries: 0,
                    base: Duration::ZERO,
                })
                .max_charge(won(MAX_CHARGE))
                .max_balance(won(MAX_BALANCE))
                .max_cart_quantity(MAX_QUANTITY)
                .max_order_quantity(MAX_QUANTITY)
                .reservation_time(Duration::from_secs(RESERVATION_SECS))
                .reconcile_grace(Duration::ZERO)
        });
        // The PG's confirm window runs on the shop's clock.
        pg.set_clock(t.clock.clone());
        for balance in START_USERS {
            let user = t.user("user");
            t.shop.host_credit(user.id, won(balance)).unwrap();
        }
        for (price, stock) in START_PRODUCTS {
            t.product("product", price, stock);
        }
        Sut { t, pg }
    }

    fn apply(sut: Sut, model: &Model, step: Step) -> Sut {
        let shop = &sut.t.shop;
        let got = match step {
            Step::CreateUser => kind(shop.create_user("user"), |u| Some(u.id.get())),
            Step::Charge { user, amount } => {
                kind(shop.host_credit(UserId::new(user), won(amount)), |b| {
                    Some(b.won())
                })
            }
            Step::CreateProduct { price, stock } => kind(
                shop.create_product(NewProduct {
                    name: "product".into(),
                    price: won(price),
                    stock,
                }),
                |p| Some(p.id.get()),
            ),
            Step::Restock { product, quantity } => {
                kind(shop.restock(ProductId::new(product), quantity), |p| {
                    Some(i64::from(p.stock))
                })
            }
            Step::AddToCart {
                user,
                product,
                quantity,
            } => kind(
                shop.add_to_cart(UserId::new(user), ProductId::new(product), quantity),
                |line| Some(line.id.get()),
            ),
            Step::SetCartQuantity {
                user,
                item,
                quantity,
            } => kind(
                shop.set_cart_quantity(UserId::new(user), CartItemId::new(item), quantity),
                |_| None,
            ),
            Step::RemoveFromCart { user, item } => kind(
                shop.remove_from_cart(UserId::new(user), CartItemId::new(item)),
                |_| None,
            ),
            Step::PlaceOrder { user, ref lines } => {
                let lines: Vec<OrderLine> = lines
                    .iter()
                    .map(|&(p, q)| OrderLine::new(ProductId::new(p), q))
                    .collect();
                kind(shop.place_order(UserId::new(user), &lines), |o| {
                    Some(o.id.get())
                })
            }
            Step::Checkout { user } => kind(shop.checkout_cart(UserId::new(user), None), |o| {
                Some(o.id.get())
            }),
            Step::Cancel { user, order } => kind(
                shop.cancel_order(UserId::new(user), OrderId::new(order)),
                |_| None,
            ),
            Step::Advance { secs } => {
                sut.t.clock.advance(Duration::from_secs(secs));
                Ok(None)
            }
            Step::Expire => kind(shop.expire_orders(), |n| Some(n as i64)),
            Step::Pay { user, order, pg } => {
                // Script the gateway only if the model says the call reaches it.
                if matches!(
                    model.last,
                    Ok(_) | Err(PaymentDeclined | PaymentOutcomeUnknown)
                ) {
                    let outcome = match pg {
                        Pg::Approve => FakeOutcome::Approve,
                        Pg::Decline => FakeOutcome::decline(),
                        Pg::LostBeforeCharge => FakeOutcome::UnknownBeforeCharge,
                        Pg::LostAfterCharge => FakeOutcome::UnknownAfterCharge,
                    };
                    sut.pg.push_for_order(OrderId::new(order), outcome);
                }
                // The tender the model pays with: half from the balance.
                let (user, order) = (UserId::new(user), OrderId::new(order));
                let paid = shop.order(user, order).and_then(|o| {
                    let half = liteshop::Money::new(o.total.won() / 2)?;
                    let started = shop.start_payment(user, order, half)?;
                    let widget = started.widget().expect("a PG part");
                    shop.confirm_payment(user, started.id, &sut.pg.pay_widget(&widget))
                });
                kind(paid, |p| Some(p.id.get()))
            }
            Step::Reconcile => kind(shop.reconcile_payments(), |r| {
                assert!(r.all_settled() && !r.needs_review(), "{r:?}");
                assert_eq!(r.refunds_in(RefundStatus::Declined), 0, "{r:?}");
                Some((r.payments.len() + r.refunds.len()) as i64)
            }),
            Step::Refund {
                user,
                order,
                ref lines,
                pg,
            } => {
                // Script the gateway only if the model says the call reaches it.
                if matches!(
                    model.last,
                    Ok(_) | Err(PaymentDeclined | PaymentOutcomeUnknown)
                ) {
                    sut.pg.push_cancel(match pg {
                        Pg::Approve => FakeOutcome::Approve,
                        Pg::Decline => FakeOutcome::Decline {
                            code: "EXCEED_CANCEL_LIMIT".into(),
                            message: "try again tomorrow".into(),
                        },
                        Pg::LostBeforeCharge => FakeOutcome::UnknownBeforeCharge,
                        Pg::LostAfterCharge => FakeOutcome::UnknownAfterCharge,
                    });
                }
                let (user, order) = (UserId::new(user), OrderId::new(order));
                let result = match lines {
                    None => shop.refund(user, order, "model"),
                    Some(lines) => {
                        let lines: Vec<OrderLine> = lines
                            .iter()
                            .map(|&(p, q)| OrderLine::new(ProductId::new(p), q))
                            .collect();
                        shop.refund_lines(user, order, &lines, "model")
                    }
                };
                // A script a free refund never used must not reach the next.
                sut.pg.clear_scripts();
                kind(result, |r| Some(r.id.get()))
            }
        };
        assert_eq!(got, model.last, "result of {step:?}");
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        let shop = &sut.t.shop;
        for (i, u) in model.users.iter().enumerate() {
            let id = UserId::new(i as i64 + 1);
            assert_eq!(
                shop.balance(id).unwrap(),
                won(u.balance),
                "balance of user {id}"
            );
            let ledger = shop
                .ledger(id, PageRequest::first(PageRequest::MAX_LIMIT))
                .unwrap();
            assert_eq!(ledger.items.len(), u.ledger, "ledger of user {id}");
            let sum: i64 = ledger.items.iter().map(|e| e.signed_won()).sum();
            assert_eq!(won(sum), won(u.balance), "ledger sum of user {id}");
            let cart: Vec<(i64, i64, u32)> = shop
                .cart(id)
                .unwrap()
                .lines
                .iter()
                .map(|l| (l.id.get(), l.product.get(), l.quantity))
                .collect();
            let expected: Vec<(i64, i64, u32)> = model
                .cart
                .iter()
                .filter(|(_, item)| item.user == id.get())
                .map(|(&item, line)| (item, line.product, line.quantity))
                .collect();
            assert_eq!(cart, expected, "cart of user {id}");
        }
        for (i, p) in model.products.iter().enumerate() {
            let id = ProductId::new(i as i64 + 1);
            let product = shop.product(id).unwrap();
            assert_eq!(product.stock, p.stock, "stock of product {id}");
            assert_eq!(
                product.held,
                model.units_held(id.get()),
                "units of product {id} held by orders"
            );
        }
        for (i, o) in model.orders.iter().enumerate() {
            let id = OrderId::new(i as i64 + 1);
            let order = shop.order(UserId::new(o.user), id).unwrap();
            assert_eq!(order.status, o.status, "status of order {id}");
            assert_eq!(
                (order.total, order.refunded),
                (won(o.total), won(o.refunded)),
                "total and refunded money of order {id}"
            );
            let refunded: Vec<u32> = order.lines.iter().map(|l| l.refunded).collect();
            let expected: Vec<u32> = o.lines.iter().map(|l| l.refunded).collect();
            assert_eq!(refunded, expected, "refunded units of order {id}");
            let refunds: Vec<(i64, RefundStatus)> = shop
                .refunds(UserId::new(o.user), id)
                .unwrap()
                .iter()
                .map(|r| (r.amount.won(), r.status))
                .collect();
            let expected: Vec<(i64, RefundStatus)> = model
                .refunds
                .iter()
                .filter(|r| r.order == id.get())
                .map(|r| (r.amount, r.status))
                .collect();
            assert_eq!(refunds, expected, "refunds of order {id}");
        }
        for (i, p) in model.payments.iter().enumerate() {
            let id = PaymentId::new(i as i64 + 1);
            let payment = shop.payment(UserId::new(p.user), id).unwrap();
            assert_eq!(payment.status, p.status, "status of payment {id}");
        }

        let audit = shop.audit().unwrap();
        assert!(audit.is_clean(), "{audit}");

        // The feed: one event per state change, numbered 1, 2, 3, … with no
        // gap, each about the right user and order, each order's first
        // event its placement.
        let events = shop.events(0, liteshop::MAX_EVENT_BATCH).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "event numbers"
        );
        let count = |kinds: &[EventKind]| events.iter().filter(|e| kinds.contains(&e.kind)).count();
        let payments_in = |statuses: &[PaymentStatus]| {
            model
                .payments
                .iter()
                .filter(|p| statuses.contains(&p.status))
                .count()
        };
        let expected = [
            (count(&[EventKind::OrderPlaced]), model.orders.len()),
            (
                count(&[EventKind::OrderCancelled, EventKind::OrderExpired]),
                model
                    .orders
                    .iter()
                    .filter(|o| o.status == OrderStatus::Cancelled)
                    .count(),
            ),
            (count(&[EventKind::PaymentRequested]), model.payments.len()),
            (
                count(&[EventKind::PaymentApproved]),
                payments_in(&[PaymentStatus::Approved, PaymentStatus::Refunded]),
            ),
            (
                count(&[EventKind::PaymentDeclined]),
                payments_in(&[PaymentStatus::Declined]),
            ),
            (
                count(&[EventKind::RefundCompleted]),
                model
                    .refunds
                    .iter()
                    .filter(|r| r.status == RefundStatus::Completed)
                    .count(),
            ),
        ];
        for (kind, (got, want)) in [
            "placed",
            "cancelled",
            "requested",
            "approved",
            "declined",
            "refunded",
        ]
        .iter()
        .zip(expected)
        {
            assert_eq!(got, want, "{kind} events");
        }
        let mut seen = std::collections::HashSet::new();
        for event in &events {
            let order = &model.orders[event.order.get() as usize - 1];
            assert_eq!(
                event.user,
                UserId::new(order.user),
                "user of event {}",
                event.seq
            );
            if seen.insert(event.order) {
                assert_eq!(
                    event.kind,
                    EventKind::OrderPlaced,
                    "first event of {}",
                    event.order
                );
            }
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("LITESHOP_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        max_shrink_iters: 4_096,
        .. ProptestConfig::default()
    })]

    #[test]
    fn the_shop_behaves_like_its_model(sequential 1..60 => ShopModel);
}
