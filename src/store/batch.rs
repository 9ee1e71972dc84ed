//! The batched writer: group commit by flat combining. A caller queues its
//! write, then tries to take the write connection. Whoever holds it runs
//! one batch from the front of the queue — each write in its own savepoint
//! of one transaction — commits once, hands each caller its result, lets go
//! of the connection, and wakes the caller of the write now at the front to
//! lead the next batch. A caller gets its result only after its batch
//! committed. With no contention a caller runs its own write at once, with
//! no thread hand-off; under contention the queue is served in order, one
//! batch per leader, so no caller serves others for long.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::db::Db;

use crate::error::{Error, Result};

/// The most writes one transaction carries, to bound a batch's latency.
const MAX_BATCH: usize = 64;

/// Hands a job's result to its caller once the batch's fate is known: `None`
/// if it committed, or the error that rolled it back.
type Deliver = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// A queued write. Given the batch's transaction it runs, in a savepoint
/// unless it is alone in its batch; given `None` (the batch failed before
/// its turn) it does not run.
type Job = Box<dyn FnOnce(Option<&Transaction<'_>>, Isolation) -> Ran + Send>;

/// Whether a job shares its transaction with others.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// Others share the transaction: run in a savepoint.
    Savepoint,
    /// Alone: the transaction is the job's own, so a failure rolls it all
    /// back and no savepoint is needed.
    Alone,
}

/// What running a job left.
struct Ran {
    /// How to deliver its result once the batch's fate is known.
    deliver: Deliver,
    /// The savepoint statements' own result; an error rolls the whole batch
    /// back.
    control: rusqlite::Result<()>,
    /// Whether the job's closure returned `Ok`.
    ok: bool,
}

/// A queued write and how to wake its caller to lead a batch.
struct Queued {
    /// Which caller queued it, so a caller whose wait ran out can take it
    /// back out.
    id: u64,
    job: Job,
    wake: Box<dyn Fn() + Send>,
}

/// What a waiting caller is told.
enum Message<T> {
    /// Your write is at the front: take the writer and run a batch.
    Lead,
    /// Your write's batch is over: here is its result.
    Done(std::thread::Result<Result<T>>),
}

/// The queue of writes and the one write connection.
pub(crate) struct Batcher {
    queue: Mutex<VecDeque<Queued>>,
    writer: Mutex<Connection>,
    /// How long a write may wait in the queue before it gives up.
    timeout: Duration,
    next_id: AtomicU64,
}

enum Outcome<T> {
    NotRun,
    Done(Result<T>),
    Panicked(Box<dyn Any + Send>),
}

impl Batcher {
    /// A batcher writing through `conn`, whose writes wait in the queue at
    /// most `timeout` (the busy timeout).
    pub(crate) fn new(conn: Connection, timeout: Duration) -> Batcher {
        Batcher {
            queue: Mutex::new(VecDeque::new()),
            writer: Mutex::new(conn),
            timeout,
            next_id: AtomicU64::new(0),
        }
    }

    /// Queues `f`, waits for its batch to commit, and returns its result. A
    /// panic in `f` is resumed in the caller.
    ///
    /// The wait for a turn is bounded by the busy timeout: if `f` is still
    /// in the queue when it runs out, it is taken out — under the queue's
    /// lock, so no leader can take it into a batch afterwards — and the
    /// caller gets [`Error::Busy`]; `f` never runs. A write a leader already
    /// took into a batch is running: its caller waits for the batch's
    /// result, which is no longer than one batch.
    pub(crate) fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        // Fast path: nobody is waiting and the writer is free, so run in our
        // own transaction at once, then wake whoever queued meanwhile.
        let nobody_waiting = self.queue.lock().is_empty();
        if nobody_waiting && let Some(mut leader) = self.try_lead() {
            return super::run_write(leader.conn(), f);
        }
        let (sender, receiver) = mpsc::channel::<Message<T>>();
        let wake = {
            let sender = sender.clone();
            Box::new(move || {
                let _ = sender.send(Message::Lead);
            })
        };
        let job: Job = Box::new(move |tx, isolation| {
            let (outcome, control) = match (tx, isolation) {
                (None, _) => (Outcome::NotRun, Ok(())),
                (Some(tx), Isolation::Savepoint) => run_in_savepoint(tx, f),
                (Some(tx), Isolation::Alone) => (run_caught(tx, f), Ok(())),
            };
            let ok = matches!(outcome, Outcome::Done(Ok(_)));
            let deliver: Deliver = Box::new(move |batch_error| {
                let result = match (outcome, batch_error) {
                    (Outcome::Panicked(payload), _) => Err(payload),
                    (Outcome::Done(Err(err)), _) => Ok(Err(err)),
                    (Outcome::Done(Ok(value)), None) => Ok(Ok(value)),
                    (Outcome::Done(Ok(_)) | Outcome::NotRun, Some(err)) => Ok(Err(copy_error(err))),
                    (Outcome::NotRun, None) => Ok(Err(Error::WriteNotRun)),
                };
                // The caller waits on the other end until this arrives.
                let _ = sender.send(Message::Done(result));
            });
            Ran {
                deliver,
                control,
                ok,
            }
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.queue.lock().push_back(Queued { id, job, wake });
        let deadline = Instant::now() + self.timeout;
        self.lead();
        let mut queued = true;
        loop {
            let message = if queued {
                match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Err(RecvTimeoutError::Timeout) => {
                        if self.withdraw(id) {
                            // Someone may have been waiting for us to lead.
                            self.wake_next();
                            return Err(super::failure::busy(
                                "no turn at the writer within the busy timeout",
                            ));
                        }
                        // A leader took it into a batch: wait for its end.
                        queued = false;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return Err(Error::WriteNotRun),
                    Ok(message) => message,
                }
            } else {
                match receiver.recv() {
                    Ok(message) => message,
                    Err(_) => return Err(Error::WriteNotRun),
                }
            };
            match message {
                Message::Lead => self.lead(),
                Message::Done(Ok(result)) => return result,
                Message::Done(Err(payload)) => panic::resume_unwind(payload),
            }
        }
    }

    /// Takes the write `id` out of the queue if no leader has taken it yet;
    /// returns whether it did.
    fn withdraw(&self, id: u64) -> bool {
        let mut queue = self.queue.lock();
        match queue.iter().position(|queued| queued.id == id) {
            Some(at) => {
                queue.remove(at);
                true
            }
            None => false,
        }
    }

    /// If the writer is free, takes it and runs one batch from the front of
    /// the queue; then, having let go, wakes the caller of the write now at
    /// the front to lead the next one. A write queued while the writer was
    /// taken is therefore always reached: by the holder's batch, or by the
    /// caller it wakes.
    fn lead(&self) {
        let Some(mut leader) = self.try_lead() else {
            return;
        };
        let batch: Vec<Job> = {
            let mut queue = self.queue.lock();
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).map(|queued| queued.job).collect()
        };
        if !batch.is_empty() {
            run_batch(leader.conn(), batch);
        }
    }

    /// Takes the writer if it is free.
    fn try_lead(&self) -> Option<Leader<'_>> {
        self.writer.try_lock().map(|conn| Leader {
            conn: Some(conn),
            batcher: self,
        })
    }

    /// Wakes the caller of the write at the front of the queue, if any, to
    /// lead the next batch. Called by every holder of the writer after it
    /// lets go, so a write queued meanwhile is never left behind.
    fn wake_next(&self) {
        if let Some(next) = self.queue.lock().front() {
            (next.wake)();
        }
    }
}

/// Holding the writer. Dropping it — normally or while a panic unwinds —
/// releases the writer first and then wakes the next leader, so a write
/// queued meanwhile is never left behind.
struct Leader<'a> {
    conn: Option<MutexGuard<'a, Connection>>,
    batcher: &'a Batcher,
}

impl Leader<'_> {
    fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("the writer is held until drop")
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        drop(self.conn.take());
        self.batcher.wake_next();
    }
}

/// Runs `f` in a savepoint of `tx`, rolling back to it unless `f` returned
/// `Ok`. The second value is the savepoint statements' own result.
fn run_in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&dyn Db) -> Result<T>,
) -> (Outcome<T>, rusqlite::Result<()>) {
    if let Err(err) = tx.execute_batch("SAVEPOINT liteshop_write") {
        return (
            Outcome::Done(Err(Error::from(super::failure::sqlite(copy_rusqlite(
                &err,
            ))))),
            Err(err),
        );
    }
    let outcome = run_caught(tx, f);
    let control = match outcome {
        Outcome::Done(Ok(_)) => tx.execute_batch("RELEASE liteshop_write"),
        _ => tx.execute_batch("ROLLBACK TO liteshop_write; RELEASE liteshop_write"),
    };
    (outcome, control)
}

/// Runs `f`, catching a panic to hand it back to its own caller.
fn run_caught<T>(tx: &Transaction<'_>, f: impl FnOnce(&dyn Db) -> Result<T>) -> Outcome<T> {
    match panic::catch_unwind(AssertUnwindSafe(|| f(tx))) {
        Ok(result) => Outcome::Done(result),
        Err(payload) => Outcome::Panicked(payload),
    }
}

/// Runs `batch` in one `BEGIN IMMEDIATE` transaction, commits, and
/// delivers every result. If the transaction cannot start, or a savepoint
/// statement fails, the whole batch is rolled back and every caller gets
/// the error.
fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    let isolation = if batch.len() == 1 {
        Isolation::Alone
    } else {
        Isolation::Savepoint
    };
    let mut delivers = Vec::with_capacity(batch.len());
    let batch_error = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Err(err) => {
            delivers.extend(batch.into_iter().map(|job| job(None, isolation).deliver));
            Some(err)
        }
        Ok(tx) => {
            let mut failed = None;
            let mut all_ok = true;
            for job in batch {
                let ran = job(failed.is_none().then_some(&tx), isolation);
                delivers.push(ran.deliver);
                all_ok &= ran.ok;
                if let Err(err) = ran.control {
                    failed.get_or_insert(err);
                }
            }
            match failed {
                // Dropping the transaction rolls the whole batch back.
                Some(err) => Some(err),
                // A lone write that failed is rolled back with its
                // transaction; its caller gets its own error.
                None if isolation == Isolation::Alone && !all_ok => None,
                None => tx.commit().err(),
            }
        }
    };
    for deliver in delivers {
        deliver(batch_error.as_ref());
    }
}

/// A fresh copy of a batch's error for each of its callers (rusqlite's
/// error is not `Clone`); `SQLITE_BUSY` stays busy.
fn copy_error(err: &rusqlite::Error) -> Error {
    Error::from(super::failure::sqlite(copy_rusqlite(err)))
}

fn copy_rusqlite(err: &rusqlite::Error) -> rusqlite::Error {
    let code = match err {
        rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
        _ => rusqlite::ffi::SQLITE_ERROR,
    };
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_withdrawn_after_the_timeout_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("batch.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let batcher = Batcher::new(conn, Duration::from_millis(30));
        std::thread::scope(|s| {
            // Hold the writer as a leader would, past the writer's timeout.
            let held = batcher.writer.lock();
            let waiting = s.spawn(|| {
                batcher.write(|tx| {
                    tx.execute("INSERT INTO t VALUES (1)", &[])?;
                    Ok(())
                })
            });
            std::thread::sleep(Duration::from_millis(150));
            drop(held);
            assert!(matches!(waiting.join().unwrap(), Err(Error::Busy(_))));
        });
        // Nothing is queued any more, and the row never appeared.
        assert!(batcher.queue.lock().is_empty());
        let rows: i64 = batcher
            .write(|tx| tx.query_row("SELECT count(*) FROM t", &[])?.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }
}
