//! The workload, defined once: what each operation of the mix does is
//! drawn here — which user, product, amount, lines, tender, and what the
//! customer does in the widget — and every target (liteshop and each raw
//! baseline) runs the same [`Step`]. Given one seed, the targets see the
//! same sequence of requests, so their ratios compare like with like.

use std::collections::HashSet;

use liteshop::{CouponId, Money, OrderId, OrderLine, ProductId, UserId};

use super::{COUPONS, Op, Worker};

/// One operation with everything it needs.
pub(super) enum Step {
    /// A top-up of `amount` through the PG.
    Charge { user: UserId, amount: Money },
    /// `quantity` of `product` into the cart (or, if it is there, out).
    Cart {
        user: UserId,
        product: ProductId,
        quantity: u32,
    },
    /// An order of `lines`, with a coupon this worker saw issued, or none.
    Order {
        user: UserId,
        lines: Vec<OrderLine>,
        coupon: Option<CouponId>,
    },
    /// The oldest order this worker placed, paid by `tender`, the widget
    /// step going as `widget` says.
    Pay {
        user: UserId,
        order: OrderId,
        tender: Tender,
        widget: Widget,
    },
    /// The newest order this worker placed, cancelled.
    Cancel { user: UserId, order: OrderId },
    /// A coupon issued to `user`.
    Coupon { user: UserId, coupon: CouponId },
    /// The oldest order this worker paid, refunded whole or one unit.
    Refund {
        user: UserId,
        order: OrderId,
        whole: bool,
    },
    /// One product read.
    Read { product: ProductId },
}

/// How an order is paid: a third each.
#[derive(Clone, Copy, Debug)]
pub(super) enum Tender {
    /// Wholly by balance.
    Balance,
    /// Wholly by card.
    Card,
    /// Half and half.
    Half,
}

impl Tender {
    /// The raw baselines' code for it: 0 balance, 1 card, 2 half.
    pub(super) fn code(self) -> u64 {
        match self {
            Tender::Balance => 0,
            Tender::Card => 1,
            Tender::Half => 2,
        }
    }

    /// The balance part of an order of `total`.
    pub(super) fn balance_part(self, total: Money) -> Money {
        match self {
            Tender::Balance => total,
            Tender::Card => Money::ZERO,
            Tender::Half => Money::new(total.won() / 2).expect("half a total"),
        }
    }
}

/// What the customer does in the PG's widget, when there is a PG part:
/// one in twenty abandons it (expiry ends the attempt), one in twenty
/// comes back with a tampered amount (refused). The raw baselines always
/// pay.
#[derive(Clone, Copy, Debug)]
pub(super) enum Widget {
    Paid,
    Abandoned,
    Tampered,
}

impl Step {
    /// The step `op` is for this worker now; `None` when it has nothing
    /// to do (no order to pay, cancel or refund).
    pub(super) fn draw(op: Op, w: &mut Worker, world: &World) -> Option<Step> {
        let rng = &mut w.rng;
        Some(match op {
            Op::Charge => Step::Charge {
                user: world.user(rng),
                amount: world.charge_amount(rng),
            },
            Op::Cart => Step::Cart {
                user: world.user(rng),
                product: world.product(rng),
                quantity: 1 + rng.below(3) as u32,
            },
            Op::Order => {
                // A third of the orders use a coupon this worker saw issued.
                let (user, coupon) = match w.coupons.len() {
                    n if n > 0 && rng.chance(0.33) => {
                        let (user, coupon) = w.coupons.swap_remove(rng.below(n as u64) as usize);
                        (user, Some(coupon))
                    }
                    _ => (world.user(rng), None),
                };
                Step::Order {
                    user,
                    lines: world.order_lines(rng),
                    coupon,
                }
            }
            Op::Pay => {
                let tender = match rng.below(3) {
                    0 => Tender::Balance,
                    1 => Tender::Card,
                    _ => Tender::Half,
                };
                let widget = match rng.below(20) {
                    0 => Widget::Abandoned,
                    1 => Widget::Tampered,
                    _ => Widget::Paid,
                };
                let (user, order) = w.orders.pop_front()?;
                Step::Pay {
                    user,
                    order,
                    tender,
                    widget,
                }
            }
            Op::Cancel => {
                let (user, order) = w.orders.pop_back()?;
                Step::Cancel { user, order }
            }
            Op::Coupon => Step::Coupon {
                user: world.user(rng),
                coupon: CouponId::new(1 + rng.below(COUPONS as u64) as i64),
            },
            Op::Refund => {
                let whole = rng.chance(0.5);
                let (user, order) = w.paid.pop_front()?;
                Step::Refund { user, order, whole }
            }
            Op::Read => Step::Read {
                product: world.product(rng),
            },
        })
    }
}

/// xorshift64*: fast, seeded per thread, good enough to pick operations.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `p`, in steps of 1/1,000,000.
    pub(super) fn chance(&mut self, p: f64) -> bool {
        (self.below(1_000_000) as f64) < p * 1_000_000.0
    }
}

/// The fixed shape of the shop under load.
pub(super) struct World {
    pub(super) users: i64,
    pub(super) products: i64,
    pub(super) hot: f64,
}

impl World {
    pub(super) fn user(&self, rng: &mut Rng) -> UserId {
        UserId::new(1 + rng.below(self.users as u64) as i64)
    }
    pub(super) fn product(&self, rng: &mut Rng) -> ProductId {
        ProductId::new(1 + rng.below(self.products as u64) as i64)
    }
    pub(super) fn order_lines(&self, rng: &mut Rng) -> Vec<OrderLine> {
        let count = 1 + rng.below(3) as usize;
        let mut seen = HashSet::new();
        let mut lines = Vec::new();
        for i in 0..count {
            let product = if i == 0 && rng.chance(self.hot) {
                ProductId::new(1)
            } else {
                self.product(rng)
            };
            if seen.insert(product) {
                lines.push(OrderLine::new(product, 1 + rng.below(2) as u32));
            }
        }
        lines
    }
    pub(super) fn charge_amount(&self, rng: &mut Rng) -> Money {
        Money::new(1_000 * (1 + rng.below(50) as i64)).expect("positive")
    }
}
