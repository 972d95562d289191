//! Exponential back-off with jitter, shared by every component that retries (the AMQP
//! publisher's reconnects, the FHIR poller's requests and rounds).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays that start at `first` and double up to `max`, each jittered so that many
/// instances do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Starts at `first` (at most `max`).
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        Backoff {
            first,
            max,
            step: first,
        }
    }

    /// The delay before the next attempt: what the server asked for (`Retry-After`) when
    /// it did, else between half and all of the current step. The step doubles either way.
    pub fn next_delay(&mut self, server: Option<Duration>) -> Duration {
        let delay = server.unwrap_or_else(|| jitter(self.step));
        self.step = self.step.saturating_mul(2).min(self.max);
        delay
    }

    /// Back to the first step (after a success).
    pub fn reset(&mut self) {
        self.step = self.first;
    }
}

/// Between half and all of `d`.
pub fn jitter(d: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    d.mul_f64(0.5 + (r % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_all() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!((500..=1000).contains(&(j.as_millis() as u64)), "{j:?}");
        }
    }

    #[test]
    fn steps_double_up_to_the_cap_and_reset() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(350));
        let steps: Vec<_> = (0..4).map(|_| b.next_delay(None)).collect();
        for (d, step) in steps.iter().zip([100, 200, 350, 350]) {
            assert!(*d >= ms(step / 2) && *d <= ms(step), "{d:?} for {step}");
        }
        assert_eq!(
            b.next_delay(Some(ms(7))),
            ms(7),
            "the server's delay as given"
        );
        b.reset();
        assert!(b.next_delay(None) <= ms(100));
    }
}
