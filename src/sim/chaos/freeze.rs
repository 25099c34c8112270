//! A node frozen as a whole (SIGSTOP of the daemon, a paused process):
//! its LocalSet is not polled while frozen, so none of its actors, timers
//! or heartbeats run, while virtual time and the simulated watchdog
//! device go on. A node frozen longer than the device timeout is reset by
//! the harness (its watchdog fires); one thawed earlier resumes with the
//! state it had, every timer that came due meanwhile firing at once.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use tokio::task::LocalSet;

/// The harness's switch of one node incarnation.
#[derive(Clone, Default)]
pub struct Freeze(Rc<RefCell<FreezeState>>);

#[derive(Default)]
struct FreezeState {
    frozen: bool,
    /// The daemon exited (fail stop): never polled again, a thaw or not.
    stopped: bool,
    /// The task's waker seen while frozen: a thaw wakes it.
    waker: Option<Waker>,
}

impl Freeze {
    pub fn freeze(&self) {
        self.0.borrow_mut().frozen = true;
    }

    pub fn thaw(&self) {
        let waker = {
            let mut state = self.0.borrow_mut();
            state.frozen = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub fn is_frozen(&self) -> bool {
        let state = self.0.borrow();
        state.frozen || state.stopped
    }

    /// The daemon is gone for good (it exited: nothing of it runs any
    /// more, its watchdog device is no longer fed, its services run on
    /// until the device resets the node).
    pub fn stop(&self) {
        self.0.borrow_mut().stopped = true;
    }

    /// `local`, polled only while not frozen.
    pub fn wrap(&self, local: LocalSet) -> Freezable {
        Freezable {
            local,
            freeze: self.clone(),
        }
    }
}

/// A node's LocalSet behind its [`Freeze`] switch.
pub struct Freezable {
    local: LocalSet,
    freeze: Freeze,
}

impl Future for Freezable {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        {
            let mut state = this.freeze.0.borrow_mut();
            if state.frozen || state.stopped {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.local).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_frozen_node_runs_nothing_and_catches_up_after_the_thaw() {
        let local = LocalSet::new();
        let ticks = Rc::new(Cell::new(0u32));
        let counted = ticks.clone();
        local.spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                counted.set(counted.get() + 1);
            }
        });
        let freeze = Freeze::default();
        let outer = LocalSet::new();
        outer
            .run_until(async {
                let _node = tokio::task::spawn_local(freeze.wrap(local));
                tokio::time::sleep(Duration::from_millis(350)).await;
                assert_eq!(ticks.get(), 3);
                freeze.freeze();
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                assert_eq!(ticks.get(), 3, "nothing runs while frozen");
                freeze.thaw();
                tokio::time::sleep(Duration::from_millis(10)).await;
                assert!(!freeze.is_frozen());
                assert!(ticks.get() > 3, "the overdue timer fired at the thaw");
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert!(ticks.get() >= 6);
                freeze.stop();
                let stopped_at = ticks.get();
                freeze.thaw();
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                assert_eq!(ticks.get(), stopped_at, "a stopped node stays stopped through a thaw");
                assert!(freeze.is_frozen());
            })
            .await;
    }
}
