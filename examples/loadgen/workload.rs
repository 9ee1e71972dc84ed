//! The workload, defined once: what each operation of the mix does is
//! drawn here — which user, product, amount, lines, tender, and what the
//! customer does in the widget — and every target (liteshop and each raw
//! baseline) runs the same [`Step`]. Given one seed, the targets see the
//! same sequence of requests, so their ratios compare like with like.

use liteshop::{CouponId, Money, OrderId, OrderLine, ProductId, UserId};

use super::{COUPONS, Op, Worker, World};

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
