//! [`FakeGateway`]: an in-memory PG for tests, the shop's and its hosts'.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use super::{
    Approval, ApproveRequest, CancelRequest, Cancellation, Deposit, GatewayError, GatewayLimits,
    PaymentGateway, PgCancel, PgPending, PgStatus, StatusRequest, won_only,
};
use crate::clock::{Clock, Timestamp};
use crate::ids::OrderId;
use crate::money::Money;

/// What the [`FakeGateway`] does with one scripted call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeOutcome {
    /// Approve (or cancel) and answer so.
    Approve,
    /// Decline with this code and message.
    Decline {
        /// The code.
        code: String,
        /// The message.
        message: String,
    },
    /// Refuse the request as invalid (a configuration bug at our end).
    Invalid {
        /// The code.
        code: String,
        /// The message.
        message: String,
    },
    /// Act as if the request never arrived: connection refused.
    Unavailable,
    /// Receive nothing, but answer as if the reply was lost: the PG has no
    /// record, so a later `status` says `NotFound`.
    UnknownBeforeCharge,
    /// Approve (or cancel) and record it, then lose the reply: the caller
    /// sees an unknown outcome, a later `status` says `Approved`.
    UnknownAfterCharge,
}

impl FakeOutcome {
    /// The error of a call that had no effect at the PG: invalid,
    /// unavailable, or lost before it arrived.
    fn into_error(self) -> GatewayError {
        match self {
            FakeOutcome::Invalid { code, message } => GatewayError::Invalid { code, message },
            FakeOutcome::Unavailable => GatewayError::Unavailable {
                reason: "connection refused (scripted)".into(),
            },
            _ => GatewayError::Unknown {
                reason: "the request was lost before the gateway received it".into(),
            },
        }
    }

    /// A decline with the code `REJECT_CARD_PAYMENT`.
    pub fn decline() -> FakeOutcome {
        FakeOutcome::Decline {
            code: "REJECT_CARD_PAYMENT".into(),
            message: "the card was declined".into(),
        }
    }
}

/// An in-memory payment gateway for tests.
///
/// Like Toss Payments, it confirms only a payment the customer authorised
/// in its widget first: [`pay_in_widget`](FakeGateway::pay_in_widget) plays
/// the customer's browser and returns the success redirect with a
/// `paymentKey` it issued for that `orderId` and `amount`. A confirm with a
/// key it never issued, or issued for another `orderId`, is refused as Toss
/// refuses it (`NOT_FOUND_PAYMENT`, 404: a [`GatewayError::Declined`], since
/// the key is whatever the customer's browser sent), and one whose `amount`
/// differs from what the customer authorised as a bad request
/// (`INVALID_REQUEST`, 400, [`GatewayError::Invalid`]), so no test passes
/// with an invented key or a wrong amount (docs.tosspayments.com, "결제 승인"
/// and `/reference/error-codes`).
///
/// It approves and cancels every authorised payment by default, a cancel of part of a
/// payment included (never more than is left: that is declined with
/// `NOT_CANCELABLE_AMOUNT`). As Toss does, it answers a lookup of a payment
/// authorised but not confirmed `IN_PROGRESS` ([`PgPending::InProgress`]),
/// and `EXPIRED` once [`expire_unconfirmed`](FakeGateway::expire_unconfirmed)
/// plays the window passing (a confirm then gets `NOT_FOUND_PAYMENT_SESSION`);
/// a cancel of a payment cancelled whole answers `ALREADY_CANCELED_PAYMENT`
/// (a decline); a partial cancel of a payment marked with
/// [`forbid_partial_cancel`](FakeGateway::forbid_partial_cancel) answers
/// `NOT_ALLOWED_PARTIAL_REFUND`; [`cancel_in_dashboard`](FakeGateway::cancel_in_dashboard)
/// plays an operator cancelling in the PG's dashboard; and
/// [`forget_keys`](FakeGateway::forget_keys) plays its keys outliving their
/// lifetime ([`set_limits`](FakeGateway::set_limits)). Every cancel is
/// recorded in the payment's `cancels` with a transaction key, as Toss's
/// `cancels[]`. Script it per call
/// ([`push`](FakeGateway::push)) or per order
/// ([`push_for_order`](FakeGateway::push_for_order)) to decline, fail as
/// unknown before or after it "charged", or fail as unavailable; delay every
/// call with [`set_delay`](FakeGateway::set_delay). Like a real PG, it keeps
/// its own record of what it approved, so [`status`](PaymentGateway::status)
/// answers truthfully, and treats a repeated idempotency key as the same
/// payment: it replays the first definite outcome whatever the request says.
///
/// Clones share one state: keep a clone to script and inspect while the
/// shop owns another.
///
/// # Example
///
/// ```
/// use liteshop::{FakeGateway, FakeOutcome};
///
/// let pg = FakeGateway::new();
/// pg.push(FakeOutcome::decline()); // the next approval is declined
/// pg.fail_unavailable(2);          // then two calls fail as unreachable
/// assert_eq!(pg.approved_count(), 0);
///
/// // The customer's browser pays 5,000 won for orderId "ls-1-abcdef".
/// let redirect = pg.pay_in_widget("ls-1-abcdef", liteshop::Money::new(5_000)?);
/// assert_eq!(redirect.pg_order_id, "ls-1-abcdef");
/// # Ok::<(), liteshop::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FakeGateway {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    next: VecDeque<FakeOutcome>,
    per_order: HashMap<OrderId, VecDeque<FakeOutcome>>,
    next_cancel: VecDeque<FakeOutcome>,
    status_failures: VecDeque<GatewayError>,
    delay: Duration,
    calls: HashMap<String, u32>,
    approve_replies: HashMap<String, Result<Approval, GatewayError>>,
    cancel_replies: HashMap<String, Result<Cancellation, GatewayError>>,
    approved: HashMap<String, Approval>,
    declined: HashMap<String, (String, String)>,
    /// Each payment's cancels, oldest first (Toss's `cancels[]`).
    cancels: HashMap<String, Vec<PgCancel>>,
    transactions: u64,
    /// `paymentKey` → (`orderId`, `amount`) the customer authorised.
    authorised: HashMap<String, (String, Money)>,
    /// The `orderId`s authorised in the widget.
    authorised_orders: std::collections::HashSet<String>,
    /// Authorised payments whose confirm window passed.
    expired: std::collections::HashSet<String>,
    /// Payments that refuse a partial cancel.
    whole_cancel_only: std::collections::HashSet<String>,
    limits: GatewayLimits,
    /// The clock its confirm window runs on, if it has one.
    clock: Option<Arc<dyn Clock>>,
    /// When each `orderId` was authorised in the widget, on `clock`.
    authorised_at: HashMap<String, Timestamp>,
    widget_payments: u64,
    /// Payments the customer chose to pay by bank transfer, by `orderId`.
    transfers: HashMap<String, Transfer>,
    /// Each approved payment's tax-free part, and what of it was cancelled.
    tax_free: HashMap<String, (Money, Money)>,
}

/// A payment by bank transfer (Toss's virtual account).
#[derive(Debug)]
struct Transfer {
    deposit: Deposit,
    /// A confirm issued the account (the PG holds `WAITING_FOR_DEPOSIT`).
    issued: bool,
    /// The confirm's `taxFreeAmount`.
    tax_free: Money,
}

impl FakeGateway {
    /// A gateway that approves everything.
    pub fn new() -> FakeGateway {
        FakeGateway::default()
    }

    /// The customer's browser: pays `amount` for `pg_order_id` in the PG's
    /// widget and returns the PG's success redirect, whose `paymentKey` is
    /// the only one [`approve`](PaymentGateway::approve) accepts for that
    /// `orderId` and `amount`.
    pub fn pay_in_widget(&self, pg_order_id: &str, amount: Money) -> crate::PgRedirect {
        let mut state = self.lock();
        state.widget_payments += 1;
        let payment_key = format!(
            "fake_pk_{}_{}",
            state.widget_payments,
            crate::token::random_hex(6)
        );
        state
            .authorised
            .insert(payment_key.clone(), (pg_order_id.to_owned(), amount));
        state.authorised_orders.insert(pg_order_id.to_owned());
        if let Some(now) = state.clock.as_ref().map(|clock| clock.now()) {
            state.authorised_at.insert(pg_order_id.to_owned(), now);
        }
        crate::PgRedirect {
            payment_key,
            pg_order_id: pg_order_id.to_owned(),
            amount,
        }
    }

    /// [`pay_in_widget`](FakeGateway::pay_in_widget) for what a started
    /// payment's widget asks.
    pub fn pay_widget(&self, widget: &crate::WidgetRequest) -> crate::PgRedirect {
        self.pay_in_widget(&widget.pg_order_id, widget.amount)
    }

    /// The customer's browser choosing a bank transfer (Toss's virtual
    /// account) in the widget: as [`pay_widget`](FakeGateway::pay_widget),
    /// but the confirm then answers [`GatewayError::AwaitingDeposit`] with
    /// an account due `due_in` after now (on [`set_clock`](FakeGateway::set_clock)'s
    /// clock, if set), and the lookup `WAITING_FOR_DEPOSIT`, until
    /// [`deposit`](FakeGateway::deposit).
    pub fn pay_widget_by_transfer(
        &self,
        widget: &crate::WidgetRequest,
        due_in: Duration,
    ) -> crate::PgRedirect {
        self.pay_in_widget_by_transfer(&widget.pg_order_id, widget.amount, due_in)
    }

    /// [`pay_widget_by_transfer`](FakeGateway::pay_widget_by_transfer) for
    /// `amount` of `pg_order_id`, as [`pay_in_widget`](FakeGateway::pay_in_widget).
    pub fn pay_in_widget_by_transfer(
        &self,
        pg_order_id: &str,
        amount: Money,
        due_in: Duration,
    ) -> crate::PgRedirect {
        let redirect = self.pay_in_widget(pg_order_id, amount);
        let mut state = self.lock();
        let now = state
            .clock
            .as_ref()
            .map_or_else(|| crate::SystemClock.now(), |clock| clock.now());
        let due = i64::try_from(due_in.as_millis()).unwrap_or(i64::MAX);
        let deposit = Deposit {
            bank: "20".into(),
            account_number: format!("X{}", 1_000_000 + state.widget_payments),
            due_at: Timestamp::from_millis(now.as_millis().saturating_add(due)),
            secret: format!("ps_fake_{}", crate::token::random_hex(12)),
        };
        state.transfers.insert(
            pg_order_id.to_owned(),
            Transfer {
                deposit,
                issued: false,
                tax_free: Money::ZERO,
            },
        );
        redirect
    }

    /// The customer pays into the virtual account issued for `pg_order_id`:
    /// the PG holds the payment `DONE`. Returns the payment's secret, which
    /// the PG's deposit notice carries; `None` if no account was issued (or
    /// it was paid already).
    pub fn deposit(&self, pg_order_id: &str) -> Option<String> {
        let mut state = self.lock();
        let transfer = state.transfers.get(pg_order_id)?;
        if !transfer.issued || state.approved.contains_key(pg_order_id) {
            return None;
        }
        let secret = transfer.deposit.secret.clone();
        let tax_free = transfer.tax_free;
        let amount = state
            .authorised
            .values()
            .find(|(order, _)| order == pg_order_id)
            .map(|(_, amount)| *amount)?;
        state.transactions += 1;
        let approval = Approval {
            transaction_id: format!("fake-tx-{}", state.transactions),
            approved_amount: amount,
            approved_at: format!("fake-time-{}", state.transactions),
            cancels: Vec::new(),
        };
        state.approved.insert(pg_order_id.to_owned(), approval);
        state
            .tax_free
            .insert(pg_order_id.to_owned(), (tax_free, Money::ZERO));
        Some(secret)
    }

    /// The tax-free part the PG holds of the approved payment `pg_order_id`
    /// (what its confirm's `taxFreeAmount` said) and how much of it its
    /// cancels gave back.
    pub fn tax_free(&self, pg_order_id: &str) -> (Money, Money) {
        let state = self.lock();
        let approved = state
            .tax_free
            .get(pg_order_id)
            .map_or(Money::ZERO, |(approved, _)| *approved);
        (approved, state.tax_free_cancelled(pg_order_id))
    }

    /// The bank reverses the deposit into `pg_order_id`'s virtual account
    /// (a deposit error): the PG holds the payment `WAITING_FOR_DEPOSIT`
    /// again, as Toss documents (docs.tosspayments.com/guides/learn/virtual-account-webhook).
    /// Returns whether there was a deposit to reverse.
    pub fn reverse_deposit(&self, pg_order_id: &str) -> bool {
        let mut state = self.lock();
        if !state.transfers.contains_key(pg_order_id) {
            return false;
        }
        state.approved.remove(pg_order_id).is_some()
    }

    /// Scripts the next approval call that has no per-order script.
    pub fn push(&self, outcome: FakeOutcome) {
        self.lock().next.push_back(outcome);
    }

    /// Scripts the next approval call for `order`; per-order scripts come
    /// before [`push`](FakeGateway::push)ed ones.
    pub fn push_for_order(&self, order: OrderId, outcome: FakeOutcome) {
        self.lock()
            .per_order
            .entry(order)
            .or_default()
            .push_back(outcome);
    }

    /// Makes the next `n` approval calls fail as unavailable.
    pub fn fail_unavailable(&self, n: usize) {
        let mut state = self.lock();
        state
            .next
            .extend(std::iter::repeat_n(FakeOutcome::Unavailable, n));
    }

    /// Scripts the next cancel call (`Approve` cancels; `UnknownAfterCharge`
    /// cancels and loses the reply).
    pub fn push_cancel(&self, outcome: FakeOutcome) {
        self.lock().next_cancel.push_back(outcome);
    }

    /// Makes the next status call fail with `error`.
    pub fn fail_status(&self, error: GatewayError) {
        self.lock().status_failures.push_back(error);
    }

    /// Sleeps this long in every call before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// How many calls (approve or cancel) carried this idempotency key.
    pub fn calls(&self, idempotency_key: &str) -> u32 {
        self.lock().calls.get(idempotency_key).copied().unwrap_or(0)
    }

    /// How many approval and cancel calls it received in all.
    pub fn total_calls(&self) -> u32 {
        self.lock().calls.values().sum()
    }

    /// Its record of an approved payment attempt, by the attempt's id.
    pub fn approval(&self, pg_order_id: &str) -> Option<Approval> {
        self.lock().approved.get(pg_order_id).cloned()
    }

    /// How many payment attempts it approved (each counted once).
    pub fn approved_count(&self) -> usize {
        self.lock().approved.len()
    }

    /// The ids of the attempts it approved.
    pub fn approved_ids(&self) -> Vec<String> {
        self.lock().approved.keys().cloned().collect()
    }

    /// Whether it cancelled the whole of the payment attempt `pg_order_id`.
    pub fn is_cancelled(&self, pg_order_id: &str) -> bool {
        let state = self.lock();
        state
            .approved
            .get(pg_order_id)
            .is_some_and(|approval| state.cancelled(pg_order_id) == approval.approved_amount)
    }

    /// How much of the payment attempt `pg_order_id` it cancelled, over all
    /// its whole and partial cancels (each counted once, however often its
    /// key was sent).
    pub fn cancelled(&self, pg_order_id: &str) -> Money {
        self.lock().cancelled(pg_order_id)
    }

    /// What it cancelled, per payment attempt (`pg_order_id` → amount).
    pub fn cancelled_by_order(&self) -> HashMap<String, Money> {
        let state = self.lock();
        state
            .cancels
            .keys()
            .map(|id| (id.clone(), state.cancelled(id)))
            .collect()
    }

    /// Its record of the cancels of `pg_order_id`, oldest first.
    pub fn cancels(&self, pg_order_id: &str) -> Vec<PgCancel> {
        self.lock()
            .cancels
            .get(pg_order_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Plays the confirm window passing: every payment authorised in the
    /// widget and not confirmed is `EXPIRED`, and a confirm of it is
    /// declined with `NOT_FOUND_PAYMENT_SESSION`.
    pub fn expire_unconfirmed(&self) {
        let mut state = self.lock();
        let unconfirmed: Vec<String> = state
            .authorised_orders
            .iter()
            .filter(|id| !state.approved.contains_key(*id) && !state.declined.contains_key(*id))
            .cloned()
            .collect();
        state.expired.extend(unconfirmed);
    }

    /// Makes a partial cancel of `pg_order_id` refused with
    /// `NOT_ALLOWED_PARTIAL_REFUND`, as Toss refuses it for an escrow or a
    /// cash-card payment.
    pub fn forbid_partial_cancel(&self, pg_order_id: &str) {
        self.lock().whole_cancel_only.insert(pg_order_id.to_owned());
    }

    /// An operator cancels `amount` of the approved payment `pg_order_id`
    /// in the PG's dashboard, outside the shop (at most what is left).
    /// Returns the cancel's transaction key.
    pub fn cancel_in_dashboard(&self, pg_order_id: &str, amount: Money) -> Option<String> {
        self.cancel_in_dashboard_tax_free(pg_order_id, amount, Money::ZERO)
    }

    /// [`cancel_in_dashboard`](FakeGateway::cancel_in_dashboard) of
    /// `amount`, `tax_free` of it from the payment's tax-free part (Toss's
    /// dashboard asks for both for a shop selling tax-free goods).
    pub fn cancel_in_dashboard_tax_free(
        &self,
        pg_order_id: &str,
        amount: Money,
        tax_free: Money,
    ) -> Option<String> {
        let mut state = self.lock();
        let approved = state.approved.get(pg_order_id)?.approved_amount;
        let left = approved.checked_sub(state.cancelled(pg_order_id))?;
        if amount.is_zero() || amount > left || tax_free > amount {
            return None;
        }
        let key = state
            .record_cancel(pg_order_id, amount, tax_free)
            .transaction_key;
        state.cancel_tax_free(pg_order_id, tax_free);
        Some(key)
    }

    /// Forgets every idempotency key, as a PG does once keys outlive
    /// [`GatewayLimits::key_lifetime`]: a request sent again with an old
    /// key runs as a new one.
    pub fn forget_keys(&self) {
        let mut state = self.lock();
        state.approve_replies.clear();
        state.cancel_replies.clear();
    }

    /// Runs its confirm window on `clock` (the shop's, in a test with a
    /// [`ManualClock`](crate::ManualClock)): a payment authorised in the
    /// widget and not confirmed within [`GatewayLimits::confirm_window`]
    /// expires by itself, as at Toss. Without a clock only
    /// [`expire_unconfirmed`](FakeGateway::expire_unconfirmed) expires one.
    pub fn set_clock(&self, clock: impl Clock + 'static) {
        self.lock().clock = Some(Arc::new(clock));
    }

    /// Sets the limits it declares; [`GatewayLimits::TOSS`] by default.
    pub fn set_limits(&self, limits: GatewayLimits) {
        self.lock().limits = limits;
    }

    /// Drops every script not yet used (approvals, per-order approvals,
    /// cancels, status failures), so the next calls get the default: approve.
    /// Its records of what it approved and cancelled stay.
    pub fn clear_scripts(&self) {
        let mut state = self.lock();
        state.next.clear();
        state.per_order.clear();
        state.next_cancel.clear();
        state.status_failures.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a test thread must not hide the PG's record.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pause(&self) {
        let delay = self.lock().delay;
        if !delay.is_zero() {
            thread::sleep(delay);
        }
    }
}

impl State {
    /// Whether the confirm window of the authorised `pg_order_id` passed.
    fn window_passed(&self, pg_order_id: &str) -> bool {
        if self.expired.contains(pg_order_id) {
            return true;
        }
        match (&self.clock, self.authorised_at.get(pg_order_id)) {
            (Some(clock), Some(at)) => {
                let window =
                    i64::try_from(self.limits.confirm_window.as_millis()).unwrap_or(i64::MAX);
                clock.now().as_millis() >= at.as_millis().saturating_add(window)
            }
            _ => false,
        }
    }

    fn cancelled(&self, pg_order_id: &str) -> Money {
        self.cancels
            .get(pg_order_id)
            .into_iter()
            .flatten()
            .try_fold(Money::ZERO, |sum, cancel| sum.checked_add(cancel.amount))
            .unwrap_or(Money::MAX)
    }

    fn record_cancel(&mut self, pg_order_id: &str, amount: Money, tax_free: Money) -> PgCancel {
        self.transactions += 1;
        let cancel = PgCancel {
            transaction_key: format!("fake-cancel-{}", self.transactions),
            amount,
            tax_free_amount: tax_free,
        };
        self.cancels
            .entry(pg_order_id.to_owned())
            .or_default()
            .push(cancel.clone());
        cancel
    }

    /// The PG's record of an approved payment, with its cancels.
    fn record_of(&self, pg_order_id: &str) -> Option<PgStatus> {
        let mut approval = self.approved.get(pg_order_id)?.clone();
        approval.cancels = self.cancels.get(pg_order_id).cloned().unwrap_or_default();
        if self.cancelled(pg_order_id) == approval.approved_amount {
            Some(PgStatus::Cancelled(approval))
        } else {
            Some(PgStatus::Approved(approval))
        }
    }

    /// Whether a cancel of `request.amount` with its tax-free part fits
    /// what is left (`left` in all) of the payment's tax-free and taxable
    /// parts.
    fn tax_free_fits(&self, pg_order_id: &str, request: &CancelRequest, left: Money) -> bool {
        let (approved, cancelled) = self
            .tax_free
            .get(pg_order_id)
            .copied()
            .unwrap_or((Money::ZERO, Money::ZERO));
        let tax_free_left = approved.checked_sub(cancelled).unwrap_or(Money::ZERO);
        let taxable_left = left.checked_sub(tax_free_left).unwrap_or(Money::ZERO);
        let taxable = request.amount.checked_sub(request.tax_free_amount);
        request.tax_free_amount <= tax_free_left
            && taxable.is_some_and(|taxable| taxable <= taxable_left)
    }

    fn cancel_tax_free(&mut self, pg_order_id: &str, amount: Money) {
        if let Some((_, cancelled)) = self.tax_free.get_mut(pg_order_id) {
            *cancelled = cancelled.checked_add(amount).unwrap_or(Money::MAX);
        }
    }

    /// The tax-free part of each cancel of `pg_order_id` so far, summed.
    fn tax_free_cancelled(&self, pg_order_id: &str) -> Money {
        self.tax_free
            .get(pg_order_id)
            .map_or(Money::ZERO, |(_, cancelled)| *cancelled)
    }

    fn approve_now(&mut self, request: &ApproveRequest) -> Approval {
        if let Some(existing) = self.approved.get(&request.pg_order_id) {
            return existing.clone();
        }
        self.transactions += 1;
        let approval = Approval {
            transaction_id: format!("fake-tx-{}", self.transactions),
            approved_amount: request.amount,
            approved_at: format!("fake-time-{}", self.transactions),
            cancels: Vec::new(),
        };
        self.approved
            .insert(request.pg_order_id.clone(), approval.clone());
        self.tax_free.insert(
            request.pg_order_id.clone(),
            (request.tax_free_amount, Money::ZERO),
        );
        approval
    }
}

impl PaymentGateway for FakeGateway {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        self.pause();
        let mut state = self.lock();
        *state
            .calls
            .entry(request.idempotency_key.clone())
            .or_default() += 1;
        if let Some(reply) = state.approve_replies.get(&request.idempotency_key) {
            return reply.clone();
        }
        won_only(request.currency)?;
        if request.tax_free_amount > request.amount {
            return Err(GatewayError::Invalid {
                code: "INVALID_REQUEST".into(),
                message: "taxFreeAmount exceeds the amount".into(),
            });
        }
        // Only what the customer authorised in the widget can be confirmed.
        match state.authorised.get(&request.payment_key) {
            None => {
                return Err(GatewayError::Declined {
                    code: "NOT_FOUND_PAYMENT".into(),
                    message: "no payment was authorised with this paymentKey".into(),
                });
            }
            Some((order_id, _)) if *order_id != request.pg_order_id => {
                return Err(GatewayError::Declined {
                    code: "NOT_FOUND_PAYMENT".into(),
                    message: "no payment with this paymentKey has this orderId".into(),
                });
            }
            Some((_, amount)) if *amount != request.amount => {
                return Err(GatewayError::Invalid {
                    code: "INVALID_REQUEST".into(),
                    message: "the amount differs from the authorised payment".into(),
                });
            }
            Some(_) => {}
        }
        if !state.approved.contains_key(&request.pg_order_id)
            && state.window_passed(&request.pg_order_id)
        {
            // Confirmed after the window: the PG dropped the payment.
            return Err(GatewayError::Declined {
                code: "NOT_FOUND_PAYMENT_SESSION".into(),
                message: "the payment session expired before the confirm".into(),
            });
        }
        if let Some(transfer) = state.transfers.get_mut(&request.pg_order_id) {
            // A bank transfer: the confirm issues the account; once paid
            // into, the payment is approved.
            transfer.issued = true;
            transfer.tax_free = request.tax_free_amount;
            let deposit = transfer.deposit.clone();
            if state.next.front() == Some(&FakeOutcome::UnknownAfterCharge) {
                state.next.pop_front();
                return Err(GatewayError::Unknown {
                    reason: "the reply was lost after the account was issued".into(),
                });
            }
            return match state.approved.get(&request.pg_order_id) {
                Some(approval) => Ok(approval.clone()),
                None => Err(GatewayError::AwaitingDeposit(Box::new(deposit))),
            };
        }
        let outcome = request
            .order
            .and_then(|order| state.per_order.get_mut(&order))
            .and_then(VecDeque::pop_front)
            .or_else(|| state.next.pop_front())
            .unwrap_or(FakeOutcome::Approve);
        let (reply, remembered) = match outcome {
            FakeOutcome::Approve => {
                let approval = state.approve_now(request);
                (Ok(approval.clone()), Some(Ok(approval)))
            }
            FakeOutcome::UnknownAfterCharge => {
                let approval = state.approve_now(request);
                let lost = GatewayError::Unknown {
                    reason: "the reply was lost after the payment was approved".into(),
                };
                (Err(lost), Some(Ok(approval)))
            }
            FakeOutcome::Decline { code, message } => {
                state
                    .declined
                    .insert(request.pg_order_id.clone(), (code.clone(), message.clone()));
                let declined = GatewayError::Declined { code, message };
                (Err(declined.clone()), Some(Err(declined)))
            }
            no_effect => (Err(no_effect.into_error()), None),
        };
        if let Some(remembered) = remembered {
            state
                .approve_replies
                .insert(request.idempotency_key.clone(), remembered);
        }
        reply
    }

    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        self.pause();
        let mut state = self.lock();
        if let Some(error) = state.status_failures.pop_front() {
            return Err(error);
        }
        if let Some(record) = state.record_of(&request.pg_order_id) {
            return Ok(record);
        }
        if let Some((code, message)) = state.declined.get(&request.pg_order_id) {
            return Ok(PgStatus::Declined {
                code: code.clone(),
                message: message.clone(),
            });
        }
        if state
            .transfers
            .get(&request.pg_order_id)
            .is_some_and(|transfer| transfer.issued)
        {
            return Ok(PgStatus::Pending(PgPending::WaitingForDeposit));
        }
        if state.authorised_orders.contains(&request.pg_order_id)
            && state.window_passed(&request.pg_order_id)
        {
            return Ok(PgStatus::Declined {
                code: "EXPIRED".into(),
                message: "authenticated but never confirmed in time".into(),
            });
        }
        if state.authorised_orders.contains(&request.pg_order_id) {
            // Authenticated in the widget, no confirm yet: Toss says
            // IN_PROGRESS, never "not found".
            return Ok(PgStatus::Pending(PgPending::InProgress));
        }
        Ok(PgStatus::NotFound)
    }

    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        self.pause();
        let mut state = self.lock();
        *state
            .calls
            .entry(request.idempotency_key.clone())
            .or_default() += 1;
        if let Some(reply) = state.cancel_replies.get(&request.idempotency_key) {
            return reply.clone();
        }
        won_only(request.currency)?;
        // A deposited bank transfer has no card to go back to: Toss needs
        // the customer's account (`refundReceiveAccount`).
        if state.transfers.contains_key(&request.pg_order_id) && request.refund_account.is_none() {
            return Err(GatewayError::Declined {
                code: "INVALID_REFUND_ACCOUNT_INFO".into(),
                message: "a bank transfer is refunded to the customer's account, which is missing"
                    .into(),
            });
        }
        // Toss cancels by the path's paymentKey: a key it never issued for
        // this payment is 404 NOT_FOUND_PAYMENT (docs.tosspayments.com,
        // "결제 취소" and /reference/error-codes).
        let issued_for_it = state
            .authorised
            .get(&request.payment_key)
            .is_some_and(|(order_id, _)| *order_id == request.pg_order_id);
        let approved = state
            .approved
            .get(&request.pg_order_id)
            .map(|approval| approval.approved_amount)
            .filter(|_| issued_for_it);
        let Some(approved) = approved else {
            return Err(GatewayError::Invalid {
                code: "NOT_FOUND_PAYMENT".into(),
                message: "no approved payment to cancel".into(),
            });
        };
        let already = state.cancelled(&request.pg_order_id);
        let left = approved.checked_sub(already).unwrap_or(Money::ZERO);
        let outcome = if left.is_zero() {
            // Cancelled whole before (by the shop or in the dashboard):
            // this request cancels nothing.
            FakeOutcome::Decline {
                code: "ALREADY_CANCELED_PAYMENT".into(),
                message: "the payment was already cancelled".into(),
            }
        } else if request.amount > left || request.amount.is_zero() {
            FakeOutcome::Decline {
                code: "NOT_CANCELABLE_AMOUNT".into(),
                message: format!("{} asked, {left} left to cancel", request.amount),
            }
        } else if !state.tax_free_fits(&request.pg_order_id, request, left) {
            // Neither part may be cancelled past what is left of it.
            FakeOutcome::Decline {
                code: "NOT_CANCELABLE_AMOUNT".into(),
                message: format!(
                    "taxFreeAmount {} does not fit what is left of either part",
                    request.tax_free_amount
                ),
            }
        } else if request.amount < left && state.whole_cancel_only.contains(&request.pg_order_id) {
            FakeOutcome::Decline {
                code: "NOT_ALLOWED_PARTIAL_REFUND".into(),
                message: "this payment can only be cancelled whole".into(),
            }
        } else {
            state
                .next_cancel
                .pop_front()
                .unwrap_or(FakeOutcome::Approve)
        };
        let (reply, remembered) = match outcome {
            FakeOutcome::Approve => {
                let cancel = state.record_cancel(
                    &request.pg_order_id,
                    request.amount,
                    request.tax_free_amount,
                );
                state.cancel_tax_free(&request.pg_order_id, request.tax_free_amount);
                let cancellation = Cancellation {
                    cancelled_amount: cancel.amount,
                    transaction_key: cancel.transaction_key,
                };
                (Ok(cancellation.clone()), Some(Ok(cancellation)))
            }
            FakeOutcome::UnknownAfterCharge => {
                let cancel = state.record_cancel(
                    &request.pg_order_id,
                    request.amount,
                    request.tax_free_amount,
                );
                state.cancel_tax_free(&request.pg_order_id, request.tax_free_amount);
                let lost = GatewayError::Unknown {
                    reason: "the reply was lost after the cancel".into(),
                };
                let cancellation = Cancellation {
                    cancelled_amount: cancel.amount,
                    transaction_key: cancel.transaction_key,
                };
                (Err(lost), Some(Ok(cancellation)))
            }
            FakeOutcome::Decline { code, message } => {
                let declined = GatewayError::Declined { code, message };
                (Err(declined.clone()), Some(Err(declined)))
            }
            no_effect => (Err(no_effect.into_error()), None),
        };
        if let Some(remembered) = remembered {
            state
                .cancel_replies
                .insert(request.idempotency_key.clone(), remembered);
        }
        reply
    }

    fn limits(&self) -> GatewayLimits {
        self.lock().limits
    }
}
