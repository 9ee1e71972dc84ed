//! The storage layer: opening the file, per-connection pragmas, the pool, the
//! migrations, and the two transaction shapes every flow uses.
//!
//! Domain modules never open connections or transactions themselves: they
//! take a [`Db`] — a write transaction, or a read snapshot — from the
//! caller.

mod batch;
pub(crate) mod failure;
#[cfg(feature = "postgres")]
mod gate;
#[cfg(feature = "postgres")]
mod pg_schema;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod schema;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Timestamp};
use crate::db::{Backend, Db, Row, ToValue};
use crate::error::{Error, Result};
use crate::ids::UserId;
use failure::Classified;

/// The pool of connections to the one database file.
pub(crate) type Pool = r2d2::Pool<SqliteConnectionManager>;

/// How hard SQLite works to make a commit survive a power loss.
///
/// Both settings keep the database consistent after a crash of the process
/// or of the machine; they differ only in what a power loss can take back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `PRAGMA synchronous = FULL`, the default: a call that returned `Ok`
    /// has reached the disk, so a committed charge or payment survives a
    /// power loss. This library holds money; this is the safe choice.
    #[default]
    Full,
    /// `PRAGMA synchronous = NORMAL`: faster commits, but the last moments of
    /// committed writes may be lost on a power loss (never on a mere process
    /// crash). Opt in only if the host can tolerate that, for example because
    /// it can replay them.
    Normal,
}

impl Durability {
    fn pragma_value(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// How writers reach the database.
///
/// SQLite lets one writer in at a time whatever the mode; the choice is how
/// the others wait, and how many writes share a commit. Readers always use
/// the pool. The README's Performance section has the measurements behind
/// the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// One dedicated write connection behind a fair mutex: writers queue on
    /// the mutex, each runs its own transaction and commit. A wait past the
    /// busy timeout is [`Error::Busy`](crate::Error::Busy).
    Dedicated,
    /// Every write takes a pooled connection and waits in SQLite's busy
    /// handler, which polls with growing sleeps: simpler, but its tail
    /// latency under write contention is longer.
    Pooled,
    /// Group commit, the default: writers queue, and the one holding the
    /// write connection runs the writes at the front of the queue back to
    /// back (up to 64), each in its own savepoint of one transaction, and
    /// commits once for all of them. A call returns only after its batch
    /// committed, so `Durability` means what it says; a write that fails is
    /// rolled back to its savepoint without touching the others, and if the
    /// commit fails every write of the batch fails and nothing of it stays.
    /// Alone, a writer runs its own write at once. Under `Durability::Full`
    /// one fsync serves a whole batch. Waiting for a turn is not bounded by
    /// the busy timeout (SQLite's lock, held by another process, still is).
    #[default]
    Batched,
}

/// What [`open`] needs to know.
#[derive(Clone, Debug)]
pub(crate) struct StoreConfig {
    pub(crate) pool_size: u32,
    pub(crate) busy_timeout: Duration,
    pub(crate) durability: Durability,
    pub(crate) write_mode: WriteMode,
    /// WAL pages after which a commit checkpoints; 0 turns that off (an
    /// outside tool such as Litestream checkpoints instead).
    pub(crate) wal_autocheckpoint: u32,
    /// Page cache per connection, in KiB.
    pub(crate) cache_kib: u32,
    /// Bytes of the file each connection reads through a memory map; 0
    /// reads with system calls.
    pub(crate) mmap_bytes: u64,
}

/// The open database: a pool for readers (and writers, in
/// [`WriteMode::Pooled`]) and the writer the mode asks for.
pub(crate) struct SqliteStore {
    pool: Pool,
    writer: Writer,
    busy_timeout: Duration,
}

/// How writes reach the database; see [`WriteMode`].
enum Writer {
    Dedicated(Mutex<Connection>),
    Pooled,
    Batched(batch::Batcher),
}

/// Opens (creating if needed) and migrates the database at `path`, then
/// builds the pool and, if asked for, the dedicated writer.
///
/// The file is checked before anything is written — before WAL mode is set,
/// before any migration: a file from a newer liteshop, a file that is not a
/// database, or another program's database is refused with its bytes
/// untouched.
pub(crate) fn open_sqlite(path: &Path, config: &StoreConfig) -> Result<SqliteStore> {
    let mut conn = Connection::open(path).classified()?;
    conn.busy_timeout(config.busy_timeout).classified()?;
    check_file(&conn, path)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .classified()?;
    // Migrations that rebuild a table run with foreign keys off, as SQLite's
    // recipe for schema changes says; each such migration ends with
    // `foreign_key_check`, so no broken link can be committed.
    conn.pragma_update(None, "foreign_keys", "OFF")
        .classified()?;
    schema::migrations()
        .to_latest(&mut conn)
        .map_err(failure::migration)?;
    configure(&conn, config).classified()?;
    let writer = match config.write_mode {
        WriteMode::Dedicated => Writer::Dedicated(Mutex::new(conn)),
        WriteMode::Pooled => Writer::Pooled,
        WriteMode::Batched => Writer::Batched(batch::Batcher::new(conn, config.busy_timeout)),
    };

    let init_config = config.clone();
    let manager =
        SqliteConnectionManager::file(path).with_init(move |conn| configure(conn, &init_config));
    let pool = r2d2::Pool::builder()
        .max_size(config.pool_size)
        .min_idle(Some(1))
        // The pool opens connections on its own thread; waiting for one is
        // not contention, so a tiny busy timeout must not fail `build()` or a
        // read while a connection is still being opened.
        .connection_timeout(config.busy_timeout.max(MIN_POOL_WAIT))
        // A local file connection does not go stale; skip the probe query.
        .test_on_check_out(false)
        .build(manager)
        .map_err(failure::pool)?;
    Ok(SqliteStore {
        pool,
        writer,
        busy_timeout: config.busy_timeout,
    })
}

/// The shortest wait for a pooled connection, whatever the busy timeout.
const MIN_POOL_WAIT: Duration = Duration::from_secs(1);

/// Refuses, before anything is written, every file this library cannot
/// own: a non-database, a database of a newer liteshop, and any other
/// program's database, whatever its `user_version`.
///
/// A liteshop file carries [`schema::APPLICATION_ID`]. A file without it is
/// accepted only if it is empty (a new database) or its schema is exactly
/// what liteshop wrote at its `user_version` before the marker existed.
fn check_file(conn: &Connection, path: &Path) -> Result<()> {
    let not_a_database = |err: rusqlite::Error| match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::NotADatabase {
            path: path.to_path_buf(),
        },
        _ => Error::from(failure::sqlite(err)),
    };
    let foreign = || {
        Err(Error::NotADatabase {
            path: path.to_path_buf(),
        })
    };
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(not_a_database)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(not_a_database)?;
    if application_id == schema::APPLICATION_ID {
        if version > schema::LATEST_VERSION {
            return Err(Error::SchemaTooNew {
                found: version,
                supported: schema::LATEST_VERSION,
            });
        }
        return Ok(());
    }
    if application_id != 0 {
        return foreign();
    }
    let found = schema_of(conn).map_err(not_a_database)?;
    if version == 0 && found.is_empty() {
        return Ok(()); // a new database
    }
    match usize::try_from(version) {
        Ok(version) if (1..schema::FIRST_MARKED_VERSION).contains(&version) => {
            if found == schema::unmarked_schema(version)? {
                Ok(())
            } else {
                foreign()
            }
        }
        _ => foreign(),
    }
}

/// Every schema object of the database (type, name, table, SQL), in a
/// stable order: the fingerprint of an unmarked liteshop file.
pub(crate) fn schema_of(conn: &Connection) -> rusqlite::Result<Vec<[Option<String>; 4]>> {
    conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")?
        .query_map([], |row| {
            Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
        })?
        .collect()
}

/// The settings every connection gets, the first one and every pooled one.
fn configure(conn: &Connection, config: &StoreConfig) -> rusqlite::Result<()> {
    conn.busy_timeout(config.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", config.durability.pragma_value())?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "wal_autocheckpoint", config.wal_autocheckpoint)?;
    // Negative: a size in KiB rather than in pages.
    conn.pragma_update(None, "cache_size", -i64::from(config.cache_kib))?;
    conn.pragma_update(
        None,
        "mmap_size",
        i64::try_from(config.mmap_bytes).unwrap_or(i64::MAX),
    )?;
    Ok(())
}

impl SqliteStore {
    /// Runs `f` atomically under `BEGIN IMMEDIATE` and returns once its
    /// changes committed; if `f` returns `Err`, its changes are rolled back,
    /// so a failed call changes nothing. In [`WriteMode::Batched`], `f` may
    /// run on another caller's thread, in its own savepoint of a transaction
    /// shared with other writes (hence `Send + 'static`).
    ///
    /// `IMMEDIATE` takes the write lock up front: two writers never both
    /// read a value and then race to write it, and a busy database is
    /// reported before any work is done.
    pub(crate) fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match &self.writer {
            Writer::Dedicated(writer) => {
                // parking_lot's mutex parks waiters and hands over fairly; a
                // wait past the busy timeout is reported like SQLITE_BUSY.
                let mut conn = writer.try_lock_for(self.busy_timeout).ok_or_else(|| {
                    failure::busy("no turn at the writer within the busy timeout")
                })?;
                run_write(&mut conn, f)
            }
            Writer::Pooled => run_write(&mut *self.pool.get().classified()?, f),
            Writer::Batched(batcher) => batcher.write(f),
        }
    }

    /// Runs `f` in one read transaction, so all its statements see one
    /// snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&dyn Db) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get().classified()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .classified()?;
        f(&tx)
    }
}

/// The open shop database: one SQLite file, or a PostgreSQL schema.
pub(crate) enum Store {
    /// One SQLite file.
    Sqlite(SqliteStore),
    /// A schema in PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgStore),
}

/// Whose rows a write reads and then changes: what it must hold so that
/// no concurrent write changes them between its read and its write.
///
/// On SQLite every write holds the one write lock, so the scope changes
/// nothing. On PostgreSQL writes run in parallel: a [`Store::write_user`] write
/// first takes that user's lock, so the writes of one user (their balance,
/// cart, orders, payments, refunds, coupons, idempotency keys) run one at
/// a time while different users' run side by side. A [`Scope::Shop`] write
/// takes no lock: it only inserts rows or changes shared rows (stock,
/// coupon counters, a consumer's cursor, a pending order's state) through
/// guarded single statements, which are safe under any interleaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// One user's rows.
    User(UserId),
    /// Inserts and guarded statements only.
    Shop,
}

/// A write transaction that holds one user's serialisation: the only kind
/// a domain function that reads a user's rows and then changes them
/// (their balance and ledger, cart, orders, payments, refunds, coupons,
/// idempotency keys) takes, and only the store makes one
/// ([`Store::write_user`]). On PostgreSQL it was opened by taking that
/// user's lock before any statement, so no other write of the same user
/// runs between its read and its write; on SQLite every write holds the
/// one write lock anyway. The user is the transaction's, not an argument:
/// a function that changes a user's rows asks [`UserTx::user`], and one
/// that finds the user in a row (a payment's, an order's) checks it with
/// [`UserTx::holds`] before it writes.
pub(crate) struct UserTx<'a> {
    db: &'a dyn Db,
    user: UserId,
}

impl UserTx<'_> {
    /// The user whose serialisation this transaction holds.
    pub(crate) fn user(&self) -> UserId {
        self.user
    }

    /// That `user` is the one this transaction holds, so their rows may be
    /// read and changed in it. Any other user is a bug in the caller — the
    /// write asked for the wrong lock — and changes nothing.
    pub(crate) fn holds(&self, user: UserId) -> Result<()> {
        if user == self.user {
            Ok(())
        } else {
            Err(failure::corrupt(format!(
                "a write holding user {}'s lock reached user {user}'s rows",
                self.user
            )))
        }
    }
}

/// A [`UserTx`] runs every statement a plain transaction does, so a read
/// (or a shop-wide statement) that takes `&dyn Db` takes it too.
impl Db for UserTx<'_> {
    fn backend(&self) -> Backend {
        self.db.backend()
    }
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
        self.db.execute(sql, params)
    }
    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>> {
        self.db.query(sql, params)
    }
    fn query_opt(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Option<Row>> {
        self.db.query_opt(sql, params)
    }
}

/// A transaction opened after every committed event got its number: the
/// only kind the feed's readers (`feed::after`, `feed::last_seq`, …) take,
/// and only the store makes one ([`Store::read_settled`],
/// [`Store::write_settled`]). On SQLite events are numbered as they are
/// inserted; on PostgreSQL a reader that skipped the numbering would miss
/// committed events or see a head behind them.
pub(crate) struct Settled<'a> {
    db: &'a dyn Db,
}

impl<'a> std::ops::Deref for Settled<'a> {
    type Target = dyn Db + 'a;

    fn deref(&self) -> &Self::Target {
        self.db
    }
}

/// A refusal a write can give without its transaction: a flag in memory
/// says whether to look ([`Precheck::wanted`]), and one read statement
/// decides ([`Precheck::refusal`]). The PostgreSQL store asks when the
/// write's turn comes — on the connection the write is about to use, once
/// it is past the pool's gate, outside any transaction (one round trip
/// instead of a transaction's five or six) — so a write that queued for
/// its turn is checked against what the shop holds when it gets it.
/// A refusal must be one the write itself would give from the same
/// committed rows, in the same order of checks; anything else is left to
/// the write.
#[cfg(feature = "postgres")]
pub(crate) trait Precheck: Send + Sync + 'static {
    /// Whether to run [`Precheck::refusal`] at all: in memory, no statement.
    fn wanted(&self) -> bool;
    /// Runs at most one read statement on `db`; `Some` is the write's
    /// answer, with nothing written, and `None` lets the write run.
    fn refusal(&self, db: &dyn Db, now: Timestamp) -> Result<Option<Error>>;
}

impl Store {
    /// Runs `f` in one write transaction that holds `user`'s serialisation
    /// ([`UserTx`]) and commits. The rules of [`Store::write_shop`] hold.
    pub(crate) fn write_user<T: Send + 'static>(
        &self,
        user: UserId,
        clock: &Arc<dyn Clock>,
        f: impl Fn(&UserTx<'_>, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write(Scope::User(user), clock, move |db, now| {
            f(&UserTx { db, user }, now)
        })
    }

    /// [`Store::write_user`], unless `check` refuses it first (see
    /// [`Precheck`]): on PostgreSQL on the write's own connection right
    /// before its transaction. SQLite never asks: its batched writer
    /// refuses a loser inside a batch with no round trip, and a read from
    /// the pool first was measured slower there (the flash sale's 512
    /// and 2,048 buyers sold out in 31–33 and 135–141 ms without it, 48–56
    /// and 216–245 ms with it, two runs each alternated on 2026-12-05).
    #[cfg(feature = "postgres")]
    pub(crate) fn write_user_unless<T: Send + 'static>(
        &self,
        user: UserId,
        clock: &Arc<dyn Clock>,
        check: impl Precheck,
        f: impl Fn(&UserTx<'_>, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match self {
            Store::Sqlite(_) => {
                drop(check);
                self.write_user(user, clock, f)
            }
            Store::Postgres(store) => {
                let stamp = Arc::clone(clock);
                store.write_unless(
                    Scope::User(user),
                    Some((&check, &**clock)),
                    move |db: &dyn Db| f(&UserTx { db, user }, stamp.now()),
                )
            }
        }
    }

    /// Runs `f` in one write transaction that holds no user's lock and
    /// commits: a write that only inserts rows or changes shared rows
    /// through guarded single statements ([`Scope::Shop`]); a domain
    /// function that changes a user's rows cannot be called in it (it takes
    /// a [`UserTx`]). See [`SqliteStore::write`] and `PgStore::write`. `f`
    /// may run more than once (PostgreSQL retries a write its deadlock
    /// detector ended), so it has no effect outside its transaction, and it
    /// gets the time from `clock` read once per run: the instant its
    /// changes are stamped with is the attempt's that made them, never an
    /// earlier one's.
    pub(crate) fn write_shop<T: Send + 'static>(
        &self,
        clock: &Arc<dyn Clock>,
        f: impl Fn(&dyn Db, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write(Scope::Shop, clock, f)
    }

    /// Runs `f` in one write transaction within `scope` and commits.
    fn write<T: Send + 'static>(
        &self,
        scope: Scope,
        clock: &Arc<dyn Clock>,
        f: impl Fn(&dyn Db, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let clock = Arc::clone(clock);
        let f = move |tx: &dyn Db| f(tx, clock.now());
        match self {
            Store::Sqlite(store) => {
                let _ = scope;
                store.write(f)
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(store) => store.write(scope, f),
        }
    }

    /// Runs `f`, a read of the feed, in one read transaction after every
    /// committed event got its number ([`Settled`]).
    pub(crate) fn read_settled<T>(&self, f: impl FnOnce(&Settled<'_>) -> Result<T>) -> Result<T> {
        self.settle_feed()?;
        self.read(|db| f(&Settled { db }))
    }

    /// Runs `f`, a write that reads the feed, as one shop-wide write
    /// ([`Store::write_shop`]) after every event committed before it got
    /// its number ([`Settled`]).
    pub(crate) fn write_settled<T: Send + 'static>(
        &self,
        clock: &Arc<dyn Clock>,
        f: impl Fn(&Settled<'_>, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.settle_feed()?;
        self.write_shop(clock, move |db, now| f(&Settled { db }, now))
    }

    /// Makes every committed event part of the feed before it is read.
    /// SQLite numbers events as they are inserted; PostgreSQL numbers them
    /// here, when the feed is read (or acked, audited, copied).
    fn settle_feed(&self) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Store::Postgres(store) => store.settle_feed(),
        }
    }

    /// How many writes ran again (PostgreSQL only; see `PgStore::write`).
    pub(crate) fn write_retries(&self) -> u64 {
        match self {
            Store::Sqlite(_) => 0,
            #[cfg(feature = "postgres")]
            Store::Postgres(store) => store.retries(),
        }
    }

    /// Runs `f` in one read snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&dyn Db) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite(store) => store.read(f),
            #[cfg(feature = "postgres")]
            Store::Postgres(store) => store.read(f),
        }
    }

    /// Runs `sql`, one read statement, and gives its first row (if any)
    /// to `map`. It takes the statement, not a closure, so a second one
    /// cannot be added: a statement is a snapshot of its own, so
    /// PostgreSQL runs it outside a transaction, one round trip instead
    /// of three.
    pub(crate) fn read_one<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        map: impl Fn(Option<Row>) -> Result<T>,
    ) -> Result<T> {
        let run = |db: &dyn Db| map(db.query_opt(sql, params)?);
        match self {
            Store::Sqlite(store) => store.read(run),
            #[cfg(feature = "postgres")]
            Store::Postgres(store) => store.read_one(run),
        }
    }

    /// An online backup to a new file: SQLite only.
    pub(crate) fn backup(&self, to: &Path, progress: impl FnMut(BackupProgress)) -> Result<()> {
        match self {
            Store::Sqlite(store) => store.backup(to, progress),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => {
                let _ = (to, progress);
                Err(Error::SqliteOnly {
                    what: "an online backup (on PostgreSQL use pg_dump)",
                })
            }
        }
    }
}

/// How far an online backup has come, in database pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupProgress {
    /// Pages copied so far.
    pub copied: u64,
    /// Pages in all.
    pub total: u64,
}

impl SqliteStore {
    /// Copies the database to a new file at `to`, `PAGES_PER_STEP` pages
    /// at a time, reporting progress after each step. The source is read in
    /// one read transaction, so the copy is one consistent snapshot and, in
    /// WAL mode, writers go on meanwhile; between steps the backup lets
    /// other readers of its connection's lock run.
    pub(crate) fn backup(&self, to: &Path, mut progress: impl FnMut(BackupProgress)) -> Result<()> {
        const PAGES_PER_STEP: i32 = 256;
        const STEPS_PER_SYNC: u32 = 16;
        if to.exists() {
            return Err(Error::BackupTargetExists(to.to_path_buf()));
        }
        let mut source = self.pool.get().classified()?;
        // The snapshot: a read transaction held across every step, so the
        // copy never restarts when writers commit, and is consistent.
        let snapshot = source
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .classified()?;
        Connection::query_row(&snapshot, "SELECT count(*) FROM sqlite_schema", [], |_| {
            Ok(())
        })
        .classified()?;
        let mut target = Connection::open(to).classified()?;
        // The copy is made once and checked after: it needs no journal of
        // its own while it is written.
        target
            .pragma_update(None, "journal_mode", "OFF")
            .classified()?;
        target
            .pragma_update(None, "synchronous", "OFF")
            .classified()?;
        {
            let backup = rusqlite::backup::Backup::new(&snapshot, &mut target).classified()?;
            let mut steps = 0u32;
            loop {
                let step = backup.step(PAGES_PER_STEP).classified()?;
                steps += 1;
                if steps.is_multiple_of(STEPS_PER_SYNC) {
                    // Flush the copy a bit at a time: left to the end, a
                    // whole file of dirty pages would be written at once,
                    // and the shop's own commits would wait behind it.
                    std::fs::File::open(to)
                        .and_then(|file| file.sync_data())
                        .map_err(Error::Io)?;
                }
                let at = backup.progress();
                let total = u64::try_from(at.pagecount).unwrap_or(0);
                let left = u64::try_from(at.remaining).unwrap_or(0);
                progress(BackupProgress {
                    copied: total.saturating_sub(left),
                    total,
                });
                match step {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        drop(snapshot);
        // The snapshot kept the WAL from being checkpointed past it, so it
        // grew while the copy ran. Checkpoint it here, on the backup's
        // thread, so no writer's commit inherits that work (a passive
        // checkpoint never blocks writers).
        source
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .classified()?;
        // The copy is a liteshop file like the source: durable, in WAL mode.
        target
            .pragma_update(None, "synchronous", "FULL")
            .classified()?;
        target
            .pragma_update(None, "journal_mode", "WAL")
            .classified()?;
        std::fs::File::open(to)
            .and_then(|file| file.sync_all())
            .map_err(Error::Io)?;
        Ok(())
    }
}

fn run_write<T>(conn: &mut Connection, f: impl FnOnce(&dyn Db) -> Result<T>) -> Result<T> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .classified()?;
    let value = f(&tx)?;
    tx.commit().classified()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{balance, cart, feed, order, payment, product, sales, user};

    /// Every lookup the API makes, by name.
    const HOT_QUERIES: &[(&str, &str)] = &[
        ("user by id", user::SELECT_USER),
        ("order owner", order::SELECT_OWNER),
        ("events of an order", feed::SELECT_ORDER_EVENTS),
        ("best sellers of a window", sales::SELECT_BEST_SELLERS),
        ("user exists", user::SELECT_USER_EXISTS),
        ("balance by user", balance::SELECT_BALANCE),
        ("balance update", balance::UPDATE_BALANCE),
        ("ledger page", balance::SELECT_LEDGER_PAGE),
        ("product by id", product::SELECT_PRODUCT),
        ("product page", product::SELECT_PRODUCT_PAGE),
        ("cart of a user", cart::SELECT_CART),
        ("cart line by id and user", cart::SELECT_LINE),
        (
            "cart line by user and product",
            cart::SELECT_LINE_BY_PRODUCT,
        ),
        ("cart quantity update", cart::UPDATE_QUANTITY),
        ("cart line delete", cart::DELETE_LINE),
        ("cart lines for checkout", cart::SELECT_ORDER_LINES),
        ("stock reservation", product::RESERVE_STOCK),
        ("order by id and user", order::SELECT_ORDER),
        ("order page", order::SELECT_ORDER_PAGE),
        ("items of an order", order::SELECT_ITEMS),
        ("items of a page of orders", order::SELECT_ITEMS_OF_RANGE),
        ("overdue orders", order::SELECT_DUE),
        (
            "overdue orders holding a product",
            order::SELECT_DUE_HOLDING,
        ),
        ("payment by id and user", payment::SELECT_PAYMENT),
        ("payments of an order", payment::SELECT_FOR_ORDER),
        ("unsettled payments", payment::SELECT_UNSETTLED),
        ("money in flight for a user", payment::SELECT_IN_FLIGHT),
        ("refunds of an order", payment::refund::SELECT_FOR_ORDER),
        (
            "refund in flight of a payment",
            payment::refund::SELECT_LIVE_FOR_PAYMENT,
        ),
        ("unsettled refunds", payment::refund::SELECT_UNSETTLED),
        ("lines of a refund", payment::refund::SELECT_LINES),
        ("refundable lines of an order", order::SELECT_REFUNDABLE),
        ("history of a payment", payment::SELECT_EVENTS),
    ];

    fn store(mode: WriteMode) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            pool_size: 4,
            busy_timeout: Duration::from_secs(5),
            durability: Durability::Normal,
            write_mode: mode,
            wal_autocheckpoint: 1000,
            cache_kib: 2_000,
            mmap_bytes: 0,
        };
        let store = open_sqlite(&dir.path().join("store.db"), &config).unwrap();
        (dir, store)
    }

    fn users(store: &SqliteStore) -> i64 {
        store
            .read(|tx| tx.query_row("SELECT count(*) FROM users", &[])?.get(0))
            .unwrap()
    }

    /// Many threads; every third write fails after writing, and every
    /// twentieth panics after writing. In every mode exactly the others stay,
    /// and each panic reaches its own caller.
    #[test]
    fn failed_and_panicking_writes_leave_only_the_others_in_every_mode() {
        for mode in [WriteMode::Batched, WriteMode::Dedicated, WriteMode::Pooled] {
            let (_dir, store) = store(mode);
            let (ok, panicked) = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let store = &store;
                        s.spawn(move || {
                            let (mut ok, mut panicked) = (0, 0);
                            for i in 0..60 {
                                let n = t * 60 + i;
                                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    store.write(move |tx| {
                                        tx.execute("INSERT INTO users (name, created_at) VALUES ('u', ?1)", &[&n])?;
                                        if n % 20 == 0 {
                                            panic!("write {n} panics");
                                        }
                                        if n % 3 == 0 {
                                            return Err(Error::ZeroAmount);
                                        }
                                        Ok(())
                                    })
                                }));
                                match result {
                                    Ok(Ok(())) => ok += 1,
                                    Ok(Err(Error::ZeroAmount)) => {}
                                    Ok(Err(other)) => panic!("unexpected {other:?}"),
                                    Err(_) => panicked += 1,
                                }
                            }
                            (ok, panicked)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
            });
            let expected_ok = (0..480).filter(|n| n % 20 != 0 && n % 3 != 0).count() as i64;
            assert_eq!(
                (ok, panicked),
                (expected_ok, (0..480).filter(|n| n % 20 == 0).count() as i64),
                "{mode:?}"
            );
            assert_eq!(users(&store), expected_ok, "{mode:?}");
        }
    }

    /// A write holding one user's lock changes that user's balance; one
    /// that reaches another user's rows ([`UserTx::holds`]) is refused and
    /// rolled back whole, its own user's change with it.
    #[test]
    fn a_user_transaction_reaches_only_its_own_users_rows() {
        use crate::balance::{Entry, LedgerKind};
        use crate::money::Money;
        let (_dir, sqlite) = store(WriteMode::Batched);
        let store = Store::Sqlite(sqlite);
        let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock);
        let (a, b) = store
            .write_shop(&clock, |tx, now| {
                Ok((
                    user::create(tx, "a", now)?.id,
                    user::create(tx, "b", now)?.id,
                ))
            })
            .unwrap();
        let credit = |won| Entry::new(LedgerKind::HostCredit, Money::from_won(won));
        let after = store
            .write_user(a, &clock, move |tx, now| {
                assert_eq!(tx.user(), a);
                balance::post(tx, credit(500), None, now)
            })
            .unwrap();
        assert_eq!(after, Money::from_won(500));

        let err = store
            .write_user(a, &clock, move |tx, now| {
                balance::post(tx, credit(700), None, now)?;
                tx.holds(b)
            })
            .unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        let (of_a, of_b, entries) = store
            .read(|db| {
                Ok((
                    balance::get(db, a)?,
                    balance::get(db, b)?,
                    db.query_row("SELECT count(*) FROM ledger", &[])?
                        .get::<i64>(0)?,
                ))
            })
            .unwrap();
        assert_eq!(
            (of_a, of_b, entries),
            (Money::from_won(500), Money::ZERO, 1)
        );
    }

    /// A file written by liteshop before the file marker (schema 3) opens,
    /// is migrated with its data, and is marked; the same file with one
    /// extra table is another program's and is refused untouched.
    #[test]
    fn an_unmarked_liteshop_file_migrates_and_a_look_alike_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v3 = |name: &str, extra: &str| {
            let path = dir.path().join(name);
            let mut conn = Connection::open(&path).unwrap();
            schema::migrations().to_version(&mut conn, 3).unwrap();
            conn.execute_batch(
                "INSERT INTO users (name, created_at) VALUES ('Kim', 0);
                 INSERT INTO balances (user_id, amount, updated_at) VALUES (1, 0, 0);
                 INSERT INTO products (name, price, stock, created_at, updated_at)
                     VALUES ('Tea', 100, 7, 0, 0);
                 INSERT INTO orders (user_id, status, total, created_at, expires_at, updated_at)
                     VALUES (1, 'refunded', 200, 0, 0, 0), (1, 'paid', 100, 0, 0, 0),
                            (1, 'pending', 100, 0, 9, 0);
                 INSERT INTO order_items (order_id, product_id, name, unit_price, quantity)
                     VALUES (1, 1, 'Tea', 100, 2), (2, 1, 'Tea', 100, 1), (3, 1, 'Tea', 100, 1);",
            )
            .unwrap();
            conn.execute_batch(extra).unwrap();
            path
        };
        let config = StoreConfig {
            pool_size: 1,
            busy_timeout: Duration::from_secs(1),
            durability: Durability::Normal,
            write_mode: WriteMode::Pooled,
            wal_autocheckpoint: 1000,
            cache_kib: 2_000,
            mmap_bytes: 0,
        };

        let path = v3("old.db", "");
        let store = open_sqlite(&path, &config).unwrap();
        let (id, held, refunded, amounts): (i32, i64, i64, i64) = store
            .read(|tx| {
                let row = tx.query_row(
                    "SELECT (SELECT application_id FROM pragma_application_id),
                            (SELECT held FROM products WHERE id = 1),
                            (SELECT refunded FROM orders WHERE id = 1),
                            (SELECT sum(amount) FROM order_items)",
                    &[],
                )?;
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap();
        assert_eq!(
            (id, held, refunded, amounts),
            (schema::APPLICATION_ID, 2, 200, 400)
        );

        let path = v3("look-alike.db", "CREATE TABLE notes (body TEXT);");
        let bytes = std::fs::read(&path).unwrap();
        let err = open_sqlite(&path, &config).err().unwrap();
        assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    /// Prints `EXPLAIN QUERY PLAN` of every hot query (see it with
    /// `cargo test hot_queries -- --nocapture`) and fails on any full scan.
    #[test]
    fn hot_queries_use_indexes_and_never_scan_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            pool_size: 1,
            busy_timeout: Duration::from_secs(1),
            durability: Durability::Normal,
            write_mode: WriteMode::Pooled,
            wal_autocheckpoint: 1000,
            cache_kib: 2_000,
            mmap_bytes: 0,
        };
        let store = open_sqlite(&dir.path().join("plans.db"), &config).unwrap();
        let conn = store.pool.get().unwrap();
        for (name, sql) in HOT_QUERIES {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            // Parameters stay unbound (NULL): the plan does not depend on them.
            let mut rows = stmt.raw_query();
            let mut plan = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                plan.push(row.get::<_, String>(3).unwrap());
            }
            println!("{name}:\n    {}", plan.join("\n    "));
            assert!(!plan.is_empty(), "{name}: no plan");
            // A subquery's rows (`CO-ROUTINE s`, `MATERIALIZE s`) are
            // read with `SCAN s`: the rows it produced, not a table.
            let subqueries: Vec<String> = plan
                .iter()
                .filter_map(|step| {
                    step.strip_prefix("CO-ROUTINE ")
                        .or_else(|| step.strip_prefix("MATERIALIZE "))
                        .map(|name| format!("SCAN {name}"))
                })
                .collect();
            for step in &plan {
                // `SCAN CONSTANT ROW` is a SELECT with no FROM: no table.
                let scans_a_table = step.starts_with("SCAN")
                    && step != "SCAN CONSTANT ROW"
                    && !subqueries.contains(step);
                assert!(!scans_a_table, "{name} scans: {step}");
            }
        }
    }
}
