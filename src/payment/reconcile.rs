//! Reconciliation: settling every payment and refund attempt that a lost
//! reply or a killed process left `Requested`/`Unknown`, and
//! [`Reconciler`], the background thread that does it on a timer.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::flow::{Attempt, Payments, settle};
use super::refund::{self, External, Refund, RefundStatus};
use super::{Outcome, Payment, PaymentStatus};
use crate::background::Background;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::gateway::{
    Approval, CancelRequest, Cancellation, GatewayError, GatewayLimits, PgCancel, PgPending,
    PgStatus, StatusRequest,
};
use crate::ids::{OrderId, PaymentId, RefundId};
use crate::lease::{self, Led};
use crate::money::Money;
use crate::shop::Shop;

/// How long after a virtual account's due date the shop still takes the
/// PG's word that no deposit came before declining the payment
/// ([`DEPOSIT_EXPIRED`](super::DEPOSIT_EXPIRED)).
pub const DEPOSIT_GRACE: Duration = Duration::from_secs(3_600);

/// The decline code of a refund whose key outlived the PG's memory of it
/// and whose cancel the PG's record does not hold: the PG never ran it.
pub const NOT_CANCELLED_AT_PG: &str = "NOT_CANCELLED_AT_PG";

/// What one round of [`Shop::reconcile_payments`] did: every payment and
/// refund attempt it looked at, with its id, its order, and its status
/// after the round.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// The payments it looked at, oldest first.
    pub payments: Vec<ReconciledPayment>,
    /// The refund attempts it looked at, oldest first.
    pub refunds: Vec<ReconciledRefund>,
}

/// One payment a reconciliation round looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciledPayment {
    /// The payment.
    pub payment: PaymentId,
    /// Its order; `None` for a top-up.
    pub order: Option<OrderId>,
    /// Its status after the round: `Approved` or `Declined` if settled,
    /// `Requested`/`Unknown` if still open.
    pub status: PaymentStatus,
    /// Still open past the review age ([`ShopBuilder::review_after`](crate::ShopBuilder::review_after)):
    /// a person should compare it with the gateway's records. It is never
    /// declined silently, since the gateway may hold the money.
    pub needs_review: bool,
}

/// One refund attempt a reconciliation round looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciledRefund {
    /// The refund attempt.
    pub refund: RefundId,
    /// Its order; `None` for a top-up's refund.
    pub order: Option<OrderId>,
    /// Its status after the round: `Completed` or `Declined` if settled,
    /// `Requested`/`Unknown` if still open.
    pub status: RefundStatus,
    /// Still open past the review age: a person should compare it with the
    /// gateway's records.
    pub needs_review: bool,
}

impl ReconcileReport {
    /// Whether any payment or refund needs a person.
    pub fn needs_review(&self) -> bool {
        self.payments.iter().any(|p| p.needs_review) || self.refunds.iter().any(|r| r.needs_review)
    }

    /// Whether everything the round looked at is settled now.
    pub fn all_settled(&self) -> bool {
        self.payments.iter().all(|p| !p.status.is_unsettled())
            && self.refunds.iter().all(|r| !r.status.is_unsettled())
    }

    /// How many payments it found in `status` after the round.
    pub fn payments_in(&self, status: PaymentStatus) -> usize {
        self.payments.iter().filter(|p| p.status == status).count()
    }

    /// How many refund attempts it found in `status` after the round.
    pub fn refunds_in(&self, status: RefundStatus) -> usize {
        self.refunds.iter().filter(|r| r.status == status).count()
    }
}

impl Payments<'_> {
    /// One round: every unsettled payment, then every unsettled refund,
    /// older than the grace period, oldest first. Each is read, asked about
    /// with no transaction open, and recorded in its own write.
    pub(crate) fn reconcile(&self) -> Result<ReconcileReport> {
        let now = self.clock.now();
        let grace = i64::try_from(self.config.reconcile_grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = Timestamp::from_millis(now.as_millis().saturating_sub(grace));
        let mut report = ReconcileReport::default();

        let limits = self.gateway.map(|g| g.limits()).unwrap_or_default();
        // A payment awaiting a deposit is the customer's to finish: its
        // deposit notice settles it; a round looks at it only once its
        // account is closed (its due date and `DEPOSIT_GRACE` passed).
        let closed = |payment: &Payment| {
            payment
                .deposit
                .as_ref()
                .is_none_or(|deposit| self.deposit_closed(deposit.due_at))
        };
        let due = self.store.read(|tx| {
            super::unsettled(tx, cutoff)?
                .into_iter()
                .filter(|payment| closed(payment))
                .map(|payment| Ok((super::requested_at(tx, &payment)?, payment)))
                .collect::<Result<Vec<_>>>()
        })?;
        for (requested_at, payment) in due {
            report
                .payments
                .push(self.settle_payment(payment, requested_at, limits)?);
        }

        let currency = self.config.currency;
        let due = self.store.read(|tx| {
            refund::unsettled(tx, cutoff)?
                .into_iter()
                .map(|refund| {
                    let recorded = refund::recorded_cancels(tx, refund.payment)?;
                    Ok((
                        refund::cancel_request(tx, &refund, currency)?,
                        recorded,
                        refund,
                    ))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        for (request, recorded_cancels, refund) in due {
            let key_age = self.age(refund.created_at);
            let answer = if key_age < limits.key_lifetime {
                self.ask_about_refund(&refund, &request)
            } else {
                self.look_up_refund(&refund, &request, &recorded_cancels)
            };
            let recorded = match answer {
                Some(outcome) => {
                    let id = refund.id;
                    self.write_user(refund.user, move |tx, now| {
                        refund::record(tx, id, outcome.clone(), now)
                    })?
                }
                None => refund,
            };
            let needs_review = recorded.status.is_unsettled() && self.overdue(recorded.created_at);
            if needs_review {
                tracing::warn!(refund = %recorded.id, order = ?recorded.order,
                    "refund still unsettled past the review age; needs a person");
            }
            report.refunds.push(ReconciledRefund {
                refund: recorded.id,
                order: recorded.order,
                status: recorded.status,
                needs_review,
            });
        }
        debug!(?report, "payments and refunds reconciled");
        Ok(report)
    }

    /// Settles one unsettled payment whose confirm was first asked for at
    /// `requested_at`, from what the gateway says of it.
    fn settle_payment(
        &self,
        payment: Payment,
        requested_at: Timestamp,
        limits: GatewayLimits,
    ) -> Result<ReconciledPayment> {
        // An unsettled payment with no PG part can only be one an older
        // liteshop left in flight (a payment by balance now completes in
        // its first transaction). That model asked the PG for the whole
        // total as well as debiting the balance, so neither a lookup nor
        // a re-sent confirm can settle it safely: a person compares it
        // with the PG's records.
        let (recorded, needs_review) = if payment.pg_amount.is_zero() {
            tracing::warn!(payment = %payment.id, order = ?payment.order,
                "a payment from before the tender model is in flight; needs a person");
            (payment, true)
        } else {
            let key_age = self.age(requested_at);
            let (outcome, external) = self.ask_about_payment(&payment, key_age, limits);
            let cancels = match &outcome {
                Some(Outcome::Done(approval)) => approval.cancels.clone(),
                _ => Vec::new(),
            };
            let recorded = match outcome {
                Some(outcome) => {
                    let id = payment.id;
                    self.write_user(payment.user, move |tx, now| {
                        super::record(tx, id, outcome.clone(), now)
                    })?
                }
                None => payment,
            };
            let (recorded, external) =
                if !cancels.is_empty() && recorded.status == PaymentStatus::Approved {
                    self.follow_pg_cancels(&recorded, &cancels)?;
                    (self.store.read(|tx| super::get(tx, recorded.id))?, true)
                } else {
                    (recorded, external)
                };
            let overdue = recorded.status.is_unsettled() && self.overdue(recorded.created_at);
            if overdue {
                tracing::warn!(payment = %recorded.id, order = ?recorded.order,
                    "payment still unsettled past the review age; needs a person");
            }
            (recorded, overdue || external)
        };
        Ok(ReconciledPayment {
            payment: recorded.id,
            order: recorded.order,
            status: recorded.status,
            needs_review,
        })
    }

    /// The PG says payment attempt `pg_order_id` changed (a webhook): looks
    /// it up at the PG and settles it from that record — never from what
    /// the notice says — exactly once, however often and in whatever order
    /// notices arrive. `None` for an attempt the shop does not know.
    ///
    /// An unsettled payment is settled as a reconciliation round settles it
    /// (no grace period). A settled one is compared with the PG's record:
    /// each cancel the PG holds that the shop never asked for (with no
    /// refund in flight to explain it) is recorded as a refund of origin
    /// [`RefundOrigin::Pg`](super::refund::RefundOrigin::Pg), so the books
    /// follow the PG; that, a payment the shop declined that the PG holds
    /// approved, or PG cancels that still add up to other than what the
    /// shop recorded, is a change made outside the shop, reported with
    /// `needs_review` and logged at error level.
    pub(crate) fn settle_at_pg(&self, pg_order_id: &str) -> Result<Option<ReconciledPayment>> {
        let limits = self.gateway.map(|g| g.limits()).unwrap_or_default();
        let found = self.store.read(|tx| {
            let Some(payment) = super::by_pg_order_id(tx, pg_order_id)? else {
                return Ok(None);
            };
            let requested_at = super::requested_at(tx, &payment)?;
            let refund_in_flight = refund::live_for_payment(tx, payment.id)?.is_some();
            Ok(Some((payment, requested_at, refund_in_flight)))
        })?;
        let Some((payment, requested_at, refund_in_flight)) = found else {
            tracing::warn!(
                pg_order_id,
                "the PG notified a payment the shop does not know; ignored"
            );
            return Ok(None);
        };
        if payment.status.is_unsettled() {
            return self.settle_payment(payment, requested_at, limits).map(Some);
        }
        let status = self
            .config
            .retry
            .run(|| self.gateway()?.status(&payment.status_request()));
        let (payment, external) = match (payment.status, &status) {
            (PaymentStatus::Declined, Ok(PgStatus::Approved(_) | PgStatus::Cancelled(_))) => {
                (payment, true)
            }
            (
                PaymentStatus::Approved | PaymentStatus::Refunded,
                Ok(PgStatus::Approved(approval) | PgStatus::Cancelled(approval)),
            ) if !refund_in_flight => {
                let followed = self.follow_pg_cancels(&payment, &approval.cancels)?;
                let payment = self.store.read(|tx| super::get(tx, payment.id))?;
                let cancelled =
                    Money::checked_sum(approval.cancels.iter().map(|cancel| cancel.amount));
                let differs = cancelled != Some(payment.pg_refunded);
                (payment, followed || differs)
            }
            // Paid at the shop, not (any more) at the PG: a bank transfer's
            // deposit the bank reversed (Toss: `DONE` back to
            // `WAITING_FOR_DEPOSIT`), or a record the PG lost. The goods
            // may be gone; a person decides.
            (
                PaymentStatus::Approved | PaymentStatus::Refunded,
                Ok(PgStatus::Pending(_) | PgStatus::Declined { .. } | PgStatus::NotFound),
            ) => (payment, true),
            _ => (payment, false),
        };
        if external {
            tracing::error!(payment = %payment.id, order = ?payment.order, shop = %payment.status,
                pg = ?status, "the PG's record of this payment differs from what the shop asked for; needs a person");
        }
        Ok(Some(ReconciledPayment {
            payment: payment.id,
            order: payment.order,
            status: payment.status,
            needs_review: external,
        }))
    }

    /// The PG says a deposit into payment `pg_order_id`'s virtual account
    /// changed (Toss's `DEPOSIT_CALLBACK`, carrying the payment's
    /// `secret`): settled from the PG's record as [`Payments::settle_at_pg`]
    /// settles it — if `secret` is the one the PG issued with the account.
    /// A notice with another secret, or for a payment without a virtual
    /// account or one the shop does not know, is logged and changes nothing
    /// (`None`).
    pub(crate) fn settle_deposit_notice(
        &self,
        pg_order_id: &str,
        secret: &str,
    ) -> Result<Option<ReconciledPayment>> {
        let matches = self
            .store
            .read(|tx| match super::by_pg_order_id(tx, pg_order_id)? {
                Some(payment) => super::deposit_secret_matches(tx, payment.id, secret).map(Some),
                None => Ok(None),
            })?;
        match matches {
            Some(true) => self.settle_at_pg(pg_order_id),
            Some(false) => {
                tracing::warn!(
                    pg_order_id,
                    "a deposit notice whose secret is not the payment's; ignored"
                );
                Ok(None)
            }
            None => {
                tracing::warn!(
                    pg_order_id,
                    "a deposit notice for a payment the shop does not know; ignored"
                );
                Ok(None)
            }
        }
    }

    /// Every payment with a PG part approved in the last `within`, each
    /// compared with the PG's record by [`Payments::settle_at_pg`].
    pub(crate) fn sweep_pg(&self, within: Duration) -> Result<Vec<ReconciledPayment>> {
        let back = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        let since = Timestamp::from_millis(self.clock.now().as_millis().saturating_sub(back));
        let due = self
            .store
            .read(|tx| super::settled_with_pg_since(tx, since))?;
        let mut looked = Vec::with_capacity(due.len());
        for pg_order_id in due {
            looked.extend(self.settle_at_pg(&pg_order_id)?);
        }
        Ok(looked)
    }

    /// Records each of `cancels` (the PG's record of `payment`) that no
    /// refund of the payment holds, as a refund of origin `Pg`: the books
    /// follow the PG. Returns whether there was any (or one the shop could
    /// not attribute or record), so that a person looks.
    fn follow_pg_cancels(&self, payment: &Payment, cancels: &[PgCancel]) -> Result<bool> {
        let recorded = self
            .store
            .read(|tx| refund::recorded_cancels(tx, payment.id))?;
        let unexplained: Vec<PgCancel> = cancels
            .iter()
            .filter(|cancel| {
                !recorded
                    .iter()
                    .any(|key| key.as_deref() == Some(&cancel.transaction_key))
            })
            .cloned()
            .collect();
        if unexplained.is_empty() {
            return Ok(false);
        }
        if recorded.iter().any(Option::is_none) {
            tracing::error!(payment = %payment.id, cancels = ?unexplained,
                "the payment has refunds recorded without the PG's key, so the PG's cancels cannot be attributed; needs a person");
            return Ok(true);
        }
        for cancel in unexplained {
            let id = payment.id;
            let answer = {
                let cancel = cancel.clone();
                self.write_user(payment.user, move |tx, now| {
                    refund::record_external(tx, id, &cancel, now)
                })?
            };
            match answer {
                External::Recorded(external) => {
                    tracing::error!(payment = %id, order = ?payment.order, refund = %external.refund.id,
                        amount = %cancel.amount, transaction = %cancel.transaction_key,
                        "the PG cancelled part of this payment outside the shop; recorded, needs a person");
                    if !external.unrecovered.is_zero() {
                        tracing::error!(payment = %id, user = %payment.user, unrecovered = %external.unrecovered,
                            "the top-up's balance was spent: the customer holds this much twice; needs a person");
                    }
                }
                External::Known => {}
                External::Unsafe => {
                    tracing::error!(payment = %id, order = ?payment.order, amount = %cancel.amount,
                        transaction = %cancel.transaction_key,
                        "the PG holds a cancel the shop cannot record safely; needs a person");
                }
            }
        }
        Ok(true)
    }

    /// Whether a virtual account due at `due_at` takes no more deposits:
    /// its due date passed by [`DEPOSIT_GRACE`] (a transfer made just
    /// before it has had time to reach the PG's record).
    fn deposit_closed(&self, due_at: Timestamp) -> bool {
        let grace = i64::try_from(DEPOSIT_GRACE.as_millis()).unwrap_or(i64::MAX);
        self.clock.now().as_millis() >= due_at.as_millis().saturating_add(grace)
    }

    fn overdue(&self, created_at: Timestamp) -> bool {
        self.age(created_at) >= self.config.review_after
    }

    /// How long ago `then` was.
    fn age(&self, then: Timestamp) -> Duration {
        let age = u64::try_from(self.clock.now().as_millis() - then.as_millis()).unwrap_or(0);
        Duration::from_millis(age)
    }

    /// What the gateway says of one unsettled payment whose key was first
    /// used `key_age` ago, as an outcome to record (`None` to leave it for
    /// the next round), and whether the PG's record shows a change made
    /// outside the shop (a person should look).
    ///
    /// A payment the PG holds authenticated but unconfirmed (Toss
    /// `IN_PROGRESS`) — a confirm lost on its way, or a process killed
    /// before sending it — gets its confirm again, with the same key,
    /// while the PG's confirm window lasts; a payment the PG never received
    /// gets it again while the key lasts. Past those the PG settles it
    /// itself (Toss expires it: declined), and nothing is re-sent with a
    /// key the PG may have forgotten.
    fn ask_about_payment(
        &self,
        payment: &Payment,
        key_age: Duration,
        limits: GatewayLimits,
    ) -> (Option<Outcome<Approval>>, bool) {
        let retry = &self.config.retry;
        let attempt = Attempt::Payment {
            payment: payment.id,
            order: payment.order,
        };
        let resend = || {
            let request = payment.approve_request(self.config.currency);
            Self::resent(attempt, retry.run(|| self.gateway()?.approve(&request)))
        };
        let key_alive = key_age < limits.key_lifetime;
        match retry.run(|| self.gateway()?.status(&payment.status_request())) {
            Ok(PgStatus::Approved(approval)) => {
                let external = !approval.cancels.is_empty();
                if external {
                    tracing::error!(payment = %payment.id, order = ?payment.order, cancels = ?approval.cancels,
                        "the PG approved this payment and cancelled part of it outside the shop; needs a person");
                }
                (Some(Outcome::Done(approval)), external)
            }
            Ok(PgStatus::Cancelled(approval)) => {
                // Approved and cancelled whole before the shop heard of it:
                // the customer has the money back, so nothing was paid.
                tracing::error!(payment = %payment.id, order = ?payment.order, cancels = ?approval.cancels,
                    "the PG approved this payment and cancelled it whole outside the shop; needs a person");
                let outcome = Outcome::Declined {
                    code: "CANCELED".into(),
                    message: "approved and then cancelled whole at the payment gateway".into(),
                };
                (Some(outcome), true)
            }
            Ok(PgStatus::Declined { code, message }) => {
                (Some(Outcome::Declined { code, message }), false)
            }
            Ok(PgStatus::Pending(PgPending::InProgress))
                if key_alive && key_age < limits.confirm_window =>
            {
                (resend(), false)
            }
            Ok(PgStatus::Pending(PgPending::WaitingForDeposit))
                if payment
                    .deposit
                    .as_ref()
                    .is_some_and(|deposit| self.deposit_closed(deposit.due_at)) =>
            {
                // Toss: the account takes no deposit after its due date.
                let outcome = Outcome::Declined {
                    code: super::DEPOSIT_EXPIRED.into(),
                    message: "no deposit reached the virtual account by its due date".into(),
                };
                (Some(outcome), false)
            }
            // The PG issued an account whose answer never reached the
            // shop: the confirm again, with the same key, brings the same
            // answer back, so the customer can see where to pay.
            Ok(PgStatus::Pending(PgPending::WaitingForDeposit))
                if payment.deposit.is_none() && key_alive =>
            {
                (resend(), false)
            }
            Ok(PgStatus::NotFound) if key_alive => (resend(), false),
            Ok(status) => {
                debug!(payment = %payment.id, %status, "left for the gateway to settle");
                (None, false)
            }
            Err(err) => {
                if let GatewayError::Invalid { code, message } = &err {
                    tracing::error!(payment = %payment.id, %code, %message,
                        "the gateway refused a status request as invalid");
                }
                let outcome = Outcome::Unknown {
                    reason: err.to_string(),
                };
                (Some(outcome), false)
            }
        }
    }

    /// Settles a refund whose key may have outlived the PG's memory of it
    /// by the PG's record of the payment alone, never by sending the cancel
    /// again (a PG that forgot the key would run it as a second refund).
    ///
    /// The cancels the PG holds that the shop did not record (`recorded`:
    /// the PG keys of this payment's completed refunds) are the ones it
    /// could be: exactly one, of this attempt's amount, is this attempt's
    /// cancel; none means the PG never ran it, so it is declined; anything
    /// else is left for a person.
    fn look_up_refund(
        &self,
        refund: &Refund,
        request: &CancelRequest,
        recorded: &[Option<String>],
    ) -> Option<Outcome<Cancellation>> {
        let status = StatusRequest {
            pg_order_id: request.pg_order_id.clone(),
            payment_key: Some(request.payment_key.clone()),
        };
        let approval = match self.config.retry.run(|| self.gateway()?.status(&status)) {
            Ok(PgStatus::Approved(approval) | PgStatus::Cancelled(approval)) => approval,
            other => {
                tracing::warn!(refund = %refund.id, answer = ?other,
                    "a refund past its key's lifetime cannot be settled by the PG's record; needs a person");
                return None;
            }
        };
        if recorded.iter().any(Option::is_none) {
            tracing::warn!(refund = %refund.id,
                "the payment has refunds recorded without the PG's key; needs a person");
            return None;
        }
        let unexplained: Vec<&PgCancel> = approval
            .cancels
            .iter()
            .filter(|cancel| {
                !recorded
                    .iter()
                    .any(|key| key.as_deref() == Some(&cancel.transaction_key))
            })
            .collect();
        match unexplained.as_slice() {
            [] => Some(Outcome::Declined {
                code: NOT_CANCELLED_AT_PG.into(),
                message: "the payment gateway's record holds no cancel for this attempt".into(),
            }),
            [cancel] if cancel.amount == refund.pg_amount => Some(Outcome::Done(Cancellation {
                cancelled_amount: cancel.amount,
                transaction_key: cancel.transaction_key.clone(),
            })),
            _ => {
                tracing::error!(refund = %refund.id, cancels = ?unexplained,
                    "the PG holds cancels the shop cannot attribute; needs a person");
                None
            }
        }
    }

    /// What the gateway says of one unsettled refund when its cancel is sent
    /// again with the attempt's own key (the gateway treats it as the same
    /// cancel, so it gives the money back at most once); `None` to leave it
    /// for the next round.
    fn ask_about_refund(
        &self,
        refund: &Refund,
        request: &CancelRequest,
    ) -> Option<Outcome<Cancellation>> {
        let attempt = Attempt::Refund {
            refund: refund.id,
            payment: refund.payment,
            order: refund.order,
        };
        Self::resent(
            attempt,
            self.config.retry.run(|| self.gateway()?.cancel(request)),
        )
    }

    /// A request sent again: settled as [`settle`] says, except that a
    /// gateway still unreachable leaves the attempt for the next round.
    fn resent<T>(attempt: Attempt, answer: Result<T, GatewayError>) -> Option<Outcome<T>> {
        if let Err(GatewayError::Unavailable { reason }) = &answer {
            tracing::warn!(%attempt, %reason, "the gateway is still unreachable; next round");
            return None;
        }
        Some(settle(attempt, answer).0)
    }
}

/// A running background reconciler, made by
/// [`Shop::spawn_reconciler`](crate::Shop::spawn_reconciler).
///
/// Every interval it runs [`Shop::reconcile_payments`] and logs the report
/// with `tracing` (at warn level when payments or refunds need review, at
/// error level when the round failed) — if it holds the lease on
/// [`Reconciler::JOB`]: of the reconcilers of every process on one
/// database, one runs the rounds at a time (the others ask again every
/// interval, and one takes over within three intervals of the leader's
/// death; a clean stop hands the lease over at once). Dropping the handle,
/// or calling [`stop`](Reconciler::stop), stops the thread and waits for
/// the round in progress to finish.
#[derive(Debug)]
#[must_use = "dropping the handle stops the reconciler at once"]
pub struct Reconciler {
    holder: String,
    _thread: Background,
}

impl Reconciler {
    /// The job whose lease a reconciler holds while it leads
    /// ([`Shop::lease`](crate::Shop::lease) tells who does).
    pub const JOB: &'static str = "reconciler";

    pub(crate) fn spawn(shop: Shop, interval: Duration) -> Reconciler {
        let mut led = Led::new(
            shop.clone(),
            Self::JOB.to_owned(),
            lease::length_for(interval),
        );
        let holder = led.holder().to_owned();
        let thread = Background::spawn("liteshop-reconciler", move |stopped| {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                if !led.leads() {
                    continue;
                }
                match shop.reconcile_payments() {
                    Ok(report) if report.needs_review() => {
                        tracing::warn!(?report, "reconciliation round: attempts need review");
                    }
                    Ok(report) => tracing::info!(?report, "reconciliation round"),
                    Err(err) => tracing::error!(error = %err, "reconciliation round failed"),
                }
            }
        });
        Reconciler {
            holder,
            _thread: thread,
        }
    }

    /// The name this reconciler takes the lease under: compare it with
    /// [`Lease::holder`](crate::Lease::holder).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops the reconciler and waits for its thread to end; if it led, it
    /// gives the lease back.
    pub fn stop(self) {
        drop(self);
    }
}
