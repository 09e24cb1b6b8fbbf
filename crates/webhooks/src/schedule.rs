//! When to try again: the documented schedule (5 s, 30 s, 2 min, 10 min, 1 h, 6 h after each
//! failure; 7 attempts in all), never earlier than `Retry-After` asks, with a little jitter that
//! only ever delays.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub const RETRY_DELAYS: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(6 * 60 * 60),
];

/// The first attempt plus six retries.
pub const MAX_ATTEMPTS: u32 = 1 + RETRY_DELAYS.len() as u32;

/// Longest `Retry-After` we honour; beyond it the receiver is treated as failing on our schedule.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    RetryAt(DateTime<Utc>),
    DeadLetter,
}

/// After `attempts_made` failed attempts (1-based: 1 after the first failure), when to retry.
/// `jitter` is a fraction in [0, 1] of `max_jitter_pct` percent added to the delay.
pub fn after_failure(
    attempts_made: u32,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
    max_jitter_pct: u32,
    jitter: f64,
) -> Next {
    let Some(base) = attempts_made.checked_sub(1).and_then(|i| RETRY_DELAYS.get(i as usize)) else {
        return Next::DeadLetter;
    };
    let jitter = jitter.clamp(0.0, 1.0) * f64::from(max_jitter_pct.min(50)) / 100.0;
    let scheduled = base.mul_f64(1.0 + jitter);
    let delay = match retry_after {
        Some(asked) => scheduled.max(asked.min(MAX_RETRY_AFTER)),
        None => scheduled,
    };
    Next::RetryAt(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(6)))
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    (date - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_attempts_then_dead_letter() {
        let now = DateTime::UNIX_EPOCH;
        let expected = [5, 30, 120, 600, 3600, 21600];
        for (i, secs) in expected.iter().enumerate() {
            assert_eq!(
                after_failure(i as u32 + 1, now, None, 0, 0.0),
                Next::RetryAt(now + chrono::Duration::seconds(*secs))
            );
        }
        assert_eq!(after_failure(7, now, None, 0, 0.0), Next::DeadLetter);
        assert_eq!(after_failure(0, now, None, 0, 0.0), Next::DeadLetter);
    }

    #[test]
    fn retry_after_never_makes_it_earlier_and_jitter_only_delays() {
        let now = DateTime::UNIX_EPOCH;
        let at = |n| match n {
            Next::RetryAt(t) => (t - now).num_milliseconds(),
            Next::DeadLetter => -1,
        };
        assert_eq!(at(after_failure(2, now, Some(Duration::from_secs(1)), 0, 0.0)), 30_000);
        assert_eq!(at(after_failure(2, now, Some(Duration::from_secs(90)), 0, 0.0)), 90_000);
        assert_eq!(at(after_failure(1, now, None, 10, 1.0)), 5_500);
        assert!(at(after_failure(1, now, None, 10, 0.3)) >= 5_000);
        assert_eq!(at(after_failure(1, now, Some(Duration::from_secs(10 * 86400)), 0, 0.0)), 86_400_000);
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
