//! Brute-force protection for digest authentication: failed attempts are counted per source
//! address and per account (`extension@domain`, known or not, so a ban says nothing about
//! whether the account exists); past a threshold within a window the source or account is
//! banned for a while.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Thresholds and durations.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Failures from one source address within `window` that ban the source.
    pub source_failures: usize,
    /// Failures against one account within `window` that ban the account.
    pub account_failures: usize,
    pub window: Duration,
    pub ban: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            source_failures: 20,
            account_failures: 10,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
        }
    }
}

/// Entries kept per map; beyond it, entries with no ban and no recent failure are dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Counter {
    failures: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

impl Counter {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|t| t > now)
    }

    /// Records a failure; true if it starts a ban.
    fn fail(&mut self, now: Instant, threshold: usize, config: &GuardConfig) -> bool {
        while self.failures.front().is_some_and(|t| now.duration_since(*t) > config.window) {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if self.failures.len() >= threshold && !self.banned(now) {
            self.banned_until = Some(now + config.ban);
            self.failures.clear();
            return true;
        }
        false
    }

    fn idle(&self, now: Instant, config: &GuardConfig) -> bool {
        !self.banned(now) && self.failures.back().is_none_or(|t| now.duration_since(*t) > config.window)
    }
}

#[derive(Default)]
struct State {
    sources: HashMap<IpAddr, Counter>,
    accounts: HashMap<String, Counter>,
}

/// What a failure caused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Banned {
    pub(crate) source: bool,
    pub(crate) account: bool,
}

pub(crate) struct Guard {
    config: GuardConfig,
    state: Mutex<State>,
}

impl Guard {
    pub(crate) fn new(config: GuardConfig) -> Self {
        Self { config, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn source_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock().sources.get(&ip).is_some_and(|c| c.banned(now))
    }

    pub(crate) fn account_banned(&self, account: &str, now: Instant) -> bool {
        self.lock().accounts.get(account).is_some_and(|c| c.banned(now))
    }

    /// Records a failed authentication; reports bans that start now.
    pub(crate) fn fail(&self, ip: IpAddr, account: &str, now: Instant) -> Banned {
        let config = &self.config;
        let mut state = self.lock();
        if state.sources.len() >= MAX_ENTRIES {
            state.sources.retain(|_, c| !c.idle(now, config));
        }
        if state.accounts.len() >= MAX_ENTRIES {
            state.accounts.retain(|_, c| !c.idle(now, config));
        }
        let source = state.sources.entry(ip).or_default().fail(now, config.source_failures, config);
        let account =
            state.accounts.entry(account.to_owned()).or_default().fail(now, config.account_failures, config);
        Banned { source, account }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_the_threshold_and_forgets_after_the_ban() {
        let config = GuardConfig { source_failures: 3, account_failures: 2, ..GuardConfig::default() };
        let guard = Guard::new(config.clone());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(guard.fail(ip, "1000@a", t0), Banned::default());
        assert_eq!(guard.fail(ip, "1000@a", t0), Banned { source: false, account: true });
        assert!(guard.account_banned("1000@a", t0));
        assert!(!guard.account_banned("1001@a", t0));
        assert_eq!(guard.fail(ip, "1001@a", t0), Banned { source: true, account: false });
        assert!(guard.source_banned(ip, t0 + Duration::from_secs(299)));
        assert!(!guard.source_banned(ip, t0 + config.ban + Duration::from_secs(1)));
        // Failures older than the window do not add up.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        guard.fail(other, "x", t0);
        guard.fail(other, "y", t0);
        assert!(!guard.fail(other, "z", t0 + Duration::from_secs(120)).source);
    }
}
