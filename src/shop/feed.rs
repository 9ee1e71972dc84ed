//! The order event feed of [`Shop`]: read it, keep consumers' cursors,
//! prune it, and pump it to a handler.

use std::time::Duration;

use super::Shop;
use crate::clock::Timestamp;
use crate::error::{Entity, Result};
use crate::feed::{self, Event, EventPump, MAX_EVENT_BATCH};
use crate::validate;

impl Shop {
    /// Up to `limit` events (1 to [`MAX_EVENT_BATCH`]) with sequence numbers
    /// after `after`, in order. Pass 0 for the start of the feed, then the
    /// last `seq` you processed.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{EventKind, Money, NewProduct, OrderLine};
    ///
    /// let kim = shop.create_user("Kim")?;
    /// shop.host_credit(kim.id, Money::new(30_000)?)?;
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(12_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    /// shop.cancel_order(kim.id, order.id)?;
    ///
    /// let cursor = shop.event_cursor("mailer")?; // 0: never acked
    /// let events = shop.events(cursor, 100)?;
    /// let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    /// assert_eq!(kinds, [EventKind::OrderPlaced, EventKind::OrderCancelled]);
    /// // … deliver them, then:
    /// shop.ack_events("mailer", events[1].seq)?;
    /// assert!(shop.events(shop.event_cursor("mailer")?, 100)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) for `limit`.
    pub fn events(&self, after: u64, limit: u32) -> Result<Vec<Event>> {
        validate::range("limit", limit, 1, MAX_EVENT_BATCH)?;
        self.inner
            .store
            .read_settled(|tx| feed::after(tx, after, limit))
    }

    /// The last sequence number `consumer` acked; 0 for a consumer that
    /// never acked (and is not registered).
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::InvalidCharacter`](crate::Error::InvalidCharacter),
    /// [`Error::EdgeWhitespace`](crate::Error::EdgeWhitespace) for the
    /// consumer's name.
    pub fn event_cursor(&self, consumer: &str) -> Result<u64> {
        let consumer = validate::name(Entity::EventConsumer, consumer)?;
        self.inner
            .store
            .read(|tx| Ok(feed::cursor(tx, &consumer)?.unwrap_or(0)))
    }

    /// Records that `consumer` processed every event up to `upto`,
    /// registering it if new (so [`Shop::prune_events`] keeps what it has
    /// not acked). A cursor never moves backwards: acking less than it is
    /// changes nothing. Returns the cursor after the call.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::InvalidCharacter`](crate::Error::InvalidCharacter),
    /// [`Error::EdgeWhitespace`](crate::Error::EdgeWhitespace),
    /// [`Error::AckBeyondFeed`](crate::Error::AckBeyondFeed) for a sequence
    /// number not given yet.
    pub fn ack_events(&self, consumer: &str, upto: u64) -> Result<u64> {
        let consumer = validate::name(Entity::EventConsumer, consumer)?;
        // PostgreSQL numbers events when the feed is read: every event
        // committed so far has its number before `upto` is checked.
        self.inner
            .store
            .write_settled(&self.inner.clock, move |tx, now| {
                feed::ack(tx, &consumer, upto, now)
            })
    }

    /// Deletes the events created before `before` that every registered
    /// consumer has acked; returns how many. Sequence numbers are never
    /// reused after pruning.
    ///
    /// # Failure
    ///
    /// Only storage errors.
    pub fn prune_events(&self, before: Timestamp) -> Result<usize> {
        self.write_shop(move |tx, _| feed::prune(tx, before))
    }

    /// Registers `consumer` and starts a thread that hands its unacked
    /// events to `handler` in batches (up to 100), in order, and acks each
    /// batch once `handler` returns `Ok`. When the feed is drained it looks
    /// again every `interval`; when `handler` fails it retries the same
    /// batch with a doubling backoff (from `interval`, at most a minute).
    /// Delivery is at least once: de-duplicate by [`Event::seq`]. Dropping
    /// the returned handle stops the thread.
    ///
    /// # Failure
    ///
    /// As [`Shop::ack_events`] when registering the consumer.
    pub fn spawn_event_pump<E: std::fmt::Display>(
        &self,
        consumer: &str,
        handler: impl FnMut(&[Event]) -> Result<(), E> + Send + 'static,
        interval: Duration,
    ) -> Result<EventPump> {
        let name = validate::name(Entity::EventConsumer, consumer)?;
        self.ack_events(&name, 0)?;
        Ok(EventPump::spawn(self.clone(), name, handler, interval))
    }
}
