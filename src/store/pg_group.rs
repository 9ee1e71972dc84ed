//! Group commit on PostgreSQL for the writes that take a row many buyers
//! take at once — a product's stock, its day of sales — so that they stop
//! queueing one commit at a time behind that row's lock.
//!
//! A write that names a [`Lane`] ([`Scope::Grouped`](super::Scope::Grouped)) is
//! handed to that lane's thread. While the thread runs one group, the
//! writes arriving on its lane wait; it then takes them all (up to
//! [`MAX_GROUP`]) into the next group: one `READ COMMITTED` transaction in
//! which each write runs in a savepoint of its own, under its user's lock,
//! and one commit. A hot product's row is locked once per group instead
//! of once per buyer, and its lock is held across one commit for all of
//! them. Each caller gets its result only after the commit that made it
//! durable; a write that failed was rolled back to its savepoint and gets
//! its own error.
//!
//! **Never a deadlock, never a wrong result.** The group's first write
//! takes its locks as any write does, in the one documented order
//! (ARCHITECTURE.md, "Lock order"). Every later write of the group runs
//! with `lock_timeout` at 1 ms: it never waits for a lock another
//! transaction holds while the group holds the earlier writes' locks, so a
//! group can never be part of a wait cycle; a write that would have waited
//! (or that PostgreSQL nevertheless ended as a deadlock or a serialization
//! failure) is rolled back to its savepoint, *bounced*, and its caller runs
//! it again on its own, as an ungrouped write, with the usual retries. A
//! write closure has no effect outside its transaction, so running it in a
//! savepoint first and then again on its own is the retry the store
//! already allows. A group whose commit PostgreSQL refused bounces every
//! write in it; a commit whose outcome is unknown is
//! [`Error::CommitOutcomeUnknown`] for each write it carried.
//!
//! A write waits for its lane at most the busy timeout: if it is still
//! queued then, it is withdrawn (it never runs) and its caller gets
//! [`Error::Busy`], as with SQLite's batched writer.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use super::Lane;
use super::postgres::{Met, PgConn, PgTx, Shared, USER_LOCK, commit_outcome};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::UserId;

/// The most writes one group carries, to bound a group's latency.
pub(crate) const MAX_GROUP: usize = 64;

/// Makes every later statement of the group's transaction give up on a
/// lock after 1 ms instead of waiting for it (`SET LOCAL`: until the
/// transaction ends). Sent outside any savepoint, so a rolled-back write
/// cannot undo it.
const LATER_WRITES_NEVER_WAIT: &str = "SET LOCAL lock_timeout = '1ms'";

/// A write is queued, taken into a group, or withdrawn by its caller.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

/// What the lane hands back to a write's caller.
enum Reply<F, T> {
    /// The write's result, after its group's commit.
    Done(Result<T>),
    /// The write panicked; the panic resumes in its caller.
    Panicked(Box<dyn Any + Send>),
    /// Run it again on its own (see the module's docs).
    Bounced(F),
}

/// What a group's fate means for one of its writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The group committed (or a failed write's own error stands).
    Committed,
    /// Nothing of it committed: its caller runs it on its own.
    Bounce,
    /// No answer to the group's `COMMIT`.
    Unknown,
}

/// A queued write, whatever its closure and result types.
trait Job: Send {
    /// Takes the write into a group unless its caller withdrew it.
    fn claim(&self) -> bool;
    fn user(&self) -> UserId;
    /// Runs the write on `db`; returns whether it returned `Ok`.
    fn run(&mut self, db: &dyn Db) -> bool;
    /// Hands the caller its answer.
    fn finish(self: Box<Self>, fate: Fate);
}

struct Queued<F, T> {
    f: F,
    user: UserId,
    state: Arc<AtomicU8>,
    outcome: Option<std::thread::Result<Result<T>>>,
    reply: Sender<Reply<F, T>>,
}

impl<F, T> Job for Queued<F, T>
where
    F: Fn(&dyn Db) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn claim(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn user(&self) -> UserId {
        self.user
    }

    fn run(&mut self, db: &dyn Db) -> bool {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (self.f)(db)));
        let ok = matches!(outcome, Ok(Ok(_)));
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, fate: Fate) {
        let Queued {
            f, outcome, reply, ..
        } = *self;
        let answer = match (outcome, fate) {
            (Some(Err(payload)), _) => Reply::Panicked(payload),
            (Some(Ok(Err(err))), Fate::Committed | Fate::Unknown) => Reply::Done(Err(err)),
            (Some(Ok(Ok(value))), Fate::Committed) => Reply::Done(Ok(value)),
            (Some(Ok(Ok(_))), Fate::Unknown) => Reply::Done(Err(Error::CommitOutcomeUnknown)),
            (_, Fate::Bounce) | (None, _) => Reply::Bounced(f),
        };
        // The caller waits on the other end until this arrives.
        let _ = reply.send(answer);
    }
}

/// The lanes of one store, each served by a thread of its own. Dropping
/// them ends the threads (once their current group is done).
pub(crate) struct Lanes {
    senders: Vec<Sender<Box<dyn Job>>>,
    timeout: Duration,
}

/// What [`Lanes::write`] came back with.
pub(crate) enum Grouped<F, T> {
    Done(Result<T>),
    /// Not committed in a group: run it on its own.
    Alone(F),
}

impl Lanes {
    /// `count` lanes writing through `shared`'s pool; a write waits for
    /// its lane at most `timeout`.
    pub(crate) fn start(shared: &Arc<Shared>, count: usize, timeout: Duration) -> Result<Lanes> {
        let mut senders = Vec::with_capacity(count);
        for i in 0..count.max(1) {
            let (sender, receiver) = mpsc::channel::<Box<dyn Job>>();
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name(format!("liteshop-lane-{i}"))
                .spawn(move || serve(&shared, &receiver))
                .map_err(Error::Io)?;
            senders.push(sender);
        }
        Ok(Lanes { senders, timeout })
    }

    /// Queues `f`, a write of `user`'s on `lane`, and waits for its group.
    pub(crate) fn write<F, T>(&self, lane: Lane, user: UserId, f: F) -> Grouped<F, T>
    where
        F: Fn(&dyn Db) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let at = usize::try_from(lane.0.unsigned_abs() % self.senders.len() as u64).unwrap_or(0);
        let (reply, answer) = mpsc::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job: Box<dyn Job> = Box::new(Queued {
            f,
            user,
            state: Arc::clone(&state),
            outcome: None,
            reply,
        });
        if let Err(mpsc::SendError(job)) = self.senders[at].send(job) {
            // The lane's thread is gone (it cannot be while the store is
            // open): the job never ran, so it comes back to run alone.
            job.finish(Fate::Bounce);
        }
        let reply = match answer.recv_timeout(self.timeout) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                if state
                    .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Grouped::Done(Err(Error::Busy(
                        "no turn in the write group within the busy timeout".into(),
                    )));
                }
                // Taken into a group: its answer comes when the group ends.
                match answer.recv() {
                    Ok(reply) => reply,
                    Err(_) => return Grouped::Done(Err(Error::WriteNotRun)),
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Grouped::Done(Err(Error::WriteNotRun)),
        };
        match reply {
            Reply::Done(result) => Grouped::Done(result),
            Reply::Panicked(payload) => panic::resume_unwind(payload),
            Reply::Bounced(f) => Grouped::Alone(f),
        }
    }
}

/// A lane's thread: takes every write queued while it ran the last group
/// into the next one.
fn serve(shared: &Shared, receiver: &Receiver<Box<dyn Job>>) {
    while let Ok(first) = receiver.recv() {
        let mut group = Vec::new();
        if first.claim() {
            group.push(first);
        }
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) if job.claim() => group.push(job),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            run_group(shared, group);
        }
    }
}

/// Runs `group` in one transaction and commits; answers every write.
fn run_group(shared: &Shared, group: Vec<Box<dyn Job>>) {
    let bounce_all = |group: Vec<Box<dyn Job>>| {
        for job in group {
            job.finish(Fate::Bounce);
        }
    };
    // A pool that cannot give a connection, or a connection that cannot
    // begin: every write goes back to run on its own, where the store's
    // usual handling (another connection, the busy timeout) applies.
    let Ok(mut conn) = shared.pool.get() else {
        return bounce_all(group);
    };
    let PgConn { client, statements } = &mut *conn;
    let Ok(mut tx) = client.transaction() else {
        return bounce_all(group);
    };
    let mut done: Vec<(Box<dyn Job>, bool)> = Vec::with_capacity(group.len());
    let mut rest = group.into_iter().enumerate();
    let mut broken = false;
    for (i, mut job) in rest.by_ref() {
        let first = i == 0;
        if i == 1 && tx.batch_execute(LATER_WRITES_NEVER_WAIT).is_err() {
            broken = true;
            done.push((job, false));
            break;
        }
        let Ok(savepoint) = tx.savepoint("liteshop_write") else {
            broken = true;
            done.push((job, false));
            break;
        };
        let db = PgTx::new(savepoint, statements);
        let ok = db.execute(USER_LOCK, &[&job.user().get()]).is_ok() && job.run(&db);
        // A later write that met another's lock, or any write PostgreSQL
        // ended as a deadlock or a serialization failure, is bounced.
        let db_met = db.met();
        let bounce = match db_met {
            Met::Nothing => false,
            Met::Lock => !first,
            Met::Conflict => true,
        };
        let savepoint = db.into_inner();
        let control = if ok && !bounce {
            savepoint.commit()
        } else {
            savepoint.rollback()
        };
        if control.is_err() {
            broken = true;
            done.push((job, false));
            break;
        }
        if bounce {
            tracing::debug!(met = ?db_met, "a grouped write met contention; it runs again on its own");
            if db_met == Met::Conflict {
                // The server rolled it back: a retry, as `write` counts them.
                shared.count_retry();
            }
            job.finish(Fate::Bounce);
        } else {
            done.push((job, ok));
        }
    }
    if broken {
        // The transaction is unusable: nothing of it commits.
        drop(tx);
        bounce_all(
            done.into_iter()
                .map(|(job, _)| job)
                .chain(rest.map(|(_, job)| job))
                .collect(),
        );
        return;
    }
    let committed = if done.iter().any(|&(_, ok)| ok) {
        match commit_outcome(tx.commit()) {
            Ok(()) => Fate::Committed,
            Err(Error::CommitOutcomeUnknown) => Fate::Unknown,
            Err(_) => Fate::Bounce,
        }
    } else {
        // Nothing to keep: dropping the transaction rolls it back.
        drop(tx);
        Fate::Committed
    };
    for (job, ok) in done {
        // A write that failed has its own error, whatever the commit did.
        job.finish(if ok { committed } else { Fate::Committed });
    }
}
