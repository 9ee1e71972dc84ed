//! Coupons: an operator's, and a user's issued ones.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use liteshop::{CouponId, Discount, NewCoupon, Timestamp};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Admin, Me};
use crate::body::{int, opt_int, parse};
use crate::contract::{Auth, Contract, contract};
use crate::idempotency::KeyedBody;
use crate::problem::{ApiError, Problem};
use liteshop::ErrorKind::{Conflict, InvalidInput, NotFound};

use super::{IdPath, KeyHeader, PageQuery, answer, blocking, money, write};

/// This resource's routes.
pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(create_coupon))
        .routes(routes!(coupon))
        .routes(routes!(issue_coupon))
        .routes(routes!(my_coupons))
}

/// What a coupon takes off, as the API takes it: `{"kind": "fixed",
/// "amount": won}` or `{"kind": "percent", "percent": 1-100, "cap": won or
/// null}`, no other field. A plain struct rather than a tagged enum, so
/// that its integers are read exactly like every other (see [`int`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscountBody {
    kind: DiscountKind,
    #[serde(default, deserialize_with = "opt_int")]
    amount: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    percent: Option<u8>,
    #[serde(default, deserialize_with = "opt_int")]
    cap: Option<i64>,
}

/// The kinds of discount.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DiscountKind {
    Fixed,
    Percent,
}

impl DiscountBody {
    fn discount(self) -> Result<Discount, ApiError> {
        let fields = |what: &str| {
            ApiError::from(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                what,
            ))
        };
        Ok(match self {
            DiscountBody {
                kind: DiscountKind::Fixed,
                amount: Some(amount),
                percent: None,
                cap: None,
            } => Discount::Fixed {
                amount: money(amount)?,
            },
            DiscountBody {
                kind: DiscountKind::Percent,
                amount: None,
                percent: Some(percent),
                cap,
            } => Discount::Percent {
                percent,
                cap: cap.map(money).transpose()?,
            },
            DiscountBody {
                kind: DiscountKind::Fixed,
                ..
            } => return Err(fields("a fixed discount has `amount` and no other figure")),
            DiscountBody {
                kind: DiscountKind::Percent,
                ..
            } => {
                return Err(fields(
                    "a percent discount has `percent` and an optional `cap`, no `amount`",
                ));
            }
        })
    }
}

/// The latest a coupon's issue window may start: the year 3000, in UTC
/// milliseconds.
const LATEST_COUPON_START: i64 = 32_503_680_000_000;

/// The longest issue window or validity a coupon takes: 100 years.
const MAX_COUPON_SECS: i64 = 3_153_600_000;

/// A coupon offer (admin). It is issued from `issuable_from` (UTC
/// milliseconds) for `issuable_for_secs`; an issued coupon stays usable for
/// `valid_for_secs`. Durations rather than an end time, so that every
/// offer the schema allows is one the shop accepts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Welcome 10%", "discount": {"kind": "percent", "percent": 10, "cap": 5000},
    "quantity": 100, "issuable_from": 0, "issuable_for_secs": 3153600000_i64, "valid_for_secs": 604800,
    "min_order_total": 10000}))]
pub(crate) struct CreateCoupon {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?$"
    )]
    name: String,
    /// `{"kind": "fixed", "amount": won}` or `{"kind": "percent", "percent":
    /// 1-100, "cap": won or null}`.
    #[schema(value_type = Object)]
    discount: DiscountBody,
    #[schema(value_type = i64, minimum = 1, maximum = 4294967295_i64)]
    #[serde(deserialize_with = "int")]
    quantity: u32,
    /// UTC milliseconds, up to the year 3000.
    #[schema(minimum = 0, maximum = 32503680000000_i64)]
    #[serde(deserialize_with = "int")]
    issuable_from: i64,
    #[schema(minimum = 1, maximum = 3153600000_i64)]
    #[serde(deserialize_with = "int")]
    issuable_for_secs: i64,
    #[schema(minimum = 1, maximum = 3153600000_i64)]
    #[serde(deserialize_with = "int")]
    valid_for_secs: i64,
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    #[serde(deserialize_with = "int")]
    min_order_total: i64,
}

contract!(
    /// The error responses of `create_coupon`.
    CreateCouponErrors = Contract::new(Auth::Admin).body().errors(&[InvalidInput])
);

/// Creates a coupon offer (admin).
#[utoipa::path(post, path = "/admin/coupons", request_body = CreateCoupon, security(("bearer" = [])),
    responses((status = 201, body = liteshop::Coupon), CreateCouponErrors))]
async fn create_coupon(
    State(state): State<AppState>,
    _: Admin,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateCoupon = parse(&body)?;
    let min_order_total = money(request.min_order_total)?;
    if !(0..=LATEST_COUPON_START).contains(&request.issuable_from) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "out_of_range",
            "issuable_from is a time in UTC milliseconds, from 0 to the year 3000",
        )
        .into());
    }
    for secs in [request.issuable_for_secs, request.valid_for_secs] {
        if !(1..=MAX_COUPON_SECS).contains(&secs) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "out_of_range",
                "issuable_for_secs and valid_for_secs are 1 to 3153600000 (100 years)",
            )
            .into());
        }
    }
    let new = NewCoupon {
        name: request.name,
        discount: request.discount.discount()?,
        quantity: request.quantity,
        issuable_from: Timestamp::from_millis(request.issuable_from),
        issuable_until: Timestamp::from_millis(request.issuable_from).saturating_add(
            Duration::from_secs(request.issuable_for_secs.unsigned_abs()),
        ),
        valid_for: Duration::from_secs(request.valid_for_secs.unsigned_abs()),
        min_order_total,
    };
    let shop = state.shop.clone();
    let coupon = blocking(move || shop.create_coupon(new)).await?;
    Ok((StatusCode::CREATED, Json(coupon)).into_response())
}

contract!(
    /// The error responses of `coupon`.
    CouponErrors = Contract::new(Auth::Public).params().errors(&[InvalidInput, NotFound])
);

/// A coupon offer, with how many were issued.
#[utoipa::path(get, path = "/coupons/{id}", params(IdPath),
    responses((status = 200, body = liteshop::Coupon), CouponErrors))]
async fn coupon(
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, ApiError> {
    answer(&state, move |shop| shop.coupon(CouponId::new(id))).await
}

contract!(
    /// The error responses of `issue_coupon`.
    IssueCouponErrors = Contract::new(Auth::User).key().params().errors(&[InvalidInput, NotFound, Conflict])
);

/// Issues a coupon to the acting user, first come first served. Send an
/// `Idempotency-Key` to make a retry safe.
#[utoipa::path(post, path = "/me/coupons/{id}", params(IdPath, KeyHeader),
    security(("bearer" = [])),
    responses((status = 201, body = liteshop::UserCoupon), IssueCouponErrors))]
async fn issue_coupon(
    State(state): State<AppState>,
    Me(user): Me,
    Path(IdPath { id }): Path<IdPath>,
    KeyedBody { key, .. }: KeyedBody,
) -> Result<Response, ApiError> {
    write(&state, StatusCode::CREATED, key, move |shop| {
        shop.issue_coupon(user, CouponId::new(id))
    })
    .await
}

contract!(
    /// The error responses of `my_coupons`.
    MyCouponsErrors = Contract::new(Auth::User).params().errors(&[InvalidInput])
);

/// The coupons issued to the acting user, each with its state.
#[utoipa::path(get, path = "/me/coupons", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = liteshop::Page<liteshop::UserCoupon>), MyCouponsErrors))]
async fn my_coupons(
    State(state): State<AppState>,
    Me(user): Me,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page.request()?;
    answer(&state, move |shop| shop.user_coupons(user, page)).await
}
