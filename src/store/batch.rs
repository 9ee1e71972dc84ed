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
use std::sync::mpsc;

use parking_lot::Mutex;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// The most writes one transaction carries, to bound a batch's latency.
const MAX_BATCH: usize = 64;

/// Hands a job's result to its caller once the batch's fate is known: `None`
/// if it committed, or the error that rolled it back.
type Deliver = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// A queued write. Given the batch's transaction it runs in a savepoint;
/// given `None` (the batch failed before its turn) it does not run. Either
/// way it returns how to deliver its result, and whether the savepoint
/// statements themselves worked (if not, the whole batch is rolled back).
type Job = Box<dyn FnOnce(Option<&Transaction<'_>>) -> (Deliver, rusqlite::Result<()>) + Send>;

/// A queued write and how to wake its caller to lead a batch.
struct Queued {
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
}

enum Outcome<T> {
    NotRun,
    Done(Result<T>),
    Panicked(Box<dyn Any + Send>),
}

impl Batcher {
    /// A batcher writing through `conn`.
    pub(crate) fn new(conn: Connection) -> Batcher {
        Batcher {
            queue: Mutex::new(VecDeque::new()),
            writer: Mutex::new(conn),
        }
    }

    /// Queues `f`, waits for its batch to commit, and returns its result. A
    /// panic in `f` is resumed in the caller.
    pub(crate) fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (sender, receiver) = mpsc::channel::<Message<T>>();
        let wake = {
            let sender = sender.clone();
            Box::new(move || {
                let _ = sender.send(Message::Lead);
            })
        };
        let job: Job = Box::new(move |tx| {
            let (outcome, control) = match tx {
                None => (Outcome::NotRun, Ok(())),
                Some(tx) => run_in_savepoint(tx, f),
            };
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
            (deliver, control)
        });
        self.queue.lock().push_back(Queued { job, wake });
        self.lead();
        loop {
            match receiver.recv() {
                Ok(Message::Lead) => self.lead(),
                Ok(Message::Done(Ok(result))) => return result,
                Ok(Message::Done(Err(payload))) => panic::resume_unwind(payload),
                Err(_) => return Err(Error::WriteNotRun),
            }
        }
    }

    /// If the writer is free, takes it and runs one batch from the front of
    /// the queue; then, having let go, wakes the caller of the write now at
    /// the front to lead the next one. A write queued while the writer was
    /// taken is therefore always reached: by the holder's batch, or by the
    /// caller it wakes.
    fn lead(&self) {
        let Some(mut conn) = self.writer.try_lock() else {
            return;
        };
        let batch: Vec<Job> = {
            let mut queue = self.queue.lock();
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).map(|queued| queued.job).collect()
        };
        if !batch.is_empty() {
            run_batch(&mut conn, batch);
        }
        drop(conn);
        if let Some(next) = self.queue.lock().front() {
            (next.wake)();
        }
    }
}

/// Runs `f` in a savepoint of `tx`, rolling back to it unless `f` returned
/// `Ok`. The second value is the savepoint statements' own result.
fn run_in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> (Outcome<T>, rusqlite::Result<()>) {
    if let Err(err) = tx.execute_batch("SAVEPOINT liteshop_write") {
        return (
            Outcome::Done(Err(Error::from(copy_rusqlite(&err)))),
            Err(err),
        );
    }
    let outcome = match panic::catch_unwind(AssertUnwindSafe(|| f(tx))) {
        Ok(result) => Outcome::Done(result),
        Err(payload) => Outcome::Panicked(payload),
    };
    let control = match outcome {
        Outcome::Done(Ok(_)) => tx.execute_batch("RELEASE liteshop_write"),
        _ => tx.execute_batch("ROLLBACK TO liteshop_write; RELEASE liteshop_write"),
    };
    (outcome, control)
}

/// Runs `batch` in one `BEGIN IMMEDIATE` transaction, commits, and
/// delivers every result. If the transaction cannot start, or a savepoint
/// statement fails, the whole batch is rolled back and every caller gets
/// the error.
fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    let mut delivers = Vec::with_capacity(batch.len());
    let batch_error = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Err(err) => {
            delivers.extend(batch.into_iter().map(|job| job(None).0));
            Some(err)
        }
        Ok(tx) => {
            let mut failed = None;
            for job in batch {
                let (deliver, control) = job(if failed.is_none() { Some(&tx) } else { None });
                delivers.push(deliver);
                if let Err(err) = control {
                    failed.get_or_insert(err);
                }
            }
            match failed {
                // Dropping the transaction rolls the whole batch back.
                Some(err) => Some(err),
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
    Error::from(copy_rusqlite(err))
}

fn copy_rusqlite(err: &rusqlite::Error) -> rusqlite::Error {
    let code = match err {
        rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
        _ => rusqlite::ffi::SQLITE_ERROR,
    };
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(err.to_string()))
}
