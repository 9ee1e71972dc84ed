//! The PostgreSQL store: a pool of connections to one schema, writes that
//! run in parallel yet are as safe as SQLite's single writer, reads in one
//! snapshot.
//!
//! **Isolation.** Every write runs in a `READ COMMITTED` transaction. A
//! write that reads a user's rows and then changes them ([`Store::write_user`])
//! first takes that user's transaction-scoped advisory lock
//! ([`USER_LOCK`]): one user's writes run one at a time, in every
//! connection, process and app server, while different users' writes run
//! side by side. Rows several users share — a product's stock, a coupon's
//! counter, a day's sales, a consumer's cursor, a pending order's state —
//! change only through guarded single statements (`UPDATE … SET stock =
//! stock - n WHERE stock >= n`), which PostgreSQL re-checks against the
//! newest committed row after waiting for its lock. Locks are taken in one
//! order (the user, then orders, then products by id, then sales rows;
//! writers never take the feed's lock), so writes queue instead of
//! deadlocking; a deadlock or serialization failure the server reports
//! anyway is retried, so a write closure may run more than once (it has no
//! effect outside its transaction, and gets the time read for that run).
//! ARCHITECTURE.md gives the whole argument.
//!
//! **The event feed** is numbered when it is read: a write inserts its
//! events with provisional negative numbers and commits without touching
//! anything shared; whoever reads the feed next ([`PgStore::settle_feed`]:
//! `events`, `order_events`, `ack_events`, `event_consumers`, `audit`,
//! `copy`, the event pump) first
//! numbers every committed event still waiting, after the feed's head,
//! with one statement ([`NUMBER_EVENTS`]) in a short transaction of its
//! own, under one lock. Numbers are only ever given to committed events
//! and become visible in the order they are given, so a consumer reading
//! `seq > cursor` never skips one; a numbering takes every waiting event
//! of its snapshot in insertion order, so the events of one order keep the
//! order of its changes. Writers never wait for the feed: its lock and its
//! commit are paid once per read of the feed, not once per write.
//!
//! **Reads** run in `REPEATABLE READ READ ONLY` transactions: one snapshot
//! for every statement of a read, as on SQLite.
//!
//! **A commit whose outcome is unknown** — the connection lost after
//! `COMMIT` was sent — is [`Error::CommitOutcomeUnknown`], never retried.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::types::{IsNull, ToSql as PgToSql, Type, to_sql_checked};
use postgres::{Client, IsolationLevel, NoTls, SimpleQueryMessage, Statement};

use super::failure::{self, Classified, StorageClass, StorageError, corrupt};
use super::gate::Gate;
use super::pg_schema::MIGRATIONS;
use super::{Precheck, Scope};
use crate::clock::Clock;
use crate::db::{Backend, Db, Row, ToValue, Value, ValueRef};
use crate::error::{Error, Result};

/// Takes the lock of user `$1` until the transaction ends: one advisory
/// lock per user and schema, keyed by the schema's hash (high 32 bits) and
/// the user's id (low 32 bits). Two users whose ids differ by a multiple
/// of 2^32 share a lock, which costs waiting, never safety.
pub(crate) const USER_LOCK: &str = "SELECT pg_advisory_xact_lock(
     (hashtext(current_schema())::bigint << 32) | ($1::bigint & 4294967295))";

/// Numbers every committed event still carrying its provisional number
/// (`-nextval('events_pending')`, so from -1 down in insertion order)
/// after the feed's head, and moves the head past them: in a transaction
/// of its own, under one advisory lock per schema (class "LSHP", object
/// the schema's hash), sent as one simple query (one round trip). The lock
/// is taken before the statement that reads the waiting events, so that
/// statement sees every event an earlier numbering took: two numberings
/// never give one event two numbers or leave a gap.
pub(crate) const NUMBER_EVENTS: &str = concat!(
    "BEGIN; ",
    "SELECT pg_advisory_xact_lock(1280526416, hashtext(current_schema())); ",
    "WITH mine AS (
         SELECT seq, row_number() OVER (ORDER BY seq DESC) AS n, count(*) OVER () AS total
         FROM events WHERE seq < 0
     ), head AS (
         UPDATE feed_head SET last = last + (SELECT count(*) FROM mine)
         WHERE EXISTS (SELECT 1 FROM mine)
         RETURNING last
     )
     UPDATE events SET seq = head.last - mine.total + mine.n
     FROM mine, head WHERE events.seq = mine.seq; ",
    "COMMIT"
);

/// How many times [`PgStore::write`] runs a write the server rolled back
/// (a deadlock, a serialization failure) before it returns the error.
const MAX_ATTEMPTS: u32 = 8;

/// Takes the advisory lock a migration of schema `?1` holds: class "LSHQ".
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(1280526417, hashtext($1))";

/// The schema version this library writes on PostgreSQL.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// What opening a PostgreSQL shop needs. No `Debug`: the connection
/// string may carry a password.
#[derive(Clone)]
pub(crate) struct PgConfig {
    /// The connection string, as libpq takes it (a URL or `key=value`
    /// pairs, several hosts included); passed through untouched.
    pub(crate) url: String,
    /// The schema liteshop's tables live in.
    pub(crate) schema: String,
    /// Connections in the pool.
    pub(crate) pool_size: u32,
    /// How long a write waits for the write lock, and a statement for
    /// anything, before it gives up with [`Error::Busy`].
    pub(crate) busy_timeout: Duration,
    /// Refuse a schema without liteshop's tables instead of creating them.
    pub(crate) existing_only: bool,
}

/// Checks a schema name: a plain lower-case SQL identifier, so it never
/// needs quoting or escaping.
pub(crate) fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=63).contains(&name.len())
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// One pooled connection and the statements prepared on it.
pub(crate) struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Opens connections with the schema first on their `search_path`.
struct Manager {
    config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> std::result::Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// The open PostgreSQL store.
pub(crate) struct PgStore {
    pool: r2d2::Pool<Manager>,
    /// Callers wait here, in arrival order, for one of the pool's
    /// connections (r2d2's own wait is not first come, first served).
    gate: Gate,
    /// How long a caller waits at the gate.
    wait: Duration,
    retries: AtomicU64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Connects, checks (and creates or migrates) the schema, and builds the
/// pool. A schema from a newer liteshop, or one holding another program's
/// tables, is refused untouched.
pub(crate) fn open(config: &PgConfig) -> Result<PgStore> {
    if !valid_schema(&config.schema) {
        return Err(Error::InvalidConfig {
            reason: "the PostgreSQL schema is a lower-case identifier of 1 to 63 characters",
        });
    }
    let mut pg: postgres::Config = config.url.parse().map_err(|_| Error::InvalidConfig {
        reason: "the PostgreSQL connection string does not parse",
    })?;
    // The schema is set as a connection option (no SQL is built): every
    // statement of every connection names liteshop's tables unqualified.
    // The write lock's wait is bounded on the connection, once, rather
    // than by one more round trip in every write.
    let options = format!(
        "-c search_path={} -c lock_timeout={}ms",
        config.schema,
        config.busy_timeout.as_millis().max(1)
    );
    pg.options(&options);
    pg.connect_timeout(config.busy_timeout.max(Duration::from_secs(1)));
    migrate(
        &mut pg.connect(NoTls).classified()?,
        &config.schema,
        config.existing_only,
    )?;
    let wait = config.busy_timeout.max(Duration::from_secs(1));
    let pool = r2d2::Pool::builder()
        .max_size(config.pool_size)
        // No ping per checkout: a connection that died idle is found by
        // its call's first statement and replaced (`PgStore::on_connection`).
        .test_on_check_out(false)
        .connection_timeout(wait)
        .build(Manager { config: pg })
        .classified()?;
    Ok(PgStore {
        pool,
        gate: Gate::new(config.pool_size),
        wait,
        retries: AtomicU64::new(0),
    })
}

/// Brings the schema to [`LATEST_VERSION`] in one transaction, under a
/// lock, so two processes opening at once migrate it once.
fn migrate(client: &mut Client, schema: &str, existing_only: bool) -> Result<()> {
    let mut tx = client.transaction().classified()?;
    tx.execute(MIGRATION_LOCK, &[&schema]).classified()?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .classified()?
        .is_some();
    let tables: i64 = tx
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .classified()?
        .get(0);
    let has_version = tx
        .query_opt(
            "SELECT 1 FROM information_schema.tables
             WHERE table_schema = $1 AND table_name = 'liteshop_schema_version'",
            &[&schema],
        )
        .classified()?
        .is_some();
    let version: i64 = if has_version {
        tx.query_one("SELECT version FROM liteshop_schema_version", &[])
            .classified()?
            .get(0)
    } else if tables > 0 {
        return Err(Error::ForeignSchema {
            schema: schema.to_owned(),
        });
    } else if existing_only {
        return Err(Error::ShopMissing {
            target: format!("PostgreSQL schema {schema}"),
        });
    } else {
        if !exists {
            // An identifier checked by `valid_schema`, not a value.
            tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .classified()?;
        }
        tx.batch_execute(
            "CREATE TABLE liteshop_schema_version (
                 one      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                 app      TEXT    NOT NULL CHECK (app = 'liteshop'),
                 version  BIGINT  NOT NULL
             );
             INSERT INTO liteshop_schema_version (app, version) VALUES ('liteshop', 0);",
        )
        .classified()?;
        0
    };
    if version > LATEST_VERSION {
        return Err(Error::SchemaTooNew {
            found: version,
            supported: LATEST_VERSION,
        });
    }
    for (i, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(version.unsigned_abs() as usize)
    {
        tx.batch_execute(migration).classified()?;
        let next = i64::try_from(i + 1).unwrap_or(i64::MAX);
        tx.execute("UPDATE liteshop_schema_version SET version = $1", &[&next])
            .classified()?;
    }
    tx.commit().classified()?;
    Ok(())
}

impl PgStore {
    /// Runs `f` in one `READ COMMITTED` write transaction and commits.
    /// A [`Store::write_user`] write first takes that user's lock
    /// ([`USER_LOCK`]). The events `f` appended wait for their numbers
    /// until the feed is next read ([`PgStore::settle_feed`]).
    ///
    /// A transaction PostgreSQL ended to break a deadlock, or as a
    /// serialization failure, changed nothing: `f` runs again, up to
    /// [`MAX_ATTEMPTS`] times, after a short randomised pause. Any other
    /// error is returned as it is.
    pub(super) fn write<T>(&self, scope: Scope, f: impl Fn(&dyn Db) -> Result<T>) -> Result<T> {
        self.write_unless(scope, None, f)
    }

    /// [`PgStore::write`], unless `check` refuses it first: asked once the
    /// call has its connection (past the gate, so after its wait), and if
    /// it wants to look, its one statement runs there outside any
    /// transaction, as [`PgStore::read_one`]'s does ([`Precheck`]).
    pub(super) fn write_unless<T>(
        &self,
        scope: Scope,
        check: Option<(&dyn Precheck, &dyn Clock)>,
        f: impl Fn(&dyn Db) -> Result<T>,
    ) -> Result<T> {
        self.on_connection(|conn| {
            let PgConn { client, statements } = conn;
            if let Some((check, clock)) = check.filter(|(check, _)| check.wanted()) {
                let db = OneStatement::on(client, statements);
                match check.refusal(&db, clock.now()) {
                    Ok(None) => {}
                    Ok(Some(refusal)) => return Call::Done(Err(refusal)),
                    // A read changes nothing: it may run again elsewhere.
                    Err(err) => return Call::NothingDone(err),
                }
            }
            let mut attempt = 1;
            loop {
                let tx = match client.transaction() {
                    Ok(tx) => tx,
                    Err(err) if attempt == 1 => return Call::NothingDone(Error::from(failure::postgres(err))),
                    Err(err) => return Call::Done(Err(Error::from(failure::postgres(err)))),
                };
                match attempt_write(tx, statements, scope, &f) {
                    Err(err) if attempt < MAX_ATTEMPTS && retryable(&err) => {
                        tracing::debug!(attempt, error = %err, "write rolled back by the server; running it again");
                        self.retries.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(backoff(attempt));
                        attempt += 1;
                    }
                    other => return Call::Done(other),
                }
            }
        })
    }

    /// Numbers every committed event still waiting for its number, if
    /// there is one: run before the feed is read, so a consumer sees every
    /// event committed before its read.
    pub(crate) fn settle_feed(&self) -> Result<()> {
        self.on_connection(|conn| {
            // A simple query: one round trip, nothing prepared.
            match conn
                .client
                .simple_query("SELECT EXISTS (SELECT 1 FROM events WHERE seq < 0)")
            {
                Err(err) => Call::NothingDone(Error::from(failure::postgres(err))),
                Ok(messages) => Call::Done(
                    if messages.iter().any(|message| {
                        matches!(message, SimpleQueryMessage::Row(row) if row.get(0) == Some("t"))
                    }) {
                        number_events(&mut conn.client)
                    } else {
                        Ok(())
                    },
                ),
            }
        })
    }

    /// Runs `call` on a connection from the pool. Connections are not
    /// pinged when checked out (that was one more round trip in every
    /// call); instead, a call that failed having done nothing
    /// ([`Call::NothingDone`]) on a connection found closed — it died while
    /// idle in the pool: a server restart, an idle timeout — runs again on
    /// another, up to the pool's size times. Callers are admitted to the
    /// pool through the [`Gate`], first come first served: at most one
    /// caller per connection gets past it, so the pool's own wait is only
    /// for a connection being (re)made.
    fn on_connection<T>(&self, mut call: impl FnMut(&mut PgConn) -> Call<T>) -> Result<T> {
        let _turn = self
            .gate
            .enter(self.wait)
            .map_err(|err| Error::Busy(StorageError::caused_by(StorageClass::Busy, None, err)))?;
        let mut conn = self.pool.get().classified()?;
        let mut replaced = 0;
        loop {
            match call(&mut conn) {
                Call::Done(result) => return result,
                Call::NothingDone(err) => {
                    if !conn.client.is_closed() || replaced >= self.pool.max_size() {
                        return Err(err);
                    }
                    replaced += 1;
                    tracing::debug!("a pooled PostgreSQL connection had closed; taking another");
                    drop(conn);
                    conn = self.pool.get().classified()?;
                }
            }
        }
    }

    /// How many times a write ran again since the store opened.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs `f`, a read of exactly one statement, on its own: one
    /// statement is one snapshot, so it needs no transaction (and no
    /// `BEGIN`/`COMMIT` round trips). A second statement panics.
    /// Runs `f`, which runs exactly one statement ([`super::Store::read_one`]
    /// passes a single `query_opt`), on a connection outside any
    /// transaction.
    pub(crate) fn read_one<T>(&self, f: impl Fn(&dyn Db) -> Result<T>) -> Result<T> {
        self.on_connection(|conn| {
            let PgConn { client, statements } = conn;
            let db = OneStatement::on(client, statements);
            // A read changes nothing: whatever failed, it may run again.
            match f(&db) {
                Ok(value) => Call::Done(Ok(value)),
                Err(err) => Call::NothingDone(err),
            }
        })
    }

    /// Runs `f` in one read-only snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&dyn Db) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        self.on_connection(|conn| {
            let PgConn { client, statements } = conn;
            let begun = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start();
            let tx = match begun {
                Ok(tx) => tx,
                Err(err) => return Call::NothingDone(Error::from(failure::postgres(err))),
            };
            // Only a failed BEGIN runs the call again, so `f` runs once.
            let f = f.take().expect("a read runs once");
            let db = PgTx {
                tx: RefCell::new(tx),
                statements: RefCell::new(statements),
            };
            Call::Done(f(&db).and_then(|value| {
                db.tx.into_inner().commit().classified()?;
                Ok(value)
            }))
        })
    }
}

/// What a call did on its connection ([`PgStore::on_connection`]).
enum Call<T> {
    /// It finished, either way.
    Done(Result<T>),
    /// It failed before doing anything (its `BEGIN`, or a read): it may run
    /// again on another connection if this one had closed.
    NothingDone(Error),
}

/// One attempt of [`PgStore::write`], in the transaction `tx` it began.
fn attempt_write<T>(
    tx: postgres::Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    scope: Scope,
    f: &impl Fn(&dyn Db) -> Result<T>,
) -> Result<T> {
    let db = PgTx {
        tx: RefCell::new(tx),
        statements: RefCell::new(statements),
    };
    if let Scope::User(user) = scope {
        // Through the statement cache: prepared once per connection.
        db.execute(USER_LOCK, &[&user.get()])?;
    }
    let value = f(&db)?;
    let tx = db.tx.into_inner();
    match tx.commit() {
        Ok(()) => Ok(value),
        // The server refused the commit and rolled back: a definite
        // answer (an integrity violation, a serialization failure).
        Err(err) if err.code().is_some_and(|code| rolled_back(code.code())) => {
            Err(Error::from(failure::postgres(err)))
        }
        // Anything else once COMMIT was sent — the connection lost, the
        // server shutting down (a fast shutdown may end a backend right
        // after its commit record reached the disk) — leaves the
        // outcome unknown.
        Err(err) => {
            tracing::error!(error = %err, "no answer to COMMIT: its outcome is unknown");
            Err(StorageError::caused_by(StorageClass::CommitOutcomeUnknown, None, err).into())
        }
    }
}

/// Runs [`NUMBER_EVENTS`]. Any number of readers may call it at once: the
/// first numbers every committed event, the rest find nothing to do (and,
/// having written nothing, wait for no disk).
fn number_events(client: &mut Client) -> Result<()> {
    match client.batch_execute(NUMBER_EVENTS) {
        Ok(()) => Ok(()),
        Err(err) => {
            // A failed statement leaves the block open and aborted.
            let _ = client.batch_execute("ROLLBACK");
            Err(Error::from(failure::postgres(err)))
        }
    }
}

/// Whether `err` is PostgreSQL ending a transaction that changed nothing
/// and may simply run again: a deadlock (SQLSTATE 40P01) or a
/// serialization failure (40001).
fn retryable(err: &Error) -> bool {
    matches!(err, Error::Busy(cause) if cause.class() == StorageClass::Retryable)
}

/// The pause before attempt `attempt + 1`: a random share of a window
/// that doubles each time from 1 ms, so writes that deadlocked each other
/// do not meet again in step.
fn backoff(attempt: u32) -> Duration {
    let window = 1u64 << attempt.min(8);
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    Duration::from_micros(window * 1_000 * (500 + nanos % 500) / 1_000)
}

/// Whether an error answering `COMMIT` means the transaction was rolled
/// back: SQLSTATE class 23 (integrity constraint violation) or 40
/// (transaction rollback).
fn rolled_back(sqlstate: &str) -> bool {
    sqlstate.starts_with("23") || sqlstate.starts_with("40")
}

/// A PostgreSQL transaction (or one statement on its own) as a [`Db`]:
/// statements prepared once per connection, `?N` placeholders rewritten to
/// `$N`, values bound through [`PgValue`].
struct PgTx<'a, C = postgres::Transaction<'a>> {
    tx: RefCell<C>,
    statements: RefCell<&'a mut HashMap<String, Statement>>,
}

/// What a [`PgTx`] runs its statements on.
trait Runs {
    fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error>;
    fn execute(
        &mut self,
        statement: &Statement,
        params: &[&(dyn PgToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error>;
    fn query(
        &mut self,
        statement: &Statement,
        params: &[&(dyn PgToSql + Sync)],
    ) -> std::result::Result<Vec<postgres::Row>, postgres::Error>;
}

impl Runs for postgres::Transaction<'_> {
    fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        postgres::Transaction::prepare(self, sql)
    }
    fn execute(
        &mut self,
        statement: &Statement,
        params: &[&(dyn PgToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error> {
        postgres::Transaction::execute(self, statement, params)
    }
    fn query(
        &mut self,
        statement: &Statement,
        params: &[&(dyn PgToSql + Sync)],
    ) -> std::result::Result<Vec<postgres::Row>, postgres::Error> {
        postgres::Transaction::query(self, statement, params)
    }
}

/// A connection outside any transaction that runs one read statement, a
/// snapshot of its own: [`PgStore::read_one`].
struct OneStatement<'a> {
    client: &'a mut Client,
    ran: bool,
}

impl<'a> OneStatement<'a> {
    /// `client`, outside any transaction, as a [`Db`] for one statement,
    /// through the connection's statement cache.
    fn on(
        client: &'a mut Client,
        statements: &'a mut HashMap<String, Statement>,
    ) -> PgTx<'a, OneStatement<'a>> {
        PgTx {
            tx: RefCell::new(OneStatement { client, ran: false }),
            statements: RefCell::new(statements),
        }
    }

    fn once(&mut self) {
        // `Store::read_one` runs one `query_opt` and nothing else.
        debug_assert!(!self.ran, "`read_one` ran a second statement");
        self.ran = true;
    }
}

impl Runs for OneStatement<'_> {
    fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        self.client.prepare(sql)
    }
    fn execute(
        &mut self,
        _: &Statement,
        _: &[&(dyn PgToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error> {
        unreachable!("`read_one` runs a read, never a change")
    }
    fn query(
        &mut self,
        statement: &Statement,
        params: &[&(dyn PgToSql + Sync)],
    ) -> std::result::Result<Vec<postgres::Row>, postgres::Error> {
        self.once();
        self.client.query(statement, params)
    }
}

impl<C: Runs> PgTx<'_, C> {
    fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .tx
            .borrow_mut()
            .prepare(&dollar_placeholders(sql))
            .classified()?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `?1` → `$1`: the one placeholder spelling both engines' SQL is written
/// in, turned into PostgreSQL's.
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The parameters as values PostgreSQL binds, borrowed.
fn values<'a>(params: &'a [&'a dyn ToValue]) -> Vec<PgValue<'a>> {
    params
        .iter()
        .map(|param| PgValue(param.to_value()))
        .collect()
}

impl<C: Runs> Db for PgTx<'_, C> {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
        let statement = self.statement(sql)?;
        let values = values(params);
        let refs: Vec<&(dyn PgToSql + Sync)> = values.iter().map(|v| v as _).collect();
        let changed = self
            .tx
            .borrow_mut()
            .execute(&statement, &refs)
            .classified()?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        let values = values(params);
        let refs: Vec<&(dyn PgToSql + Sync)> = values.iter().map(|v| v as _).collect();
        self.tx
            .borrow_mut()
            .query(&statement, &refs)
            .classified()?
            .iter()
            .map(row)
            .collect()
    }

    fn query_opt(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// A PostgreSQL row as the domain reads it: integers, text and booleans
/// (as 0 or 1), like SQLite's.
fn row(row: &postgres::Row) -> Result<Row> {
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            Ok(match *ty {
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(i)
                    .classified()?
                    .map_or(Value::Null, Value::Integer),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)
                    .classified()?
                    .map_or(Value::Null, |v| Value::Integer(v.into())),
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)
                    .classified()?
                    .map_or(Value::Null, |v| Value::Integer(v.into())),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)
                    .classified()?
                    .map_or(Value::Null, |v| Value::Integer(v.into())),
                Type::FLOAT8 => row
                    .try_get::<_, Option<f64>>(i)
                    .classified()?
                    .map_or(Value::Null, Value::Real),
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row
                    .try_get::<_, Option<String>>(i)
                    .classified()?
                    .map_or(Value::Null, Value::Text),
                _ => {
                    return Err(corrupt(format!("column {i}: an unsupported type {ty}")));
                }
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Row)
}

/// A value bound to a PostgreSQL parameter of whatever type the server
/// inferred for it: an integer binds to `bigint`, `integer`, `smallint`
/// (checked) or `boolean` (0 or 1); text to any text type; NULL to
/// anything. Any other pairing is an error, which shows a statement whose
/// types the two engines read differently.
#[derive(Debug)]
struct PgValue<'a>(ValueRef<'a>);

impl PgToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self.0, ty) {
            (ValueRef::Null, _) => Ok(IsNull::Yes),
            (ValueRef::Integer(i), &Type::INT8) => i.to_sql(ty, out),
            (ValueRef::Integer(i), &Type::INT4) => i32::try_from(i)?.to_sql(ty, out),
            (ValueRef::Integer(i), &Type::INT2) => i16::try_from(i)?.to_sql(ty, out),
            (ValueRef::Integer(i), &Type::BOOL) => (i != 0).to_sql(ty, out),
            (ValueRef::Integer(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().to_sql(ty, out),
            (ValueRef::Text(t), &Type::TEXT | &Type::VARCHAR | &Type::NAME | &Type::BPCHAR) => {
                t.to_sql(ty, out)
            }
            (ValueRef::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (value, ty) => Err(format!("cannot bind {value:?} to a {ty} parameter").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}
