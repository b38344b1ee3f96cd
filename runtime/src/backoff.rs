//! The one exponential backoff of the runtime: a handler's retries, a
//! publish waiting for Redis to come back, a reader reconnecting.

use std::time::Duration;

/// Delays that double after each failure, from `initial` up to `max`, with
/// optional equal jitter (half fixed, half random) so that workers that
/// failed together do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: bool,
}

impl Backoff {
    /// Doubling from `initial` to `max`, without jitter.
    pub(crate) const fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            jitter: false,
        }
    }

    /// The delay after `failed` failures in a row (1 for the first):
    /// `initial × 2^(failed-1)`, at most `max`.
    pub(crate) fn delay(&self, failed: u32) -> Duration {
        let exp = failed.saturating_sub(1).min(31);
        let full = self
            .initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max);
        if !self.jitter || full.is_zero() {
            return full;
        }
        // Equal jitter: half fixed, half random. ULIDs carry 80 random bits,
        // which spares a dependency on a random number generator.
        let random = (ulid::Ulid::new().random() & 0xFFFF_FFFF) as f64 / u32::MAX as f64;
        full / 2 + full.mul_f64(random / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_first_and_stop_at_the_maximum() {
        let b = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
        let delays: Vec<_> = (1..=7).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [20, 40, 80, 160, 320, 500, 500]);
        assert_eq!(b.delay(0), Duration::from_millis(20));
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn an_initial_delay_that_overflows_gives_the_maximum() {
        let b = Backoff::new(Duration::MAX / 2, Duration::from_secs(1));
        assert_eq!(b.delay(3), Duration::from_secs(1));
    }
}
