//! Settling with the PG after the fact: reconciliation, webhooks'
//! lookups, virtual accounts' deposit notices and refund accounts, and the
//! comparison of the books with the PG's records.

use std::time::Duration;

use super::Shop;
use crate::error::{Error, Result};
use crate::gateway::PaymentGateway;
use crate::ids::{PaymentId, UserId};
use crate::payment;
use crate::payment::flow::Payments;
use crate::payment::reconcile::{ReconcileReport, ReconciledPayment, Reconciler};
// Named by the docs only.
#[cfg(doc)]
use super::ShopBuilder;

impl Shop {
    pub(super) fn gateway(&self) -> Result<&dyn PaymentGateway> {
        self.inner
            .payments
            .gateway
            .as_deref()
            .ok_or(Error::NoGateway)
    }

    /// The context of the flows that call the gateway (which may be
    /// absent: a payment wholly by balance needs none).
    pub(super) fn payments(&self) -> Payments<'_> {
        Payments {
            store: &self.inner.store,
            gateway: self.inner.payments.gateway.as_deref(),
            config: &self.inner.payments,
            clock: &self.inner.clock,
            max_balance: self.inner.limits.max_balance,
        }
    }

    /// Settles every `Requested` or `Unknown` payment and refund attempt
    /// older than the grace period ([`ShopBuilder::reconcile_grace`]) and
    /// reports each one it looked at, with its id and status after the round.
    ///
    /// With no transaction open during gateway calls, oldest first:
    ///
    /// - a payment: the gateway's `status` for its `pg_order_id` is asked;
    ///   an approval or a decline is recorded as [`Shop::confirm_payment`]
    ///   records it; authenticated but unconfirmed at the PG
    ///   ([`PgPending::InProgress`](crate::PgPending::InProgress)) inside the
    ///   gateway's confirm window, or "never received", means the approval
    ///   is sent again **with the payment's stored idempotency key**, so it
    ///   is charged at most once whatever happened before;
    /// - a refund attempt: its cancel is sent again **with the attempt's
    ///   stored key**, which the gateway treats as the same cancel; the
    ///   answer is recorded as [`Shop::refund`] records it. Past the
    ///   gateway's key lifetime ([`GatewayLimits`](crate::GatewayLimits))
    ///   nothing is sent again: the attempt is settled from the PG's record
    ///   of the payment, or left for a person.
    ///
    /// No definite answer leaves the attempt for the next round. One still
    /// unsettled past [`ShopBuilder::review_after`] is marked
    /// `needs_review` — never settled on a guess, since the gateway may hold
    /// the money.
    ///
    /// A process killed at any point of a payment or a refund leaves a
    /// `Requested` or `Unknown` attempt that this finishes.
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors ([`Error::Busy`]) end the round
    /// early, and the next round continues.
    pub fn reconcile_payments(&self) -> Result<ReconcileReport> {
        self.gateway()?;
        self.payments().reconcile()
    }

    /// The PG says payment attempt `pg_order_id` changed — a webhook such as
    /// Toss's `PAYMENT_STATUS_CHANGED` or `DEPOSIT_CALLBACK` named it. The
    /// notice's body is never trusted: the shop looks the payment up at the
    /// PG and settles it from that record, exactly once, however often and
    /// in whatever order notices arrive (an old notice cannot move a
    /// payment backwards, since only the PG's current record counts).
    ///
    /// An unsettled payment is settled as [`Shop::reconcile_payments`]
    /// settles it, without waiting for the grace period. A settled one is
    /// compared with the PG's record, and a difference made outside the
    /// shop is reported with `needs_review` and logged. A cancel the PG
    /// made on its own (in its dashboard, say) is recorded so the books
    /// follow the PG: a completed [`Refund`](crate::Refund) of origin
    /// [`RefundOrigin::Pg`](crate::RefundOrigin::Pg) that returns no units
    /// (for a top-up, the balance gives back what it still holds of it).
    /// A payment the PG approved that the shop declined is left for a
    /// person. Returns `None` for an attempt the shop does not know
    /// (logged; nothing changes).
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors.
    pub fn payment_changed_at_pg(&self, pg_order_id: &str) -> Result<Option<ReconciledPayment>> {
        self.gateway()?;
        self.payments().settle_at_pg(pg_order_id)
    }

    /// The PG says the deposit into payment attempt `pg_order_id`'s virtual
    /// account changed (Toss's `DEPOSIT_CALLBACK`, whose body carries the
    /// payment's `secret` and no `eventType`). If `secret` is the one the PG
    /// issued with the account ([`Payment::deposit`](crate::Payment::deposit)),
    /// the payment is settled from the PG's record exactly as
    /// [`Shop::payment_changed_at_pg`] settles it — the body's status is
    /// never trusted, so an old notice cannot move a payment backwards.
    /// Any other secret, a payment without a virtual account, or one the
    /// shop does not know: logged, nothing changes, `None`.
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors.
    pub fn deposit_notice(
        &self,
        pg_order_id: &str,
        secret: &str,
    ) -> Result<Option<ReconciledPayment>> {
        self.gateway()?;
        self.payments().settle_deposit_notice(pg_order_id, secret)
    }

    /// Stores the customer's bank account that refunds of `payment`, made by
    /// bank transfer, go to: such a payment has no card to give money back
    /// to, and the PG needs the account to cancel it (Toss:
    /// `refundReceiveAccount`). Set it before asking for the refund; a
    /// later call replaces it. The account is sent only with cancels of
    /// this payment and never shown in `Debug` or logs.
    ///
    /// # Failure
    ///
    /// In order: [`Error::InvalidRefundAccount`] →
    /// [`Error::PaymentNotFound`] (also another user's) →
    /// [`Error::NotABankTransfer`]. Nothing is stored on any of them.
    pub fn set_refund_account(
        &self,
        user: UserId,
        payment: PaymentId,
        account: &crate::RefundAccount,
    ) -> Result<()> {
        let account = account.clone();
        self.inner
            .store
            .write_user(user, &self.inner.clock, move |tx, now| {
                payment::set_refund_account(tx, payment, &account, now)
            })
    }

    /// Compares every payment with a PG part approved in the last `within`
    /// with the PG's record, as [`Shop::payment_changed_at_pg`] does for
    /// one: the sweep that finds changes made outside the shop when no
    /// webhook told of them (a PG that sends none, or a notice lost after
    /// its retries). One lookup per payment, oldest first; run it as often
    /// as the PG's rate limits allow (a daily sweep over a week, say).
    /// Returns every payment it looked at.
    ///
    /// # Failure
    ///
    /// [`Error::NoGateway`]; storage errors end the sweep early.
    pub fn compare_with_pg(&self, within: Duration) -> Result<Vec<ReconciledPayment>> {
        self.gateway()?;
        self.payments().sweep_pg(within)
    }

    /// Starts a background thread that runs [`Shop::reconcile_payments`]
    /// every `interval` and logs each report with `tracing`. It stops when
    /// the returned handle is dropped or [`stop`](Reconciler::stop)ped.
    pub fn spawn_reconciler(&self, interval: Duration) -> Reconciler {
        Reconciler::spawn(self.clone(), interval)
    }
}
