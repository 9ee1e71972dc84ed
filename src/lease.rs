//! Leases: one holder at a time for a named piece of background work,
//! across every process that opens the same database — so N servers on one
//! PostgreSQL (or several processes on one SQLite file) reconcile, pump the
//! feed and sweep once, not N times.
//!
//! A lease is a row: the job's name, its holder and the instant it expires.
//! A holder takes it, or renews it, in one guarded upsert that succeeds
//! only if the lease is free, expired, or already its own; it is given
//! back on a clean stop, and a holder that dies simply stops renewing, so
//! another takes over once the lease expires. Times are the shop's clock:
//! machines whose clocks disagree by more than a small part of the lease's
//! length should not share one.
//!
//! A lease is an economy, not the safety net: every job it leads is safe
//! when two run at once (each of their writes re-checks the state it
//! changes under the row's lock), which is what happens if a holder stalls
//! past its expiry while another takes over.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::{Db, Row};
use crate::error::Result;
use crate::shop::Shop;

/// The longest job or holder name, in characters (the table's `CHECK`).
pub(crate) const MAX_NAME_CHARS: usize = 200;

/// Who holds a job's lease, and until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The job's name.
    pub job: String,
    /// The holder's name, as it took the lease.
    pub holder: String,
    /// When it expires unless renewed.
    pub expires_at: Timestamp,
}

/// Takes or renews `job` for `holder` until `until`: `true` if `holder`
/// holds it now.
pub(crate) fn take(
    tx: &dyn Db,
    job: &str,
    holder: &str,
    now: Timestamp,
    until: Timestamp,
) -> Result<bool> {
    Ok(tx
        .query_opt(
            "INSERT INTO leases (job, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (job) DO UPDATE
             SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4
             RETURNING holder",
            &[&job, &holder, &until, &now],
        )?
        .is_some())
}

/// Gives `job` back if `holder` holds it: `true` if it did.
pub(crate) fn release(tx: &dyn Db, job: &str, holder: &str) -> Result<bool> {
    Ok(tx.execute(
        "DELETE FROM leases WHERE job = ?1 AND holder = ?2",
        &[&job, &holder],
    )? == 1)
}

/// The lease on `job`, if anyone took it and has not given it back (it may
/// have expired).
pub(crate) fn get(tx: &dyn Db, job: &str) -> Result<Option<Lease>> {
    tx.query_opt(
        "SELECT job, holder, expires_at FROM leases WHERE job = ?1",
        &[&job],
    )?
    .map(|row| lease_row(&row))
    .transpose()
}

/// Every lease taken and not given back (some may have expired), by job.
pub(crate) fn all(tx: &dyn Db) -> Result<Vec<Lease>> {
    tx.query(
        "SELECT job, holder, expires_at FROM leases ORDER BY job",
        &[],
    )?
    .iter()
    .map(lease_row)
    .collect()
}

/// A lease from a row of `job, holder, expires_at`.
fn lease_row(row: &Row) -> Result<Lease> {
    Ok(Lease {
        job: row.get(0)?,
        holder: row.get(1)?,
        expires_at: row.get(2)?,
    })
}

/// A name no other holder has, on this machine or another: the process id
/// (for the operator) and 64 random bits (std's per-process random hash
/// keys) and a counter (for several holders in one process).
pub(crate) fn new_holder() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let random = RandomState::new().hash_one(std::process::id());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("pid {} #{n} {random:016x}", std::process::id())
}

/// How long a background job's lease lasts when it renews it every
/// `interval`: three rounds (so one slow round does not lose it), at least
/// a second.
pub(crate) fn length_for(interval: Duration) -> Duration {
    interval.saturating_mul(3).max(Duration::from_secs(1))
}

/// A background job's side of its lease: asked before each round whether
/// to run it; logs when it starts and stops leading; gives the lease back
/// when dropped (a clean stop), so another process takes over at once.
pub(crate) struct Led {
    shop: Shop,
    job: String,
    holder: String,
    length: Duration,
    leading: bool,
}

impl Led {
    pub(crate) fn new(shop: Shop, job: String, length: Duration) -> Led {
        Led {
            shop,
            job,
            holder: new_holder(),
            length,
            leading: false,
        }
    }

    /// The name this job's lease is taken under.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process leads the job for the next round: takes or
    /// renews the lease. A storage error counts as not leading (the round
    /// is skipped, and the next one asks again).
    pub(crate) fn leads(&mut self) -> bool {
        let taken = self.shop.take_lease(&self.job, &self.holder, self.length);
        let leads = match taken {
            Ok(leads) => leads,
            Err(err) => {
                tracing::warn!(job = %self.job, error = %err, "could not take or renew the lease; skipping a round");
                false
            }
        };
        if leads != self.leading {
            if leads {
                tracing::info!(job = %self.job, holder = %self.holder, "leading");
            } else {
                tracing::info!(job = %self.job, holder = %self.holder, "another process leads");
            }
            self.leading = leads;
        }
        leads
    }
}

impl Drop for Led {
    fn drop(&mut self) {
        if !self.leading {
            return;
        }
        if let Err(err) = self.shop.release_lease(&self.job, &self.holder) {
            tracing::warn!(job = %self.job, error = %err, "could not give the lease back; it expires on its own");
        }
    }
}
