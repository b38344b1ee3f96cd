//! How often, and how far apart, a failing handler is tried again.

use std::time::Duration;

use crate::backoff::Backoff;

/// How often, and how far apart, a failing handler is tried on one entry
/// before the entry goes to dead letters.
///
/// The delay before attempt `n + 1` is `backoff × 2^(n-1)`, capped at
/// `max_delay`; with jitter (the default) it is drawn at random from the
/// upper half of that, so that workers that failed together do not retry in
/// step.
///
/// ```
/// use std::time::Duration;
/// use tidings::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .attempts(5)
///     .backoff(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10));
/// assert_eq!(policy.attempts, 5);
/// assert!(policy.delay_after(1) <= Duration::from_millis(200));
/// assert!(policy.delay_after(20) <= Duration::from_secs(10));
/// ```
///
/// A consumer gives it to the handler added last:
///
/// ```text
/// bus.consumer().handler(index_file).retry(RetryPolicy::default().attempts(5)).start().await?;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// Delay after the first failure (default 100 ms).
    pub backoff: Duration,
    /// Longest delay between two attempts (default 30 s).
    pub max_delay: Duration,
    /// Whether delays are randomised (default true).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 4 attempts (3 retries, as `#[handler]` without `retries`), 100 ms
    /// doubling up to 30 s, with jitter.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// One attempt: the first failure is a dead letter.
    pub fn never() -> Self {
        Self::default().attempts(1)
    }

    /// What `#[handler(retries = n)]` means: `n + 1` attempts.
    pub fn from_retries(retries: u32) -> Self {
        Self::default().attempts(retries.saturating_add(1))
    }

    /// Attempts in all, the first included (0 counts as 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Delay after the first failure; doubled after each further one.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Longest delay between two attempts.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Whether delays are randomised.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay after attempt `failed` (1 for the first) failed.
    pub fn delay_after(&self, failed: u32) -> Duration {
        Backoff {
            initial: self.backoff,
            max: self.max_delay,
            jitter: self.jitter,
        }
        .delay(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_stop_at_the_maximum() {
        let p = RetryPolicy::default()
            .backoff(Duration::from_millis(100))
            .max_delay(Duration::from_millis(350))
            .jitter(false);
        let delays: Vec<_> = (1..=4).map(|n| p.delay_after(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        assert_eq!(p.delay_after(u32::MAX), Duration::from_millis(350));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let p = RetryPolicy::default().backoff(Duration::from_millis(100));
        for _ in 0..200 {
            let d = p.delay_after(2);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }

    #[test]
    fn attempts_are_at_least_one() {
        assert_eq!(RetryPolicy::default().attempts(0).attempts, 1);
        assert_eq!(RetryPolicy::from_retries(3).attempts, 4);
        assert_eq!(RetryPolicy::never().attempts, 1);
    }
}
