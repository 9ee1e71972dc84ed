//! The order event feed: a transactional outbox. Every change of an order
//! or payment appends one row to `events` in the transaction that makes the
//! change, so the feed can never disagree with the books: a rolled-back
//! change leaves no event, a committed one always has its event.
//!
//! Sequence numbers come from `INTEGER PRIMARY KEY AUTOINCREMENT` under the
//! one write lock: they increase in commit order, a rolled-back write
//! leaves no gap, and a pruned number is never reused.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::background::Background;
use crate::clock::Timestamp;
use crate::db::{Backend, Db, Reads, Row, at};
use crate::error::{Error, Result, json_failure};
use crate::ids::{CouponId, OrderId, PaymentId, RefundId, UserId};
use crate::lease::{self, Led};
use crate::money::Money;
use crate::order::OrderItem;
use crate::payment::refund::RefundLine;
use crate::shop::Shop;
use crate::store::Settled;
use crate::text_enum::text_enum;

/// What happened, with the figures a consumer needs (see [the
/// table](crate#the-order-event-feed)).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventPayload {
    /// An order was placed; its stock is reserved.
    OrderPlaced {
        /// Its lines, with what each costs after the discount.
        lines: Vec<OrderItem>,
        /// Before the discount.
        subtotal: Money,
        /// What the coupon took off.
        discount: Money,
        /// What the buyer pays.
        total: Money,
        /// The coupon used, if any.
        coupon: Option<CouponId>,
    },
    /// The user cancelled the pending order; its stock and coupon are back.
    OrderCancelled,
    /// The pending order ran out of time; its stock and coupon are back.
    OrderExpired,
    /// A payment started: the total is held from the balance.
    PaymentRequested {
        /// The amount held.
        amount: Money,
    },
    /// The payment was approved: the order is paid.
    PaymentApproved {
        /// The amount taken.
        amount: Money,
        /// The order's lines.
        lines: Vec<OrderItem>,
        /// Before the discount.
        subtotal: Money,
        /// What the coupon took off.
        discount: Money,
        /// The coupon used, if any.
        coupon: Option<CouponId>,
    },
    /// The payment was declined: the money is back, the order pending again.
    PaymentDeclined {
        /// The amount given back.
        amount: Money,
        /// The gateway's (or the shop's) code.
        code: String,
        /// Its message.
        message: String,
    },
    /// A refund completed: the money is credited and the units released.
    RefundCompleted {
        /// The amount credited.
        amount: Money,
        /// The units and money per line.
        lines: Vec<RefundLine>,
    },
}

/// The kind of an event, as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// [`EventPayload::OrderPlaced`].
    OrderPlaced,
    /// [`EventPayload::OrderCancelled`].
    OrderCancelled,
    /// [`EventPayload::OrderExpired`].
    OrderExpired,
    /// [`EventPayload::PaymentRequested`].
    PaymentRequested,
    /// [`EventPayload::PaymentApproved`].
    PaymentApproved,
    /// [`EventPayload::PaymentDeclined`].
    PaymentDeclined,
    /// [`EventPayload::RefundCompleted`].
    RefundCompleted,
}

text_enum!(EventKind {
    OrderPlaced => "order_placed",
    OrderCancelled => "order_cancelled",
    OrderExpired => "order_expired",
    PaymentRequested => "payment_requested",
    PaymentApproved => "payment_approved",
    PaymentDeclined => "payment_declined",
    RefundCompleted => "refund_completed",
});

impl EventPayload {
    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            EventPayload::OrderPlaced { .. } => EventKind::OrderPlaced,
            EventPayload::OrderCancelled => EventKind::OrderCancelled,
            EventPayload::OrderExpired => EventKind::OrderExpired,
            EventPayload::PaymentRequested { .. } => EventKind::PaymentRequested,
            EventPayload::PaymentApproved { .. } => EventKind::PaymentApproved,
            EventPayload::PaymentDeclined { .. } => EventKind::PaymentDeclined,
            EventPayload::RefundCompleted { .. } => EventKind::RefundCompleted,
        }
    }
}

/// One entry of the feed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its sequence number: increasing in commit order, without gaps, never
    /// reused. Consumers de-duplicate by it.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// Whose order.
    pub user: UserId,
    /// The order.
    pub order: OrderId,
    /// The payment, for payment events.
    pub payment: Option<PaymentId>,
    /// The refund, for refund events.
    pub refund: Option<RefundId>,
    /// The figures.
    pub payload: EventPayload,
    /// When it happened (commit order is `seq`, not this).
    pub created_at: Timestamp,
}

/// Who and what an event is about.
pub(crate) struct Subject {
    pub(crate) user: UserId,
    pub(crate) order: OrderId,
    pub(crate) payment: Option<PaymentId>,
    pub(crate) refund: Option<RefundId>,
}

impl Subject {
    pub(crate) fn order(user: UserId, order: OrderId) -> Subject {
        Subject {
            user,
            order,
            payment: None,
            refund: None,
        }
    }

    /// An event about payment `payment` of `order`.
    pub(crate) fn payment(user: UserId, order: OrderId, payment: PaymentId) -> Subject {
        Subject {
            payment: Some(payment),
            ..Subject::order(user, order)
        }
    }
}

/// The most events one [`Shop::events`] call returns.
pub const MAX_EVENT_BATCH: u32 = 1_000;

pub(crate) const SELECT_EVENTS: &str =
    "SELECT seq, kind, user_id, order_id, payment_id, refund_id, payload, created_at
     FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/// Appends one event in the caller's transaction.
pub(crate) fn append(
    tx: &dyn Db,
    subject: Subject,
    payload: &EventPayload,
    now: Timestamp,
) -> Result<()> {
    let json = serde_json::to_string(payload).map_err(json_failure)?;
    let sql = match tx.backend() {
        // AUTOINCREMENT under SQLite's one write lock: commit order, no
        // gap, never reused.
        Backend::Sqlite => {
            "INSERT INTO events (kind, user_id, order_id, payment_id, refund_id, payload, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        }
        // A provisional number, unique across concurrent transactions and
        // negative: committed events are numbered after the feed's head by
        // `store::postgres::NUMBER_EVENTS`, so numbers are given only to
        // committed events, with no gap — a number taken here would let a
        // consumer skip this event if a later one committed first.
        Backend::Postgres => {
            "INSERT INTO events (seq, kind, user_id, order_id, payment_id, refund_id, payload,
                                 created_at)
             VALUES (-nextval('events_pending'), ?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        }
    };
    tx.execute(
        sql,
        &[
            &payload.kind(),
            &subject.user,
            &subject.order,
            &subject.payment,
            &subject.refund,
            &json,
            &now,
        ],
    )?;
    Ok(())
}

/// Up to `limit` events after `after`, in sequence order.
pub(crate) fn after(conn: &Settled<'_>, after: u64, limit: u32) -> Result<Vec<Event>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    conn.query(SELECT_EVENTS, &[&after, &limit])?
        .iter()
        .map(event_row)
        .collect()
}

/// The last sequence number ever given (0 before the first event), pruned
/// or not.
pub(crate) fn last_seq(conn: &Settled<'_>) -> Result<u64> {
    // SQLite keeps the last AUTOINCREMENT value given; PostgreSQL keeps
    // the feed's head in a counter row that each numbering moves (events
    // still waiting for a number are not counted: settle the feed first).
    let sql = match conn.backend() {
        Backend::Sqlite => "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
        Backend::Postgres => "SELECT last FROM feed_head",
    };
    let seq: Option<i64> = conn
        .query_opt(sql, &[])?
        .map(|row| row.get(0))
        .transpose()?;
    Ok(seq.map_or(0, |seq| seq.unsigned_abs()))
}

/// The cursor of `consumer`: the last sequence number it acked; `None` if
/// it never registered or acked.
pub(crate) fn cursor(conn: &dyn Db, consumer: &str) -> Result<Option<u64>> {
    let acked: Option<i64> = conn
        .query_opt(
            "SELECT acked FROM event_consumers WHERE name = ?1",
            &[&consumer],
        )?
        .map(|row| row.get(0))
        .transpose()?;
    Ok(acked.map(i64::unsigned_abs))
}

/// Moves the cursor of `consumer` to `upto` (registering it), never
/// backwards; returns the cursor after.
pub(crate) fn ack(tx: &Settled<'_>, consumer: &str, upto: u64, now: Timestamp) -> Result<u64> {
    let last = last_seq(tx)?;
    if upto > last {
        return Err(Error::AckBeyondFeed { upto, last });
    }
    let upto = i64::try_from(upto).unwrap_or(i64::MAX);
    let acked: i64 = tx
        .query_row(
            "INSERT INTO event_consumers (name, acked, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE
             SET acked = CASE WHEN excluded.acked > event_consumers.acked
                              THEN excluded.acked ELSE event_consumers.acked END,
                 updated_at = excluded.updated_at
             RETURNING acked",
            &[&consumer, &upto, &now],
        )?
        .get(0)?;
    Ok(acked.unsigned_abs())
}

/// The events of one order, in sequence order (an index seek).
pub(crate) const SELECT_ORDER_EVENTS: &str =
    "SELECT seq, kind, user_id, order_id, payment_id, refund_id, payload, created_at
     FROM events WHERE order_id = ?1 AND seq > 0 ORDER BY seq";

/// Every event of `order` still in the feed, in sequence order.
pub(crate) fn for_order(conn: &Settled<'_>, order: OrderId) -> Result<Vec<Event>> {
    conn.query(SELECT_ORDER_EVENTS, &[&order])?
        .iter()
        .map(event_row)
        .collect()
}

/// How far one consumer of the feed is behind, as the operator's console
/// shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerLag {
    /// The consumer's name.
    pub name: String,
    /// The last sequence number it acked.
    pub acked: u64,
    /// The last sequence number given (the head of the feed).
    pub head: u64,
    /// Events given after its cursor: `head - acked`.
    pub behind: u64,
    /// When the oldest event it has not acked was written, if any is left.
    pub oldest_unacked_at: Option<Timestamp>,
    /// When it last acked.
    pub updated_at: Timestamp,
}

/// Every registered consumer with its cursor and lag, by name.
pub(crate) fn consumers(conn: &Settled<'_>) -> Result<Vec<ConsumerLag>> {
    let head = last_seq(conn)?;
    let rows = conn.query(
        "SELECT name, acked, updated_at FROM event_consumers ORDER BY name",
        &[],
    )?;
    rows.iter()
        .map(|row| {
            let (name, acked, updated_at): (String, i64, Timestamp) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            let oldest_unacked_at = conn
                .query_opt(
                    "SELECT created_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1",
                    &[&acked],
                )?
                .map(|row| row.get(0))
                .transpose()?;
            let acked = acked.unsigned_abs();
            Ok(ConsumerLag {
                name,
                acked,
                head,
                behind: head.saturating_sub(acked),
                oldest_unacked_at,
                updated_at,
            })
        })
        .collect()
}

/// Deletes events older than `before` that every registered consumer has
/// acked; returns how many.
///
/// Only numbered events: one still waiting for its number (PostgreSQL,
/// `seq < 0`) has reached no consumer yet.
pub(crate) fn prune(tx: &dyn Db, before: Timestamp) -> Result<usize> {
    tx.execute(
        "DELETE FROM events WHERE created_at < ?1 AND seq > 0
         AND seq <= coalesce((SELECT min(acked) FROM event_consumers), 9223372036854775807)",
        &[&before],
    )
}

fn event_row(row: &Row) -> Result<Event> {
    let seq: i64 = row.get(at!(EVENT, "seq"))?;
    let json: String = row.get(at!(EVENT, "payload"))?;
    let payload = serde_json::from_str(&json).map_err(json_failure)?;
    Ok(Event {
        seq: seq.unsigned_abs(),
        kind: row.get(at!(EVENT, "kind"))?,
        user: row.get(at!(EVENT, "user_id"))?,
        order: row.get(at!(EVENT, "order_id"))?,
        payment: row.get(at!(EVENT, "payment_id"))?,
        refund: row.get(at!(EVENT, "refund_id"))?,
        payload,
        created_at: row.get(at!(EVENT, "created_at"))?,
    })
}

/// The columns [`event_row`] reads, as the feed's `SELECT`s select them.
pub(crate) const EVENT: Reads = &[
    "events.seq",
    "events.kind",
    "events.user_id",
    "events.order_id",
    "events.payment_id",
    "events.refund_id",
    "events.payload",
    "events.created_at",
];

/// A background thread that hands the feed to a handler in batches, in
/// order, and acks each batch after the handler returns `Ok`, from
/// [`Shop::spawn_event_pump`].
///
/// A handler that fails gets the same batch again after a backoff
/// (doubling from the interval up to a minute): events are never skipped,
/// and delivered at least once — a batch whose ack failed, or whose process
/// died before the ack, is delivered again. Dropping the handle, or calling
/// [`stop`](EventPump::stop), stops the thread after the batch in hand.
///
/// Of the pumps for one consumer in every process on one database, one
/// runs at a time: it holds the lease on [`EventPump::job`], renewed each
/// round; the others ask again every interval and one takes over within
/// three intervals of the leader's death (at once after a clean stop).
#[derive(Debug)]
#[must_use = "dropping the handle stops the pump at once"]
pub struct EventPump {
    holder: String,
    _thread: Background,
}

/// The most events the pump hands over at once.
const PUMP_BATCH: u32 = 100;
/// The longest the pump waits between retries of a failing handler.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl EventPump {
    pub(crate) fn spawn<E: std::fmt::Display>(
        shop: Shop,
        consumer: String,
        mut handler: impl FnMut(&[Event]) -> Result<(), E> + Send + 'static,
        interval: Duration,
    ) -> EventPump {
        let mut led = Led::new(
            shop.clone(),
            EventPump::job(&consumer),
            lease::length_for(interval),
        );
        let holder = led.holder().to_owned();
        let thread = Background::spawn("liteshop-event-pump", move |stopped| {
            let mut wait = Duration::ZERO;
            let mut failures = 0u32;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                if !led.leads() {
                    wait = interval;
                    continue;
                }
                let batch = shop
                    .event_cursor(&consumer)
                    .and_then(|cursor| shop.events(cursor, PUMP_BATCH));
                let batch = match batch {
                    Ok(batch) if batch.is_empty() => {
                        wait = interval;
                        continue;
                    }
                    Ok(batch) => batch,
                    Err(err) => {
                        tracing::error!(consumer, error = %err, "reading the event feed failed");
                        wait = interval;
                        continue;
                    }
                };
                let last = batch.last().map_or(0, |event| event.seq);
                match handler(&batch) {
                    Ok(()) => {
                        failures = 0;
                        wait = Duration::ZERO;
                        if let Err(err) = shop.ack_events(&consumer, last) {
                            // Delivered again after the interval: at least
                            // once, never skipped.
                            tracing::error!(consumer, seq = last, error = %err, "acking events failed");
                            wait = interval;
                        }
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        wait = interval
                            .saturating_mul(1u32 << failures.min(16))
                            .min(MAX_BACKOFF)
                            .max(interval);
                        tracing::warn!(consumer, from = batch[0].seq, to = last, error = %err,
                            retry_in = ?wait, "event handler failed; the batch will be retried");
                    }
                }
            }
        });
        EventPump {
            holder,
            _thread: thread,
        }
    }

    /// The job whose lease the pump of `consumer` holds while it leads
    /// ([`Shop::lease`] tells who does).
    pub fn job(consumer: &str) -> String {
        format!("event pump: {consumer}")
    }

    /// The name this pump takes its lease under: compare it with
    /// [`Lease::holder`](crate::Lease::holder).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops the pump and waits for its thread to end.
    pub fn stop(self) {
        drop(self);
    }
}
