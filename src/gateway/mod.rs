//! The payment gateway (PG) seam: the [`PaymentGateway`] trait the shop
//! calls, its request and answer types, [`GatewayError`], and two
//! implementations — [`FakeGateway`] for tests and [`HttpGateway`] for a PG
//! that speaks the JSON contract described on [`HttpGateway`].
//!
//! The trait is shaped so that a second widely used PG fits it unchanged.
//! How its calls and answers map onto Toss Payments (which `HttpGateway`
//! speaks) and onto Stripe's PaymentIntents and Refunds (no implementation
//! yet):
//!
//! | liteshop | Toss Payments | Stripe |
//! |---|---|---|
//! | [`PaymentGateway::approve`] | `POST /v1/payments/confirm` (`paymentKey`, `orderId`, `amount`) | confirm or capture the PaymentIntent (`payment_key` = its id) |
//! | [`PaymentGateway::status`] | `GET /v1/payments/orders/{orderId}` | retrieve the PaymentIntent by [`StatusRequest::payment_key`] |
//! | [`PaymentGateway::cancel`] | `POST /v1/payments/{paymentKey}/cancel` (`cancelAmount`) | create a Refund of the PaymentIntent (`amount`) |
//! | `ApproveRequest::currency`, `CancelRequest::currency` | KRW (anything else is refused before sending: `INVALID_CURRENCY`) | `currency` of the intent and the refund |
//! | `idempotency_key`, [`GatewayLimits::key_lifetime`] | `Idempotency-Key`, 15 days from the day of first use (the shop counts 14) | `Idempotency-Key`, at least 24 hours |
//! | [`PgPending::Ready`] / [`PgPending::InProgress`] | `READY` / `IN_PROGRESS` | `requires_payment_method` / `requires_confirmation`, `requires_action`, `processing` |
//! | [`PgPending::WaitingForDeposit`] | `WAITING_FOR_DEPOSIT` (virtual account) | `requires_action` with bank-transfer instructions |
//! | [`PgStatus::Approved`] | `DONE`, `PARTIAL_CANCELED` | `succeeded` |
//! | [`PgStatus::Cancelled`] | `CANCELED` | `succeeded`, refunded in full (`amount_refunded` = `amount`) |
//! | [`PgStatus::Declined`] | `ABORTED`, `EXPIRED` | `canceled`, or a failed charge |
//! | [`Approval::cancels`], [`PgCancel::transaction_key`] | `cancels[]`, `transactionKey` | the intent's Refunds, each Refund's id |
//! | a refund that stays pending | (a cancel answers at once) | a Refund `pending`: [`GatewayError::Unknown`], so the shop holds the attempt and re-sends it with the same key until it settles |
//! | [`GatewayError::Declined`] | the final codes of [`TOSS_CODES`] | `card_error`, a Refund `failed` |

mod codes;
mod fake;
mod http;

use std::fmt;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::OrderId;
use crate::money::{Currency, Money};

pub use codes::{CodeClass, PgApi, TOSS_CODES, TossCode};
pub use fake::{FakeGateway, FakeOutcome};
pub use http::{HttpGateway, HttpGatewayBuilder};

/// Asks the PG to approve one payment attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// The PG's key for the payment, from its widget's success redirect.
    pub payment_key: String,
    /// The id of this payment attempt at the PG: unique per attempt, 6–64
    /// characters of `[A-Za-z0-9_-]`.
    pub pg_order_id: String,
    /// The amount to approve: the payment's PG part.
    pub amount: Money,
    /// The currency `amount` is in: the shop's.
    pub currency: Currency,
    /// The part of `amount` free of VAT (Toss: `taxFreeAmount`, sent when
    /// not zero; a shop selling tax-free goods must send it).
    #[serde(default)]
    pub tax_free_amount: Money,
    /// The key that makes a repeated request the same payment. Unique per
    /// attempt; stored before the first call.
    pub idempotency_key: String,
    /// The shop's order (`None` for a top-up), for logs and fakes; not sent
    /// to an HTTP PG.
    pub order: Option<OrderId>,
}

/// Asks the PG what it knows of one payment attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// The attempt's id at the PG (the shop's name for it).
    pub pg_order_id: String,
    /// The PG's own id for the payment, once the shop has it (Toss's
    /// `paymentKey`; a PG that looks payments up only by its own id, as
    /// Stripe does its PaymentIntents, uses this).
    pub payment_key: Option<String>,
}

/// Asks the PG to cancel (refund) all or part of an approved payment: one
/// refund attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The PG's reference for the payment.
    pub payment_key: String,
    /// The attempt's id at the PG.
    pub pg_order_id: String,
    /// The amount to cancel: the attempt's, the whole payment or part of it.
    pub amount: Money,
    /// The currency `amount` is in: the shop's.
    pub currency: Currency,
    /// The part of `amount` free of VAT (Toss: `taxFreeAmount`, sent when
    /// not zero).
    #[serde(default)]
    pub tax_free_amount: Money,
    /// Why, as the PG records it.
    pub reason: String,
    /// The attempt's own key, fresh for every attempt and stored before the
    /// first call: a repeated cancel with it (a retry, or reconciliation) is
    /// the same cancel; a new attempt after a decline has a new key.
    pub idempotency_key: String,
    /// Where the PG sends the money of a payment made by bank transfer,
    /// which has no card to go back to (Toss: `refundReceiveAccount`,
    /// required to cancel a deposited virtual-account payment); `None` for
    /// any other payment.
    #[serde(default)]
    pub refund_account: Option<RefundAccount>,
}

/// The customer's bank account a refund of a bank-transfer payment goes
/// to (Toss: `refundReceiveAccount`, docs.tosspayments.com/reference#결제-취소).
/// Its number and holder are personal data: redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAccount {
    /// The bank, as the PG names it (Toss: a bank code such as `"20"`).
    pub bank: String,
    /// The account number, digits only.
    pub account_number: String,
    /// The account holder's name.
    pub holder_name: String,
}

impl RefundAccount {
    /// Checks the account as the shop stores it: a bank of 1–20 ASCII
    /// letters, digits or `_`, an account number of 1–20 ASCII digits, a
    /// holder's name of 1–60 characters with no control character and no
    /// white space at either end (as a name's rule). `Err` names the field.
    pub fn validate(&self) -> Result<(), &'static str> {
        let bank_ok = (1..=20).contains(&self.bank.len())
            && self
                .bank
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        let number_ok = (1..=20).contains(&self.account_number.len())
            && self.account_number.chars().all(|c| c.is_ascii_digit());
        let holder = &self.holder_name;
        let edges = [holder.chars().next(), holder.chars().next_back()];
        let holder_ok = (1..=60).contains(&holder.chars().count())
            && !holder.chars().any(char::is_control)
            && !edges.into_iter().flatten().any(crate::validate::is_space);
        match (bank_ok, number_ok, holder_ok) {
            (false, _, _) => Err("bank"),
            (_, false, _) => Err("account_number"),
            (_, _, false) => Err("holder_name"),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for RefundAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundAccount")
            .field("bank", &self.bank)
            .field("account_number", &"<redacted>")
            .field("holder_name", &"<redacted>")
            .finish()
    }
}

/// The PG approved a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The PG's id for the approved transaction.
    pub transaction_id: String,
    /// The amount the PG approved; the shop checks it equals the request.
    pub approved_amount: Money,
    /// When the PG approved it, as the PG wrote it (ISO 8601 for an HTTP PG).
    pub approved_at: String,
    /// What the PG has cancelled of the payment since, oldest first (Toss:
    /// the Payment object's `cancels[]`); empty in a confirm's answer.
    #[serde(default)]
    pub cancels: Vec<PgCancel>,
}

/// One cancel in the PG's record of a payment (Toss: an entry of
/// `cancels[]`, docs.tosspayments.com/reference#payment-객체).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgCancel {
    /// The PG's key for this cancel (Toss: `transactionKey`).
    pub transaction_key: String,
    /// The amount it cancelled (Toss: `cancelAmount`).
    pub amount: Money,
    /// The tax-free part of it (Toss: `taxFreeAmount`; zero when absent).
    #[serde(default)]
    pub tax_free_amount: Money,
}

/// The PG cancelled a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The amount the PG cancelled with this request, as its own record of
    /// the payment shows it (never simply the amount asked).
    pub cancelled_amount: Money,
    /// The PG's key for this cancel (Toss: the `transactionKey` of the
    /// cancel in `cancels[]`); the shop stores it with the refund, so a
    /// later look at the PG's record can tell its cancels from others.
    #[serde(default)]
    pub transaction_key: String,
}

/// Where a payment the PG holds but has not finished stands (Toss: the
/// Payment object's `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PgPending {
    /// Created, not yet authenticated by the customer (Toss `READY`).
    Ready,
    /// Authenticated in the widget and waiting for the shop's confirm
    /// (Toss `IN_PROGRESS`): a confirm lost on its way can be sent again,
    /// with the same key, inside the PG's confirm window.
    InProgress,
    /// A virtual account was issued and the deposit has not come (Toss
    /// `WAITING_FOR_DEPOSIT`).
    WaitingForDeposit,
}

/// What the PG knows of one payment attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PgStatus {
    /// It approved the attempt (Toss `DONE`, or `PARTIAL_CANCELED`: approved
    /// with part cancelled since — see [`Approval::cancels`]).
    Approved(Approval),
    /// It approved the attempt and then cancelled all of it (Toss
    /// `CANCELED`): the money is back with the customer.
    Cancelled(Approval),
    /// It holds the attempt and has not finished it.
    Pending(PgPending),
    /// It declined, aborted or expired the attempt (Toss `ABORTED`,
    /// `EXPIRED`): no money was taken.
    Declined {
        /// The PG's code.
        code: String,
        /// The PG's message.
        message: String,
    },
    /// It never received the attempt: sending the approval again, with the
    /// same idempotency key, is safe.
    NotFound,
}

/// What a gateway promises about time: how long it remembers an
/// idempotency key, and how long after the customer authenticates it
/// accepts the confirm.
///
/// The shop never sends a request again with a key older than
/// `key_lifetime` (a PG that forgot the key would run it as a new request:
/// a second refund), and re-sends a lost confirm only inside
/// `confirm_window`. Past either it settles by looking the payment up, or
/// hands the attempt to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayLimits {
    /// How long the PG keeps an idempotency key from its first use.
    pub key_lifetime: Duration,
    /// How long after authentication the PG accepts the confirm.
    pub confirm_window: Duration,
}

impl GatewayLimits {
    /// Toss Payments' limits: a key lasts 15 days from the day of its first
    /// use (docs.tosspayments.com/guides/using-api/idempotency-key, "멱등키는
    /// 처음 요청에 사용한 날부터 15일 간 유효합니다") — counted here as 14
    /// days, so that no day boundary of the PG's can end it before the shop
    /// stops using it — and a payment must be confirmed within 10 minutes
    /// of authentication, after which the PG answers
    /// `NOT_FOUND_PAYMENT_SESSION` and the payment expires
    /// (docs.tosspayments.com/reference/error-codes, "결제 승인").
    pub const TOSS: GatewayLimits = GatewayLimits {
        key_lifetime: Duration::from_secs(14 * 24 * 60 * 60),
        confirm_window: Duration::from_secs(10 * 60),
    };
}

impl Default for GatewayLimits {
    /// [`GatewayLimits::TOSS`].
    fn default() -> GatewayLimits {
        GatewayLimits::TOSS
    }
}

/// The PG issued a virtual account for a payment instead of approving it:
/// the payment is the customer's to complete by a bank transfer of exactly
/// its amount before `due_at` (Toss: a confirm answering
/// `WAITING_FOR_DEPOSIT` with the Payment's `virtualAccount` and `secret`;
/// docs.tosspayments.com/guides/payment/virtual-account: the due date is 7
/// days after issue by default, at most 30, and the account takes no
/// deposit after it). The PG tells of the deposit by a `DEPOSIT_CALLBACK`
/// webhook carrying the same `secret`
/// (docs.tosspayments.com/guides/learn/virtual-account-webhook).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// The bank, as the PG names it (Toss: `bankCode`).
    pub bank: String,
    /// The account to pay into.
    pub account_number: String,
    /// The last moment a deposit is taken, by the shop's clock.
    pub due_at: Timestamp,
    /// The PG's secret for this payment, which its deposit notices carry:
    /// stored, compared, never shown (redacted in `Debug`).
    pub secret: String,
}

impl fmt::Debug for Deposit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deposit")
            .field("bank", &self.bank)
            .field("account_number", &self.account_number)
            .field("due_at", &self.due_at)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a gateway call did not succeed. Each class is handled differently by
/// the shop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum GatewayError {
    /// Final: the PG said no (a rejected card, a limit, …). The money was
    /// not taken.
    #[error("declined by the payment gateway: {code}: {message}")]
    Declined {
        /// The PG's code.
        code: String,
        /// The PG's message.
        message: String,
    },
    /// Final: our request or configuration is wrong (a bad key, a malformed
    /// request). A bug to fix, logged at error level. The money was not taken.
    #[error("the payment gateway refused the request as invalid: {code}: {message}")]
    Invalid {
        /// The PG's code.
        code: String,
        /// The PG's message.
        message: String,
    },
    /// The request provably never reached the PG (connection refused, DNS,
    /// connect timeout): safe to retry with the same key.
    #[error("the payment gateway is unreachable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// The PG may or may not have acted (read timeout, 5xx, 429, unreadable
    /// or mismatched reply, an unlisted code). Only asking the PG later
    /// settles it.
    #[error("the payment gateway gave no definite answer: {reason}")]
    Unknown {
        /// What happened.
        reason: String,
    },
    /// Not final, and not a failure: the PG did not approve a confirm yet
    /// because it issued a virtual account ([`Deposit`]); the payment
    /// completes when the customer pays into it, or ends at its due date.
    /// Only [`PaymentGateway::approve`] answers it.
    #[error("the payment gateway awaits a deposit into a virtual account")]
    AwaitingDeposit(Box<Deposit>),
}

/// A payment gateway: approves, looks up and cancels payments.
///
/// Implementations must treat a repeated idempotency key as the same
/// request (replaying the first definite outcome: an approval, a decline, a
/// cancel) for as long as [`limits`](Self::limits) says, answer
/// [`status`](Self::status) truthfully from their own records (a payment
/// authenticated but not confirmed is [`PgStatus::Pending`], not
/// `NotFound`), and cancel part of a payment when asked for less than it
/// (never more than what is left). A cancel returns what the PG's record
/// says this request cancelled; a cancel of a payment the PG had already
/// cancelled (from its dashboard, say) is a decline, never `Ok`: the shop
/// must not give back money somebody else already gave back.
/// The shop never holds a database transaction across any of these calls.
pub trait PaymentGateway: Send + Sync {
    /// Approves one payment attempt.
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError>;
    /// What the PG knows of one payment attempt.
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError>;
    /// Cancels (refunds) all or part of an approved payment.
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError>;
    /// How long its keys last and how long it waits for a confirm;
    /// [`GatewayLimits::TOSS`] unless the implementation says otherwise.
    fn limits(&self) -> GatewayLimits {
        GatewayLimits::TOSS
    }
}

impl<G: PaymentGateway + ?Sized> PaymentGateway for std::sync::Arc<G> {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        (**self).approve(request)
    }
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        (**self).status(request)
    }
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        (**self).cancel(request)
    }
    fn limits(&self) -> GatewayLimits {
        (**self).limits()
    }
}

/// Toss confirms and cancels payments in won only: any other currency is
/// refused before anything is sent, with Toss's own code for it
/// (`INVALID_CURRENCY`, docs.tosspayments.com/reference/error-codes). One
/// rule for [`HttpGateway`] and [`FakeGateway`], so the fake refuses what
/// the PG refuses.
pub(crate) fn won_only(currency: Currency) -> Result<(), GatewayError> {
    if currency == Currency::KRW {
        Ok(())
    } else {
        Err(GatewayError::Invalid {
            code: "INVALID_CURRENCY".into(),
            message: format!("this gateway takes KRW, not {currency}"),
        })
    }
}

/// How the shop retries a gateway call that failed as
/// [`GatewayError::Unavailable`]: at most `retries` more times, with the same
/// request (so the same idempotency key), after an exponential backoff from
/// `base` with random jitter. No other failure is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The wait before the first retry; each later wait doubles.
    pub base: Duration,
}

impl Default for RetryPolicy {
    /// 2 retries, waiting about 200 ms and then 400 ms.
    fn default() -> RetryPolicy {
        RetryPolicy {
            retries: 2,
            base: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// Runs `call`, retrying while it fails as unavailable.
    pub(crate) fn run<T>(
        &self,
        mut call: impl FnMut() -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut attempt = 0;
        loop {
            match call() {
                Err(GatewayError::Unavailable { reason }) if attempt < self.retries => {
                    let wait = self.backoff(attempt);
                    tracing::warn!(attempt, ?wait, %reason, "payment gateway unavailable; retrying");
                    thread::sleep(wait);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `base × 2^attempt`, plus up to half of that again at random.
    fn backoff(&self, attempt: u32) -> Duration {
        let wait = self.base.saturating_mul(1 << attempt.min(16));
        let jitter_range = (wait.as_millis() as u64 / 2).max(1);
        wait + Duration::from_millis(crate::token::random_u64() % jitter_range)
    }
}

impl fmt::Display for PgStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgStatus::Approved(approval) => write!(f, "approved as {}", approval.transaction_id),
            PgStatus::Cancelled(approval) => {
                write!(f, "approved as {} and cancelled", approval.transaction_id)
            }
            PgStatus::Pending(state) => write!(f, "pending: {state:?}"),
            PgStatus::Declined { code, message } => write!(f, "declined: {code}: {message}"),
            PgStatus::NotFound => f.write_str("never received"),
        }
    }
}
