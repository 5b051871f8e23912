//! Retry delays for the gateways: exponential growth, capped, with full jitter.
//!
//! The notifier and the bank gateway retry forever (an SMS or a payment is never
//! dropped because a gateway was down for a while); this module only says how long
//! to wait before the next try. It owns no timer and sleeps nowhere: the caller
//! sleeps, and tests call [`Backoff::delay`] with a seeded RNG.

use std::time::Duration;

use rand::Rng;

/// How long to wait between attempts.
///
/// Attempt `n` (0 for the wait after the first failure) draws a delay uniformly
/// from `0..=min(delay_ms_max, delay_ms_min × 2ⁿ)` ("full jitter", AWS Architecture
/// Blog, "Exponential Backoff And Jitter"): clients that failed together do not
/// retry together. The ceiling stops growing at `delay_ms_max`, so a gateway that
/// is down for an hour is still tried at least every `delay_ms_max` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first delay, in milliseconds.
    pub delay_ms_min: u64,
    /// The largest ceiling, in milliseconds. Invariant: `delay_ms_min <= delay_ms_max`.
    pub delay_ms_max: u64,
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s.
    fn default() -> Backoff {
        Backoff {
            delay_ms_min: 100,
            delay_ms_max: 30_000,
        }
    }
}

impl Backoff {
    /// The ceiling of the delay before retry `attempt` (0-based), in milliseconds.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        assert!(
            self.delay_ms_min <= self.delay_ms_max,
            "backoff minimum {} ms above its maximum {} ms",
            self.delay_ms_min,
            self.delay_ms_max
        );
        // 2^attempt saturates at u64::MAX for attempt >= 64, and so does the product.
        let factor = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        self.delay_ms_min
            .saturating_mul(factor)
            .min(self.delay_ms_max)
    }

    /// The delay before retry `attempt` (0-based): uniform in `0..=ceiling_ms(attempt)`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling_ms(attempt);
        Duration::from_millis(rng.gen_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn check(backoff: Backoff, attempt: u32, expected_ceiling_ms: u64) {
        assert_eq!(
            backoff.ceiling_ms(attempt),
            expected_ceiling_ms,
            "attempt {attempt} of {backoff:?}"
        );
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let backoff = Backoff {
            delay_ms_min: 100,
            delay_ms_max: 1_000,
        };
        check(backoff, 0, 100);
        check(backoff, 1, 200);
        check(backoff, 2, 400);
        check(backoff, 3, 800);
        check(backoff, 4, 1_000);
        check(backoff, 10, 1_000);
        check(backoff, 63, 1_000);
        check(backoff, 64, 1_000);
        check(backoff, u32::MAX, 1_000);
    }

    #[test]
    fn ceiling_edge_cases() {
        check(
            Backoff {
                delay_ms_min: 0,
                delay_ms_max: 0,
            },
            5,
            0,
        );
        check(
            Backoff {
                delay_ms_min: 0,
                delay_ms_max: 50,
            },
            5,
            0,
        );
        check(
            Backoff {
                delay_ms_min: 7,
                delay_ms_max: 7,
            },
            0,
            7,
        );
        check(
            Backoff {
                delay_ms_min: 7,
                delay_ms_max: 7,
            },
            30,
            7,
        );
        check(
            Backoff {
                delay_ms_min: u64::MAX / 2,
                delay_ms_max: u64::MAX,
            },
            3,
            u64::MAX,
        );
    }

    #[test]
    fn delays_stay_under_the_ceiling_and_are_jittered() {
        let backoff = Backoff {
            delay_ms_min: 10,
            delay_ms_max: 500,
        };
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..20 {
            let ceiling = Duration::from_millis(backoff.ceiling_ms(attempt));
            let delays: Vec<Duration> =
                (0..200).map(|_| backoff.delay(attempt, &mut rng)).collect();
            assert!(
                delays.iter().all(|delay| *delay <= ceiling),
                "attempt {attempt}"
            );
            // Full jitter: the draws spread over the range instead of sitting on the ceiling.
            let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
            assert!(distinct.len() > 5, "attempt {attempt}: {distinct:?}");
        }
    }

    #[test]
    fn delay_is_deterministic_for_a_seed() {
        let backoff = Backoff::default();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..10)
                .map(|attempt| backoff.delay(attempt, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
    }

    #[test]
    #[should_panic(expected = "above its maximum")]
    fn minimum_above_maximum_is_a_programmer_error() {
        Backoff {
            delay_ms_min: 10,
            delay_ms_max: 5,
        }
        .ceiling_ms(0);
    }
}
