use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 2020-01-01T00:00:00Z in milliseconds: no real invocation deadline is earlier. Local emulators may send
/// something that is not a moment (`cargo lambda watch` sends its timeout, 600000): such a value is ignored.
const EARLIEST_PLAUSIBLE_DEADLINE_MS: u64 = 1_577_836_800_000;

/// The moment by which a request must have finished its work. Carried from the HTTP edge (where it is taken
/// from the Lambda invocation deadline or the configured local timeout) through the services into every
/// adapter call, which bounds its waits and statements by [`Deadline::remaining`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
    }

    /// The deadline of a Lambda invocation: `timeout` from now, or the invocation's own deadline (milliseconds
    /// since the Unix epoch) less `margin` when that is sooner.
    pub fn of_invocation(
        timeout: Duration,
        margin: Duration,
        lambda_deadline_ms: Option<u64>,
    ) -> Self {
        let configured = Self::after(timeout);
        let Some(lambda_deadline_ms) =
            lambda_deadline_ms.filter(|ms| *ms > EARLIEST_PLAUSIBLE_DEADLINE_MS)
        else {
            return configured;
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let remaining = Duration::from_millis(lambda_deadline_ms.saturating_sub(now_ms));
        configured.min(Self::after(remaining.saturating_sub(margin)))
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Self) -> Self {
        std::cmp::min(self, other)
    }

    /// Time left, zero once the deadline has passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn instant(&self) -> Instant {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_deadline_has_nothing_remaining() {
        let deadline = Deadline::at(Instant::now() - Duration::from_millis(5));
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }

    #[test]
    fn min_takes_the_earlier_deadline() {
        let soon = Deadline::after(Duration::from_millis(10));
        let later = Deadline::after(Duration::from_secs(10));
        assert_eq!(soon.min(later), soon);
        assert_eq!(later.min(soon), soon);
    }
}
