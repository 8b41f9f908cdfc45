//! Waiting for capacity (the specification's step 3, priority by the user's MOR under load).
//!
//! When every live provider of a model is at its bids' capacity, a request waits in the model's
//! queue instead of being refused at once. The queue is ordered by [`queue_order`]: the user's
//! staked MOR, highest first, ties by arrival. Only the request at the head tries to book a
//! provider; the others wait for it to be served or to give up, so a request that arrives later
//! with more stake is served first, and one that arrives while others wait never jumps them. A
//! request waits at most the configured time (and never past its own deadline), then is refused
//! with `Retry-After`.
//!
//! The queue lives in the router's memory: it orders the requests waiting on this process.

use std::{
    cmp::Ordering,
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use alloy::primitives::{B256, U256};
use tokio::sync::{Notify, futures::Notified};

/// How often the head of a queue tries again without being woken: slots also free up when
/// sessions expire, which nothing announces.
pub(crate) const HEAD_POLL: Duration = Duration::from_millis(250);

/// A waiting request's place: its user's stake and its arrival number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    /// The user's staked MOR (wei) when the request arrived.
    pub(crate) stake: U256,
    /// Arrival order across the router (lower came first).
    pub(crate) arrival: u64,
}

/// The queue's order: more stake first, then earlier arrival.
pub(crate) fn queue_order(a: &Place, b: &Place) -> Ordering {
    b.stake.cmp(&a.stake).then(a.arrival.cmp(&b.arrival))
}

impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        queue_order(self, other)
    }
}

impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What the queues hold.
#[derive(Debug, Default)]
struct State {
    next_arrival: u64,
    waiting: HashMap<B256, BTreeSet<Place>>,
    /// Requests that waited and were assigned, and that waited and were refused.
    served_after_wait: u64,
    timed_out: u64,
    refused_full: u64,
}

/// The per-model queues of requests waiting for capacity, with their figures for `/metrics`.
#[derive(Debug)]
pub(crate) struct WaitQueues {
    state: Mutex<State>,
    /// Woken whenever a place frees up (a session ends) or the queues change.
    changed: Notify,
    /// Most requests waiting at once, over all models; more are refused at once.
    max_depth: usize,
}

/// The queues' figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QueueFigures {
    /// Requests waiting now, per model.
    pub(crate) depth: Vec<(B256, usize)>,
    /// Requests that waited and then were assigned.
    pub(crate) served_after_wait: u64,
    /// Requests refused after waiting the whole time.
    pub(crate) timed_out: u64,
    /// Requests refused at once because the queues were full.
    pub(crate) refused_full: u64,
}

/// A request's place in its model's queue; dropping it leaves the queue (and wakes the others).
#[derive(Debug)]
pub(crate) struct Ticket {
    queues: Arc<WaitQueues>,
    model: B256,
    place: Place,
}

impl WaitQueues {
    /// Empty queues holding at most `max_depth` requests in all.
    pub(crate) fn new(max_depth: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            max_depth,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few counters and sets, each update complete before the lock is let go.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether requests are waiting for `model` (a new request then queues behind them).
    pub(crate) fn is_waiting(&self, model: B256) -> bool {
        self.state()
            .waiting
            .get(&model)
            .is_some_and(|q| !q.is_empty())
    }

    /// Takes a place in `model`'s queue for a user with `stake`, or `None` when the queues
    /// already hold `max_depth` requests.
    pub(crate) fn join(self: &Arc<Self>, model: B256, stake: U256) -> Option<Ticket> {
        let place = {
            let mut state = self.state();
            let depth: usize = state.waiting.values().map(BTreeSet::len).sum();
            if depth >= self.max_depth {
                state.refused_full += 1;
                return None;
            }
            let place = Place {
                stake,
                arrival: state.next_arrival,
            };
            state.next_arrival += 1;
            state.waiting.entry(model).or_default().insert(place);
            place
        };
        self.changed.notify_waiters();
        Some(Ticket {
            queues: Arc::clone(self),
            model,
            place,
        })
    }

    /// Resolves at the next change of the queues (a session ended, a request left). Enable it
    /// (`Notified::enable`) before looking at a queue, so that no change in between is missed.
    pub(crate) fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// Wakes the waiting requests: a provider's place may have freed up.
    pub(crate) fn wake(&self) {
        self.changed.notify_waiters();
    }

    /// The figures for `/metrics`.
    pub(crate) fn figures(&self) -> QueueFigures {
        let state = self.state();
        let mut depth: Vec<(B256, usize)> = state
            .waiting
            .iter()
            .map(|(model, q)| (*model, q.len()))
            .collect();
        depth.sort();
        QueueFigures {
            depth,
            served_after_wait: state.served_after_wait,
            timed_out: state.timed_out,
            refused_full: state.refused_full,
        }
    }
}

impl Ticket {
    /// Whether this request is first in its model's queue.
    pub(crate) fn is_head(&self) -> bool {
        self.queues
            .state()
            .waiting
            .get(&self.model)
            .and_then(|q| q.first())
            == Some(&self.place)
    }

    /// Leaves the queue as served (assigned after waiting) or as timed out.
    pub(crate) fn finish(self, assigned: bool) {
        let mut state = self.queues.state();
        if assigned {
            state.served_after_wait += 1;
        } else {
            state.timed_out += 1;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        {
            let mut state = self.queues.state();
            if let Some(q) = state.waiting.get_mut(&self.model) {
                q.remove(&self.place);
                if q.is_empty() {
                    state.waiting.remove(&self.model);
                }
            }
        }
        self.queues.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(stake: u64, arrival: u64) -> Place {
        Place {
            stake: U256::from(stake),
            arrival,
        }
    }

    #[test]
    fn more_stake_goes_first_then_earlier_arrival() {
        let mut places = vec![place(5, 0), place(50, 3), place(5, 1), place(50, 2)];
        places.sort_by(queue_order);
        assert_eq!(
            places,
            vec![place(50, 2), place(50, 3), place(5, 0), place(5, 1)]
        );
    }

    #[test]
    fn a_later_request_with_more_stake_becomes_the_head() {
        let queues = Arc::new(WaitQueues::new(8));
        let model = B256::repeat_byte(1);
        let low = queues.join(model, U256::from(1)).expect("room");
        assert!(low.is_head());
        let high = queues.join(model, U256::from(100)).expect("room");
        assert!(high.is_head());
        assert!(!low.is_head());
        drop(high);
        assert!(low.is_head());
    }

    #[test]
    fn queues_are_per_model_and_leaving_empties_them() {
        let queues = Arc::new(WaitQueues::new(8));
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let in_a = queues.join(a, U256::from(1)).expect("room");
        let in_b = queues.join(b, U256::from(100)).expect("room");
        assert!(in_a.is_head() && in_b.is_head());
        assert!(queues.is_waiting(a));
        assert_eq!(queues.figures().depth, vec![(a, 1), (b, 1)]);
        in_a.finish(true);
        in_b.finish(false);
        let figures = queues.figures();
        assert!(figures.depth.is_empty());
        assert!(!queues.is_waiting(a));
        assert_eq!((figures.served_after_wait, figures.timed_out), (1, 1));
    }

    #[test]
    fn a_full_queue_refuses_and_counts_it() {
        let queues = Arc::new(WaitQueues::new(2));
        let model = B256::repeat_byte(1);
        let _first = queues.join(model, U256::from(1)).expect("room");
        let _second = queues
            .join(B256::repeat_byte(2), U256::from(1))
            .expect("room");
        assert!(queues.join(model, U256::from(1_000)).is_none());
        assert_eq!(queues.figures().refused_full, 1);
    }

    #[tokio::test]
    async fn leaving_wakes_the_next() {
        let queues = Arc::new(WaitQueues::new(8));
        let model = B256::repeat_byte(1);
        let first = queues.join(model, U256::from(10)).expect("room");
        let second = queues.join(model, U256::from(1)).expect("room");
        let shared = Arc::clone(&queues);
        let waiter = tokio::spawn(async move {
            loop {
                let changed = shared.changed();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if second.is_head() {
                    break;
                }
                changed.await;
            }
        });
        tokio::task::yield_now().await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken within 5 s")
            .expect("task");
    }
}
