//! When to try again: exponential back-off with jitter, and when to give up.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How often and how long an entry is retried after temporary failures.
///
/// After the `n`-th failed attempt the next one is due `first_delay * 2^(n-1)`
/// later, at most `max_delay`, shortened by a random part of up to `jitter`
/// (so that entries queued together do not all retry in the same second).
/// An entry older than `max_age` whose attempt fails again is given up on
/// and moved to `undeliverable/`.
///
/// ```
/// use std::time::Duration;
/// use tls_mailer::outbox::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// // With no jitter drawn (0.0), the nominal delays: 1 min, 2 min, 4 min ...
/// assert_eq!(policy.delay(1, 0.0), Duration::from_secs(60));
/// assert_eq!(policy.delay(3, 0.0), Duration::from_secs(240));
/// // ... capped at 4 hours.
/// assert_eq!(policy.delay(30, 0.0), Duration::from_secs(4 * 3600));
/// // A draw of 1.0 takes off the whole jitter (25 %).
/// assert_eq!(policy.delay(1, 1.0), Duration::from_secs(45));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt (default 1 minute).
    pub first_delay: Duration,
    /// The longest delay between two attempts (default 4 hours).
    pub max_delay: Duration,
    /// How long an entry is kept trying (default 5 days).
    pub max_age: Duration,
    /// The largest fraction taken off a delay at random, from 0.0 to 1.0
    /// (default 0.25).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(4 * 3600),
            max_age: Duration::from_secs(5 * 24 * 3600),
            jitter: 0.25,
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` failed attempts (1 for the first), with
    /// `draw` (from 0.0 to 1.0, clamped) choosing how much of the jitter is
    /// taken off.
    pub fn delay(&self, attempts: u32, draw: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(1000) as i32;
        let seconds = (self.first_delay.as_secs_f64() * 2f64.powi(doublings))
            .min(self.max_delay.as_secs_f64());
        let nominal = Duration::try_from_secs_f64(seconds)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0) * draw.clamp(0.0, 1.0);
        Duration::try_from_secs_f64(nominal.as_secs_f64() * (1.0 - jitter)).unwrap_or(nominal)
    }
}

/// A source of jitter draws in `[0.0, 1.0)`. [`Outbox`](super::Outbox) uses
/// [`Jitter::random`] unless given another (tests pass a fixed one).
pub struct Jitter(Box<dyn FnMut() -> f64 + Send>);

impl std::fmt::Debug for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jitter")
    }
}

impl Jitter {
    /// Draws from `source`; values outside `[0.0, 1.0]` are clamped.
    pub fn from_fn(source: impl FnMut() -> f64 + Send + 'static) -> Self {
        Self(Box::new(source))
    }

    /// Always the same draw: deterministic delays.
    pub fn fixed(draw: f64) -> Self {
        Self::from_fn(move || draw)
    }

    /// Pseudo-random draws (SplitMix64) seeded from the process's random
    /// hasher keys: enough to spread retries, not for cryptography.
    pub fn random() -> Self {
        let mut state = random_u64();
        Self::from_fn(move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        })
    }

    pub(crate) fn draw(&mut self) -> f64 {
        (self.0)()
    }
}

/// 64 random bits: std's hasher keys are random per process, and each
/// [`std::hash::RandomState`] differs; the time and the process id are mixed
/// in as well.
pub(crate) fn random_u64() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(elapsed.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_minute_up_to_four_hours() {
        let policy = RetryPolicy::default();
        let minutes: Vec<u64> = (1..=10)
            .map(|attempt| policy.delay(attempt, 0.0).as_secs() / 60)
            .collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 64, 128, 240, 240]);
        assert_eq!(policy.delay(0, 0.0), Duration::from_secs(60));
        assert_eq!(policy.delay(u32::MAX, 0.0), Duration::from_secs(4 * 3600));
    }

    #[test]
    fn jitter_only_shortens_and_is_deterministic_for_a_fixed_draw() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(2, 0.5), Duration::from_secs(105));
        assert_eq!(policy.delay(2, 0.5), policy.delay(2, 0.5));
        assert_eq!(policy.delay(9, 1.0), Duration::from_secs(3 * 3600));
        // Out-of-range draws are clamped, never lengthening past the cap.
        assert_eq!(policy.delay(9, -3.0), Duration::from_secs(4 * 3600));
        assert_eq!(policy.delay(9, 7.0), Duration::from_secs(3 * 3600));
        let mut fixed = Jitter::fixed(0.25);
        assert_eq!(fixed.draw(), 0.25);
    }

    #[test]
    fn random_draws_stay_in_range_and_vary() {
        let mut jitter = Jitter::random();
        let draws: Vec<f64> = (0..1000).map(|_| jitter.draw()).collect();
        assert!(draws.iter().all(|draw| (0.0..1.0).contains(draw)));
        let low = draws.iter().filter(|draw| **draw < 0.5).count();
        assert!((350..650).contains(&low), "{low} of 1000 below 0.5");
    }
}
