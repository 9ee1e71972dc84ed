//! Leases of [`Shop`]: one holder at a time for a named piece of background
//! work, across every process on the database (see [`Lease`]).

use std::time::Duration;

use super::Shop;
use crate::error::{Entity, Result};
use crate::lease::{self, Lease, MAX_NAME_CHARS};
use crate::validate;

impl Shop {
    /// Takes the lease on `job` for `holder` for `length` from now, or
    /// renews it if `holder` holds it already: `true` if `holder` holds it
    /// now, `false` if another holder's lease has not expired. The shop's
    /// own background work ([`Shop::spawn_reconciler`],
    /// [`Shop::spawn_event_pump`]) leads itself this way; this is for work
    /// of your own that N processes should do once.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use std::time::Duration;
    ///
    /// assert!(shop.take_lease("newsletter", "server-a", Duration::from_secs(30))?);
    /// assert!(!shop.take_lease("newsletter", "server-b", Duration::from_secs(30))?);
    /// assert!(shop.take_lease("newsletter", "server-a", Duration::from_secs(30))?); // renewed
    /// shop.release_lease("newsletter", "server-a")?;
    /// assert!(shop.take_lease("newsletter", "server-b", Duration::from_secs(30))?);
    /// assert_eq!(shop.lease("newsletter")?.unwrap().holder, "server-b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::InvalidCharacter`](crate::Error::InvalidCharacter),
    /// [`Error::EdgeWhitespace`](crate::Error::EdgeWhitespace) for `job` or
    /// `holder`; storage errors.
    pub fn take_lease(&self, job: &str, holder: &str, length: Duration) -> Result<bool> {
        let job = validate::name_up_to(Entity::Lease, job, MAX_NAME_CHARS)?;
        let holder = validate::name_up_to(Entity::Lease, holder, MAX_NAME_CHARS)?;
        self.write_shop(move |tx, now| {
            lease::take(tx, &job, &holder, now, now.saturating_add(length))
        })
    }

    /// Gives the lease on `job` back if `holder` holds it, so another
    /// process takes it at once rather than when it expires: `true` if it
    /// did.
    ///
    /// # Failure
    ///
    /// As [`Shop::take_lease`].
    pub fn release_lease(&self, job: &str, holder: &str) -> Result<bool> {
        let job = validate::name_up_to(Entity::Lease, job, MAX_NAME_CHARS)?;
        let holder = validate::name_up_to(Entity::Lease, holder, MAX_NAME_CHARS)?;
        self.write_shop(move |tx, _| lease::release(tx, &job, &holder))
    }

    /// Who holds the lease on `job` and until when; `None` if nobody took
    /// it or it was given back. A lease whose `expires_at` has passed is
    /// free for the taking.
    ///
    /// # Failure
    ///
    /// As [`Shop::take_lease`] for `job`.
    pub fn lease(&self, job: &str) -> Result<Option<Lease>> {
        let job = validate::name_up_to(Entity::Lease, job, MAX_NAME_CHARS)?;
        self.inner.store.read(move |tx| lease::get(tx, &job))
    }

    /// Every lease taken and not given back, by job: which process runs
    /// which background job (the console's "Money in flight" page shows
    /// them). A lease whose `expires_at` has passed is free for the taking.
    ///
    /// # Failure
    ///
    /// Only storage errors.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        self.inner.store.read(lease::all)
    }
}
