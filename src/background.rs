//! A named background thread that runs until its owner drops it: the shape
//! shared by the [`Reconciler`](crate::Reconciler) and the
//! [`EventPump`](crate::EventPump).

use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};

/// A thread and the channel that stops it. Dropping it drops the sender,
/// which wakes the thread's `recv_timeout` with `Disconnected`, and joins
/// the thread, so the work in hand finishes first.
#[derive(Debug)]
pub(crate) struct Background {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts `body` on a thread called `name`; `body` gets the receiver to
    /// wait on between rounds and should return once it disconnects.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(Receiver<()>) + Send + 'static,
    ) -> Background {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(stopped))
            .unwrap_or_else(|err| panic!("spawning the {name} thread: {err}"));
        Background {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
