use std::time::{Duration, Instant};

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
