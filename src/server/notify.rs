//! A one-waiter wake-up flag for tasks of one executor.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Set by whoever produced work (output for a connection, a batch for a
/// shard); the one task that consumes it waits on it. Wake-ups coalesce: many
/// `notify` calls before the waiter runs cost one wake-up, which is what
/// batches writes and cross-shard sends per reactor turn.
#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
