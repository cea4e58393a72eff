//! A concurrency limit shared fairly by the runs of an engine: freed slots go round-robin to
//! the runs that are waiting, so a small run is not queued behind every node of a big one
//! (a plain FIFO semaphore would serve the big run's whole backlog first).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// A limit of `n` concurrent holders with per-run round-robin hand-off.
pub(crate) struct FairLimiter {
    inner: Mutex<LimiterState>,
}

struct LimiterState {
    available: usize,
    /// Runs with waiters, in turn order; each with its waiters in arrival order.
    queues: VecDeque<(u64, VecDeque<oneshot::Sender<Permit>>)>,
}

/// A held slot; dropping it hands the slot to the next waiting run, or frees it.
pub(crate) struct Permit {
    limiter: Option<Arc<FairLimiter>>,
}

impl FairLimiter {
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(FairLimiter {
            inner: Mutex::new(LimiterState {
                available: n.max(1),
                queues: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        // The state is consistent after every statement; a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot on behalf of run `run`.
    pub(crate) async fn acquire(self: &Arc<Self>, run: u64) -> Permit {
        let rx = {
            let mut state = self.lock();
            if state.available > 0 && state.queues.is_empty() {
                state.available -= 1;
                return Permit {
                    limiter: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            match state.queues.iter_mut().find(|(r, _)| *r == run) {
                Some((_, waiters)) => waiters.push_back(tx),
                None => state.queues.push_back((run, VecDeque::from([tx]))),
            }
            rx
        };
        match rx.await {
            Ok(permit) => permit,
            // The sender is only dropped with the limiter's state, which `self` keeps alive;
            // treat it as a fresh attempt rather than panic.
            Err(_) => Box::pin(self.acquire(run)).await,
        }
    }

    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                let Some((run, mut waiters)) = state.queues.pop_front() else {
                    state.available += 1;
                    return;
                };
                let tx = waiters.pop_front();
                if !waiters.is_empty() {
                    // This run had its turn: it goes to the back of the line.
                    state.queues.push_back((run, waiters));
                }
                tx
            };
            let Some(tx) = next else { continue };
            let permit = Permit {
                limiter: Some(self.clone()),
            };
            match tx.send(permit) {
                Ok(()) => return,
                // The waiter gave up (its node was cancelled): try the next one.
                Err(mut returned) => {
                    returned.limiter = None;
                }
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter.take() {
            limiter.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_go_round_robin_across_runs() {
        let limiter = FairLimiter::new(1);
        let held = limiter.acquire(1).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Run 1 queues three waiters before run 2 queues one.
        for (run, tag) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1")] {
            let limiter = limiter.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _p = limiter.acquire(run).await;
                order.lock().unwrap().push(tag);
            }));
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a1", "b1", "a2", "a3"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_lose_the_slot() {
        let limiter = FairLimiter::new(1);
        let held = limiter.acquire(1).await;
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), limiter.acquire(2)).await;
        assert!(gave_up.is_err());
        drop(held);
        let again =
            tokio::time::timeout(std::time::Duration::from_secs(1), limiter.acquire(3)).await;
        assert!(
            again.is_ok(),
            "the slot was freed, not handed to the dropped waiter"
        );
    }
}
