//! Priority levels: the reading loops of a group's levels (`ns:{stream}:high`,
//! the stream itself, `ns:{stream}:low`) share its handlers' slots, and take
//! turns at them through a [`Gate`] in a weighted round, so that higher
//! levels go first and lower ones still get their share.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::bus::Priority;

/// Hands turns at a group's handler slots to its priority levels: one
/// level at a time takes its slots; when it has them, the next turn goes to
/// the waiting level whose share of the round is not spent, highest first,
/// and a new round starts when every waiting level has spent its share.
#[derive(Debug, Default)]
pub(super) struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// Whether a level holds the turn.
    held: bool,
    /// Levels waiting for a turn, by [`index`].
    waiting: [VecDeque<oneshot::Sender<Turn>>; 3],
    /// Turns each level has taken in this round.
    taken: [u32; 3],
}

fn index(level: Priority) -> usize {
    match level {
        Priority::High => 0,
        Priority::Normal => 1,
        _ => 2,
    }
}

/// The turn at the handler slots, held while they are taken; the next
/// waiting level gets it when this is dropped.
#[derive(Debug)]
pub(super) struct Turn {
    gate: Option<Arc<Gate>>,
    level: usize,
}

impl Turn {
    /// Keeps the turn for the next entry of the same level when `again`
    /// (the level has another entry to start) and the round would give the
    /// next turn to this level anyway; else passes it on and returns `None`.
    /// Without this, the level that just took its slots would never be
    /// waiting when the turn is passed, and never get two turns in a row.
    pub(super) fn next(self, again: bool) -> Option<Turn> {
        if again {
            if let Some(gate) = &self.gate {
                let mut state = gate.lock();
                if next_level(&mut state, Some(self.level)) == Some(self.level) {
                    state.taken[self.level] += 1;
                    drop(state);
                    return Some(self);
                }
            }
        }
        None
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.pass();
        }
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // Every change is made whole under the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A turn of `level`: queued at once (the call, not the first poll,
    /// takes the place in line), given when the levels before it are done.
    /// A turn dropped before it was used passes on at once.
    pub(super) fn turn(
        self: &Arc<Self>,
        level: Priority,
    ) -> impl std::future::Future<Output = Turn> + Send + 'static {
        let (now, rx) = {
            let mut state = self.lock();
            if state.held {
                let (tx, rx) = oneshot::channel();
                state.waiting[index(level)].push_back(tx);
                (None, Some(rx))
            } else {
                state.held = true;
                state.taken[index(level)] += 1;
                (
                    Some(Turn {
                        gate: Some(self.clone()),
                        level: index(level),
                    }),
                    None,
                )
            }
        };
        async move {
            match (now, rx) {
                (Some(turn), _) => turn,
                // A turn sent is this waiter's; one never sent means the
                // gate is gone, and there is nothing to wait for.
                (None, Some(rx)) => rx.await.unwrap_or(Turn {
                    gate: None,
                    level: 0,
                }),
                (None, None) => Turn {
                    gate: None,
                    level: 0,
                },
            }
        }
    }

    /// Gives the turn to the next waiting level, or frees it.
    fn pass(self: Arc<Self>) {
        let mut state = self.lock();
        loop {
            let Some(next) = next_level(&mut state, None) else {
                state.held = false;
                return;
            };
            state.taken[next] += 1;
            if let Some(tx) = state.waiting[next].pop_front() {
                match tx.send(Turn {
                    gate: Some(self.clone()),
                    level: next,
                }) {
                    Ok(()) => return,
                    // A waiter that was cancelled takes no turn: its turn
                    // is disarmed (passing it here would take the lock
                    // again) and the next waiter gets it.
                    Err(mut unused) => {
                        unused.gate = None;
                    }
                }
            }
        }
    }
}

/// The level the next turn goes to: the highest waiting level with turns
/// left in this round; when every waiting level has spent its share, a new
/// round.
fn next_level(state: &mut GateState, also: Option<usize>) -> Option<usize> {
    let waiting = |state: &GateState, i: usize| also == Some(i) || !state.waiting[i].is_empty();
    if !(0..3).any(|i| waiting(state, i)) {
        return None;
    }
    let left = |state: &GateState, i: usize| state.taken[i] < Priority::ALL[i].weight();
    if let Some(i) = (0..3).find(|&i| waiting(state, i) && left(state, i)) {
        return Some(i);
    }
    // Every waiting level has spent its share: a new round.
    state.taken = [0; 3];
    (0..3).find(|&i| waiting(state, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order in which the levels get turns when all of them always
    /// have an entry waiting.
    #[tokio::test]
    async fn busy_levels_share_turns_six_three_one_highest_first() {
        let gate = Arc::new(Gate::default());
        let first = gate.turn(Priority::High).await;
        // Queued in this order: all of each level before the next level.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for level in Priority::ALL {
            for _ in 0..20 {
                let turn = gate.turn(level);
                let order = order.clone();
                tasks.push(tokio::spawn(async move {
                    let _turn = turn.await;
                    order.lock().unwrap().push(level);
                }));
            }
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let count = |p: Priority, within: &[Priority]| within.iter().filter(|&&l| l == p).count();
        assert_eq!(order.len(), 60);
        // The rest of the first round (the high level held its first
        // turn), highest first; then rounds of 6, 3 and 1 while all wait.
        use Priority::{High, Low, Normal};
        let round = |h: usize, n: usize, l: usize| {
            let mut r = vec![High; h];
            r.extend(vec![Normal; n]);
            r.extend(vec![Low; l]);
            r
        };
        let mut expected = round(5, 3, 1);
        expected.extend(round(6, 3, 1));
        expected.extend(round(6, 3, 1));
        assert_eq!(&order[..expected.len()], &expected[..], "{order:?}");
        assert_eq!(count(Low, &order), 20);
    }
}
