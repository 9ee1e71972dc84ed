//! [`Reconciler`]: a background thread that reconciles payments on a timer.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::shop::Shop;

/// A running background reconciler, made by
/// [`Shop::spawn_reconciler`](crate::Shop::spawn_reconciler).
///
/// Every interval it runs [`Shop::reconcile_payments`] and logs the report
/// with `tracing` (at warn level when payments need review, at error level
/// when the round failed). Dropping the handle, or calling
/// [`stop`](Reconciler::stop), stops the thread and waits for the round in
/// progress to finish.
#[derive(Debug)]
#[must_use = "dropping the handle stops the reconciler at once"]
pub struct Reconciler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reconciler {
    pub(crate) fn spawn(shop: Shop, interval: Duration) -> Reconciler {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("liteshop-reconciler".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    match shop.reconcile_payments() {
                        Ok(report) if !report.needs_review.is_empty() => {
                            tracing::warn!(?report, "reconciliation round: payments need review");
                        }
                        Ok(report) => tracing::info!(?report, "reconciliation round"),
                        Err(err) => tracing::error!(error = %err, "reconciliation round failed"),
                    }
                }
            })
            .expect("spawning the reconciler thread");
        Reconciler {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the reconciler and waits for its thread to end.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        // Dropping the sender wakes the thread with `Disconnected`.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        self.shut_down();
    }
}
