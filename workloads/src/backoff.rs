//! Application-level retries: exponential backoff with full jitter, bounded
//! in attempts and in total time (as the incident's clients retried).

use rand::Rng;
use serde::Serialize;
use std::time::Duration;

/// How a message is retried before it goes to the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backoff {
    /// Attempts in all (the first send included); at least 1.
    pub max_attempts: u32,
    /// Delay before the second attempt, before jitter.
    #[serde(with = "millis")]
    pub initial: Duration,
    /// Cap on one delay.
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// No new attempt starts later than this after the first one began.
    #[serde(with = "millis")]
    pub max_total: Duration,
}

impl Default for Backoff {
    /// 3 attempts, 200 ms doubling up to 2 s, 15 s in all.
    fn default() -> Self {
        Backoff {
            max_attempts: 3,
            initial: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_total: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1-based): uniform in
    /// `[0, min(max_delay, initial * 2^(attempt-1))]` ("full jitter", so
    /// retrying clients do not move in lockstep).
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        if cap.is_zero() {
            return cap;
        }
        Duration::from_nanos(rng.random_range(0..=cap.as_nanos() as u64))
    }

    /// Whether another attempt may start, `elapsed` after the first began,
    /// after `attempts` attempts, waiting `next_delay` first.
    pub fn may_retry(&self, attempts: u32, elapsed: Duration, next_delay: Duration) -> bool {
        attempts < self.max_attempts.max(1) && elapsed + next_delay <= self.max_total
    }
}

pub(crate) mod millis {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_the_cap() {
        let b = Backoff {
            max_attempts: 10,
            initial: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_total: Duration::from_secs(60),
        };
        let mut rng = rand::rng();
        for attempt in 1..=10u32 {
            let cap = Duration::from_millis((100u64 << (attempt - 1)).min(1000));
            let mut max_seen = Duration::ZERO;
            for _ in 0..200 {
                let d = b.delay(attempt, &mut rng);
                assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
                max_seen = max_seen.max(d);
            }
            // Jitter spreads over the range: some draw lands in its top half.
            assert!(max_seen > cap / 2, "attempt {attempt}: {max_seen:?}");
        }
    }

    #[test]
    fn attempts_and_total_time_are_bounded() {
        let b = Backoff::default();
        assert!(b.may_retry(1, Duration::ZERO, Duration::from_millis(100)));
        assert!(b.may_retry(2, Duration::from_secs(5), Duration::from_secs(1)));
        assert!(!b.may_retry(3, Duration::ZERO, Duration::ZERO));
        assert!(!b.may_retry(1, Duration::from_secs(14), Duration::from_secs(2)));
        let one = Backoff {
            max_attempts: 0,
            ..Backoff::default()
        };
        assert!(!one.may_retry(1, Duration::ZERO, Duration::ZERO));
    }
}
