//! Toss Payments' error codes for the three calls the shop makes — confirm,
//! lookup, cancel — in one table: code, HTTP status, and what the shop does
//! with it.
//!
//! Transcribed from Toss's own tables, "코어 API 별 에러" → "결제 승인",
//! "결제 조회" and "결제 취소" on docs.tosspayments.com/reference/error-codes
//! (API version 2022-11-16), with the one code the idempotency guide adds
//! (`IDEMPOTENT_REQUEST_PROCESSING`, 409:
//! docs.tosspayments.com/guides/using-api/idempotency-key). A code that is
//! not here is [`GatewayError::Unknown`](super::GatewayError::Unknown):
//! the PG may have acted, and only asking it later settles it.

/// Which of the PG's calls answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PgApi {
    /// `POST /v1/payments/confirm` (결제 승인).
    Confirm,
    /// `GET /v1/payments/orders/{orderId}` (결제 조회).
    Lookup,
    /// `POST /v1/payments/{paymentKey}/cancel` (결제 취소).
    Cancel,
}

/// What an error code means for the shop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeClass {
    /// Final: the PG said no and took (or gave back) nothing. A decline.
    Declined,
    /// Final: our request or configuration is wrong (keys, merchant set-up,
    /// a malformed request). Nothing happened; logged at error level.
    Invalid,
    /// The PG may have acted (a temporary fault at the PG or a card
    /// company): only a later lookup or a re-sent request with the same key
    /// settles it.
    Unknown,
    /// The PG refused to look at the request just now (a second request for
    /// one payment within a second): nothing happened; ask again later with
    /// the same key. Never a decline.
    RetryLater,
    /// The PG is still working on the first request with this key: ask
    /// again with the same key.
    Processing,
    /// The PG has processed this payment before (an approval, an abort, a
    /// cancel, a pending deposit — Toss gives one code for all of them): the
    /// PG's own record of the payment says which.
    SettleByLookup,
    /// A cancel of a payment the PG had already cancelled or refunded:
    /// this request cancelled nothing, and whatever the PG cancelled before
    /// was not this attempt's doing.
    AlreadyCancelled,
    /// A lookup of a payment the PG never received.
    NotFound,
}

/// One row of [`TOSS_CODES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TossCode {
    /// The call that answers it.
    pub api: PgApi,
    /// The HTTP status Toss documents with it.
    pub status: u16,
    /// The code.
    pub code: &'static str,
    /// What the shop does with it.
    pub class: CodeClass,
}

const fn row(api: PgApi, status: u16, code: &'static str, class: CodeClass) -> TossCode {
    TossCode {
        api,
        status,
        code,
        class,
    }
}

use CodeClass::{
    AlreadyCancelled, Declined, Invalid, NotFound, Processing, RetryLater, SettleByLookup, Unknown,
};
use PgApi::{Cancel, Confirm, Lookup};

/// Every error code Toss documents for confirm, lookup and cancel, in the
/// order of its tables.
pub const TOSS_CODES: &[TossCode] = &[
    // 결제 승인 (confirm).
    row(Confirm, 400, "ALREADY_PROCESSED_PAYMENT", SettleByLookup),
    row(Confirm, 400, "PROVIDER_ERROR", Unknown),
    row(Confirm, 400, "EXCEED_MAX_CARD_INSTALLMENT_PLAN", Declined),
    row(Confirm, 400, "INVALID_REQUEST", Invalid),
    row(Confirm, 400, "NOT_ALLOWED_POINT_USE", Declined),
    row(Confirm, 400, "INVALID_API_KEY", Invalid),
    row(Confirm, 400, "INVALID_REJECT_CARD", Declined),
    row(Confirm, 400, "BELOW_MINIMUM_AMOUNT", Declined),
    row(Confirm, 400, "INVALID_CARD_EXPIRATION", Declined),
    row(Confirm, 400, "INVALID_STOPPED_CARD", Declined),
    row(Confirm, 400, "EXCEED_MAX_DAILY_PAYMENT_COUNT", Declined),
    row(
        Confirm,
        400,
        "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT",
        Declined,
    ),
    row(Confirm, 400, "INVALID_CARD_INSTALLMENT_PLAN", Declined),
    row(
        Confirm,
        400,
        "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN",
        Declined,
    ),
    row(Confirm, 400, "EXCEED_MAX_PAYMENT_AMOUNT", Declined),
    row(Confirm, 400, "NOT_FOUND_TERMINAL_ID", Invalid),
    row(Confirm, 400, "INVALID_AUTHORIZE_AUTH", Invalid),
    row(Confirm, 400, "INVALID_CARD_LOST_OR_STOLEN", Declined),
    row(Confirm, 400, "RESTRICTED_TRANSFER_ACCOUNT", Declined),
    row(Confirm, 400, "INVALID_CARD_NUMBER", Declined),
    row(Confirm, 400, "INVALID_UNREGISTERED_SUBMALL", Invalid),
    row(Confirm, 400, "NOT_REGISTERED_BUSINESS", Invalid),
    row(Confirm, 400, "EXCEED_MAX_ONE_DAY_WITHDRAW_AMOUNT", Declined),
    row(
        Confirm,
        400,
        "EXCEED_MAX_ONE_TIME_WITHDRAW_AMOUNT",
        Declined,
    ),
    row(Confirm, 400, "CARD_PROCESSING_ERROR", Unknown),
    row(Confirm, 400, "EXCEED_MAX_AMOUNT", Declined),
    row(Confirm, 400, "INVALID_ACCOUNT_INFO_RE_REGISTER", Declined),
    row(Confirm, 400, "NOT_AVAILABLE_PAYMENT", Declined),
    row(Confirm, 400, "UNAPPROVED_ORDER_ID", Declined),
    row(Confirm, 400, "EXCEED_MAX_MONTHLY_PAYMENT_AMOUNT", Declined),
    row(Confirm, 401, "UNAUTHORIZED_KEY", Invalid),
    row(Confirm, 403, "REJECT_ACCOUNT_PAYMENT", Declined),
    row(Confirm, 403, "REJECT_CARD_PAYMENT", Declined),
    row(Confirm, 403, "REJECT_CARD_COMPANY", Declined),
    row(Confirm, 403, "FORBIDDEN_REQUEST", Declined),
    row(Confirm, 403, "REJECT_TOSSPAY_INVALID_ACCOUNT", Declined),
    row(Confirm, 403, "EXCEED_MAX_AUTH_COUNT", Declined),
    row(Confirm, 403, "EXCEED_MAX_ONE_DAY_AMOUNT", Declined),
    row(Confirm, 403, "NOT_AVAILABLE_BANK", Declined),
    row(Confirm, 403, "INVALID_PASSWORD", Declined),
    row(Confirm, 403, "INCORRECT_BASIC_AUTH_FORMAT", Invalid),
    row(Confirm, 403, "FDS_ERROR", Declined),
    // A paymentKey the PG never issued: the shop sent what the browser
    // gave it (the key comes back on the widget's success redirect, so the
    // customer can put anything there), the PG holds no payment under it
    // and took nothing. The customer's claim is refused as a decline, not
    // as a fault of the shop's request.
    row(Confirm, 404, "NOT_FOUND_PAYMENT", Declined),
    // The confirm came after the window: the PG dropped the payment.
    row(Confirm, 404, "NOT_FOUND_PAYMENT_SESSION", Declined),
    row(Confirm, 409, "IDEMPOTENT_REQUEST_PROCESSING", Processing),
    row(
        Confirm,
        500,
        "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
        Unknown,
    ),
    row(Confirm, 500, "FAILED_INTERNAL_SYSTEM_PROCESSING", Unknown),
    row(Confirm, 500, "UNKNOWN_PAYMENT_ERROR", Unknown),
    // 결제 조회 (lookup).
    row(
        Lookup,
        400,
        "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN_BELOW_AMOUNT",
        Unknown,
    ),
    row(Lookup, 401, "UNAUTHORIZED_KEY", Invalid),
    row(Lookup, 403, "FORBIDDEN_CONSECUTIVE_REQUEST", RetryLater),
    row(Lookup, 403, "INCORRECT_BASIC_AUTH_FORMAT", Invalid),
    row(Lookup, 404, "NOT_FOUND_PAYMENT", NotFound),
    // "존재하지 않는 정보": not a statement about this payment.
    row(Lookup, 404, "NOT_FOUND", Invalid),
    row(
        Lookup,
        500,
        "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
        Unknown,
    ),
    // 결제 취소 (cancel).
    row(Cancel, 400, "ALREADY_CANCELED_PAYMENT", AlreadyCancelled),
    row(Cancel, 400, "INVALID_REFUND_ACCOUNT_INFO", Declined),
    row(
        Cancel,
        400,
        "EXCEED_CANCEL_AMOUNT_DISCOUNT_AMOUNT",
        Declined,
    ),
    row(Cancel, 400, "INVALID_REQUEST", Invalid),
    row(Cancel, 400, "INVALID_REFUND_ACCOUNT_NUMBER", Declined),
    row(Cancel, 400, "INVALID_BANK", Declined),
    // The PG's balance of the payment is not what the request assumed:
    // nothing was cancelled (someone else cancelled part of it).
    row(Cancel, 400, "NOT_MATCHES_REFUNDABLE_AMOUNT", Declined),
    row(Cancel, 400, "PROVIDER_ERROR", Unknown),
    row(Cancel, 400, "REFUND_REJECTED", Declined),
    row(Cancel, 400, "ALREADY_REFUND_PAYMENT", AlreadyCancelled),
    row(Cancel, 400, "FORBIDDEN_BANK_REFUND_REQUEST", Declined),
    row(Cancel, 401, "UNAUTHORIZED_KEY", Invalid),
    row(Cancel, 403, "NOT_CANCELABLE_AMOUNT", Declined),
    row(Cancel, 403, "FORBIDDEN_CONSECUTIVE_REQUEST", RetryLater),
    row(Cancel, 403, "FORBIDDEN_REQUEST", Declined),
    row(Cancel, 403, "NOT_CANCELABLE_PAYMENT", Declined),
    row(Cancel, 403, "EXCEED_MAX_REFUND_DUE", Declined),
    row(
        Cancel,
        403,
        "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
        Declined,
    ),
    row(Cancel, 403, "NOT_ALLOWED_PARTIAL_REFUND", Declined),
    row(Cancel, 403, "NOT_AVAILABLE_BANK", Declined),
    row(Cancel, 403, "INCORRECT_BASIC_AUTH_FORMAT", Invalid),
    row(
        Cancel,
        403,
        "NOT_CANCELABLE_PAYMENT_FOR_DORMANT_USER",
        Declined,
    ),
    row(Cancel, 404, "NOT_FOUND_PAYMENT", Invalid),
    row(Cancel, 409, "IDEMPOTENT_REQUEST_PROCESSING", Processing),
    row(Cancel, 500, "FAILED_INTERNAL_SYSTEM_PROCESSING", Unknown),
    row(Cancel, 500, "FAILED_REFUND_PROCESS", Unknown),
    row(Cancel, 500, "FAILED_METHOD_HANDLING_CANCEL", Unknown),
    row(Cancel, 500, "FAILED_PARTIAL_REFUND", Unknown),
    row(Cancel, 500, "COMMON_ERROR", Unknown),
    row(
        Cancel,
        500,
        "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
        Unknown,
    ),
];

/// What `code`, answered by `api` with HTTP `status`, means. A code Toss
/// does not list for that call — or one that arrives with another HTTP
/// status than the table's, which says the PG changed and the table is
/// stale — is [`CodeClass::Unknown`].
pub(crate) fn class_of(api: PgApi, status: u16, code: &str) -> CodeClass {
    match TOSS_CODES
        .iter()
        .find(|row| row.api == api && row.code == code)
    {
        Some(row) if row.status == status => row.class,
        Some(row) => {
            tracing::warn!(
                code,
                status,
                documented = row.status,
                "the PG answered a known code with another HTTP status; treating it as unknown"
            );
            Unknown
        }
        None => Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn each_code_is_listed_once_per_call() {
        let mut seen = HashSet::new();
        for row in TOSS_CODES {
            assert!(seen.insert((row.api, row.code)), "{row:?} twice");
        }
    }

    #[test]
    fn the_table_decides_and_anything_else_is_unknown() {
        assert_eq!(class_of(Confirm, 403, "FDS_ERROR"), Declined);
        assert_eq!(class_of(Confirm, 400, "UNAPPROVED_ORDER_ID"), Declined);
        assert_eq!(class_of(Confirm, 403, "INVALID_PASSWORD"), Declined);
        assert_eq!(class_of(Confirm, 401, "UNAUTHORIZED_KEY"), Invalid);
        assert_eq!(class_of(Confirm, 400, "PROVIDER_ERROR"), Unknown);
        assert_eq!(
            class_of(Confirm, 400, "ALREADY_PROCESSED_PAYMENT"),
            SettleByLookup
        );
        assert_eq!(
            class_of(Confirm, 409, "IDEMPOTENT_REQUEST_PROCESSING"),
            Processing
        );
        assert_eq!(class_of(Confirm, 404, "NOT_FOUND_PAYMENT"), Declined);
        assert_eq!(class_of(Lookup, 404, "NOT_FOUND_PAYMENT"), NotFound);
        assert_eq!(
            class_of(Lookup, 403, "FORBIDDEN_CONSECUTIVE_REQUEST"),
            RetryLater
        );
        assert_eq!(
            class_of(Cancel, 403, "NOT_ALLOWED_PARTIAL_REFUND"),
            Declined
        );
        assert_eq!(
            class_of(Cancel, 400, "ALREADY_CANCELED_PAYMENT"),
            AlreadyCancelled
        );
        assert_eq!(class_of(Cancel, 500, "FAILED_REFUND_PROCESS"), Unknown);
        // Not listed for this call, not listed at all, or another status.
        assert_eq!(class_of(Lookup, 403, "FDS_ERROR"), Unknown);
        assert_eq!(class_of(Confirm, 400, "SOMETHING_NEW"), Unknown);
        assert_eq!(class_of(Confirm, 500, "REJECT_CARD_PAYMENT"), Unknown);
        assert_eq!(class_of(Confirm, 400, ""), Unknown);
    }

    #[test]
    fn every_class_has_a_code() {
        for class in [
            Declined,
            Invalid,
            Unknown,
            RetryLater,
            Processing,
            SettleByLookup,
            AlreadyCancelled,
            NotFound,
        ] {
            assert!(TOSS_CODES.iter().any(|row| row.class == class), "{class:?}");
        }
    }
}
