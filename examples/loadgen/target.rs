//! liteshop's side of the run: the shop as a [`Target`], opened on the
//! place with a PG that declines or loses replies at the given rates, and
//! the customer's widget step.

use super::*;

/// How long a started payment waits for its confirm under load: long
/// enough for every confirm the run makes at once, short enough that the
/// abandoned ones end right after the run.
pub(super) const PAYMENT_WINDOW: Duration = Duration::from_secs(2);

pub(super) fn open_shop(args: &Args, place: &Place, fake: &FakeGateway) -> Result<Shop, Error> {
    let mut builder = place.builder();
    if let Some(kib) = args.cache_kib {
        builder = builder.cache_size_kib(kib);
    }
    if let Some(mib) = args.mmap_mib {
        builder = builder.mmap_size(mib << 20);
    }
    let builder = builder
        .pool_size(args.threads as u32 + 2)
        .busy_timeout(Duration::from_secs(30))
        .durability(match args.durability {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        })
        .write_mode(match args.writer {
            WriterArg::Dedicated => WriteMode::Dedicated,
            WriterArg::Pooled => WriteMode::Pooled,
            WriterArg::Batched => WriteMode::Batched,
        })
        .max_balance(Money::MAX)
        .max_charge(Money::MAX)
        .reconcile_grace(Duration::ZERO)
        // Abandoned widget payments end soon after the run (see `run`).
        .payment_window(PAYMENT_WINDOW)
        .gateway_retry(RetryPolicy {
            retries: 2,
            base: Duration::from_millis(5),
        });
    match (&args.pg_url, &args.pg_secret) {
        (Some(url), Some(secret)) => {
            let mut gateway = HttpGateway::builder(url, secret);
            if let Some(ms) = args.pg_timeout_ms {
                gateway = gateway.response_timeout(Duration::from_millis(ms));
            }
            builder.gateway(gateway.build()).build()
        }
        _ => builder
            .gateway(RandomGateway {
                fake: fake.clone(),
                decline: args.pg_decline,
                unknown: args.pg_unknown,
                seed: AtomicU64::new(0xfeed),
            })
            .build(),
    }
}

/// A fake PG that declines or loses replies at the given rates.
pub(super) struct RandomGateway {
    pub(super) fake: FakeGateway,
    pub(super) decline: f64,
    pub(super) unknown: f64,
    pub(super) seed: AtomicU64,
}

impl RandomGateway {
    pub(super) fn outcome(&self) -> Option<FakeOutcome> {
        let mut rng = Rng(self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            | 1);
        if rng.chance(self.decline) {
            Some(FakeOutcome::decline())
        } else if rng.chance(self.unknown) {
            Some(if rng.chance(0.5) {
                FakeOutcome::UnknownBeforeCharge
            } else {
                FakeOutcome::UnknownAfterCharge
            })
        } else {
            None
        }
    }
}

impl PaymentGateway for RandomGateway {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        // Scripted per order, so concurrent payments of other orders do not
        // take this outcome; a retried or reconciled attempt replays by key.
        if self.fake.calls(&request.idempotency_key) == 0
            && let Some(order) = request.order
            && let Some(outcome) = self.outcome()
        {
            self.fake.push_for_order(order, outcome);
        }
        self.fake.approve(request)
    }
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        self.fake.status(request)
    }
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        // Cancel scripts are one queue: a concurrent refund may take this
        // one, which keeps the rates and changes nothing the checks rely on.
        if self.fake.calls(&request.idempotency_key) == 0
            && let Some(outcome) = self.outcome()
        {
            self.fake.push_cancel(outcome);
        }
        self.fake.cancel(request)
    }
}

pub(super) fn kind_name(kind: ErrorKind) -> String {
    format!("{kind:?}")
}

/// The shop under load, and the customer's browser that pays the PG part
/// of each payment in the PG's widget.
pub(super) struct Liteshop(pub(super) Shop, pub(super) Widget);

/// Where the customer pays in the widget: the in-process fake, or a PG
/// over HTTP that offers the fake widget step (`examples/fake_pg.rs`:
/// `POST /v1/fake/widget`).
#[derive(Clone)]
pub(super) enum Widget {
    Fake(FakeGateway),
    Http(String),
}

impl Widget {
    pub(super) fn for_args(args: &Args, fake: &FakeGateway) -> Widget {
        match &args.pg_url {
            Some(url) if args.pg_secret.is_some() => Widget::Http(url.clone()),
            _ => Widget::Fake(fake.clone()),
        }
    }

    /// The success redirect of the customer's payment of `widget`.
    pub(super) fn pay(&self, widget: &liteshop::WidgetRequest) -> Result<PgRedirect, String> {
        match self {
            Widget::Fake(fake) => Ok(fake.pay_widget(widget)),
            Widget::Http(url) => {
                let body = serde_json::json!({
                    "orderId": widget.pg_order_id,
                    "amount": widget.amount.won(),
                });
                let text = ureq::post(format!("{url}/v1/fake/widget"))
                    .header("Content-Type", "application/json")
                    .send(body.to_string())
                    .and_then(|mut r| r.body_mut().read_to_string())
                    .map_err(|err| format!("the widget step failed: {err}"))?;
                let reply: Value = serde_json::from_str(&text).map_err(|err| err.to_string())?;
                Ok(PgRedirect {
                    payment_key: reply["paymentKey"].as_str().unwrap_or_default().to_owned(),
                    pg_order_id: widget.pg_order_id.clone(),
                    amount: widget.amount,
                })
            }
        }
    }
}

impl Target for Liteshop {
    fn run(&self, step: Step, w: &mut Worker) -> Option<Result<(), String>> {
        let shop = &self.0;
        let refused = |err: Error| kind_name(err.kind());
        Some(match step {
            Step::Charge { user, amount } => {
                // A top-up through the PG: started, paid in the widget,
                // confirmed (credited once on approval).
                shop.start_top_up(user, amount)
                    .and_then(|started| {
                        let widget = started.widget().ok_or(Error::ZeroAmount)?;
                        let redirect = self.1.pay(&widget).map_err(|_| Error::ZeroAmount)?;
                        shop.confirm_payment(user, started.id, &redirect)
                    })
                    .map(drop)
                    .map_err(refused)
            }
            Step::Cart {
                user,
                product,
                quantity,
            } => match shop.add_to_cart(user, product, quantity) {
                Err(Error::AlreadyInCart { item, .. }) => {
                    shop.remove_from_cart(user, item).map_err(refused)
                }
                other => other.map(drop).map_err(refused),
            },
            Step::Order {
                user,
                lines,
                coupon,
            } => match shop.place_order(user, OrderRequest { lines, coupon }) {
                Ok(order) => {
                    w.orders.push_back((user, order.id));
                    Ok(())
                }
                Err(err) => Err(refused(err)),
            },
            Step::Pay {
                user,
                order,
                tender,
                widget: fate,
            } => {
                let total = match shop.order(user, order) {
                    Ok(o) => o.total,
                    Err(err) => return Some(Err(refused(err))),
                };
                let paid = shop
                    .start_payment(user, order, tender.balance_part(total))
                    .and_then(|started| {
                        let Some(widget) = started.widget() else {
                            return Ok(true);
                        };
                        match fate {
                            workload::Widget::Abandoned => return Ok(false),
                            workload::Widget::Tampered => {
                                let mut tampered =
                                    self.1.pay(&widget).map_err(|_| Error::ZeroAmount)?;
                                tampered.amount = Money::new(1).expect("1 won");
                                let refused = shop.confirm_payment(user, started.id, &tampered);
                                assert!(
                                    matches!(refused, Err(Error::RedirectMismatch { .. })),
                                    "a tampered redirect must be refused: {refused:?}"
                                );
                                return Ok(false);
                            }
                            workload::Widget::Paid => {}
                        }
                        let redirect = self.1.pay(&widget).map_err(|_| Error::ZeroAmount)?;
                        shop.confirm_payment(user, started.id, &redirect)
                            .map(|_| true)
                    });
                match paid {
                    Ok(true) => {
                        w.paid.push_back((user, order));
                        Ok(())
                    }
                    Ok(false) => Ok(()),
                    Err(err) => Err(refused(err)),
                }
            }
            Step::Cancel { user, order } => {
                shop.cancel_order(user, order).map(drop).map_err(refused)
            }
            Step::Coupon { user, coupon } => match shop.issue_coupon(user, coupon) {
                Ok(_) => {
                    w.coupons.push((user, coupon));
                    Ok(())
                }
                Err(err) => Err(refused(err)),
            },
            Step::Refund { user, order, whole } => {
                // Half the refunds return the whole order; the others one
                // unit of its first line not yet refunded, and keep the order
                // for a later refund while units remain.
                if whole {
                    return Some(
                        shop.refund(user, order, "loadgen")
                            .map(drop)
                            .map_err(refused),
                    );
                }
                let items = match shop.order(user, order) {
                    Ok(found) => found.lines,
                    Err(err) => return Some(Err(refused(err))),
                };
                let Some(item) = items.iter().find(|i| i.refunded < i.quantity) else {
                    return Some(Err("NothingToRefund".into()));
                };
                let left: u32 = items.iter().map(|i| i.quantity - i.refunded).sum();
                let line = OrderLine::new(item.product, 1);
                let result = shop.refund_lines(user, order, &[line], "loadgen");
                if result.is_ok() && left > 1 {
                    w.paid.push_back((user, order));
                }
                result.map(drop).map_err(refused)
            }
            Step::Read { product } => shop.product(product).map(drop).map_err(refused),
        })
    }
}
